"""Downstream evaluation of audio embeddings: the protocol of the COALA paper (sec. 3.2) on labelled sets.

    python -m training.evaluate [--data DIR]... [--model [NAME=]SOURCE]... [--out DIR]

Extractors, side by side:
  * each `--model` checkpoint (a folder, a file in it, a Hugging Face Hub id or 'bundled'), through the
    package's batched path (`coala_embed.core.embed_files`); clip vector = mean of its patch embeddings,
    exactly the `mean` that `process_file` writes;
  * `random`: the same encoder architecture with random weights (seeded), used with the front end
    (scaler included) of the first `--model`, or with a unit scaler (unscaled log-mel) when none is given;
  * `mfcc`: the low anchor, 20 MFCCs + deltas + delta-deltas, mean and std over time (120-d), computed
    with librosa at 22050 Hz (see training/features.py).

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
import csv
import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = [REPO.parent / "shared" / "data" / "esc50-dev", REPO.parent / "shared" / "data" / "fsdd"]
EVAL_DATA_ENV = "COALA_EVAL_DATA"
DEFAULT_CACHE = Path("~/.cache/coala-embed/eval").expanduser()
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".au", ".opus"}
EXTRACTION_VERSION = "x1"  # patches: non-overlapping, no centring, no clip padding, soxr_hq; clip = mean


def log(msg: str):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# data sets


class DatasetError(ValueError):
    pass


@dataclasses.dataclass
class Dataset:
    name: str
    root: Path
    files: list[Path]
    labels: np.ndarray
    groups: np.ndarray | None = None
    group_column: str | None = None
    layout: str = "labels.csv"
    dropped: list[str] = dataclasses.field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels.tolist()))

    def subset(self, keep: np.ndarray) -> "Dataset":
        keep = np.asarray(keep, bool)
        return dataclasses.replace(self, files=[f for f, k in zip(self.files, keep) if k], labels=self.labels[keep],
                                   groups=None if self.groups is None else self.groups[keep])


def load_dataset(root, name: str | None = None) -> Dataset:
    """A labelled set: `labels.csv` (`file,label[,group]`) or one sub-folder of audio per class."""
    root = Path(root)
    name = name or root.name
    csv_path = root / "labels.csv"
    if csv_path.exists():
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            if "file" not in columns or "label" not in columns:
                raise DatasetError(f"{csv_path}: needs a header with 'file' and 'label' columns, got {columns}")
            extra = [c for c in columns if c not in ("file", "label")]
            group_column = next((c for c in ("group", "speaker") if c in extra), extra[0] if extra else None)
            rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
        files, labels, groups, dropped = [], [], [], []
        for r in rows:
            if not r.get("file"):
                continue
            path = root / r["file"]
            if not path.is_file():
                dropped.append(f"{r['file']}: listed in labels.csv but missing")
                continue
            files.append(path)
            labels.append(r["label"])
            groups.append(r.get(group_column, "") if group_column else "")
        layout = "labels.csv"
    else:
        class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        files, labels, dropped = [], [], []
        for d in class_dirs:
            for path in sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS):
                files.append(path)
                labels.append(d.name)
        groups, group_column, layout = [], None, "sub-folders"
        if not files:
            raise DatasetError(f"{root}: neither a labels.csv nor sub-folders of audio files (one per class)")
    if not files:
        raise DatasetError(f"{root}: no audio files")
    groups_arr = None
    if group_column is not None:
        groups_arr = np.asarray(groups, dtype=object)
        if (groups_arr == "").any():  # clips without a group form their own singleton groups
            groups_arr = np.asarray([g if g else f"\0{i}" for i, g in enumerate(groups)], dtype=object)
    return Dataset(name, root, files, np.asarray(labels, dtype=object), groups_arr, group_column, layout, dropped)


def find_datasets(paths: Iterable, announce: Callable[[str], None] = log) -> tuple[list[Dataset], list[dict]]:
    """Load each set that exists; absent or unusable ones are skipped with a message."""
    found, skipped, seen, names = [], [], set(), set()
    for p in paths:
        p = Path(os.path.expanduser(os.fspath(p)))
        key = os.path.realpath(p)
        if key in seen:
            continue
        seen.add(key)
        if not p.is_dir():
            announce(f"skipping data set {p}: not found")
            skipped.append({"path": str(p), "reason": "not found"})
            continue
        try:
            ds = load_dataset(p)
        except (DatasetError, OSError) as e:
            announce(f"skipping data set {p}: {e}")
            skipped.append({"path": str(p), "reason": str(e)})
            continue
        base, i = ds.name, 2
        while ds.name in names:  # two sets with one folder name
            ds.name, i = f"{base}-{i}", i + 1
        names.add(ds.name)
        for msg in ds.dropped[:5]:
            announce(f"{ds.name}: {msg}")
        if len(ds.dropped) > 5:
            announce(f"{ds.name}: ... {len(ds.dropped) - 5} more missing files")
        found.append(ds)
    return found, skipped


def data_paths(paths: Iterable, env: str | None = None) -> list[Path]:
    """``paths`` then the folders in ``env`` (os.pathsep-separated); a folder that is not itself a set
    but holds sets (sub-folders with a labels.csv), as <corpus>/heldout does, stands for those sets."""
    out = []
    for p in [*map(Path, paths), *(Path(e) for e in (env or "").split(os.pathsep) if e)]:
        subsets = sorted(d for d in p.iterdir() if (d / "labels.csv").is_file()) \
            if p.is_dir() and not (p / "labels.csv").exists() else []
        out.extend(subsets or [p])
    return out


# ----------------------------------------------------------------------------------------------
# cache


def file_key(path) -> str:
    """Identity of a file's content as seen by the cache: resolved path, size and mtime (ns)."""
    st = os.stat(path)
    return hashlib.sha1(f"{os.path.realpath(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()


class VectorCache:
    """One .npy per (extractor identity, file key), written atomically; None root disables caching."""

    def __init__(self, root: Path | None, identity: str, info: dict | None = None):
        self.dir = None if root is None else Path(root) / identity
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            meta = self.dir / "extractor.json"
            if info is not None and not meta.exists():
                meta.write_text(json.dumps(info, indent=1, default=str) + "\n")

    def _path(self, path) -> Path:
        key = file_key(path)
        return self.dir / key[:2] / f"{key}.npy"

    def get(self, path) -> np.ndarray | None:
        if self.dir is None:
            return None
        try:
            return np.load(self._path(path))
        except (OSError, ValueError):
            return None

    def put(self, path, vec: np.ndarray):
        if self.dir is None:
            return
        target = self._path(path)
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(vec))
        os.replace(tmp, target)


