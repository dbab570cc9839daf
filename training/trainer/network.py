"""The network a `TrainConfig` describes (coala_embed.model, the definition inference uses), and a
warm start of it from a checkpoint."""
from __future__ import annotations

from coala_embed.model import COALA, ModelConfig
from training.trainer.config import TrainConfig


def build_net(cfg: TrainConfig | dict, n_tags: int) -> COALA:
    """The network a training config describes; export rebuilds a run's network with the same call."""
    cfg = TrainConfig.of(cfg)
    return COALA(ModelConfig(variant=cfg.variant, n_tags=n_tags, dropout=cfg.dropout, conv_dropout=cfg.conv_dropout))


def warm_start(net: COALA, source: str) -> list[str]:
    """Copy into net every tensor of a checkpoint (a folder, a Hub id, or "bundled") with the same name and
    shape, e.g. the shipped audio encoder into a net with a new tag vocabulary; returns their names."""
    from coala_embed.checkpoint import load_model

    state = load_model(None if source == "bundled" else source, device="cpu").net.state_dict()
    own = net.state_dict()
    copied = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    net.load_state_dict({k: state[k] for k in copied}, strict=False)
    return copied
