"""Waveforms in: validation, decoding in blocks, mono, peak normalisation and resampling.

Audio is processed as a stream of blocks, so memory stays bounded for hour-long files; what follows
(`coala_embed.patches`) gives the same result whatever the block size.
"""
from __future__ import annotations

import numbers
import os
import struct
from typing import Callable, Iterable, Iterator

import numpy as np
import soundfile as sf

from .audio import AudioError, FrontEnd

MIN_INPUT_RATE = 8000
MAX_INPUT_RATE = 192000
MAX_CHANNELS = 64
READ_BLOCK_SECONDS = 30.0  # decode this much audio at a time
HOLD_SECONDS = 60.0  # peak normalisation keeps a clip this short in memory; a longer one is decoded twice

TRUNCATION_SLACK = 4096  # frames a decoder may fall short of its header's count (MP3 padding) before it is truncation
RESAMPLERS = ("soxr_hq", "kaiser_best", "kaiser_fast")  # soxr streams; the two resampy filters do not


def as_float_audio(y, name: str = "audio") -> np.ndarray:
    """Validate an array and return float32 of shape (n_samples, n_channels).

    Integers are scaled to [-1, 1) by their type's range; floats are taken as they are. A torch tensor is
    taken as its values (detached, on the CPU).
    """
    if hasattr(y, "detach") and hasattr(y, "cpu"):  # torch, without importing it
        y = y.detach().cpu().float().numpy() if y.is_floating_point() else y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.dtype.kind not in "iuf":
        raise AudioError(f"{name}: expected a numeric array, got dtype {y.dtype}")
    if y.ndim == 1:
        y = y[:, None]
    elif y.ndim != 2:
        raise AudioError(f"{name}: expected shape (n_samples,) or (n_samples, n_channels), got {y.shape}")
    if y.shape[1] > MAX_CHANNELS:
        raise AudioError(
            f"{name}: {y.shape[1]} channels; expected (n_samples, n_channels) - "
            "did you pass a (channels, samples) array? Transpose it."
        )
    if y.shape[0] == 0 or y.shape[1] == 0:
        raise AudioError(f"{name}: contains no samples")
    if y.dtype.kind == "u":
        half = 2 ** (8 * y.dtype.itemsize - 1)
        y = (y.astype(np.float64) - half) / half
    elif y.dtype.kind == "i":
        y = y.astype(np.float64) / 2 ** (8 * y.dtype.itemsize - 1)
    return np.ascontiguousarray(y, dtype=np.float32)


def check_sample_rate(sr, name: str = "audio") -> int:
    if isinstance(sr, (bool, np.bool_)) or not isinstance(sr, numbers.Real) or not np.isfinite(sr) or sr != int(sr):
        raise AudioError(f"{name}: sample rate must be an integer number of Hz, got {sr!r}")
    sr = int(sr)
    if not MIN_INPUT_RATE <= sr <= MAX_INPUT_RATE:
        raise AudioError(f"{name}: sample rate {sr} Hz is outside the supported {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz")
    return sr


