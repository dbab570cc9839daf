"""Hand-crafted per-clip features for the evaluation: the MFCC low anchor, the descriptor statistics of
the correlation analysis (paper Table 2), and the canonical correlation similarity between two views.

All hand-crafted features are computed with librosa at FEATURE_SR = 22050 Hz (every file is decoded,
down-mixed to mono and resampled to that rate with soxr_hq, whatever its own rate), so that the numbers
of data sets with different sample rates (ESC-50 at 44.1 kHz, FSDD at 8 kHz) are computed the same way.
STFT: n_fft 2048, hop 512 (librosa's defaults). Clips shorter than one FFT window are zero-padded to it.
"""
from __future__ import annotations

import warnings

import librosa
import numpy as np

FEATURE_SR = 22050
N_FFT = 2048
HOP = 512
N_MFCC = 20
DELTA_WIDTH = 9

MFCC_ID = "mfcc-v1"  # cache identity of the 120-d anchor; bump when anything below changes
STATS_ID = "stats-v1"  # cache identity of the descriptor statistics

# descriptor -> number of per-frame values; each gets mean, variance and skewness over time
DESCRIPTORS = {"mfcc": N_MFCC, "chroma": 12, "centroid": 1, "bandwidth": 1}
STATS = ("mean", "var", "skew")


def stats_slices() -> dict[str, slice]:
    """Where each descriptor's statistics lie in the flat vector returned by `clip_features`."""
    out, start = {}, 0
    for name, k in DESCRIPTORS.items():
        out[name] = slice(start, start + k * len(STATS))
        start += k * len(STATS)
    return out


STATS_DIM = sum(k * len(STATS) for k in DESCRIPTORS.values())


def load_audio(path, sr: int = FEATURE_SR) -> np.ndarray:
    """Decode with the package's reader (libsndfile; mono = mean of channels, as librosa.load), then
    resample to `sr` with soxr_hq (librosa.load's default): the same signal librosa.load gives."""
    from coala_embed.decode import mono_blocks_from_file

    rate, blocks = mono_blocks_from_file(path)  # AudioError with a clear message for unreadable files
    y = np.concatenate(list(blocks))
    if rate != sr:
        y = librosa.resample(y, orig_sr=rate, target_sr=sr, res_type="soxr_hq")
    if len(y) < N_FFT:
        y = np.pad(y, (0, N_FFT - len(y)))
    return y.astype(np.float32)


def _delta(m: np.ndarray, order: int) -> np.ndarray:
    # librosa's 'interp' mode needs at least `width` frames; very short clips fall back to 'nearest'
    if m.shape[1] >= DELTA_WIDTH:
        return librosa.feature.delta(m, width=DELTA_WIDTH, order=order)
    return librosa.feature.delta(m, width=DELTA_WIDTH, order=order, mode="nearest")


def _power_spec(y: np.ndarray) -> np.ndarray:
    return np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2


_MEL: dict = {}


def _mfcc(power: np.ndarray, sr: int) -> np.ndarray:
    """librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20) from a power spectrogram, with the mel basis built once."""
    if sr not in _MEL:
        _MEL[sr] = librosa.filters.mel(sr=sr, n_fft=N_FFT)  # librosa's defaults: 128 bands, Slaney
    return librosa.feature.mfcc(S=librosa.power_to_db(_MEL[sr] @ power), sr=sr, n_mfcc=N_MFCC)


def _anchor(m: np.ndarray) -> np.ndarray:
    f = np.vstack([m, _delta(m, 1), _delta(m, 2)])
    return np.concatenate([f.mean(axis=1), f.std(axis=1)]).astype(np.float32)


def mfcc_anchor_from_audio(y: np.ndarray, sr: int = FEATURE_SR) -> np.ndarray:
    """The low anchor: 20 MFCCs + deltas + delta-deltas, mean and std over time (120-d float32)."""
    return _anchor(_mfcc(_power_spec(y), sr))


def _skew(f: np.ndarray) -> np.ndarray:
    mu = f.mean(axis=1, keepdims=True)
    d = f - mu
    m2 = (d ** 2).mean(axis=1)
    m3 = (d ** 3).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = m3 / m2 ** 1.5
    return np.where(m2 > 1e-12 * np.maximum(1.0, mu[:, 0] ** 2), s, 0.0)  # constant rows: skewness 0


