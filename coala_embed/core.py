"""The public embedding API: arrays (`get_embedding`) and files (`embed_files`, `process_file`).

Each takes the embedding options of `coala_embed.options.EmbedOptions` as keyword arguments (or one
`options=EmbedOptions(...)`), runs the engine (coala_embed.engine) and, for `process_file`, hands
each file's result to an output sink (coala_embed.sinks, coala_embed.parquet).
"""
from __future__ import annotations

import numbers
import os
from typing import Callable, Iterator

import numpy as np

from .audio import AudioError
from .engine import array_job, clip_mean, embed_jobs, file_job, get_model
from .options import EmbedOptions
from .parquet import ParquetSink
from .shard import shard_indices
from .sinks import OUTPUT_FORMATS, FileResult, NpzSink, identify

SINKS = dict(zip(OUTPUT_FORMATS, (NpzSink, ParquetSink)))  # output_format -> sink (see coala_embed.sinks)


def clip_or_clips(y):
    """y as given, except that a plain list of numbers is one clip's samples (their values as floats),
    not a list of one-sample clips."""
    if not (isinstance(y, (list, tuple)) and y and isinstance(y[0], numbers.Number)):
        return y
    try:
        return np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise AudioError("audio: a list starting with a number is taken as one clip's samples, but not all "
                         "of its items are numbers; pass an array (n_samples,) or a list of arrays") from None


def get_embedding(y, sr, model=None, device=None, frames: bool = False, options: EmbedOptions | None = None,
                  **option_kw):
    """COALA embeddings of one clip or a list of clips.

    Args:
        y: audio array, shape (n_samples,) or (n_samples, n_channels), int (scaled by its type's range)
            or float (taken as is, nominally in [-1, 1]); a plain list of numbers (one clip, values as
            floats); or a list of arrays, embedded in shared batches.
        sr: sample rate in Hz (8000-192000), or a list of rates, one per clip.
        model: a Model from `load_model`, a checkpoint source (folder, file or Hub id), or None for the
            bundled weights.
        device: torch device; default: the model's device (CUDA if available).
        frames: if True return (embeddings (T, 1920), timestamps (T,) in seconds of patch centres)
            instead of the mean (1920,).
        options, **option_kw: the embedding options (`EmbedOptions`: hop_size, center, clip_seconds,
            resampler, precision, batch_size, num_workers), as one object and/or keyword arguments.

    Returns:
        float32 (1920,) per clip, or (embeddings, timestamps) with frames=True; a list for a list input.

    Raises:
        AudioError: the clip is empty, non-finite, badly shaped or at an unsupported rate.
        TypeError, ValueError: an option of the wrong type or value (before any audio is read).
    """
    options = EmbedOptions.of(options, "get_embedding", **option_kw)
    model = get_model(model, device, options.backend)
    y = clip_or_clips(y)
    single = not isinstance(y, (list, tuple))
    clips = [y] if single else list(y)
    rates = list(sr) if isinstance(sr, (list, tuple)) else [sr] * len(clips)
    if len(rates) != len(clips):
        raise ValueError(f"{len(clips)} clips but {len(rates)} sample rates")
    names = ["audio"] if single else [f"clip {i}" for i in range(len(clips))]
    jobs = ((names[i], array_job(c, r, names[i], model, options)) for i, (c, r) in enumerate(zip(clips, rates)))
    results = []
    for _, emb, ts, error in embed_jobs(model, jobs, options):
        if error is not None:
            raise AudioError(error)
        results.append((emb, ts) if frames else clip_mean(emb))
    return results[0] if single else results


def embed_files(paths, model=None, device=None, options: EmbedOptions | None = None, **option_kw,
                ) -> Iterator[tuple[str, np.ndarray | None, np.ndarray | None, str | None]]:
    """Embed files without writing anything: yields (path, embeddings, timestamps, error) in order."""
    options = EmbedOptions.of(options, "embed_files", **option_kw)
    model = get_model(model, device, options.backend)
    jobs = ((str(p), file_job(p, model, options)) for p in paths)
    yield from embed_jobs(model, jobs, options)


