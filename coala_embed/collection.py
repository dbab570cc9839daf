"""Read what coala-embed wrote, for search and map: a Parquet table (one or many shards) or a folder of .npz.

`load(collection, frames)` gives `Rows` (one per clip, or one per patch with `frames=True`) whose unit-length
vectors sit in a memory-mapped cache beside the collection (`.coala-search/`), rebuilt when a source file
changed (size or modification time). Parquet rows are deduplicated by path (the last row wins) and only
'written' rows count; .npz files without `settings` (written before it existed) are accepted with a warning.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

CACHE_DIR = ".coala-search"
CACHE_VERSION = 2  # 2: rows.npz also keeps each vector's length (norms)
AUTO_FLOAT32_BYTES = 1 << 30  # below this, vectors are cached as float32; above, as float16 (half the memory)


class CollectionError(ValueError):
    """A collection that cannot be searched: missing, empty, mixed or made by another model."""


@dataclasses.dataclass
class Rows:
    files: list           # per file: the audio path (Parquet) or the .npz path
    durations: np.ndarray  # (F,) seconds; NaN when unknown
    owner: np.ndarray      # (N,) file of each vector
    start: np.ndarray      # (N,) seconds covered by each vector (the whole clip without frames)
    end: np.ndarray
    vectors: np.ndarray    # (N, D) unit length, float16 or float32, memory-mapped when cached
    norms: np.ndarray      # (N,) float32 length of each vector before: vectors * norms[:, None] are the embeddings
    settings: dict | None  # what the files' metadata records: weights_sha256 and the embedding options
    frames: bool
    cache: Path | None     # folder of the cached arrays (None: in memory only)
    fingerprint: str       # changes whenever a source file changes

    def embeddings(self, rows) -> np.ndarray:
        """The embeddings (float32) of some rows (a slice, or indices in increasing order): what the tag head
        and the silence test take, where search compares unit vectors."""
        return np.asarray(self.vectors[rows], np.float32) * self.norms[rows, None]


def sources(collection) -> tuple[str, list[Path]]:
    """('parquet' | 'npz', files) of a table file, a folder of tables, or a folder of .npz (searched recursively)."""
    p = Path(collection)
    if p.is_file():
        if p.suffix == ".parquet":
            return "parquet", [p]
        if p.suffix == ".npz":
            return "npz", [p]
        raise CollectionError(f"{p} is neither a .parquet table nor a folder of .npz files")
    if not p.is_dir():
        raise CollectionError(f"no such collection: {p}")
    tables = sorted(q for q in p.glob("*.parquet") if not q.name.startswith("."))
    if tables:
        return "parquet", tables
    npz = sorted(q for q in p.rglob("*.npz") if not any(part.startswith(".") for part in q.relative_to(p).parts))
    if npz:
        return "npz", npz
    raise CollectionError(f"{p} holds no embeddings (no *.parquet table, no .npz files): an empty collection")


def cache_dir(collection, frames: bool) -> Path:
    p = Path(collection)
    base = p / CACHE_DIR if p.is_dir() else p.parent / CACHE_DIR / p.name
    return base / ("frames" if frames else "clips")


def fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def load(collection, frames: bool = False, patch_seconds: float | None = None, dtype: str = "auto",
         cache: bool = True) -> Rows:
    """The collection's vectors and where they come from; reads the cache when it is up to date.

    patch_seconds: the span of one patch (model.frontend.patch_seconds), for the time range of each patch.
    dtype: 'float16', 'float32' or 'auto' (float32 up to 1 GiB of vectors).
    """
    kind, files = sources(collection)
    fp = fingerprint(files)
    folder = cache_dir(collection, frames) if cache else None
    if folder is not None:
        rows = _read_cache(folder, fp, frames)
        if rows is not None:
            return rows
    reader = _parquet_rows if kind == "parquet" else _npz_rows
    meta, blocks = reader(files, frames, patch_seconds)
    rows = _write(folder, fp, frames, meta, blocks, dtype)
    if not len(rows.owner):
        raise CollectionError(f"{collection} is an empty table: no written embedding in {len(files)} file(s)")
    return rows


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _write(folder, fp, frames, meta, blocks, dtype) -> Rows:
    """Stream the unit-length vectors to `folder/vectors.bin` (or memory) and record the rows beside them."""
    n, dim = meta["n"], meta["dim"]
    if dtype == "auto":
        dtype = "float32" if n * dim * 4 <= AUTO_FLOAT32_BYTES else "float16"
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"vectors.bin.{os.getpid()}.tmp"
            out = np.memmap(tmp, dtype=dtype, mode="w+", shape=(max(n, 1), dim))
        except OSError as e:
            warnings.warn(f"cannot write the search cache in {folder} ({e}); keeping the vectors in memory")
            folder = None
    if folder is None:
        out = np.empty((n, dim), dtype)
    at, norms = 0, np.empty(n, np.float32)
    for block in blocks:
        block = np.asarray(block, np.float32)
        norms[at:at + len(block)] = np.linalg.norm(block, axis=-1)
        out[at:at + len(block)] = _unit(block)
        at += len(block)
    assert at == n, (at, n)
    arrays = {**{k: meta[k] for k in ("files", "durations", "owner", "start", "end")}, "norms": norms}
    if folder is None:
        return Rows(vectors=out, settings=meta["settings"], frames=frames, cache=None, fingerprint=fp, **arrays)
    out.flush()
    del out
    os.replace(tmp, folder / "vectors.bin")
    np.savez(folder / "rows.npz", **{**arrays, "files": np.array(arrays["files"], dtype=str)})
    manifest = {"version": CACHE_VERSION, "fingerprint": fp, "frames": frames, "n": n, "dim": dim, "dtype": dtype,
                "settings": meta["settings"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return _read_cache(folder, fp, frames)


def _read_cache(folder: Path, fp: str, frames: bool) -> Rows | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("version") != CACHE_VERSION or manifest["fingerprint"] != fp or manifest["frames"] != frames:
            return None
        r = np.load(folder / "rows.npz")
        shape = (max(manifest["n"], 1), manifest["dim"])
        vectors = np.memmap(folder / "vectors.bin", dtype=manifest["dtype"], mode="r", shape=shape)[:manifest["n"]]
    except (OSError, ValueError, KeyError):
        return None
    return Rows(files=r["files"].tolist(), durations=r["durations"], owner=r["owner"], start=r["start"], end=r["end"],
                norms=r["norms"], vectors=vectors, settings=manifest["settings"], frames=frames, cache=folder,
                fingerprint=fp)


def patch_ranges(timestamps, duration, patch_seconds):
    """(start, end) seconds of each patch from its centre: half a patch either side, within the file."""
    half = (patch_seconds or 0.0) / 2
    start = np.maximum(np.asarray(timestamps, np.float64) - half, 0.0)
    end = np.asarray(timestamps, np.float64) + half
    return start, (np.minimum(end, duration) if np.isfinite(duration) else end)


def _check_same(settings_by_file: dict) -> dict | None:
    """The one settings dict shared by the files (keys that identify the numbers); refuse a mix."""
    seen = {}
    for f, s in settings_by_file.items():
        key = (s or {}).get("weights_sha256"), json.dumps((s or {}).get("frontend"), sort_keys=True)
        seen.setdefault(key, f)
        if len(seen) > 1:
            (k1, f1), (k2, f2) = list(seen.items())[:2]
            raise CollectionError(f"the collection mixes embeddings of two models or front ends: {f1} "
                                  f"(weights sha256 {k1[0]}) and {f2} (weights sha256 {k2[0]}); search them apart")
    return next(iter(settings_by_file.values()), None)


def _parquet_rows(tables, frames, patch_seconds):
    import pyarrow.parquet as pq

    settings, keep = {}, {}
    for t, table in enumerate(tables):
        pf = pq.ParquetFile(table)
        raw = (pf.schema_arrow.metadata or {}).get(b"coala_embed")
        settings[str(table)] = json.loads(raw) if raw else None
        if frames and "patch_embeddings" not in pf.schema_arrow.names:
            raise CollectionError(f"{table} holds clip embeddings only: search it without frames, or embed again "
                                  "with --frames")
        # one row per input, the last (parts sort after their table): by key, the input's identity
        # (coala_embed.sinks.identify), or by path in tables written before keys existed
        ident = "key" if "key" in pf.schema_arrow.names else "path"
        cols = pf.read(columns=list(dict.fromkeys(["path", ident, "status", "duration"])))
        for i, (path, key, status, dur) in enumerate(zip(*(cols[c].to_pylist() for c in ("path", ident, "status", "duration")))):
            keep.pop(key, None)  # the last row of an input wins, whatever its status
            keep[key] = (t, i, status, dur, path)
    if any(s is None for s in settings.values()):
        warnings.warn("a table carries no coala_embed settings: cannot check which model made it")
    chosen = {p: v for p, v in keep.items() if v[2] == "written"}
    files = [v[4] for v in chosen.values()]  # the path as the newest row gives it
    durations = np.array([np.nan if v[3] is None else v[3] for v in chosen.values()], np.float64)
    file_of = {(v[0], v[1]): f for f, v in enumerate(chosen.values())}
    owner, start, end, dim = [], [], [], None
    for t, table in enumerate(tables):  # pass 1: which rows, how many vectors
        pf = pq.ParquetFile(table)
        dim = pf.schema_arrow.field("embedding").type.list_size
        if frames:
            ts = pf.read(columns=["timestamps"])["timestamps"].to_pylist()
            for i, stamps in enumerate(ts):
                f = file_of.get((t, i))
                if f is not None:
                    s, e = patch_ranges(stamps, durations[f], patch_seconds)
                    owner.append(np.full(len(s), f, np.int64)), start.append(s), end.append(e)
        else:
            fs = [file_of[(t, i)] for i in range(pf.metadata.num_rows) if (t, i) in file_of]
            owner.append(np.array(fs, np.int64)), start.append(np.zeros(len(fs))), end.append(durations[fs])
    cat = (lambda a: np.concatenate(a) if a else np.zeros(0))
    meta = {"files": files, "durations": durations, "owner": cat(owner).astype(np.int64), "start": cat(start),
            "end": cat(end), "dim": dim, "settings": _check_same(settings)}
    meta["n"] = len(meta["owner"])

    def blocks():  # pass 2: the vectors, a record batch at a time
        column = "patch_embeddings" if frames else "embedding"
        for t, table in enumerate(tables):
            row = 0
            for batch in pq.ParquetFile(table).iter_batches(batch_size=4096, columns=[column]):
                col = batch.column(0)
                picked = [i for i in range(len(col)) if (t, row + i) in file_of]
                row += len(col)
                if not picked:
                    continue
                sub = col.take(picked)
                if frames:
                    sub = sub.flatten()
                yield sub.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return meta, blocks()


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".m4a")


def audio_beside(npz: Path) -> Path | None:
    """The audio file an .npz was written beside (coala-embed's default output place), if any."""
    for ext in AUDIO_EXTENSIONS:
        if npz.with_suffix(ext).exists():
            return npz.with_suffix(ext)
    return None


def _audio_duration(npz: Path) -> float:
    audio = audio_beside(npz)
    if audio is None:
        return np.nan
    try:
        import soundfile as sf
        return float(sf.info(str(audio)).duration)
    except Exception:  # unreadable: the duration stays unknown
        return np.nan


def _npz_rows(paths, frames, patch_seconds):
    settings, files, durations, owner, start, end, vectors, missing = {}, [], [], [], [], [], [], 0
    for p in paths:
        with np.load(p, allow_pickle=False) as z:
            if "embedding" not in z or "mean" not in z:
                raise CollectionError(f"{p} is not a coala-embed .npz (no 'embedding' and 'mean' arrays)")
            s = json.loads(str(z["settings"])) if "settings" in z else None
            missing += s is None
            settings[str(p)] = s
            emb, ts = z["embedding"], z["timestamps"]
            mean = z["mean"]
        f = len(files)
        files.append(str(p))
        duration = _audio_duration(p)
        if not np.isfinite(duration) and patch_seconds and len(ts):
            duration = float(ts[-1] + patch_seconds / 2)  # an estimate: the end of the last patch
        durations.append(duration)
        if frames:
            s0, e0 = patch_ranges(ts, np.inf, patch_seconds)
            owner.append(np.full(len(emb), f)), start.append(s0), end.append(e0), vectors.append(emb)
        else:
            owner.append(np.array([f])), start.append(np.zeros(1)), end.append(np.array([duration]))
            vectors.append(mean[None])
    if missing:
        warnings.warn(f"{missing} of {len(paths)} .npz files carry no settings (written by an older coala-embed): "
                      "cannot check which model made them")
    known = {f: s for f, s in settings.items() if s is not None}
    meta = {"files": files, "durations": np.array(durations, np.float64), "owner": np.concatenate(owner),
            "start": np.concatenate(start), "end": np.concatenate(end), "dim": vectors[0].shape[1],
            "settings": _check_same(known)}
    meta["n"] = len(meta["owner"])
    return meta, iter(vectors)