def stats_from_audio(y: np.ndarray, sr: int = FEATURE_SR, power=None, mfcc=None) -> np.ndarray:
    """Per-clip mean, variance and (biased) skewness over time of MFCCs, chromagram, spectral centroid
    and spectral bandwidth, in the order of DESCRIPTORS (STATS_DIM = 102 values, float32)."""
    power = _power_spec(y) if power is None else power
    mag = np.sqrt(power)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # chroma of silent frames
        per_frame = {
            "mfcc": _mfcc(power, sr) if mfcc is None else mfcc,
            "chroma": librosa.feature.chroma_stft(S=power, sr=sr, n_fft=N_FFT, hop_length=HOP),
            "centroid": librosa.feature.spectral_centroid(S=mag, sr=sr, n_fft=N_FFT, hop_length=HOP),
            "bandwidth": librosa.feature.spectral_bandwidth(S=mag, sr=sr, n_fft=N_FFT, hop_length=HOP),
        }
    parts = []
    for name in DESCRIPTORS:
        f = np.nan_to_num(per_frame[name].astype(np.float64))
        parts += [f.mean(axis=1), f.var(axis=1), _skew(f)]
    return np.nan_to_num(np.concatenate(parts)).astype(np.float32)


def clip_features(path) -> tuple[np.ndarray, np.ndarray]:
    """(MFCC anchor, descriptor statistics) of a file from one decode and one STFT."""
    y = load_audio(path)
    power = _power_spec(y)
    m = _mfcc(power, FEATURE_SR)
    return _anchor(m), stats_from_audio(y, FEATURE_SR, power, m)


def mfcc_anchor(path) -> np.ndarray:
    return mfcc_anchor_from_audio(load_audio(path))


def clip_stats(path) -> np.ndarray:
    return stats_from_audio(load_audio(path))


# ----------------------------------------------------------------------------------------------
# canonical correlation similarity


def default_cca_dim(n: int) -> int:
    """Dimensions kept on each side: at most n/10 (and at most 32), so that a view cannot correlate
    trivially with anything just by having as many dimensions as there are clips."""
    return int(max(1, min(32, n // 10)))


def _principal_basis(X: np.ndarray, k: int) -> np.ndarray:
    """Orthonormal basis (n, <=k) of the top-k principal components of column-standardised X."""
    X = np.asarray(X, np.float64)
    X = X - X.mean(axis=0)
    sd = X.std(axis=0)
    X = X[:, sd > 1e-12 * max(1.0, float(np.abs(X).max(initial=0.0)))]
    if X.shape[1] == 0:
        return np.zeros((X.shape[0], 0))
    X = X / X.std(axis=0)
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    rank = int((s > s[0] * 1e-10).sum()) if s.size else 0
    return U[:, :min(k, rank)]


def _cca_from_bases(Ux: np.ndarray, Uy: np.ndarray) -> np.ndarray:
    if Ux.shape[1] == 0 or Uy.shape[1] == 0:
        return np.zeros(0)
    return np.clip(np.linalg.svd(Ux.T @ Uy, compute_uv=False), 0.0, 1.0)


def cca_similarity(X: np.ndarray, Y: np.ndarray, dim: int | None = None) -> tuple[float, np.ndarray]:
    """Mean canonical correlation between two views of the same n clips (SVCCA-style).

    Each view's columns are centred and standardised, then reduced to its top `dim` principal
    components (default `default_cca_dim(n)`). With Ux, Uy orthonormal bases of the two reduced views
    (what QR of the centred, reduced matrices gives), the canonical correlations are the singular
    values of Ux^T Uy; the similarity is their mean, in [0, 1]. Returns (similarity, correlations).
    """
    X, Y = np.asarray(X), np.asarray(Y)
    if len(X) != len(Y):
        raise ValueError(f"views have {len(X)} and {len(Y)} rows")
    dim = default_cca_dim(len(X)) if dim is None else dim
    rho = _cca_from_bases(_principal_basis(X, dim), _principal_basis(Y, dim))
    return (float(rho.mean()) if rho.size else 0.0), rho


def correlation_analysis(X: np.ndarray, stats: np.ndarray, dim: int | None = None, n_perm: int = 5,
                         seed: int = 0) -> dict:
    """CCA similarity of embeddings X (n, d) with each descriptor's statistics (columns of `stats`,
    laid out as `stats_slices()`), and the chance level: the mean over `n_perm` row permutations of
    the descriptor side (same dimensions, no real pairing)."""
    dim = default_cca_dim(len(X)) if dim is None else dim
    Ux = _principal_basis(X, dim)
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(len(X)) for _ in range(n_perm)]
    out = {}
    for name, sl in stats_slices().items():
        Uy = _principal_basis(stats[:, sl], dim)
        rho = _cca_from_bases(Ux, Uy)
        null = [_cca_from_bases(Ux, Uy[p]) for p in perms]
        out[name] = {
            "cca": float(rho.mean()) if rho.size else 0.0,
            "cca_null": float(np.mean([r.mean() if r.size else 0.0 for r in null])),
            "canonical_correlations": [round(float(r), 4) for r in rho],
            "dims": [int(Ux.shape[1]), int(Uy.shape[1])],
        }
    return out
