"""Paired differences between extractors of one `training.evaluate` run: the same folds and seeds,
so fold-by-fold differences cancel the split noise that dominates small sets (esc50-dev's folds
differ by +-10 points, a paired difference by +-2).

    python -m training.paired eval-results/results.json --baseline shipped
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def fold_vector(acc: dict) -> np.ndarray:
    return np.asarray([a for seed in sorted(acc["fold_accuracies"]) for a in acc["fold_accuracies"][seed]])


def paired(results: dict, a: str, b: str) -> dict:
    """Per set: mean of (a - b) over folds x seeds in points, its standard error, and the folds a wins
    and loses; plus the mean of the per-set accuracies of each, over the sets both were scored on."""
    rows, means_a, means_b = {}, [], []
    for task, t in results["tasks"].items():
        if a not in t["accuracy"] or b not in t["accuracy"]:
            continue
        d = 100 * (fold_vector(t["accuracy"][a]) - fold_vector(t["accuracy"][b]))
        rows[task] = {"diff": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan"),
                      "wins": int((d > 1e-9).sum()), "losses": int((d < -1e-9).sum()), "n": int(len(d))}
        means_a.append(100 * t["accuracy"][a]["mean"])
        means_b.append(100 * t["accuracy"][b]["mean"])
    return {"sets": rows, "mean_a": float(np.mean(means_a)), "mean_b": float(np.mean(means_b))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.paired", description=__doc__.splitlines()[0])
    p.add_argument("results", help="results.json of training.evaluate")
    p.add_argument("--baseline", required=True, help="extractor to compare every other one against")
    args = p.parse_args(argv)
    with open(args.results) as f:
        results = json.load(f)
    names = sorted({n for t in results["tasks"].values() for n in t["accuracy"]} - {args.baseline})
    for name in names:
        r = paired(results, name, args.baseline)
        print(f"{name} - {args.baseline}: mean over sets {r['mean_a']:.1f} vs {r['mean_b']:.1f}")
        for task, s in r["sets"].items():
            print(f"  {task}: {s['diff']:+.1f} (se {s['se']:.1f}), better in {s['wins']}, worse in {s['losses']} of {s['n']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
