"""The public API: embeddings of arrays and files, and the tag side of the aligned space.

Patches of many clips are batched together through the encoder; a clip's result does not depend
on which other clips share its batches (within float rounding, < 1e-5).
"""
from __future__ import annotations

import collections
import dataclasses
import numbers
import os
import secrets
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from . import audio, pipeline
from .audio import AudioError
from .checkpoint import Model, load_model

DEFAULT_BATCH_SIZE = 128  # patches per forward pass; larger batches measured faster on CPU (README, Speed)
_loaded: dict = {}


def get_model(model=None, device=None) -> Model:
    """A loaded Model as given, or load (once per source and device) a checkpoint source."""
    if isinstance(model, Model):
        if device is not None and torch.device(device) != model.device:
            model.net.to(device)
            model.device = torch.device(device)
        return model
    key = (None if model is None else os.fspath(model), None if device is None else str(device))
    if key not in _loaded:
        _loaded[key] = load_model(model, device)
    return _loaded[key]


# ----------------------------------------------------------------------------------------------
# the batching engine


PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> torch.dtype:
    """The torch dtype for a precision name; warns where it would run slower than fp32."""
    if precision not in _DTYPES:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    slow = None
    if device.type == "cpu" and precision == "bf16" and not (
            _cpu_has("_is_avx512_bf16_supported") or _cpu_has("_is_amx_tile_supported")):
        slow = "this CPU has neither AVX512-BF16 nor AMX, so bf16 convolutions are emulated"
    elif device.type == "cpu" and precision == "fp16" and not _cpu_has("_is_amx_fp16_supported"):
        slow = "this CPU has no AMX-FP16 (fp16 is meant for CUDA)"
    elif device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        slow = f"{torch.cuda.get_device_name(device)} has no native bf16"
    if slow:
        warnings.warn(f"precision={precision!r}: {slow} and likely slower than fp32; use 'fp32'"
                      + ("" if device.type == "cuda" else " (or 'bf16' on a CPU with AVX512-BF16/AMX)"), stacklevel=3)
    return _DTYPES[precision]


def _cpu_has(feature: str) -> bool:
    probe = getattr(torch.cpu, feature, None)
    return bool(probe()) if probe is not None else False


def _inference_encoder(model: Model, precision: str = "fp32"):
    """The audio encoder for inference, the memory format and the dtype its input should have.

    Each block is Conv2d -> BatchNorm2d -> ReLU -> Dropout (coala_embed.model); in eval mode the
    BatchNorm folds into the convolution and dropout is the identity, so each block becomes
    Conv2d -> ReLU: the same function up to float rounding (~1e-7), and about 10% faster on CPU.
    On CPU it runs channels-last, where oneDNN's convolutions are 20-30% faster. It is rebuilt from
    the current weights at each call (about a millisecond), so it never goes stale. bf16 / fp16
    convert the folded weights (and the input) to that type; the output is returned as float32.
    """
    dtype = check_precision(precision, model.device)
    memory_format = torch.channels_last if model.device.type == "cpu" else torch.contiguous_format
    layers = []
    with torch.no_grad():
        for conv, bn, _relu, _dropout in model.net.audio_encoder.blocks:
            layers += [fuse_conv_bn_eval(conv, bn), nn.ReLU(inplace=True)]  # in place: ~10% faster, same values
    encoder = nn.Sequential(*layers, nn.Flatten(1)).eval().to(dtype=dtype, memory_format=memory_format)
    return encoder, memory_format, dtype


@dataclasses.dataclass
class _Job:
    key: object
    outputs: list = dataclasses.field(default_factory=list)
    times: list = dataclasses.field(default_factory=list)
    pending: int = 0
    finished: bool = False
    error: str | None = None


