"""Which statistics of the MFCC anchor carry a data set, and does a COALA model add to them?

    python -m training.anchor_ablation --model aec=bundled

Scores parts of the 120-d anchor (static MFCC mean, mean and std, all means, all stds), the model,
random weights, and the model concatenated with the anchor, with the protocol and folds of
`training.evaluate` and vectors from its cache. The model's output has time steps of 0.74 s (96-frame
patches, five stride-2 blocks), the anchor's deltas and stds follow 23-ms frames: this tells whether
a set is decided by a time course finer than the model's steps.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from training.evaluation import features as F
from training.evaluation.cache import DEFAULT_CACHE, extract
from training.evaluation.datasets import DEFAULT_DATA, EVAL_DATA_ENV, data_paths, find_datasets
from training.evaluation.extractors import build_extractors
from training.evaluation.protocol import ClassifierSettings, cross_validate, make_splits


def mfcc_views(anchor: np.ndarray) -> dict[str, np.ndarray]:
    """Named parts of (n, 120) anchors, laid out as features._anchor writes them:
    mean of [MFCC, delta, delta-delta], then std of the same."""
    n, third = F.N_MFCC, 3 * F.N_MFCC
    return {
        "MFCC anchor (120)": anchor,
        "means only (60)": anchor[:, :third],
        "stds only (60)": anchor[:, third:],
        "static MFCC mean and std, no deltas (40)": np.hstack([anchor[:, :n], anchor[:, third:third + n]]),
        "static MFCC mean (20)": anchor[:, :n],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.anchor_ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="aec=bundled", metavar="[NAME=]SOURCE")
    p.add_argument("--data", action="append", default=[], metavar="DIR", help="added to evaluate's default sets")
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)

    datasets, _ = find_datasets(data_paths(list(DEFAULT_DATA) + args.data, os.environ.get(EVAL_DATA_ENV)))
    extractors = build_extractors([args.model])
    name = extractors[0].name
    settings = ClassifierSettings()
    for ds in datasets:
        found = [extract(ds, ex, DEFAULT_CACHE, progress=False) for ex in extractors]
        ok = np.asarray([all(i in r["vectors"] for r in found) for i in range(len(ds.files))])
        X = {ex.name: np.stack([r["vectors"][i] for i in np.flatnonzero(ok)]) for ex, r in zip(extractors, found)}
        ds = ds.subset(ok)
        views = mfcc_views(X["mfcc"])
        views.update({f"{name} ({X[name].shape[1]})": X[name], f"random weights ({X['random'].shape[1]})": X["random"],
                      f"{name} + MFCC anchor": np.hstack([X[name], X["mfcc"]])})
        splits = {s: make_splits(ds.labels, ds.groups, settings.folds, s)[0] for s in settings.seeds}
        print(f"{ds.name} ({len(ds.files)} clips): accuracy %, and paired difference to the MFCC anchor (se)")
        accs = {}
        for label, x in views.items():  # the full anchor first: the others are paired against it
            r = cross_validate(x, ds.labels, splits, settings, jobs=args.jobs)
            acc = accs[label] = 100 * np.array([a for s in sorted(r["fold_accuracies"]) for a in r["fold_accuracies"][s]])
            d = acc - next(iter(accs.values()))
            print(f"  {label:45s} {acc.mean():5.1f} ± {acc.std():4.1f}   {d.mean():+5.1f} "
                  f"(se {d.std(ddof=1) / np.sqrt(len(d)):.1f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
