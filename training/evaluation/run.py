"""Downstream evaluation of audio embeddings: the protocol of the COALA paper (sec. 3.2) on labelled sets.

    python -m training.evaluate [--data DIR]... [--model [NAME=]SOURCE]... [--out DIR]

Extractors, side by side:
  * each `--model` checkpoint (a folder, a file in it, a Hugging Face Hub id or 'bundled'), through the
    package's batched path (`coala_embed.embed_files`); clip vector = mean of its patch embeddings,
    exactly the `mean` that `process_file` writes;
  * `random`: the same encoder architecture with random weights (seeded), used with the front end
    (scaler included) of the first `--model`, or with a unit scaler (unscaled log-mel) when none is given;
  * `mfcc`: the low anchor, 20 MFCCs + deltas + delta-deltas, mean and std over time (120-d), computed
    with librosa at 22050 Hz (see training/evaluation/features.py).

Protocol per data set: one vector per clip; a Pipeline(StandardScaler, MLPClassifier(hidden (256,)))
fitted on the training split only; stratified k-fold (StratifiedGroupKFold when the set has a group
column, so clips of one recording/speaker never straddle train and test), repeated over seeds (the seed
drives both the fold shuffling and the MLP initialisation; every extractor sees the same folds). The
figure reported is the mean of the fold accuracies over all folds x seeds, and their standard deviation
(ddof=0) over the same folds x seeds.

Data sets: folders with a `labels.csv` (`file,label[,group]`; the third column, whatever its name, e.g.
`group` or `speaker`, is the group) or with one sub-folder per class. By default `../shared/data/esc50-dev`
and `../shared/data/fsdd` relative to the repository are evaluated when present; absent sets are skipped.
The development sets that `training.corpus` holds out of training join them through the environment:
COALA_EVAL_DATA, folders separated by ':', each a set or a folder of sets (e.g. <corpus>/heldout, whose
sub-folders with a labels.csv are the sets).

Embeddings are cached per extractor identity (checkpoint sha256 + front-end hash, 'mfcc-v1', random
seed + weight hash + front-end hash) and per file (resolved path, size, mtime), so re-running with other
classifier settings does not re-extract.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from training.evaluation.cache import DEFAULT_CACHE, extract
from training.evaluation.datasets import DEFAULT_DATA, EVAL_DATA_ENV, Dataset, data_paths, find_datasets
from training.evaluation.extractors import Extractor, build_extractors, extractor_label, stats_extractor
from training.evaluation.protocol import ClassifierSettings, chance_level, cross_validate, make_splits
from training.evaluation.report import fmt_acc, log, markdown_table, plot_accuracy, tsne_map


def evaluate(datasets: list[Dataset], extractors: list[Extractor], out: Path, settings: ClassifierSettings,
             cache_root: Path | None = DEFAULT_CACHE, correlation: bool = True, tsne: str | None = "auto",
             skipped: list | None = None, progress: bool = True, jobs: int = 1, command: str | None = None) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    import sklearn
    import torch
    import coala_embed

    results = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "protocol": ("one vector per clip (mean over non-overlapping patches for COALA extractors); "
                     "Pipeline(StandardScaler, MLPClassifier) fitted on the training split; stratified k-fold, "
                     "grouped (StratifiedGroupKFold) when the set has a group column; repeated over seeds (seed = "
                     "fold shuffling and MLP init, same folds for every extractor); accuracy = mean of fold "
                     "accuracies over all folds x seeds, std = their standard deviation (ddof=0) over the same"),
        "settings": {"hidden": list(settings.hidden), "max_iter": settings.max_iter, "alpha": settings.alpha,
                     "learning_rate_init": settings.learning_rate_init, "solver": "adam", "activation": "relu",
                     "early_stopping": False, "jobs": jobs, "folds": settings.folds, "seeds": list(settings.seeds),
                     "cache": None if cache_root is None else str(cache_root)},
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "sklearn": sklearn.__version__,
                        "torch": torch.__version__, "coala_embed": getattr(coala_embed, "__version__", "?"),
                        "torch_threads": torch.get_num_threads()},
        "extractors": {ex.name: dict(ex.info, label=extractor_label(ex)) for ex in extractors},
        "skipped_datasets": skipped or [],
        "tasks": {},
        "timings": {},
    }
    all_vectors: dict[str, dict[str, np.ndarray]] = {}
    kept_labels: dict[str, np.ndarray] = {}
    for ds in datasets:
        log(f"{ds.name}: {len(ds.files)} clips, {len(ds.classes)} classes, layout {ds.layout}"
            + (f", grouped by {ds.group_column} ({len(set(ds.groups.tolist()))} groups)" if ds.groups is not None else ""))
        timing = {}
        extracted = {}
        for ex in extractors:
            r = extract(ds, ex, cache_root, progress)
            extracted[ex.name] = r
            timing[ex.name] = {"extract_s": round(r["extract_s"], 3), "cache_read_s": round(r["cache_read_s"], 3),
                               "cache_hits": r["cache_hits"], "extracted": r["extracted"], "failed": r["failed"]}
            log(f"  {ex.name}: {r['cache_hits']} cache hits, {r['extracted']} extracted in {r['extract_s']:.1f} s"
                + (f", {r['failed']} failed" if r["failed"] else ""))
            for msg in list(r["errors"].values())[:3]:
                log(f"    {msg}")
        stats = None
        if correlation:
            side = next((ex.side for ex in extractors if getattr(ex, "side", None) is not None), None)
            r = extract(ds, stats_extractor(side), cache_root, progress)
            if side:
                side.clear()
            extracted["__stats__"] = r
            timing["descriptors"] = {"extract_s": round(r["extract_s"], 3), "cache_hits": r["cache_hits"],
                                     "extracted": r["extracted"], "failed": r["failed"]}
        ok = np.asarray([all(i in r["vectors"] for r in extracted.values()) for i in range(len(ds.files))])
        failures = sorted({m for r in extracted.values() for m in r["errors"].values()})
        sub = ds.subset(ok)
        vecs = {n: np.stack([r["vectors"][i] for i in np.flatnonzero(ok)]) for n, r in extracted.items()}
        if "__stats__" in vecs:
            stats = vecs.pop("__stats__")
        if len(sub.files) < 4 or len(sub.classes) < 2:
            log(f"skipping {ds.name}: only {len(sub.files)} usable clips in {len(sub.classes)} classes")
            results["skipped_datasets"].append({"path": str(ds.root), "reason": "too few usable clips"})
            continue
        all_vectors[ds.name] = vecs
        kept_labels[ds.name] = sub.labels
        t0 = time.perf_counter()
        splits, splitter = {}, None
        try:
            for seed in settings.seeds:
                splits[seed], splitter = make_splits(sub.labels, sub.groups, settings.folds, seed)
        except ValueError as e:  # e.g. a single group: no grouped split exists
            log(f"skipping {ds.name}: cannot split it into folds ({e})")
            results["skipped_datasets"].append({"path": str(ds.root), "reason": f"cannot split: {e}"})
            continue
        if sub.groups is not None:  # the guarantee, checked
            for pairs in splits.values():
                for tr, te in pairs:
                    if set(sub.groups[tr].tolist()) & set(sub.groups[te].tolist()):
                        raise RuntimeError(f"{ds.name}: a group straddles train and test")
        task = {"path": str(ds.root), "layout": ds.layout, "n_clips": len(sub.files), "n_classes": len(sub.classes),
                "classes": sub.classes, "group_column": ds.group_column,
                "n_groups": None if sub.groups is None else len(set(sub.groups.tolist())),
                "splitter": splitter, "fold_test_sizes": {str(s): [len(te) for _, te in p] for s, p in splits.items()},
                "chance": chance_level(sub.labels), "failed_files": failures, "missing_files": ds.dropped,
                "accuracy": {}, "correlation": {}}
        for ex in extractors:
            t1 = time.perf_counter()
            task["accuracy"][ex.name] = cross_validate(vecs[ex.name], sub.labels, splits, settings, jobs)
            timing[ex.name]["classify_s"] = round(time.perf_counter() - t1, 3)
            log(f"  {ex.name}: accuracy {fmt_acc(task['accuracy'][ex.name])} %"
                f" ({time.perf_counter() - t1:.1f} s for {task['accuracy'][ex.name]['n_fits']} fits)")
        if stats is not None:
            from training.evaluation.features import correlation_analysis

            t1 = time.perf_counter()
            for ex in extractors:
                task["correlation"][ex.name] = correlation_analysis(vecs[ex.name], stats)
            timing["correlation_s"] = round(time.perf_counter() - t1, 3)
        timing["total_s"] = round(time.perf_counter() - t0 + sum(r["extract_s"] + r["cache_read_s"] for r in extracted.values()), 3)
        results["tasks"][ds.name] = task
        results["timings"][ds.name] = timing

    if results["tasks"]:
        plot_accuracy(results, out / "accuracy.png")
        target = None
        if tsne == "auto":
            target = next(iter(results["tasks"]))
        elif tsne and tsne != "none":
            target = tsne if tsne in results["tasks"] else None
            if target is None:
                log(f"no t-SNE map: data set {tsne!r} not evaluated")
        if target:
            t0 = time.perf_counter()
            results["tsne"] = dict(tsne_map({results["extractors"][n]["label"]: X for n, X in all_vectors[target].items()},
                                            kept_labels[target], target, out / f"tsne_{target}.png"), dataset=target,
                                   file=f"tsne_{target}.png")
            results["timings"]["tsne_s"] = round(time.perf_counter() - t0, 3)
    results["timings"]["wall_s"] = round(time.perf_counter() - t_start, 3)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    (out / "results.md").write_text(markdown_table(results) if results["tasks"] else "No data set was evaluated.\n")
    log(f"wrote {out / 'results.json'}, {out / 'results.md'} ({results['timings']['wall_s']:.1f} s)")
    return results


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def parse_seeds(s: str) -> tuple[int, ...]:
    s = s.strip()
    if "," in s:
        return tuple(int(x) for x in s.split(",") if x.strip())
    n = int(s)
    if n < 1:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed")
    return tuple(range(n))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Default data sets (skipped when absent): " + ", ".join(map(str, DEFAULT_DATA))
                                + f", and those in ${EVAL_DATA_ENV} (':'-separated sets or folders of sets)")
    p.add_argument("--data", action="append", default=[], metavar="DIR",
                   help="a labelled set (labels.csv or one sub-folder per class); repeatable, added to the defaults")
    p.add_argument("--no-default-data", action="store_true", help="evaluate only the --data sets")
    p.add_argument("--model", action="append", default=[], metavar="[NAME=]SOURCE",
                   help="a checkpoint: folder, file in it, Hugging Face Hub id, or 'bundled'; repeatable")
    p.add_argument("--no-mfcc", action="store_true", help="leave out the MFCC low anchor")
    p.add_argument("--no-random", action="store_true", help="leave out the random-weight encoder")
    p.add_argument("--random-seed", type=int, default=0, help="seed of the random-weight encoder (default 0)")
    p.add_argument("--seeds", type=parse_seeds, default=(0, 1, 2),
                   help="N (seeds 0..N-1) or a comma list; each seed = one shuffled k-fold + MLP init (default 3)")
    p.add_argument("--folds", type=int, default=5, help="k of the (grouped) stratified k-fold (default 5)")
    p.add_argument("--max-iter", type=int, default=500, help="MLP epochs at most (default 500; adam, no early stopping)")
    p.add_argument("--hidden", type=int, default=256, help="MLP hidden units (default 256)")
    p.add_argument("--alpha", type=float, default=1e-4, help="MLP L2 penalty (default 1e-4)")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), metavar="DIR", help=f"embedding cache (default {DEFAULT_CACHE})")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--out", default="eval-results", metavar="DIR", help="output folder (default ./eval-results)")
    p.add_argument("--tsne", default="auto", metavar="SET",
                   help="data set for the t-SNE map: a set name, 'auto' (the first) or 'none'")
    p.add_argument("--no-correlation", action="store_true", help="skip the CCA correlation analysis")
    p.add_argument("--batch-size", type=int, default=32, help="patches per encoder forward pass (default 32)")
    p.add_argument("--precision", action="append", choices=("fp32", "bf16", "fp16", "int8"), default=None,
                   help="encoder precision of each --model; repeat to compare (e.g. --precision fp32 --precision bf16; "
                        "the extra ones are named NAME-bf16; int8: the checkpoint's quantized encoder in onnxruntime); default fp32")
    p.add_argument("--device", default=None, help="torch device for the encoders (default: CUDA if available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice / OMP_NUM_THREADS)")
    p.add_argument("--jobs", type=int, default=1, help="classifier fits run in parallel (joblib; default 1); same results")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    paths = data_paths(([] if args.no_default_data else list(DEFAULT_DATA)) + args.data,
                       None if args.no_default_data else os.environ.get(EVAL_DATA_ENV))
    datasets, skipped = find_datasets(paths)
    try:
        extractors = build_extractors(args.model, mfcc=not args.no_mfcc, random=not args.no_random,
                                      random_seed=args.random_seed, batch_size=args.batch_size, device=args.device,
                                      precisions=tuple(dict.fromkeys(args.precision or ["fp32"])))
    except Exception as e:  # CheckpointError and friends: a model explicitly asked for must load
        log(f"error: {e}")
        return 2
    if not extractors:
        log("error: no extractor (give --model, or keep the MFCC / random anchors)")
        return 2
    if not datasets:
        log("no data set found; nothing to evaluate")
    settings = ClassifierSettings(hidden=(args.hidden,), max_iter=args.max_iter, alpha=args.alpha, folds=args.folds,
                                  seeds=tuple(args.seeds))
    results = evaluate(datasets, extractors, Path(args.out), settings,
                       cache_root=None if args.no_cache else Path(os.path.expanduser(args.cache)),
                       correlation=not args.no_correlation, tsne=args.tsne, skipped=skipped,
                       progress=not args.no_progress, jobs=args.jobs,
                       command="python -m training.evaluate " + " ".join(sys.argv[1:] if argv is None else argv))
    if results["tasks"]:
        print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
