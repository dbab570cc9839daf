"""Where file embeddings go: each input's identity, output sinks, and one of them, a `.npz` per input.

A sink answers three questions for `process_file` (coala_embed.core), which is only: skip what the
sink has -> engine -> sink.

    skip(i, item) -> FileResult | None    already done (or cannot be written)? None: embed it
    add(i, item, embeddings, timestamps, error) -> FileResult    store one input's result
    close()                               finish (flush, merge); called once, also after an error

`item` is the input's `Source` (its path as given, its canonical key, size and modification time);
`i` its position, for sinks whose output depends on it (one output folder per input). Every sink is
built with the same keyword arguments (output_dir, folders, suffix, overwrite, shard, frames,
embedding_size, settings). The other sink is the Parquet table (coala_embed.parquet); a new format is
one more class like these, registered in `coala_embed.core.SINKS`.

A full disk (ENOSPC, EDQUOT) stops the run: `DiskFullError` is raised after what was written so far
is closed, and nothing is left half-written.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import secrets
import socket
from pathlib import Path

import numpy as np

from .engine import clip_mean
from .options import EmbedOptions

OUTPUT_FORMATS = ("npz", "parquet")  # the sinks of coala_embed.core.SINKS, named here for the command line
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_HOST = socket.gethostname().replace(".", "-")  # in temporary names, so only this host's are ever removed


class DiskFullError(OSError):
    """The output's disk is full: the run stops at the first file that could not be written."""


@dataclasses.dataclass
class FileResult:
    path: str
    output: str | None
    status: str  # 'written', 'skipped' (output exists) or 'failed'
    error: str | None = None
    n_patches: int = 0


@dataclasses.dataclass(frozen=True)
class Source:
    """An input file and its identity: outputs are keyed by `key`, and are stale when size or mtime differ."""

    path: str  # as the caller spelled it
    key: str  # the resolved path relative to the root it was found under, or resolved and absolute
    real: str = ""  # the resolved absolute path: the same file however spelled (two files may share a key)
    size: int | None = None  # None: the file could not be examined (the engine reports why)
    mtime_ns: int | None = None

    def stamp(self) -> dict:
        return {"key": self.key, "size": self.size, "mtime_ns": self.mtime_ns}


def input_key(real: str, root=None) -> str:
    """The key of a resolved path: relative to the resolved `root` when it lies below it (so that a
    collection keeps its keys when it is mounted elsewhere), else the resolved path itself."""
    key = real
    if root is not None:
        rel = os.path.relpath(real, os.path.realpath(os.fspath(root)))
        if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
            key = rel
    return Path(key).as_posix()


def identify(path, root=None) -> Source:
    """`path`'s identity: its key (`input_key` of its resolved path: symbolic links, `..` and the working
    folder resolved), with its size and modification time."""
    real = os.path.realpath(os.fspath(path))
    key = input_key(real, root)
    try:
        st = os.stat(real)
        size, mtime_ns = st.st_size, st.st_mtime_ns
    except OSError:
        size = mtime_ns = None
    return Source(os.fspath(path), key, real, size, mtime_ns)


def disk_full(e: OSError) -> bool:
    return getattr(e, "errno", None) in _DISK_FULL


def output_path(path, output_dir=None, suffix=None, keep_extension: bool = False) -> Path:
    """`<output_dir>/<stem>[_suffix].npz`, or `<stem>.<ext>[_suffix].npz` with keep_extension (the name
    an input gets when another input of the run already has `<stem>.npz` in the same folder)."""
    path = Path(path)
    stem = (path.name if keep_extension else path.stem) + (f"_{suffix}" if suffix else "")
    return Path(output_dir if output_dir is not None else path.parent) / f"{stem}.npz"


def remove_stale_temporaries(folder):
    """Remove the temporary files that writers on this host killed mid-write left (SIGKILL skips every
    clean-up): `.<stem>.<host>.<pid>.<token>.tmp` whose process is gone. A live writer's are kept."""
    for tmp in Path(folder).glob(".*.tmp"):
        parts = tmp.name.rsplit(".", 4)
        if len(parts) != 5 or parts[1] != _HOST or not parts[2].isdigit():
            continue
        try:
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except OSError:  # alive, another user's
            pass


