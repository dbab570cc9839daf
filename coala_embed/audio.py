"""The COALA front end: decode, mono, resample, log-mel, per-band scaling, 96-frame patches.

Everything that turns a waveform into model input lives here, once. The defaults are the values of
the COALA reference (22000 Hz, 96 mel bands, n_fft 1024, hop 512, magnitude mel, natural log of
mel + float32 eps, 96x96 patches); a checkpoint stores its own copy of every one of them
(`FrontEnd.to_dict`) so that weights are always used with the front end they were trained with.

Audio is processed as a stream of blocks, so memory stays bounded for hour-long files, and the result
does not depend on the block size: the STFT is computed on an explicitly zero-padded signal
(the equivalent of librosa's `center=True`) with `center=False` framing over overlapping slices.

The STFT, the Hann window, the mel filterbank and its sparse product are librosa's (0.10-0.11) and
scipy's computations written out in numpy, operation for operation, so results are bit-identical to
theirs (tests/test_speed.py) without importing librosa or scipy, which cost ~2 s (scipy.signal, numba)
on the first file of every process.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterable, Iterator

import numpy as np
import soundfile as sf

SAMPLE_RATE = 22000
N_FFT = 1024
HOP_LENGTH = 512
N_MELS = 96
PATCH_FRAMES = 96
LOG_EPS = float(np.finfo(np.float32).eps)

MIN_INPUT_RATE = 8000
MAX_INPUT_RATE = 192000
MAX_CHANNELS = 64
READ_BLOCK_SECONDS = 30.0  # decode this much audio at a time
HOLD_SECONDS = 60.0  # peak normalisation keeps a clip this short in memory; a longer one is decoded twice
PATCHES_PER_CHUNK = 16  # log-mel is computed this many patches at a time

RESAMPLERS = ("soxr_hq", "kaiser_best", "kaiser_fast")  # soxr streams; the two resampy filters do not


class AudioError(ValueError):
    """Input audio that cannot be embedded; the message names the input and the problem."""


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """Every parameter that maps a waveform to a patch of scaled log-mel frames."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    n_mels: int = N_MELS
    fmin: float = 0.0
    fmax: float | None = None  # None: sample_rate / 2 (librosa's default)
    window: str = "hann"
    power: float = 1.0
    log_eps: float = LOG_EPS
    patch_frames: int = PATCH_FRAMES
    # scale each clip so that its peak sample sits at this level (dBFS) before anything else; None keeps
    # the level as it is (the COALA reference). Log-mel features shift with the input gain, and a model
    # trained and used on peak-normalised clips does not confuse a quiet take with a different sound.
    peak_dbfs: float | None = None
    # per-band min-max scaler fitted on training patches; None means unscaled log-mel
    scaler_min: tuple[float, ...] | None = None
    scaler_max: tuple[float, ...] | None = None
    # A clip shorter than one patch (2.2 s) is embedded at this many evenly spaced places in the patch
    # (silence around it), one patch each, so its mean embedding no longer depends on where in the patch
    # the sound sits (the 3x3 map keeps time position). 1 is the COALA reference: sound at the start,
    # silence after. Centred patching (the HEAR adapter) and clip_seconds keep the reference framing.
    short_positions: int = 1
    # Audio left over after the last whole patch of a longer clip is padded with silence into one more
    # patch when it lasts more than this fraction of a patch (0 <= x < 1), as a short clip is padded; None
    # drops it (the COALA reference: only whole patches, so a 3-s clip loses its last 0.8 s). Centred
    # patching and clip_seconds keep the reference framing.
    pad_tail_over: float | None = None

    def __post_init__(self):
        if not (isinstance(self.short_positions, int) and self.short_positions >= 1):
            raise ValueError(f"short_positions must be a positive integer, got {self.short_positions!r}")
        if self.pad_tail_over is not None and not 0 <= self.pad_tail_over < 1:
            raise ValueError(f"pad_tail_over must be None or in [0, 1), got {self.pad_tail_over!r}")
        for name in ("scaler_min", "scaler_max"):
            value = getattr(self, name)
            if value is not None:
                value = tuple(float(v) for v in value)
                if len(value) != self.n_mels:
                    raise ValueError(f"{name} has {len(value)} values, expected n_mels={self.n_mels}")
                object.__setattr__(self, name, value)

    @property
    def patch_seconds(self) -> float:
        return self.patch_frames * self.hop_length / self.sample_rate

    @property
    def min_samples(self) -> int:
        """Shortest signal that yields one full patch; shorter audio is zero-padded to it."""
        return (self.patch_frames - 1) * self.hop_length

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FrontEnd":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown front-end parameters {sorted(unknown)}")
        return cls(**d)

    def with_scaler(self, mins, maxs) -> "FrontEnd":
        return dataclasses.replace(self, scaler_min=tuple(mins), scaler_max=tuple(maxs))

    def mel_basis(self) -> np.ndarray:
        return _mel_basis(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax)

    def hop_frames(self, hop_seconds: float | None) -> int:
        """Patch hop in frames for a hop in seconds; None means non-overlapping patches."""
        if hop_seconds is None:
            return self.patch_frames
        if not hop_seconds > 0:
            raise ValueError(f"hop_size must be positive, got {hop_seconds}")
        return max(1, int(round(hop_seconds * self.sample_rate / self.hop_length)))


