"""The COALA front end's definition and DSP: constants, `FrontEnd`, STFT, mel filterbank, log-mel, scaling.

The defaults are the values of the COALA reference (22000 Hz, 96 mel bands, n_fft 1024, hop 512,
magnitude mel, natural log of mel + float32 eps, 96x96 patches); a checkpoint stores its own copy of
every one of them (`FrontEnd.to_dict`) so that weights are always used with the front end they were
trained with. Decoding and resampling live in `coala_embed.decode`, cutting into patches in
`coala_embed.patches`.

The STFT, the Hann window, the mel filterbank and its sparse product are librosa's (0.10-0.11) and
scipy's computations written out in numpy, operation for operation, so results are bit-identical to
theirs (tests/test_speed.py) without importing librosa or scipy, which cost ~2 s (scipy.signal, numba)
on the first file of every process.
"""
from __future__ import annotations

import dataclasses

import numpy as np

SAMPLE_RATE = 22000
N_FFT = 1024
HOP_LENGTH = 512
N_MELS = 96
PATCH_FRAMES = 96
LOG_EPS = float(np.finfo(np.float32).eps)


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