def process_file(paths, output_dir=None, suffix: str | None = None, overwrite: bool = False, model=None,
                 device=None, on_result: Callable[[FileResult], None] | None = None,
                 shard: tuple[int, int] | None = None, output_format: str = "npz", frames: bool = False,
                 roots=None, options: EmbedOptions | None = None, **option_kw) -> list[FileResult]:
    """Embed audio files and write `<stem>[_suffix].npz` for each (or one Parquet table).

    Each .npz holds `embedding` (T, 1920) float32 patch embeddings, `timestamps` (T,) patch centres in
    seconds, `mean` (1920,) their mean, the clip embedding, `settings` (JSON: the weights' sha256 and
    the options that change the numbers) and `source` (JSON: the input's key, size and mtime_ns).

    Each input is known by its identity (`coala_embed.sinks.identify`): its resolved path, relative to
    its root when `roots` gives one, with its size and modification time. The same file spelled another
    way is the same input (embedded once, skipped when done); a file changed since its output was made
    is embedded again.

    Args:
        paths: a path or a list of paths to audio files (anything libsndfile reads: WAV, FLAC, OGG, MP3, ...).
        output_dir: folder for the outputs (created if needed), or a list with one folder per path (to
            mirror an input tree); default: beside each input.
        suffix: appended to the output stem as `_suffix`.
        overwrite: re-embed files whose output exists; by default they are skipped (resumable runs).
        model, device, options, **option_kw: as in `get_embedding`.
        on_result: called with each FileResult as soon as it is known (progress reporting).
        shard: (K, N) to embed only the K-th (from 0) of N disjoint parts of the inputs, by a hash of each
            input's key, so adding or removing files moves no other file to another shard (coala_embed.shard).
        output_format: 'npz', or 'parquet' for one table `<output_dir>/embeddings[_suffix][-K-of-N].parquet`
            per shard, one row per file, which a re-run completes (coala_embed.parquet; needs pyarrow).
        frames: with 'parquet', also store the patch embeddings and timestamps (the .npz files always do).
        roots: a folder, or one folder per path: keys are paths relative to it (the command line passes the
            folder each file was found under), so a collection mounted elsewhere keeps its keys and shards.

    Returns:
        one FileResult per input (of the shard), in order. A bad file is reported as 'failed' with the reason and
        does not stop the others; outputs are written atomically. A path given twice is embedded once.
    """
    options = EmbedOptions.of(options, "process_file", **option_kw)
    if output_format not in SINKS:
        raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
    model = get_model(model, device, options.backend)
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    folders = list(output_dir) if isinstance(output_dir, (list, tuple)) else [output_dir] * len(paths)
    roots = list(roots) if isinstance(roots, (list, tuple)) else [roots] * len(paths)
    if len(folders) != len(paths) or len(roots) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(folders)} output folders and {len(roots)} roots")
    items = [identify(p, r) for p, r in zip(paths, roots)]
    if shard is not None:
        keep = shard_indices([item.key for item in items], shard)
        items, folders = [items[i] for i in keep], [folders[i] for i in keep]
    settings = {"weights_sha256": model.sha256, **options.identity()}
    sink = SINKS[output_format](output_dir=output_dir, folders=folders, suffix=suffix, overwrite=overwrite, shard=shard,
                                frames=frames, embedding_size=model.embedding_size, settings=settings)

    first: dict[str, int] = {}  # file -> its first position: an input given twice is embedded once
    results: dict[int, FileResult] = {}

    def report(i, result):
        results[i] = result
        if on_result is not None:
            on_result(result)

    def jobs():
        for i, item in enumerate(items):
            if first.setdefault(item.real, i) != i:
                continue
            skipped = sink.skip(i, item)
            if skipped is not None:
                report(i, skipped)
            else:
                yield i, file_job(item.path, model, options)

    try:
        for i, emb, ts, error in embed_jobs(model, jobs(), options):
            report(i, sink.add(i, items[i], emb, ts, error))
    finally:
        sink.close()
    return [results[first[item.real]] for item in items]
