"""The Parquet sink: embeddings as one Apache Parquet table per shard (`output_format="parquet"`).

One row per input file: path (as given), key (its identity, coala_embed.sinks.identify), size and
mtime_ns (of the file when embedded), status ('written' or 'failed'), error, duration (seconds,
from the header; a file that decodes shorter fails as truncated), embedding (the clip embedding,
fixed-size list of float32) and, with frames=True, patch_embeddings (a list of fixed-size lists) and
timestamps (patch centres in seconds).

Surviving a kill: results are committed every few hundred rows (or every minute) as a Parquet file
beside the table, `<table stem>.part-NNNNNN.parquet`, written to a hidden temporary name and renamed,
so a part is whole or absent. Parts are files of the dataset like the table: `pd.read_parquet(folder)`,
DuckDB and pyarrow.dataset see every committed row at once, crash or not. At the end of a run the
table and its parts are compacted into a hidden temporary file that replaces the table in one rename,
then the parts are removed (a kill between the two leaves rows that are in both until the next run;
`read_table` keeps the newest row of each key). A run that starts finds the keys already written
(same size and modification time) in the table and its parts and embeds only the others; failed rows
and changed files are embedded again and replace their older rows.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .engine import clip_mean
from .shard import shard_name
from .decode import duration_of
from .sinks import DiskFullError, FileResult, Source, disk_full

ROWS_PER_PART = 256  # rows per committed part (and so per row group of the table)
SECONDS_PER_PART = 60.0  # at most this much work is lost to a kill
BYTES_PER_PART = 64 << 20  # long files with frames=True: bound the rows held in memory


def require_pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ImportError('output_format="parquet" needs pyarrow: pip install "coala-embed[parquet]"') from None


def table_path(output_dir, suffix=None, shard=None) -> Path:
    """<output_dir>/embeddings[_suffix][-KKKKK-of-NNNNN].parquet"""
    stem = "embeddings" + (f"_{suffix}" if suffix else "") + (shard_name(shard) if shard is not None else "")
    return Path(output_dir) / f"{stem}.parquet"


def schema(dim: int, frames: bool, settings: dict):
    import pyarrow as pa

    vector = pa.list_(pa.float32(), dim)
    fields = [("path", pa.string()), ("key", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
              ("status", pa.string()), ("error", pa.string()), ("duration", pa.float64()), ("embedding", vector)]
    if frames:
        fields += [("patch_embeddings", pa.list_(vector)), ("timestamps", pa.list_(pa.float64()))]
    return pa.schema(fields, metadata={"coala_embed": json.dumps(settings, sort_keys=True)})


class TableWriter:
    """Rows of one shard's table: committed in parts as they come, compacted into the table by close().

    A lock file (hidden, removed by close) keeps a second run off the same table (a job started twice).
    """

    def __init__(self, target, dim: int, frames: bool = False, settings: dict | None = None, overwrite: bool = False):
        require_pyarrow()
        import pyarrow.parquet as pq

        self.target = Path(target)
        self.schema = schema(dim, frames, settings or {})
        self.frames = frames
        self._lock = _lock(self.target.parent / f".{self.target.name}.lock")
        for tmp in self.target.parent.glob(f".{self.target.stem}.*.tmp"):  # a part or a compaction killed mid-write
            tmp.unlink()
        if overwrite:  # start afresh: the table is replaced by this run's rows only
            for part in self._part_files():
                part.unlink()
        self.use_table = self.target.exists() and not overwrite
        self.done: dict[str, tuple] = {}  # key -> (size, mtime_ns) of its newest row, if that row is 'written'
        for source in self._sources():
            found = pq.read_schema(source)
            if not found.equals(self.schema) or _settings(found) != _settings(self.schema):
                self._lock.close()
                raise ValueError(f"{source} was written with other settings ({_difference(found, self.schema)}); "
                                 "write to another folder, or pass overwrite=True (--overwrite) to replace it")
            t = pq.read_table(source, columns=["key", "size", "mtime_ns", "status"]).to_pydict()
            for key, size, mtime_ns, status in zip(t["key"], t["size"], t["mtime_ns"], t["status"]):
                self.done.pop(key, None)
                if status == "written":
                    self.done[key] = (size, mtime_ns)
        self._rows: list[tuple] = []
        self._bytes = 0
        self._since = time.monotonic()

    def _part_files(self) -> list[Path]:
        return sorted(self.target.parent.glob(f"{self.target.stem}.part-*.parquet"))

    def _sources(self) -> list[Path]:
        return ([self.target] if self.use_table else []) + self._part_files()

    def has(self, item: Source) -> bool:
        """Whether the input, as it is now, has a 'written' row."""
        return self.done.get(item.key) == (item.size, item.mtime_ns)

    def add(self, item: Source, error: str | None, duration: float | None, embeddings=None, timestamps=None):
        """One file's row: its patch embeddings (T, dim) float32 and timestamps (T,), or an error."""
        self._rows.append(row(item, error, duration, embeddings, timestamps, self.frames))
        self._bytes += 0 if self._rows[-1][4] is None else self._rows[-1][4].nbytes
        if (len(self._rows) >= ROWS_PER_PART or self._bytes >= BYTES_PER_PART
                or time.monotonic() - self._since >= SECONDS_PER_PART):
            self.commit()

    def commit(self):
        """Write the rows held so far as the next part (whole or not at all)."""
        import pyarrow.parquet as pq

        if self._rows:
            parts = self._part_files()
            n = int(parts[-1].name.rsplit(".part-", 1)[1].split(".")[0]) + 1 if parts else 0
            part = self.target.parent / f"{self.target.stem}.part-{n:06d}.parquet"
            tmp = self.target.parent / f".{self.target.stem}.part-{n:06d}.tmp"
            _write_whole(tmp, part, lambda: pq.write_table(to_table(self._rows, self.schema), tmp))
        self._rows, self._bytes, self._since = [], 0, time.monotonic()

    def close(self):
        """Commit the rows held, compact table and parts into the table (one rename), remove the parts."""
        import pyarrow.parquet as pq

        try:
            self.commit()
            sources = self._sources()
            if sources and sources != [self.target]:
                keep = _newest_rows(sources)
                tmp = self.target.parent / f".{self.target.stem}.{os.getpid()}.tmp"

                def compact():
                    with pq.ParquetWriter(tmp, self.schema) as writer:
                        for source, mask in zip(sources, keep):
                            f = pq.ParquetFile(source)
                            start = 0
                            for g in range(f.num_row_groups):
                                t = f.read_row_group(g)
                                writer.write_table(t.filter(mask[start:start + len(t)]))
                                start += len(t)
                _write_whole(tmp, self.target, compact)
                for part in sources:
                    if part != self.target:
                        part.unlink()
        finally:
            self._lock.release()


