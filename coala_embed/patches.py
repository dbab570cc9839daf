"""Cutting a stream of mono blocks into scaled 96-frame log-mel patches, the encoder's input.

Log-mel is computed on an explicitly zero-padded signal (the equivalent of librosa's `center=True`)
with `center=False` framing over overlapping slices, in chunks of PATCHES_PER_CHUNK patches, so the
result does not depend on how the audio was split into blocks.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from .audio import FrontEnd, log_mel, log_mel_frames, scale
from .decode import check_sample_rate, clip_blocks, mono_blocks_from_array

PATCHES_PER_CHUNK = 16  # log-mel is computed this many patches at a time


def patch_centres(starts: np.ndarray, fe: FrontEnd, offset_seconds: float = 0.0) -> np.ndarray:
    """Time in seconds of the centre of patches that start at the given frames.

    Frame i is centred at i * hop / sr, so a patch of frames [s, s + P) is centred at (s + (P - 1) / 2).
    """
    return ((starts + (fe.patch_frames - 1) / 2) * fe.hop_length / fe.sample_rate - offset_seconds).astype(np.float64)


def iter_patches(blocks: Iterable[np.ndarray], fe: FrontEnd, hop_frames: int | None = None,
                 center: bool = False, clip_seconds: float | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Scaled (k, n_mels, patch_frames) patches and their centre times (k,), from mono blocks at fe.sample_rate.

    Patches start at frame 0 and every `hop_frames` frames (default: non-overlapping); only whole patches
    are taken, unless `fe.pad_tail_over` is set: then audio after the last whole patch that lasts more
    than that fraction of a patch is zero-padded into one more patch on the same grid. Audio shorter than
    one patch is zero-padded to one patch, at `fe.short_positions` evenly
    spaced places (one patch each: the sound first at the end of its patch, last at the start, so centre
    times increase; they fall before t=0 when silence leads). `center=True` pads half a patch
    of silence at both ends so that patch centres start at t=0 (openl3's convention, used by the HEAR
    adapter). `clip_seconds` pads or cuts the signal to a fixed length (the reference pads every clip to
    10 s; zeros only, so the result stays deterministic).
    """
    hop_frames = hop_frames or fe.patch_frames
    P, hop = fe.patch_frames, fe.hop_length
    half = fe.n_fft // 2
    offset = 0.0
    lead_samples = 0
    lead = np.zeros(half, np.float32)  # centre padding of the STFT
    if center:
        lead_samples = (P - 1) * hop // 2  # the first patch's centre (frame (P-1)/2) falls on t=0
        lead = np.zeros(half + lead_samples, np.float32)
        offset = lead_samples / fe.sample_rate
    limit = None if clip_seconds is None else int(round(clip_seconds * fe.sample_rate))

    buf = lead  # padded samples not yet consumed; buf[0] is padded sample `buf_start`
    buf_start = 0
    frames = np.zeros((0, fe.n_mels), np.float32)  # log-mel frames from `frames_start` on
    frames_start = 0
    next_patch = 0  # first frame of the next patch to emit
    n_signal = 0
    chunk_frames = P * PATCHES_PER_CHUNK

    def emit(final: bool):
        nonlocal frames, frames_start, next_patch
        starts = []
        while next_patch + P <= frames_start + len(frames):
            starts.append(next_patch)
            next_patch += hop_frames
        if starts:
            rel = np.asarray(starts) - frames_start
            idx = rel[:, None] + np.arange(P)[None, :]
            patches = scale(frames[idx], fe).transpose(0, 2, 1)  # (k, n_mels, patch_frames), as librosa lays out
            yield np.ascontiguousarray(patches, np.float32), patch_centres(np.asarray(starts), fe, offset)
        keep_from = max(0, next_patch - frames_start)
        frames = frames[keep_from:]
        frames_start += keep_from

    def compute_frames(final: bool):
        nonlocal buf, buf_start, frames
        # frame f covers padded samples [f*hop, f*hop + n_fft)
        first = frames_start + len(frames)
        while True:
            available = (buf_start + len(buf) - fe.n_fft) // hop + 1 - first
            if available <= 0 or (available < chunk_frames and not final):
                return
            n = min(available, chunk_frames)
            lo = first * hop - buf_start
            seg = buf[lo: lo + (n - 1) * hop + fe.n_fft]
            frames = np.concatenate([frames, log_mel_frames(seg, fe)])
            first += n
            drop = first * hop - buf_start
            buf, buf_start = buf[drop:], buf_start + drop
            yield from emit(final)

    for block in blocks:
        if limit is not None:
            block = block[: max(0, limit - n_signal)]
        n_signal += len(block)
        buf = np.concatenate([buf, block.astype(np.float32, copy=False)])
        yield from compute_frames(False)
        if limit is not None and n_signal >= limit:
            break  # the rest of the file is cut: do not decode it
    # n_signal may be 0 here: a clip of a few samples resamples to none (an empty input was refused
    # where it was read); like any clip shorter than a patch, it becomes silence-padded patches
    if fe.short_positions > 1 and not center and limit is None and n_signal < fe.min_samples:
        # nothing was framed yet (that needs a patch's worth): buf is the STFT lead and the whole signal
        yield _short_patches(buf[half:], fe)
        return
    # short audio: pad to one patch (centred patching pads a whole patch already)
    tail = 0 if center else max(0, fe.min_samples - n_signal)
    if limit is not None:
        tail = max(tail, limit - n_signal)
    elif fe.pad_tail_over is not None and not center and n_signal >= fe.min_samples:
        tail = _tail_padding(n_signal, fe, hop_frames)
    if center:
        tail += P * hop - lead_samples
    buf = np.concatenate([buf, np.zeros(tail + half, np.float32)])
    yield from compute_frames(True)