def _embed_jobs(model: Model, jobs: Iterable[tuple[object, Callable[[], Iterator]]], batch_size: int,
                num_workers: int | None = None, precision: str = "fp32",
                ) -> Iterator[tuple[object, np.ndarray | None, np.ndarray | None, str | None]]:
    """Embed the patches of many clips in shared batches.

    jobs: (key, make_patches) pairs; make_patches() returns an iterator of (patches, centre_times).
    Yields (key, embeddings (T, D), times (T,), None) or (key, None, None, error message), in input order.
    A clip that fails part-way is reported and does not disturb the others. The front end of the next
    clips runs in `num_workers` threads (coala_embed.pipeline) while the encoder runs; batches are
    composed in input order either way, so the results do not depend on num_workers.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers is None:
        num_workers = pipeline.default_workers(model.device.type)
    queue: collections.deque[_Job] = collections.deque()
    batch: list[np.ndarray] = []
    owners: list[tuple[_Job, int]] = []
    n_batch = 0
    in_flight = None  # the last batch launched: (output, owners), collected after the next launch

    encoder, memory_format, dtype = _inference_encoder(model, precision)
    cuda = model.device.type == "cuda"

    def collect():
        nonlocal in_flight
        if in_flight is None:
            return
        out, done_event, batch_owners = in_flight
        in_flight = None
        if done_event is not None:
            done_event.synchronize()
        out = out.numpy()
        offset = 0
        for job, k in batch_owners:
            job.outputs.append(out[offset:offset + k])
            job.pending -= k
            offset += k

    def run_batch():
        # launch this batch, then collect the previous one: on CUDA the host assembles the next batch
        # while the device computes (pinned memory, asynchronous copies, one event per batch)
        nonlocal n_batch, in_flight
        if cuda:
            x = torch.empty((n_batch, *batch[0].shape[1:]), dtype=torch.float32, pin_memory=True)
            np.concatenate(batch, out=x.numpy())
        else:
            x = torch.from_numpy(np.concatenate(batch))
        x = x.to(model.device, non_blocking=True).unsqueeze(1).to(dtype)
        with torch.inference_mode():
            out = encoder(x.contiguous(memory_format=memory_format)).float()
        done_event = None
        if cuda:
            out = out.to("cpu", non_blocking=True)  # into pinned memory
            done_event = torch.cuda.Event()
            done_event.record(torch.cuda.current_stream(model.device))
        else:
            out = out.cpu()  # a no-op on CPU
        collect()
        in_flight = (out, done_event, list(owners))
        batch.clear()
        owners.clear()
        n_batch = 0

    def finished_jobs():
        while queue and queue[0].finished and queue[0].pending == 0:
            job = queue.popleft()
            if job.error is not None:
                yield job.key, None, None, job.error
            else:
                yield job.key, np.concatenate(job.outputs), np.concatenate(job.times), None

    for key, chunks in pipeline.prefetch(jobs, num_workers, max_patches=2 * batch_size):
        job = _Job(key)
        queue.append(job)
        try:
            for patches, times in chunks:
                job.times.append(times)
                i = 0
                while i < len(patches):
                    take = min(batch_size - n_batch, len(patches) - i)
                    batch.append(patches[i:i + take])
                    owners.append((job, take))
                    job.pending += take
                    n_batch += take
                    i += take
                    if n_batch == batch_size:
                        run_batch()
        except AudioError as e:
            job.error = str(e)
        except Exception as e:  # a batch job must survive any one bad input
            job.error = f"{key}: {type(e).__name__}: {e}"
        job.finished = True
        yield from finished_jobs()
    if n_batch:
        run_batch()
    collect()
    yield from finished_jobs()


def _array_job(y, sr, name, model, hop_frames, center, clip_seconds, resampler):
    def make_patches():
        rate = audio.check_sample_rate(sr, name)
        blocks = audio.clip_blocks(lambda: audio.mono_blocks_from_array(y, rate, name), rate, model.frontend, resampler,
                                   clip_seconds)
        return audio.iter_patches(blocks, model.frontend, hop_frames, center, clip_seconds)
    return make_patches


def _file_job(path, model, hop_frames, center, clip_seconds, resampler):
    def make_patches():
        blocks = audio.file_clip_blocks(path, model.frontend, resampler, clip_seconds)
        return audio.iter_patches(blocks, model.frontend, hop_frames, center, clip_seconds)
    return make_patches


# ----------------------------------------------------------------------------------------------
# arrays


def _clip_or_clips(y):
    """y as given, except that a plain list of numbers is one clip's samples (their values as floats),
    not a list of one-sample clips."""
    if not (isinstance(y, (list, tuple)) and y and isinstance(y[0], numbers.Number)):
        return y
    try:
        return np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise AudioError("audio: a list starting with a number is taken as one clip's samples, but not all "
                         "of its items are numbers; pass an array (n_samples,) or a list of arrays") from None


def get_embedding(y, sr, model=None, hop_size: float | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                  device=None, frames: bool = False, center: bool = False, clip_seconds: float | None = None,
                  resampler: str = "soxr_hq", num_workers: int | None = None, precision: str = "fp32"):
    """COALA embeddings of one clip or a list of clips.

    Args:
        y: audio array, shape (n_samples,) or (n_samples, n_channels), int (scaled by its type's range)
            or float (taken as is, nominally in [-1, 1]); a plain list of numbers (one clip, values as
            floats); or a list of arrays, embedded in shared batches.
        sr: sample rate in Hz (8000-192000), or a list of rates, one per clip.
        model: a Model from `load_model`, a checkpoint source (folder, file or Hub id), or None for the
            bundled weights.
        hop_size: seconds between patch starts; default: one patch (~2.23 s, non-overlapping, as COALA).
        batch_size: patches per forward pass; results do not depend on it.
        device: torch device; default: the model's device (CUDA if available).
        frames: if True return (embeddings (T, 1152), timestamps (T,) in seconds of patch centres)
            instead of the mean (1152,).
        center: pad half a patch at both ends so that patch centres start at t=0.
        clip_seconds: pad with zeros or cut each clip to this length first (COALA's reference pads to 10).
        resampler: 'soxr_hq' (default, streaming) or resampy's 'kaiser_best' / 'kaiser_fast'.
        num_workers: threads that compute the front end (decode, resample, log-mel) of the next clips
            while the encoder runs; 0 computes it in the calling thread; default: 1 on CPU (2 above
            8 cores), up to 8 with CUDA. Results do not depend on it.
        precision: 'fp32' (default), 'bf16' (CPUs with AVX512-BF16 or AMX, and CUDA) or 'fp16' (CUDA):
            the encoder's arithmetic. Reduced precision is faster where the hardware has it and moves
            embeddings slightly (cosine to fp32 > 0.999 on real clips, see README); elsewhere it warns.

    Returns:
        float32 (1152,) per clip, or (embeddings, timestamps) with frames=True; a list for a list input.

    Raises:
        AudioError: the clip is empty, non-finite, badly shaped or at an unsupported rate.
    """
    model = get_model(model, device)
    y = _clip_or_clips(y)
    single = not isinstance(y, (list, tuple))
    clips = [y] if single else list(y)
    rates = list(sr) if isinstance(sr, (list, tuple)) else [sr] * len(clips)
    if len(rates) != len(clips):
        raise ValueError(f"{len(clips)} clips but {len(rates)} sample rates")
    hop_frames = model.frontend.hop_frames(hop_size)
    names = ["audio"] if single else [f"clip {i}" for i in range(len(clips))]
    jobs = ((i, _array_job(c, r, names[i], model, hop_frames, center, clip_seconds, resampler))
            for i, (c, r) in enumerate(zip(clips, rates)))
    results = []
    for _, emb, ts, error in _embed_jobs(model, jobs, batch_size, num_workers, precision):
        if error is not None:
            raise AudioError(error)
        results.append((emb, ts) if frames else emb.mean(axis=0, dtype=np.float64).astype(np.float32))
    return results[0] if single else results


# ----------------------------------------------------------------------------------------------
# files


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


def _write_npz_atomic(target: Path, **arrays):
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


def process_file(paths, output_dir=None, suffix: str | None = None, overwrite: bool = False, model=None,
                 hop_size: float | None = None, batch_size: int = DEFAULT_BATCH_SIZE, device=None,
                 center: bool = False, clip_seconds: float | None = None, resampler: str = "soxr_hq",
                 on_result: Callable[[FileResult], None] | None = None, shard: tuple[int, int] | None = None,
                 output_format: str = "npz", frames: bool = False, num_workers: int | None = None,
                 precision: str = "fp32") -> list[FileResult]:
    """Embed audio files and write `<stem>[_suffix].npz` for each (or one Parquet table).

    Each .npz holds `embedding` (T, 1152) float32 patch embeddings, `timestamps` (T,) patch centres in
    seconds, and `mean` (1152,) their mean, the clip embedding.

    Args:
        paths: a path or a list of paths to audio files (anything libsndfile reads: WAV, FLAC, OGG, MP3, ...).
        output_dir: folder for the outputs (created if needed), or a list with one folder per path (to
            mirror an input tree); default: beside each input.
        suffix: appended to the output stem as `_suffix`.
        overwrite: re-embed files whose output exists; by default they are skipped (resumable runs).
        model, hop_size, batch_size, device, center, clip_seconds, resampler: as in `get_embedding`.
        on_result: called with each FileResult as soon as it is known (progress reporting).
        shard: (K, N) to embed only the K-th (from 0) of N disjoint parts of the paths (coala_embed.shard).
        output_format: 'npz', or 'parquet' for one table `<output_dir>/embeddings[_suffix][-K-of-N].parquet`
            per shard, one row per file, which a re-run completes (coala_embed.parquet; needs pyarrow).
        frames: with 'parquet', also store the patch embeddings and timestamps (the .npz files always do).
        num_workers, precision: as in `get_embedding`.

    Returns:
        one FileResult per input (of the shard), in order. A bad file is reported as 'failed' with the reason and
        does not stop the others; outputs are written atomically.
    """
    model = get_model(model, device)
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    hop_frames = model.frontend.hop_frames(hop_size)
    folders = list(output_dir) if isinstance(output_dir, (list, tuple)) else [output_dir] * len(paths)
    if len(folders) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(folders)} output folders")
    if shard is not None:
        from .shard import shard_indices

        keep = shard_indices(paths, shard)
        paths, folders = [paths[i] for i in keep], [folders[i] for i in keep]
    if output_format == "parquet":
        from .parquet import write_table

        return write_table(paths, output_dir, suffix, shard, overwrite, model, frames, on_result, hop_size=hop_size,
                           batch_size=batch_size, center=center, clip_seconds=clip_seconds, resampler=resampler,
                           num_workers=num_workers, precision=precision)
    if output_format != "npz":
        raise ValueError(f"output_format must be 'npz' or 'parquet', got {output_format!r}")
    for folder in dict.fromkeys(f for f in folders if f is not None):
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(e.errno, f"cannot create output folder {folder}: {e.strerror or e}") from None
    results: dict[int, FileResult] = {}
    targets: dict[Path, str] = {}

    def report(i, result):
        results[i] = result
        if on_result is not None:
            on_result(result)

    def jobs():
        for i, path in enumerate(paths):
            target = output_path(path, folders[i], suffix)
            key = target.resolve()
            if key in targets:
                report(i, FileResult(str(path), str(target), "failed", f"{path}: output {target} would overwrite the output of {targets[key]}"))
                continue
            targets[key] = str(path)
            if target.exists() and not overwrite:
                report(i, FileResult(str(path), str(target), "skipped"))
                continue
            if not os.access(target.parent, os.W_OK):
                report(i, FileResult(str(path), str(target), "failed", f"{path}: output folder {target.parent} is not writable"))
                continue
            yield (i, target), _file_job(path, model, hop_frames, center, clip_seconds, resampler)

    for (i, target), emb, ts, error in _embed_jobs(model, jobs(), batch_size, num_workers, precision):
        path = str(paths[i])
        if error is not None:
            report(i, FileResult(path, None, "failed", error))
            continue
        try:
            _write_npz_atomic(target, embedding=emb, timestamps=ts, mean=emb.mean(axis=0, dtype=np.float64).astype(np.float32))
        except OSError as e:
            report(i, FileResult(path, None, "failed", f"{path}: cannot write {target} ({e.strerror or e})"))
            continue
        report(i, FileResult(path, str(target), "written", n_patches=len(emb)))
    return [results[i] for i in range(len(paths))]


def embed_files(paths, model=None, **kw) -> Iterator[tuple[str, np.ndarray | None, np.ndarray | None, str | None]]:
    """Embed files without writing anything: yields (path, embeddings, timestamps, error) in order."""
    model = get_model(model, kw.pop("device", None))
    batch_size = kw.pop("batch_size", DEFAULT_BATCH_SIZE)
    hop_frames = model.frontend.hop_frames(kw.pop("hop_size", None))
    center, clip_seconds = kw.pop("center", False), kw.pop("clip_seconds", None)
    resampler = kw.pop("resampler", "soxr_hq")
    num_workers, precision = kw.pop("num_workers", None), kw.pop("precision", "fp32")
    if kw:
        raise TypeError(f"unexpected arguments {sorted(kw)}")
    jobs = ((str(p), _file_job(p, model, hop_frames, center, clip_seconds, resampler)) for p in paths)
    yield from _embed_jobs(model, jobs, batch_size, num_workers, precision)


# ----------------------------------------------------------------------------------------------
# the tag side


def _require_tag_space(model: Model):
    if not model.net.has_tag_space:
        raise ValueError(f"this {model.net.cfg.variant} checkpoint has no tag encoder aligned with audio")


def get_tag_embedding(tags, model=None, device=None) -> np.ndarray:
    """Vectors of tag sets in the space aligned with audio (tag encoder + affine layer).

    Args:
        tags: one tag ('dog'), one set of tags (['dog', 'bark']), or a list of sets ([['dog'], ['car', 'engine']]).
            Tags must be in `model.tags`.
    Returns:
        float32 (1152,) for one tag or set, (n_sets, 1152) for a list of sets.
    """
    model = get_model(model, device)
    _require_tag_space(model)
    single = isinstance(tags, str) or all(isinstance(t, str) for t in tags)
    sets = [[tags] if isinstance(tags, str) else list(tags)] if single else [list(s) for s in tags]
    index = {t: i for i, t in enumerate(model.tags)}
    multi_hot = np.zeros((len(sets), len(model.tags)), np.float32)
    for row, tag_set in enumerate(sets):
        unknown = [t for t in tag_set if t.lower() not in index]
        if unknown or not tag_set:
            raise ValueError(f"tags not in the model's vocabulary: {unknown or 'empty set'} (see model.tags)")
        multi_hot[row, [index[t.lower()] for t in tag_set]] = 1.0
    with torch.inference_mode():
        t = torch.from_numpy(multi_hot).to(model.device)
        out = model.net.tag_affine(model.net.tag_encoder(t)).float().cpu().numpy()
    return out[0] if single else out


def align_audio(embeddings: np.ndarray, model=None, device=None) -> np.ndarray:
    """Map audio embeddings (..., 1152) into the space shared with tags (the audio affine layer)."""
    model = get_model(model, device)
    _require_tag_space(model)
    with torch.inference_mode():
        x = torch.as_tensor(np.asarray(embeddings, np.float32), device=model.device)
        return model.net.audio_affine(x).float().cpu().numpy()


def predict_tags(y, sr, top_k: int = 10, model=None, device=None, **kw):
    """Zero-shot tags: the vocabulary tags whose aligned vectors are closest (cosine) to the audio's.

    Takes the arguments of `get_embedding` (y may be a list of clips); returns a list of (tag, cosine
    similarity) pairs, best first, or a list of such lists for a list of clips.
    """
    model = get_model(model, device)
    _require_tag_space(model)
    y = _clip_or_clips(y)
    single = not isinstance(y, (list, tuple))
    means = np.atleast_2d(get_embedding(y, sr, model=model, **kw))
    return _rank_tags(model, means, top_k)[0] if single else _rank_tags(model, means, top_k)


def _rank_tags(model: Model, mean_embeddings: np.ndarray, top_k: int):
    audio_vecs = align_audio(mean_embeddings, model)
    tag_vecs = get_tag_embedding([[t] for t in model.tags], model)
    a = audio_vecs / np.maximum(np.linalg.norm(audio_vecs, axis=1, keepdims=True), 1e-12)
    t = tag_vecs / np.maximum(np.linalg.norm(tag_vecs, axis=1, keepdims=True), 1e-12)
    sims = a @ t.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :top_k]
    return [[(model.tags[j], float(sims[r, j])) for j in row] for r, row in enumerate(order)]
