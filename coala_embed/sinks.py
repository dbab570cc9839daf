"""Where file embeddings go: output sinks, and one of them, a `.npz` file per input.

A sink answers three questions for `process_file` (coala_embed.core), which is only: skip what the
sink has -> engine -> sink.

    skip(i, path) -> FileResult | None    already done (or cannot be written)? None: embed it
    add(i, path, embeddings, timestamps, error) -> FileResult    store one input's result
    close()                               finish (flush, merge); called once, also after an error

`i` is the input's position, for sinks whose output depends on it (one output folder per input).
Every sink is built with the same keyword arguments (output_dir, folders, suffix, overwrite, shard,
frames, embedding_size, settings). The other sink is the Parquet table (coala_embed.parquet); a new
format is one more class like these, registered in `coala_embed.core.SINKS`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
from pathlib import Path

import numpy as np

from .engine import clip_mean

OUTPUT_FORMATS = ("npz", "parquet")  # the sinks of coala_embed.core.SINKS, named here for the command line


@dataclasses.dataclass
class FileResult:
    path: str
    output: str | None
    status: str  # 'written', 'skipped' (output exists) or 'failed'
    error: str | None = None
    n_patches: int = 0


def output_path(path, output_dir=None, suffix=None) -> Path:
    path = Path(path)
    stem = path.stem + (f"_{suffix}" if suffix else "")
    return Path(output_dir if output_dir is not None else path.parent) / f"{stem}.npz"


def write_npz_atomic(target: Path, **arrays):
    """Write to a temporary file in the target folder, then rename: no half-written outputs.

    The temporary file is created as open() creates files (mode 0666 less the umask), not with
    mkstemp's 0600, so that others can read a shared feature folder as the umask allows.
    """
    tmp = target.parent / f".{target.stem}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class NpzSink:
    """`<stem>[_suffix].npz` per input: `embedding` (T, D), `timestamps` (T,), `mean` (D,) and `settings`
    (JSON of the weights' sha256 and the options that made it, as the Parquet table's metadata)."""

    def __init__(self, *, output_dir, folders: list, suffix: str | None, overwrite: bool, shard, frames: bool,
                 embedding_size: int, settings: dict):
        # output_dir, shard, frames, embedding_size: the other sinks' (each input's folder is in folders)
        self.output_dirs, self.suffix, self.overwrite = folders, suffix, overwrite
        self.settings = np.array(json.dumps(settings, sort_keys=True))
        self.targets: dict[int, Path] = {}
        self.owner: dict[Path, str] = {}  # resolved target -> the input that writes it
        for folder in dict.fromkeys(f for f in folders if f is not None):
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OSError(e.errno, f"cannot create output folder {folder}: {e.strerror or e}") from None

    def skip(self, i: int, path) -> FileResult | None:
        target = output_path(path, self.output_dirs[i], self.suffix)
        key = target.resolve()
        if key in self.owner:
            return FileResult(str(path), str(target), "failed",
                              f"{path}: output {target} would overwrite the output of {self.owner[key]}")
        self.owner[key] = str(path)
        if target.exists() and not self.overwrite:
            return FileResult(str(path), str(target), "skipped")
        if not os.access(target.parent, os.W_OK):
            return FileResult(str(path), str(target), "failed", f"{path}: output folder {target.parent} is not writable")
        self.targets[i] = target
        return None

    def add(self, i: int, path, embeddings, timestamps, error) -> FileResult:
        path, target = str(path), self.targets.pop(i)
        if error is not None:
            return FileResult(path, None, "failed", error)
        try:
            write_npz_atomic(target, embedding=embeddings, timestamps=timestamps, mean=clip_mean(embeddings),
                             settings=self.settings)
        except OSError as e:
            return FileResult(path, None, "failed", f"{path}: cannot write {target} ({e.strerror or e})")
        return FileResult(path, str(target), "written", n_patches=len(embeddings))

    def close(self):
        pass
