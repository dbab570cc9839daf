"""A checkpoint's tag head (coala_embed.tag_head), fitted on the prepared patches (`python -m training.tag_head`).

Embeds the prepared training and validation patches with the checkpoint's own encoder (frozen: the
embeddings users get do not change), fits one hidden layer on them to the patches' sound tags (the
vocabulary's; multi-label binary cross-entropy, AdamW, the epoch of lowest validation loss kept), folds the
embedding's standardisation and each tag's prior log-odds into the layers, and writes
`tag_head.safetensors` beside the weights with its sha256, tags and provenance in config.json.
`--seeds 0,1,2` (the default) fits one head per seed and writes their mean, which is itself one head, with
the members' hidden units side by side: a single fit's ranks move by several places with its seed, and the
mean of three ranks the right tag higher than its members do on average (training/EXPERIMENTS.md).

`--data` must be the prepared folder the weights were trained on (its meta.json names their tags), or a copy
of it with narrowed targets (training.scripts.narrow_targets: the bundled head's, recorded as `narrowed`); patches
with no sound tag are left out. About 2 min to embed 95k patches and 2.5 min a seed to fit on 2 CPU cores.
`--restrict` fits nothing: after a vocabulary rebuild it drops the outputs whose tags are no longer sound tags.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import coala_embed
from coala_embed.checkpoint import record_file
from coala_embed.encoder import TorchEncoder
from coala_embed.tag_head import TAG_HEAD_NAME, fold
from training.trainer.data import load_prepared, prepared_for

HIDDEN = 1024     # 512 ranked ysl and openclonk worse than the cosine; 1024 better on three sets of four
EPOCHS = 25
LR = 1e-3
WEIGHT_DECAY = 1e-4
DROPOUT = 0.3
BATCH = 512
SEEDS = (0, 1, 2)


def embed_patches(model, patches, batch: int = 256) -> np.ndarray:
    encoder = TorchEncoder(model)
    return np.concatenate([encoder.submit([np.ascontiguousarray(patches[i:i + batch])])()
                           for i in range(0, len(patches), batch)])


def fit(x_train, y_train, x_val, y_val, hidden=HIDDEN, epochs=EPOCHS, seed=0, log=print):
    """A one-hidden-layer classifier of multi-hot targets; returns its folded TagHead state and the best
    validation loss. The output bias starts at the prior log-odds so that early epochs are not spent on it."""
    torch.manual_seed(seed)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    prior = np.clip(y_train.mean(0), 1e-6, 1 - 1e-6)
    prior_logit = np.log(prior / (1 - prior)).astype(np.float32)
    net = torch.nn.Sequential(torch.nn.Linear(x_train.shape[1], hidden), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT),
                              torch.nn.Linear(hidden, y_train.shape[1]))
    with torch.no_grad():
        net[-1].bias.copy_(torch.from_numpy(prior_logit))
    opt = torch.optim.AdamW(net.parameters(), LR, weight_decay=WEIGHT_DECAY)
    xt, yt = torch.from_numpy((x_train - mean) / std), torch.from_numpy(y_train)
    xv, yv = torch.from_numpy((x_val - mean) / std), torch.from_numpy(y_val)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
    best, state = float("inf"), None
    for epoch in range(1, epochs + 1):
        net.train()
        for b in torch.randperm(len(xt)).split(BATCH):
            loss = loss_fn(net(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val = loss_fn(net(xv), yv).item()
        log(f"epoch {epoch}: validation BCE {val:.5f}")
        if val < best:
            best, state = val, {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    layers = [t.detach().numpy() for t in (net[0].weight, net[0].bias, net[-1].weight, net[-1].bias)]
    return fold(*layers, mean, std, prior_logit), best


def mean_of(states: list[dict]) -> dict:
    """The folded state whose scores are the mean of the given heads' scores: relu is per hidden unit, so
    the members' hidden layers stand side by side and the output layer averages them."""
    k = len(states)
    return {"w1": np.concatenate([s["w1"] for s in states], axis=1), "b1": np.concatenate([s["b1"] for s in states]),
            "w2": np.concatenate([s["w2"] for s in states], axis=0) / k, "b2": sum(s["b2"] for s in states) / k}