def _write_whole(tmp: Path, target: Path, write):
    """write() fills tmp; then fsync and rename onto target. A full disk raises DiskFullError, and no tmp stays."""
    try:
        write()
        _fsync(tmp)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if disk_full(e) or "No space left" in str(e):  # pyarrow's errors carry no errno
            raise DiskFullError(e.errno, f"cannot write {target}: the disk is full ({e}); stopped") from None
        raise


def row(item: Source, error, duration, embeddings, timestamps, frames: bool) -> tuple:
    """(source, error, duration, clip embedding, patch embeddings, timestamps); the patches only with frames."""
    mean = None if embeddings is None else clip_mean(embeddings)
    return (item, error, duration, mean) + ((embeddings, timestamps) if frames else (None, None))


def to_table(rows, schema):
    """A pyarrow Table of rows from `row`, with the given schema (from `schema`)."""
    import pyarrow as pa

    dim = schema.field("embedding").type.list_size
    frames = "patch_embeddings" in schema.names
    failed = np.array([r[3] is None for r in rows])
    means = np.zeros((len(rows), dim), np.float32)
    for i, r in enumerate(rows):
        if r[3] is not None:
            means[i] = r[3]
    columns = {
        "path": pa.array([r[0].path for r in rows], pa.string()),
        "key": pa.array([r[0].key for r in rows], pa.string()),
        "size": pa.array([r[0].size for r in rows], pa.int64()),
        "mtime_ns": pa.array([r[0].mtime_ns for r in rows], pa.int64()),
        "status": pa.array(np.where(failed, "failed", "written").tolist(), pa.string()),
        "error": pa.array([r[1] for r in rows], pa.string()),
        "duration": pa.array([r[2] for r in rows], pa.float64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(means.ravel()), dim, mask=pa.array(failed)),
    }
    if frames:
        kept = [r for r in rows if r[4] is not None]
        counts = [0 if r[4] is None else len(r[4]) for r in rows]
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        flat = np.concatenate([r[4] for r in kept]) if kept else np.zeros((0, dim), np.float32)
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), dim)
        times = pa.array(np.concatenate([r[5] for r in kept]) if kept else np.zeros(0), pa.float64())
        columns["patch_embeddings"] = pa.ListArray.from_arrays(offsets, vectors, mask=pa.array(failed))
        columns["timestamps"] = pa.ListArray.from_arrays(offsets, times, mask=pa.array(failed))
    return pa.table(columns, schema=schema)