# ----------------------------------------------------------------------------------------------
# extractors


def _json_hash(d) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def frontend_hash(frontend) -> str:
    return _json_hash(frontend.to_dict())


def state_hash(net) -> str:
    """sha256 over the names, shapes and float32 bytes of the inference weights."""
    h = hashlib.sha256()
    for k, v in sorted(net.inference_state_dict().items()):
        t = v.detach().to("cpu").float().contiguous().numpy()
        h.update(f"{k}{tuple(t.shape)}".encode())
        h.update(t.tobytes())
    return h.hexdigest()


@dataclasses.dataclass
class Extractor:
    name: str
    kind: str  # 'model', 'random' or 'mfcc'
    identity: str  # cache key
    info: dict
    dim: int
    # (paths) -> iterator of (path, vector or None, error or None), in input order
    run: Callable[[list[Path]], Iterator[tuple[str, np.ndarray | None, str | None]]]


def _model_runner(model, batch_size: int, precision: str = "fp32"):
    from coala_embed.core import embed_files

    def run(paths):
        for path, emb, _, error in embed_files(paths, model=model, batch_size=batch_size, precision=precision):
            if error is not None:
                yield path, None, error
            else:  # exactly process_file's `mean`
                yield path, emb.mean(axis=0, dtype=np.float64).astype(np.float32), None
    return run