def write(folder: Path, state: dict, tags: list[str], provenance: dict) -> Path:
    from safetensors.numpy import save

    folder = Path(folder)
    path = folder / TAG_HEAD_NAME
    tmp = path.with_suffix(".tmp")
    # float16 on disk, float32 once loaded (TagHead.from_state): half the file (15 MB for three heads), and on
    # the four sets no rank or top-1 moved (largest score change 0.0034; training/EXPERIMENTS.md)
    tmp.write_bytes(save({k: np.ascontiguousarray(v, np.float16) for k, v in state.items()}))
    os.replace(tmp, path)
    record_file(folder, "tag_head", path, tag_head={"tags": list(tags), "provenance": provenance})
    return path


def restrict(folder: Path) -> tuple[Path, int]:
    """Keep the outputs of the head beside the weights whose tags the vocabulary still calls sound tags.

    A rebuilt vocabulary.json (a judgement on which words describe sounds) may drop sound tags; the head's
    other outputs do not depend on them, whereas a fit again moves every rank by its seed (training/EXPERIMENTS.md).
    """
    from safetensors.numpy import load_file

    model = coala_embed.load_model(folder, device="cpu")
    head, tags = model.tag_head, model.vocabulary.sound_tags
    if head is None:
        raise SystemExit(f"{folder}: no tag head to restrict")
    missing = [t for t in tags if t not in head.tags]
    if missing:
        raise SystemExit(f"{folder}: the head scores no {', '.join(missing[:5])}: fit it (--data) instead")
    columns = [head.tags.index(t) for t in tags]
    state = load_file(str(Path(folder) / TAG_HEAD_NAME))
    state.update(w2=np.ascontiguousarray(state["w2"][:, columns]), b2=np.ascontiguousarray(state["b2"][columns]))
    provenance = dict(model.config["tag_head"]["provenance"])
    dropped = [t for t in head.tags if t not in tags]
    provenance["restricted"] = provenance.get("restricted", []) + [
        {"from_sha256": model.config["tag_head_sha256"], "dropped": dropped,
         "vocabulary_sha256": model.config.get("vocabulary_sha256")}]
    return write(folder, state, tags, provenance), len(tags)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.tag_head", description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, type=Path, help="checkpoint folder (with its vocabulary.json)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--data", type=Path, help="the training.prepare folder the weights were trained on: fit")
    what.add_argument("--restrict", action="store_true", help="no fit: drop the outputs of the head beside the "
                                                              "weights whose tags are no longer sound tags")
    p.add_argument("--hidden", type=int, default=HIDDEN)
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=list(SEEDS),
                   help="fit one head per seed and write their mean (default: 0,1,2)")
    args = p.parse_args(argv)
    if args.restrict:
        path, kept = restrict(args.weights)
        print(f"wrote {path} ({kept} tags)")
        return 0
    start = time.time()
    model = coala_embed.load_model(args.weights, device="cpu")
    meta = prepared_for(model, args.data)
    tags = model.vocabulary.sound_tags
    columns = [model.tags.index(t) for t in tags]
    splits = {}
    for split in ("train", "val"):
        data = load_prepared(args.data, split)
        y = np.asarray(data.tags)[:, columns].astype(np.float32)
        rows = np.flatnonzero(y.any(axis=1))
        splits[split] = (embed_patches(model, data.patches)[rows], y[rows])  # streamed from the memory map
        print(f"{split}: {len(rows)} of {len(y)} patches carry a sound tag; embedded ({time.time() - start:.0f} s)")
    fits = [fit(*splits["train"], *splits["val"], hidden=args.hidden, epochs=args.epochs, seed=seed)
            for seed in args.seeds]
    state, best = mean_of([f[0] for f in fits]), [round(f[1], 6) for f in fits]
    provenance = {"data": str(args.data), "corpus_manifest_sha256": meta.get("corpus_manifest_sha256"),
                  "train_patches": len(splits["train"][1]), "val_patches": len(splits["val"][1]),
                  "hidden": args.hidden, "epochs": args.epochs, "seeds": args.seeds, "dropout": DROPOUT, "lr": LR,
                  "weight_decay": WEIGHT_DECAY, "batch_size": BATCH, "best_val_bce": best,
                  "narrowed": sorted(meta.get("narrow_targets", {}).get("zeroed_tags", {})),  # training.scripts.narrow_targets
                  "weights_sha256": model.sha256, "seconds": round(time.time() - start, 1),
                  "command": "python -m training.tag_head " + " ".join(argv if argv is not None else sys.argv[1:])}
    path = write(args.weights, state, tags, provenance)
    print(f"wrote {path} ({len(tags)} tags, the mean of {len(fits)} heads, validation BCE "
          f"{', '.join(f'{b:.5f}' for b in best)}, {time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
