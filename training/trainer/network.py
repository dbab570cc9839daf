"""The network a `TrainConfig` describes (coala_embed.model, the definition inference uses), and a
warm start of it from a checkpoint."""
from __future__ import annotations

from coala_embed.model import COALA, ModelConfig
from training.trainer.config import TrainConfig


def build_net(cfg: TrainConfig | dict, n_tags: int) -> COALA:
    """The network a training config describes; export rebuilds a run's network with the same call."""
    cfg = TrainConfig.of(cfg)
    return COALA(ModelConfig(variant=cfg.variant, n_tags=n_tags, dropout=cfg.dropout, conv_dropout=cfg.conv_dropout))


def warm_start(net: COALA, source: str, tags: list[str] | None = None) -> list[str]:
    """Copy into net every tensor of a checkpoint (a folder, a Hub id, or "bundled") with the same name and
    shape, e.g. the shipped audio encoder into a net with a new tag vocabulary; returns their names.

    tags: the net's tag vocabulary. Where it differs from the checkpoint's, the tensors indexed by tag
    (the tag encoder's input columns, the rows of the CNN classifier's output; an export has no tag
    decoder) are copied tag by tag,
    for the tags both know; the others keep their fresh initialisation. Copied whole by shape, a
    same-sized vocabulary of other words would hand every tag the weights of another."""
    import torch

    from coala_embed.checkpoint import load_model

    source_model = load_model(None if source == "bundled" else source, device="cpu")
    state, own = source_model.net.state_dict(), net.state_dict()
    n_old = len(source_model.tags)
    by_tag = tags is not None and list(tags) != list(source_model.tags)
    theirs = {t: i for i, t in enumerate(source_model.tags)}
    pairs = [(i, theirs[t]) for i, t in enumerate(tags or ()) if t in theirs]
    mine, old = (torch.tensor(x, dtype=torch.long) for x in zip(*pairs)) if pairs else ([], [])
    loaded = {}
    for k, v in state.items():
        if k not in own:
            continue
        if by_tag and k.startswith("tag_encoder.net.0.") and v.dim() == 2 and v.shape[1] == n_old:
            loaded[k] = own[k].clone()
            loaded[k][:, mine] = v[:, old]  # one input column per tag
        elif by_tag and k.startswith("classifier.") and v.dim() and v.shape[0] == n_old:
            loaded[k] = own[k].clone()
            loaded[k][mine] = v[old]  # one output row per tag (weights, biases, batch-norm statistics)
        elif own[k].shape == v.shape:
            loaded[k] = v
    net.load_state_dict(loaded, strict=False)
    return list(loaded)