_MEL_CACHE: dict = {}


def _mel_basis(sr, n_fft, n_mels, fmin, fmax):
    key = (sr, n_fft, n_mels, fmin, fmax)
    if key not in _MEL_CACHE:
        _MEL_CACHE[key] = mel_filters(sr, n_fft, n_mels, fmin, fmax)
    return _MEL_CACHE[key]


# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above
_MEL_LINEAR = 200.0 / 3  # Hz per mel
_MIN_LOG_MEL = (1000.0 - 0.0) / _MEL_LINEAR
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(f) -> np.ndarray:
    f = np.atleast_1d(np.asarray(f, dtype=np.float64))
    mels = (f - 0.0) / _MEL_LINEAR
    log_t = f >= 1000.0
    mels[log_t] = _MIN_LOG_MEL + np.log(f[log_t] / 1000.0) / _LOGSTEP
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freqs = 0.0 + _MEL_LINEAR * mels
    log_t = mels >= _MIN_LOG_MEL
    freqs[log_t] = 1000.0 * np.exp(_LOGSTEP * (mels[log_t] - _MIN_LOG_MEL))
    return freqs


def mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """float32 (n_mels, 1 + n_fft // 2) triangular filters, Slaney-normalised: librosa.filters.mel's defaults."""
    fmax = float(sr) / 2 if fmax is None else fmax
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin)[0], _hz_to_mel(fmax)[0], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights


def fft_window(name: str, n: int) -> np.ndarray:
    """float64 periodic window (scipy.signal.get_window(name, n, fftbins=True)); Hann without scipy."""
    if name != "hann":
        import scipy.signal

        return scipy.signal.get_window(name, n, fftbins=True)
    if n <= 1:
        return np.ones(n)
    fac = np.linspace(-np.pi, np.pi, n + 1, dtype=np.float64)  # scipy's general_cosine, one point longer
    w = np.zeros(n + 1, dtype=np.float64)
    for k, a in enumerate((0.5, 0.5)):
        w += a * np.cos(k * fac)
    return w[:-1]