def _tail_padding(n_signal: int, fe: FrontEnd, hop_frames: int) -> int:
    """Zeros to append to a signal of at least one patch so that the audio after its last whole patch
    becomes one more patch (on the grid of starts every hop_frames), when that audio spans more than
    fe.pad_tail_over of a patch; else 0."""
    P, hop = fe.patch_frames, fe.hop_length
    n_frames = 1 + n_signal // hop  # centred STFT frames of the signal
    n_whole = (n_frames - P) // hop_frames + 1
    next_start = n_whole * hop_frames
    # frames the next patch would add: after the last whole patch's end, and (hops longer than a patch
    # skip audio by design) after the next patch's start
    left = n_frames - max((n_whole - 1) * hop_frames + P, next_start)
    if left <= fe.pad_tail_over * P:
        return 0
    return (next_start + P - 1) * hop - n_signal  # the fewest zeros that give frame next_start + P - 1


def _short_patches(y: np.ndarray, fe: FrontEnd) -> tuple[np.ndarray, np.ndarray]:
    """The `fe.short_positions` patches of a signal shorter than one patch and their centre times."""
    free = fe.min_samples - len(y)
    leads = [round(i * free / (fe.short_positions - 1)) for i in reversed(range(fe.short_positions))]
    patches = np.stack([scale(log_mel(np.pad(y, (lead, free - lead)), fe), fe).T for lead in leads])
    centres = np.concatenate([patch_centres(np.zeros(1), fe, lead / fe.sample_rate) for lead in leads])
    return np.ascontiguousarray(patches, np.float32), centres


def load_patches_array(y, sr, fe: FrontEnd, **kw) -> tuple[np.ndarray, np.ndarray]:
    """All patches of an in-memory clip; a convenience for training code and tests."""
    sr = check_sample_rate(sr)
    blocks = clip_blocks(lambda: mono_blocks_from_array(y, sr), sr, fe, kw.pop("resampler", "soxr_hq"),
                         kw.get("clip_seconds"))
    parts = list(iter_patches(blocks, fe, **kw))
    return np.concatenate([p for p, _ in parts]), np.concatenate([t for _, t in parts])