def _newest_rows(sources) -> list[np.ndarray]:
    """For each source, which of its rows to keep: the last row of each key over all sources."""
    import pyarrow.parquet as pq

    seen: set = set()
    keep = []
    for source in reversed(sources):
        paths = pq.read_table(source, columns=["key"])["key"].to_pylist()
        mask = np.zeros(len(paths), bool)
        for i in range(len(paths) - 1, -1, -1):
            if paths[i] not in seen:
                seen.add(paths[i])
                mask[i] = True
        keep.append(mask)
    return keep[::-1]


def _settings(s) -> dict:
    return json.loads((s.metadata or {}).get(b"coala_embed", b"{}"))


def _difference(then, now) -> str:
    """'hop_size None, now 1.0' for the settings (and the layout) that differ."""
    def described(s):
        return {**_settings(s), "embedding size": s.field("embedding").type.list_size,
                "frames": "patch_embeddings" in s.names,
                "columns": "coala-embed >= 0.5" if "key" in s.names else "coala-embed < 0.5 (no key column)"}
    a, b = described(then), described(now)
    return "; ".join(f"{k} {a.get(k)}, now {b.get(k)}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k))


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


class _lock:
    """An exclusive, non-blocking lock on a file (released by the OS when the process dies)."""

    def __init__(self, path: Path):
        self.f = open(path, "a")
        try:
            import fcntl
        except ImportError:  # Windows: no lock
            return
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.close()
            raise RuntimeError(f"another run is writing {path.name[1:-5]} (it holds {path})") from None

    def release(self):
        """Remove the lock file, then let go of it (a run starting in between finds no lock to wait for)."""
        try:
            os.unlink(self.f.name)
        except OSError:
            pass
        self.f.close()

    def close(self):
        self.f.close()


class ParquetSink:
    """process_file's Parquet output: an input already 'written' in the shard's table (same key, size and
    modification time) is skipped, the others are embedded and added as rows; close() compacts."""

    def __init__(self, *, output_dir, folders, suffix, overwrite: bool, shard, frames: bool, embedding_size: int,
                 settings: dict):
        if output_dir is None or isinstance(output_dir, (list, tuple)):
            raise ValueError('output_format="parquet" needs one output_dir (the folder of the table)')
        require_pyarrow()
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        self.target = table_path(output_dir, suffix, shard)
        self.writer = TableWriter(self.target, embedding_size, frames, settings, overwrite)
        self.owner: dict[str, str] = {}  # key -> the input of this run that has it

    def skip(self, i: int, item: Source) -> FileResult | None:
        if self.owner.setdefault(item.key, item.path) != item.path:  # two files, one key: a row each is impossible
            return FileResult(item.path, None, "failed", f"{item.path}: its key {item.key!r} is also the key of "
                              f"{self.owner[item.key]}; give the folder that holds both instead of the files")
        return FileResult(item.path, str(self.target), "skipped") if self.writer.has(item) else None

    def add(self, i: int, item: Source, embeddings, timestamps, error) -> FileResult:
        self.writer.add(item, error, duration_of(item.path) if error is None else None, embeddings, timestamps)
        return FileResult(item.path, str(self.target), "failed" if error else "written", error,
                          0 if embeddings is None else len(embeddings))

    def close(self):
        self.writer.close()


def read_table(folder_or_file, columns=None):
    """A folder's tables (every shard, with their committed parts) or one table file, as one pyarrow
    Table with one row per key, the newest (a kill between compaction and cleanup can leave two)."""
    require_pyarrow()
    import pyarrow.dataset as ds

    path = Path(folder_or_file)
    files = [path] if path.is_file() else sorted(path.glob("embeddings*.parquet"))
    if not files:
        raise FileNotFoundError(f"{path}: no coala-embed Parquet table (embeddings*.parquet)")
    table = ds.dataset([str(f) for f in files], format="parquet").to_table(
        columns=None if columns is None else list(dict.fromkeys(["key", *columns])))
    keys = table["key"].to_pylist()
    last = {k: i for i, k in enumerate(keys)}  # parts sort after their table, newer parts later
    keep = np.zeros(len(keys), bool)
    keep[list(last.values())] = True
    return table if keep.all() else table.filter(keep)