def stft_magnitude(padded: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """|STFT| (1 + n_fft // 2, n_frames) float32 of a float32 signal, framed without padding:
    librosa.stft(center=False): float64 windowed frames, numpy's rfft, stored as complex64."""
    key = ("window", fe.window, fe.n_fft)
    if key not in _MEL_CACHE:
        _MEL_CACHE[key] = fft_window(fe.window, fe.n_fft)[:, None]
    frames = np.lib.stride_tricks.sliding_window_view(padded, fe.n_fft)[::fe.hop_length].T  # (n_fft, n_frames)
    return np.abs(np.fft.rfft(_MEL_CACHE[key] * frames, axis=-2).astype(np.complex64))


def _mel_steps(fe: FrontEnd) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The filterbank as sparse steps: step k holds the k-th nonzero (bin, weight) of every band that has
    more than k, bands sorted widest first (so a step's bands are a prefix), and the band order."""
    key = ("steps", fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax)
    if key not in _MEL_CACHE:
        basis = fe.mel_basis()
        nonzero = [np.flatnonzero(row) for row in basis]
        order = np.argsort([-len(nz) for nz in nonzero], kind="stable")
        steps = []
        for k in range(len(nonzero[order[0]]) if len(order) else 0):
            bands = [b for b in order if len(nonzero[b]) > k]
            bins = np.array([nonzero[b][k] for b in bands])
            steps.append((bins, basis[bands, bins]))
        _MEL_CACHE[key] = (order, steps)
    return _MEL_CACHE[key]


def mel_product(spec_t: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """(n_frames, n_mels) float32 = spec_t (n_frames, n_bins) @ mel_basis.T, summed like a sparse
    (CSR) product: each band from 0, adding weight * bin in increasing bin order, in float32. The
    filterbank is ~98% zeros, so this is ~10x fewer operations than a dense product (and needs neither
    scipy.sparse, whose import costs ~0.3 s, nor a threaded BLAS, which mostly waits on busy cores)."""
    order, steps = _mel_steps(fe)
    acc = np.zeros((len(spec_t), len(order)), np.float32)
    for bins, weights in steps:
        acc[:, :len(bins)] += spec_t[:, bins] * weights
    out = np.empty_like(acc)
    out[:, order] = acc
    return out


# ----------------------------------------------------------------------------------------------
# waveform in: validation, mono, resampling


def as_float_audio(y, name: str = "audio") -> np.ndarray:
    """Validate an array and return float32 of shape (n_samples, n_channels).

    Integers are scaled to [-1, 1) by their type's range; floats are taken as they are.
    """
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
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer, float)) or sr != int(sr):
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

    def blocks():
        try:
            with sf.SoundFile(path) as f:
                while True:
                    block = f.read(int(READ_BLOCK_SECONDS * sr), dtype="float32", always_2d=True)
                    if len(block) == 0:
                        break
                    yield _checked_mono(block, name)
        except AudioError:
            raise
        except Exception as e:
            raise AudioError(f"{name}: audio data is corrupt or truncated ({_short(e)})") from None

    return sr, blocks()


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


# ----------------------------------------------------------------------------------------------
# log-mel and patches


def log_mel_frames(padded: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """Log-mel frames (n_frames, n_mels) of an already centre-padded signal, framed without padding."""
    spec = stft_magnitude(padded, fe)
    if fe.power != 1.0:
        spec = spec ** fe.power
    return np.log(mel_product(spec.T, fe) + fe.log_eps)


def log_mel(y: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """Log-mel of a whole mono signal at fe.sample_rate, as librosa computes it with center=True."""
    pad = fe.n_fft // 2
    return log_mel_frames(np.pad(np.asarray(y, np.float32), (pad, pad)), fe)


def scale(frames: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """Per-band min-max scaling with the checkpoint's scaler (MinMaxScaler semantics, no clipping)."""
    if fe.scaler_min is None:
        return frames
    lo = np.asarray(fe.scaler_min, np.float32)
    span = np.asarray(fe.scaler_max, np.float32) - lo
    span[span == 0] = 1.0  # constant band in training: scikit-learn also divides by 1
    return (frames - lo) / span


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
    if n_signal == 0:
        raise AudioError("contains no samples")
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