def write_npz_atomic(target: Path, **arrays):
    """Write to a temporary file in the target folder, then rename: no half-written outputs.

    The temporary file is created as open() creates files (mode 0666 less the umask), not with
    mkstemp's 0600, so that others can read a shared feature folder as the umask allows.
    """
    tmp = target.parent / f".{target.stem}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
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
    """`<stem>[_suffix].npz` per input: `embedding` (T, D), `timestamps` (T,), `mean` (D,), `settings` (JSON of
    the weights' sha256 and the options that made it, as the Parquet table's metadata) and `source` (JSON of
    the input's key, size and mtime_ns). An existing output is skipped unless it is stale (`_up_to_date`):
    then it is embedded again. Two inputs of one run with the same stem in the same output folder: the first
    keeps `<stem>.npz`, the others are named `<stem>.<ext>.npz`."""

    def __init__(self, *, output_dir, folders: list, suffix: str | None, overwrite: bool, shard, frames: bool,
                 embedding_size: int, settings: dict):
        # output_dir, shard, frames: the other sinks' (each input's folder is in folders)
        self.output_dirs, self.suffix, self.overwrite = folders, suffix, overwrite
        self.embedding_size = embedding_size
        self.framing = EmbedOptions.framing(settings)
        self.settings = np.array(json.dumps(settings, sort_keys=True))
        self.targets: dict[int, Path] = {}
        self.owner: dict[Path, str] = {}  # resolved target -> the input that writes it
        for folder in dict.fromkeys(f for f in folders if f is not None):
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OSError(e.errno, f"cannot create output folder {folder}: {e.strerror or e}") from None
            remove_stale_temporaries(folder)

    def skip(self, i: int, item: Source) -> FileResult | None:
        path = item.path
        target = output_path(path, self.output_dirs[i], self.suffix)
        if target.resolve() in self.owner:
            target = output_path(path, self.output_dirs[i], self.suffix, keep_extension=True)
        key = target.resolve()
        if key in self.owner:
            return FileResult(path, str(target), "failed",
                              f"{path}: output {target} would overwrite the output of {self.owner[key]}")
        self.owner[key] = path
        if target.exists() and not self.overwrite and _up_to_date(target, item, self.embedding_size, self.framing):
            return FileResult(path, str(target), "skipped")
        if not os.access(target.parent, os.W_OK):
            return FileResult(path, str(target), "failed", f"{path}: output folder {target.parent} is not writable")
        self.targets[i] = target
        return None

    def add(self, i: int, item: Source, embeddings, timestamps, error) -> FileResult:
        path, target = item.path, self.targets.pop(i)
        if error is not None:
            return FileResult(path, None, "failed", error)
        try:
            write_npz_atomic(target, embedding=embeddings, timestamps=timestamps, mean=clip_mean(embeddings),
                             settings=self.settings, source=np.array(json.dumps(item.stamp(), sort_keys=True)))
        except OSError as e:
            if disk_full(e):
                raise DiskFullError(e.errno, f"{path}: cannot write {target}: the disk is full "
                                             f"({e.strerror or e}); stopped") from None
            return FileResult(path, None, "failed", f"{path}: cannot write {target} ({e.strerror or e})")
        return FileResult(path, str(target), "written", n_patches=len(embeddings))

    def close(self):
        pass


def _up_to_date(target: Path, item: Source, embedding_size: int, framing: dict) -> bool:
    """Whether an existing output was made from the input as it is now, with these weights and framing
    options (`EmbedOptions.framing`: backend and precision do not count), and with embeddings of this size
    (the same weights embedded 1152 values per patch up to 0.8). A record an output lacks (files of early
    versions) is not held against it."""
    try:
        with np.load(target) as z:
            if z["mean"].shape != (embedding_size,):
                return False
            made_from = json.loads(str(z["source"])) if "source" in z.files else None
            made_with = json.loads(str(z["settings"])) if "settings" in z.files else None
    except Exception:  # an unreadable output is made again
        return False
    if made_with is not None and EmbedOptions.framing(made_with) != framing:
        return False
    return made_from is None or (made_from.get("size"), made_from.get("mtime_ns")) == (item.size, item.mtime_ns)