def _checked_mono(block: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(block).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if block.shape[1] == 1:
        return block[:, 0]
    if block.shape[1] >= 8:
        return block.mean(axis=1, dtype=np.float32)
    # block.mean(axis=1, dtype=float32) as numpy computes it (fewer than 8 values: summed in order from
    # +0.0, then divided by an intp count), ~10x faster than its reduction over a short inner axis
    mono = block[:, 0] + np.float32(0.0)
    for c in range(1, block.shape[1]):
        mono += block[:, c]
    return np.true_divide(mono, np.intp(block.shape[1]), out=mono, casting="unsafe")


def mono_blocks_from_array(y, sr: int, name: str = "audio") -> Iterator[np.ndarray]:
    """Mono float32 blocks of an in-memory array (n_samples[, n_channels]) at sample rate sr."""
    y = as_float_audio(y, name)
    step = int(READ_BLOCK_SECONDS * sr)
    for start in range(0, len(y), step):
        yield _checked_mono(y[start:start + step], name)


def mono_blocks_from_file(path, name: str | None = None) -> tuple[int, Iterator[np.ndarray]]:
    """Open an audio file; return its sample rate and an iterator of mono float32 blocks."""
    name = name or os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(f"{name}: no such file")
    if os.path.isdir(path):
        raise AudioError(f"{name}: is a directory, not an audio file")
    try:
        info = sf.info(path)
    except Exception as e:  # libsndfile's messages are specific but not user-facing
        raise AudioError(f"{name}: not a readable audio file ({_short(e)})") from None
    if info.frames == 0:
        raise AudioError(f"{name}: contains no samples")
    sr = check_sample_rate(info.samplerate, name)
    declared = _declared_frames(path, info)

    def blocks():
        decoded = 0
        try:
            with sf.SoundFile(path) as f:
                while True:
                    block = f.read(int(READ_BLOCK_SECONDS * sr), dtype="float32", always_2d=True)
                    if len(block) == 0:
                        break
                    decoded += len(block)
                    yield _checked_mono(block, name)
        except AudioError:
            raise
        except Exception as e:
            raise AudioError(f"{name}: audio data is corrupt or truncated ({_short(e)})") from None
        if decoded < declared - max(TRUNCATION_SLACK, declared // 100):
            raise AudioError(f"{name}: truncated: the header promises {declared / sr:.2f} s, the data holds "
                             f"{decoded / sr:.2f} s (an interrupted copy or download?)")

    return sr, blocks()


def _declared_frames(path, info) -> int:
    """The frames the file's header promises. libsndfile shrinks a WAV's count to the bytes present, so
    for WAV the RIFF header's own data size is read; MP3 (Xing), FLAC and others report the header's."""
    if info.format != "WAV" or not info.subtype.startswith(("PCM", "FLOAT", "DOUBLE", "ULAW", "ALAW")):
        return info.frames
    try:
        with open(path, "rb") as f:
            riff = f.read(12)
            if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
                return info.frames
            frame_bytes = None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return info.frames
                chunk, size = head[:4], struct.unpack("<I", head[4:])[0]
                if chunk == b"fmt ":
                    fmt = f.read(size + size % 2)
                    frame_bytes = struct.unpack("<H", fmt[12:14])[0]  # block align
                elif chunk == b"data":
                    # 0 or 0xFFFFFFFF: a streamed file whose writer never filled the size in
                    if not frame_bytes or size in (0, 0xFFFFFFFF):
                        return info.frames
                    return max(info.frames, size // frame_bytes)
                else:
                    f.seek(size + size % 2, os.SEEK_CUR)
    except (OSError, struct.error):
        return info.frames


def clip_blocks(open_blocks: Callable[[], Iterator[np.ndarray]], sr: int, fe: FrontEnd,
                resampler: str = "soxr_hq", clip_seconds: float | None = None) -> Iterator[np.ndarray]:
    """Mono blocks of one clip at fe.sample_rate, peak-normalised when the front end asks for it.

    `open_blocks()` returns a fresh iterator over the clip's mono blocks at rate `sr`. With `fe.peak_dbfs`
    set, a first pass finds the peak: a clip of up to HOLD_SECONDS is kept from it, a longer one is read
    again (`open_blocks()` a second time), so a long file is never held in memory whole. The gain is
    applied before resampling (both are linear, so the order only moves float rounding). A clip of
    digital silence is left as it is. With `clip_seconds` (the cut of `iter_patches`), only the part
    that is kept sets the peak, and the scan stops one block after the cut (that block is the
    resampler's look-ahead, so the kept part resamples exactly as in the whole file).
    """
    blocks = open_blocks()
    if fe.peak_dbfs is not None:
        peak, held, n_held = 0.0, [], 0
        counted = None if clip_seconds is None else int(np.ceil(clip_seconds * sr))
        for b in blocks:
            beyond_cut = counted is not None and n_held >= counted
            kept = b if counted is None else b[: max(0, counted - n_held)]
            peak = max(peak, float(np.abs(kept).max(initial=0.0)))
            n_held += len(b)
            if held is not None:
                held.append(b)
                if n_held > HOLD_SECONDS * sr:
                    held = None  # too long to keep: decode again
            if beyond_cut:
                break
        blocks = iter(held) if held is not None else open_blocks()
        if peak > 0:
            gain = np.float32(10.0 ** (fe.peak_dbfs / 20.0) / peak)
            blocks = (b * gain for b in blocks)
    return resample_blocks(blocks, sr, fe.sample_rate, resampler)


def file_clip_blocks(path, fe: FrontEnd, resampler: str = "soxr_hq",
                     clip_seconds: float | None = None) -> Iterator[np.ndarray]:
    """`clip_blocks` of an audio file: its header is read once, and the file is decoded a second
    time only for a peak-normalised clip longer than HOLD_SECONDS."""
    sr, first = mono_blocks_from_file(path)
    unused = [first]
    return clip_blocks(lambda: unused.pop() if unused else mono_blocks_from_file(path)[1], sr, fe, resampler,
                       clip_seconds)


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__


def resample_blocks(blocks: Iterable[np.ndarray], sr: int, target_sr: int, resampler: str = "soxr_hq") -> Iterator[np.ndarray]:
    """Resample a stream of mono blocks. soxr streams exactly; resampy needs the whole signal."""
    if resampler not in RESAMPLERS:
        raise ValueError(f"resampler must be one of {RESAMPLERS}, got {resampler!r}")
    if sr == target_sr:
        yield from blocks
        return
    if resampler == "soxr_hq":
        import soxr

        stream = soxr.ResampleStream(sr, target_sr, 1, dtype="float32", quality="HQ")
        previous = None
        for block in blocks:
            if previous is not None:
                yield stream.resample_chunk(previous, last=False)
            previous = block
        if previous is not None:
            yield stream.resample_chunk(previous, last=True)
    else:
        import resampy

        y = np.concatenate(list(blocks))
        yield resampy.resample(y, sr, target_sr, filter=resampler, axis=0).astype(np.float32)


def duration_of(path) -> float | None:
    """The file's duration from its header, or None when unreadable (its row's error says why)."""
    try:
        return float(sf.info(path).duration)
    except Exception:
        return None
