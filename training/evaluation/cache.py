"""The embedding cache: one vector per (extractor identity, file content), so that a new classifier
setting or a new extractor beside old ones does not extract again; and `extract`, which fills it."""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from training.evaluation.datasets import Dataset
from training.evaluation.report import log

DEFAULT_CACHE = Path("~/.cache/coala-embed/eval").expanduser()


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


def extract(ds: Dataset, ex, cache_root: Path | None, progress: bool = True) -> dict:
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