def model_extractor(model, name: str, kind: str = "model", batch_size: int = 32, extra: dict | None = None,
                    precision: str = "fp32") -> Extractor:
    fe_hash = frontend_hash(model.frontend)
    if kind == "model":
        identity = f"model-{model.sha256[:16]}-fe{fe_hash[:12]}-{EXTRACTION_VERSION}"
    else:
        identity = f"random-s{extra['seed']}-w{model.sha256[:12]}-fe{fe_hash[:12]}-{EXTRACTION_VERSION}"
    if precision != "fp32":  # fp32 keeps the identity (and the cache) it always had
        identity += f"-{precision}"
    info = {"kind": kind, "source": model.source, "variant": model.net.cfg.variant,
            "weights_sha256": model.sha256, "frontend_sha256": fe_hash, "model_config": model.net.cfg.to_dict(),
            "frontend": model.frontend.to_dict(), "embedding_size": model.embedding_size, "cache_identity": identity,
            "clip_vector": "mean over non-overlapping patches (process_file's `mean`)", "precision": precision}
    info.update(extra or {})
    return Extractor(name, kind, identity, info, model.embedding_size, _model_runner(model, batch_size, precision))


def random_model(seed: int = 0, frontend=None, cfg=None, device=None):
    """The COALA architecture with freshly initialised (seeded) weights, wrapped as a checkpoint Model."""
    import torch

    from coala_embed.audio import FrontEnd
    from coala_embed.checkpoint import Model, default_device
    from coala_embed.model import COALA, ModelConfig

    cfg = cfg or ModelConfig()
    if frontend is None:  # unit scaler: the encoder sees unscaled log-mel
        frontend = FrontEnd()
        frontend = frontend.with_scaler([0.0] * frontend.n_mels, [1.0] * frontend.n_mels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = COALA(cfg)
    device = torch.device(device) if device is not None else default_device()
    net.to(device).eval()
    tags = [f"tag{i}" for i in range(cfg.n_tags)]
    config = {"model": cfg.to_dict(), "frontend": frontend.to_dict(), "tags": tags, "weights_sha256": state_hash(net),
              "provenance": {"random_init_seed": seed}}
    return Model(net=net, frontend=frontend, tags=tags, config=config, source=f"random(seed={seed})", device=device)


def mfcc_extractor() -> Extractor:
    """The MFCC anchor. It computes the descriptor statistics of the correlation analysis from the same
    decode and STFT, and keeps them in `ex.side` (path -> vector) for `stats_extractor`."""
    from . import features

    side: dict[str, np.ndarray] = {}

    def run(paths):
        for p in paths:
            try:
                anchor, stats = features.clip_features(p)
            except Exception as e:
                yield str(p), None, f"{p}: {type(e).__name__}: {e}"
                continue
            side[str(p)] = stats
            yield str(p), anchor, None

    info = {"kind": "mfcc", "cache_identity": features.MFCC_ID, "sample_rate": features.FEATURE_SR,
            "description": f"{features.N_MFCC} MFCCs + deltas + delta-deltas (width {features.DELTA_WIDTH}), "
                           f"mean and std over time; librosa at {features.FEATURE_SR} Hz, n_fft {features.N_FFT}, "
                           f"hop {features.HOP}, 128 mel bands"}
    ex = Extractor("mfcc", "mfcc", features.MFCC_ID, info, 120, run)
    ex.side = side
    return ex


def stats_extractor(computed: dict | None = None) -> Extractor:
    """Descriptor statistics (training/features.py); `computed` holds some already (from the MFCC anchor)."""
    from . import features

    computed = {} if computed is None else computed

    def run(paths):
        for p in paths:
            if str(p) in computed:
                yield str(p), computed.pop(str(p)), None
                continue
            try:
                yield str(p), features.clip_stats(p), None
            except Exception as e:
                yield str(p), None, f"{p}: {type(e).__name__}: {e}"

    info = {"kind": "stats", "cache_identity": features.STATS_ID, "descriptors": list(features.DESCRIPTORS),
            "statistics": list(features.STATS), "sample_rate": features.FEATURE_SR}
    return Extractor("descriptors", "stats", features.STATS_ID, info, features.STATS_DIM, run)


def parse_model_arg(arg: str) -> tuple[str | None, str]:
    """'NAME=SOURCE' or 'SOURCE' -> (name or None, source)."""
    if "=" in arg:
        name, source = arg.split("=", 1)
        if name and "/" not in name and os.sep not in name:
            return name, source
    return None, arg


def default_model_name(source: str) -> str:
    if source in ("bundled", ""):
        return "bundled"
    p = Path(source)
    if p.exists():
        p = p.resolve()
        if p.is_file():
            p = p.parent
        return f"{p.parent.name}/{p.name}" if p.name in ("export", "weights", "checkpoint") else p.name
    return source  # a Hub id


def extract(ds: Dataset, ex: Extractor, cache_root: Path | None, progress: bool = True) -> dict:
    """Vectors of all clips of a set, from the cache where possible. Returns vectors, errors and counts."""
    from tqdm.auto import tqdm

    try:
        cache = VectorCache(cache_root, ex.identity, ex.info)
    except OSError as e:
        log(f"cache {cache_root} unusable ({e}); extracting without it")
        cache = VectorCache(None, ex.identity)
    vectors: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    missing = []
    t0 = time.perf_counter()
    for i, p in enumerate(ds.files):
        v = cache.get(p)
        if v is not None and v.shape == (ex.dim,):
            vectors[i] = v
        else:
            missing.append(i)
    t_cache = time.perf_counter() - t0
    t1 = time.perf_counter()
    if missing:
        bar = tqdm(total=len(missing), desc=f"{ds.name} / {ex.name}", unit="clip", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True)
        # extractors yield one result per input, in input order
        for i, (_, vec, error) in zip(missing, ex.run([ds.files[i] for i in missing])):
            if error is not None:
                errors[i] = error
            else:
                vectors[i] = np.asarray(vec, np.float32)
                cache.put(ds.files[i], vectors[i])
            bar.update(1)
        bar.close()
    t_extract = time.perf_counter() - t1
    return {"vectors": vectors, "errors": errors, "cache_hits": len(ds.files) - len(missing),
            "extracted": len(missing) - len(errors), "failed": len(errors),
            "cache_read_s": t_cache, "extract_s": t_extract}


# ----------------------------------------------------------------------------------------------
# classification


@dataclasses.dataclass
class ClassifierSettings:
    hidden: tuple[int, ...] = (256,)
    max_iter: int = 500
    alpha: float = 1e-4
    learning_rate_init: float = 1e-3
    folds: int = 5
    seeds: tuple[int, ...] = (0, 1, 2)

    def mlp(self, seed: int):
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(hidden_layer_sizes=self.hidden, max_iter=self.max_iter, alpha=self.alpha,
                             learning_rate_init=self.learning_rate_init, early_stopping=False, random_state=seed)


def make_splits(labels: np.ndarray, groups: np.ndarray | None, folds: int, seed: int) -> tuple[list, str]:
    """(train, test) index pairs: StratifiedGroupKFold when groups are given, else StratifiedKFold;
    shuffled with `seed`. The number of folds is lowered to what the set allows (groups, class sizes)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(labels)
    x = np.zeros(len(y))
    largest_class = int(np.bincount(np.unique(y, return_inverse=True)[1]).max())
    if groups is not None:
        k = max(2, min(folds, len(set(groups.tolist())), largest_class))
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        split = splitter.split(x, y, groups)
    else:
        k = max(2, min(folds, largest_class))
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        split = splitter.split(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only n members"
        pairs = [(tr, te) for tr, te in split if len(te) and len(tr)]
    return pairs, f"{type(splitter).__name__}(n_splits={k}, shuffle=True)"


def _fit_one(X, y, tr, te, settings: "ClassifierSettings", seed: int) -> tuple[int, int, int]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = Pipeline([("scale", StandardScaler()), ("mlp", settings.mlp(seed))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        pipe.fit(X[tr], y[tr])
    not_converged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    correct = int((pipe.predict(X[te]) == y[te]).sum())
    return correct, int(pipe.named_steps["mlp"].n_iter_), not_converged


def cross_validate(X: np.ndarray, labels: np.ndarray, splits: dict[int, list], settings: ClassifierSettings,
                   jobs: int = 1) -> dict:
    """Fold accuracies of StandardScaler + MLP over the given splits (one list of folds per seed).
    Each fit is deterministic, so results do not depend on `jobs` (parallel fits via joblib)."""
    from joblib import Parallel, delayed

    y = np.asarray(labels)
    work = [(seed, tr, te) for seed, pairs in splits.items() for tr, te in pairs]
    out = Parallel(n_jobs=jobs)(delayed(_fit_one)(X, y, tr, te, settings, seed) for seed, tr, te in work)
    accs = {seed: [] for seed in splits}
    correct = {seed: 0 for seed in splits}
    for (seed, _, te), (c, _, _) in zip(work, out):
        accs[seed].append(c / len(te))
        correct[seed] += c
    pooled = {seed: correct[seed] / sum(len(te) for _, te in splits[seed]) for seed in splits}
    flat = np.asarray([a for s in accs for a in accs[s]])
    seed_means = np.asarray([np.mean(accs[s]) for s in accs])
    return {"mean": float(flat.mean()), "std": float(flat.std()), "std_of_seed_means": float(seed_means.std()),
            "fold_accuracies": {str(s): accs[s] for s in accs}, "pooled_accuracy": {str(s): pooled[s] for s in pooled},
            "n_fits": int(flat.size), "not_converged": int(sum(o[2] for o in out)),
            "mean_iterations": float(np.mean([o[1] for o in out]))}


def chance_level(labels: np.ndarray) -> float:
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return float(counts.max() / counts.sum())


# ----------------------------------------------------------------------------------------------
# outputs


def fmt_acc(r: dict | None) -> str:
    return "n/a" if r is None else f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}"


def markdown_table(results: dict) -> str:
    tasks = results["tasks"]
    names = list(results["extractors"])
    lines = []
    head = ["extractor"] + [f"{t} ({v['n_classes']} classes, {v['n_clips']} clips)" for t, v in tasks.items()]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for n in names:
        label = results["extractors"][n].get("label", n)
        lines.append("| " + " | ".join([label] + [fmt_acc(v["accuracy"].get(n)) for v in tasks.values()]) + " |")
    lines.append("| chance (majority class) | " + " | ".join(f"{100 * v['chance']:.1f}" for v in tasks.values()) + " |")
    s = results["settings"]
    lines += ["", f"Accuracy (%), mean ± std over {s['folds']} folds x {len(s['seeds'])} seeds (std over all fold "
              f"accuracies, ddof=0). One vector per clip (mean over patches), StandardScaler fitted on the "
              f"training split, MLPClassifier(hidden_layer_sizes={tuple(s['hidden'])}, max_iter={s['max_iter']}, "
              f"alpha={s['alpha']}, adam, early_stopping=False). "
              + "; ".join(f"{t}: {v['splitter']}" + (f" grouped by `{v['group_column']}`" if v["group_column"] else "")
                          for t, v in tasks.items()) + "."]
    corr = {t: v["correlation"] for t, v in tasks.items() if v.get("correlation")}
    if corr:
        from .features import DESCRIPTORS

        lines += ["", "Canonical correlation similarity (mean canonical correlation; chance level in brackets) "
                  "between embeddings and per-clip mean/var/skewness of each descriptor:", ""]
        head = ["extractor"] + [f"{t}: {d}" for t in corr for d in DESCRIPTORS]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for n in names:
            cells = []
            for t in corr:
                for d in DESCRIPTORS:
                    c = corr[t].get(n, {}).get(d)
                    cells.append("n/a" if c is None else f"{c['cca']:.2f} ({c['cca_null']:.2f})")
            lines.append("| " + " | ".join([results["extractors"][n].get("label", n)] + cells) + " |")
        dims = {t: next(iter(next(iter(c.values())).values()))["dims"][0] for t, c in corr.items() if c}
        lines += ["", "Each side reduced to its top principal components (at most min(32, n_clips/10): "
                  + ", ".join(f"{t}: {d}" for t, d in dims.items()) + ") after standardising columns."]
    return "\n".join(lines) + "\n"


def plot_accuracy(results: dict, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results["tasks"])
    names = list(results["extractors"])
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(tasks) * max(1, len(names)) ** 0.5 + 2), 4))
    for j, n in enumerate(names):
        means = [100 * results["tasks"][t]["accuracy"].get(n, {}).get("mean", np.nan) for t in tasks]
        stds = [100 * results["tasks"][t]["accuracy"].get(n, {}).get("std", np.nan) for t in tasks]
        xs = np.arange(len(tasks)) + (j - (len(names) - 1) / 2) * width
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=results["extractors"][n].get("label", n))
    for i, t in enumerate(tasks):
        c = 100 * results["tasks"][t]["chance"]
        ax.hlines(c, i - 0.45, i + 0.45, colors="k", linestyles="dashed", linewidth=1,
                  label="chance (majority class)" if i == 0 else None)
    ax.set_xticks(np.arange(len(tasks)))
    ax.set_xticklabels(tasks)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    s = results["settings"]
    ax.set_title(f"MLP accuracy, mean ± std over {s['folds']} folds x {len(s['seeds'])} seeds", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def tsne_map(vectors: dict[str, np.ndarray], labels: np.ndarray, title: str, path: Path, seed: int = 0) -> dict:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    classes = sorted(set(labels.tolist()))
    idx = np.asarray([classes.index(c) for c in labels])
    cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    fig, axes = plt.subplots(1, len(vectors), figsize=(4.2 * len(vectors) + (2.2 if len(classes) <= 20 else 0), 4.2),
                             squeeze=False)
    n = len(labels)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    for ax, (name, X) in zip(axes[0], vectors.items()):
        Z = StandardScaler().fit_transform(X)
        Z = PCA(n_components=min(50, Z.shape[1], n - 1), random_state=seed).fit_transform(Z)
        Y = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(Z)
        for k, c in enumerate(classes):
            m = idx == k
            ax.scatter(Y[m, 0], Y[m, 1], s=9, color=cmap(k % cmap.N), label=c)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if len(classes) <= 20:
        axes[0][-1].legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle(f"t-SNE of clip embeddings: {title} (perplexity {perplexity:g}, PCA 50 first)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {"perplexity": perplexity, "pca_components": min(50, n - 1), "seed": seed}


# ----------------------------------------------------------------------------------------------
# the run


def build_extractors(model_args: list[str], mfcc: bool = True, random: bool = True, random_seed: int = 0,
                     batch_size: int = 32, device=None, precisions=("fp32",)) -> list[Extractor]:
    from coala_embed.checkpoint import load_model

    extractors, names = [], set()
    first = None
    for arg in model_args:
        name, source = parse_model_arg(arg)
        name = name or default_model_name(source)
        model = load_model(None if source == "bundled" else source, device)
        first = first or model
        for precision in precisions:  # e.g. fp32 and bf16 side by side: same folds, paired
            extractors.append(model_extractor(model, name if precision == "fp32" else f"{name}-{precision}",
                                              batch_size=batch_size, extra={"source_arg": source}, precision=precision))
    if random:
        import dataclasses as dc
        cfg = dc.replace(first.net.cfg, variant="ae-c") if first is not None else None
        model = random_model(random_seed, None if first is None else first.frontend, cfg, device)
        fe_from = f"front end of {extractors[0].name}" if first is not None else "default front end, unit scaler"
        extractors.append(model_extractor(model, "random", kind="random", batch_size=batch_size,
                                          extra={"seed": random_seed, "frontend_from": fe_from}))
    if mfcc:
        extractors.append(mfcc_extractor())
    for ex in extractors:
        if ex.name in names:
            raise ValueError(f"two extractors named {ex.name!r}; name them with --model NAME=SOURCE")
        names.add(ex.name)
    return extractors


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
        "extractors": {ex.name: dict(ex.info, label=_label(ex)) for ex in extractors},
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
            from .features import correlation_analysis

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


def _label(ex: Extractor) -> str:
    if ex.kind == "mfcc":
        return "MFCC (120-d)"
    if ex.kind == "random":
        return f"random-weight encoder (seed {ex.info.get('seed', 0)})"
    return f"{ex.name} ({ex.info.get('variant', '?').upper()})"


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
    p.add_argument("--precision", action="append", choices=("fp32", "bf16", "fp16"), default=None,
                   help="encoder precision of each --model; repeat to compare (e.g. --precision fp32 --precision bf16; "
                        "the extra ones are named NAME-bf16); default fp32")
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
