"""Training-time augmentations of scaled log-mel patches, applied per batch (`TrainConfig.mix_p`, `bandlimit_p`).

Mixing (issue: "mixing clips, union of their tags"): a sample is replaced by the mixture of itself and
another sample of the batch, tagged with the union of both tag sets. Magnitudes of independent sources
add, so the log-mel of the mixture is close to logaddexp of the two; in the per-band min-max scaled
domain the element-wise maximum is that value to within ln(2) / (max - min) of a band (under 0.05 here).

Band limiting: a sample loses every mel band whose centre lies above a random cut-off between 3.4 kHz
(telephone) and 8 kHz, as audio recorded at 8-16 kHz does once resampled to 22 kHz; those bands are set
to 0, the scaled value of silence. Measured on E-C (README, "Augmentation, measured"): mixing helped
unseen instruments at no cost elsewhere; band-limiting on top cost spoken digits 4 points and bought no
robustness to 8-kHz audio that mixing had not, so the shipped model uses mixing only.

Second views (`audio_view`, for the audio-audio alignment term `lambda_audio_audio` of losses.py): the
same patch under a random gain, a time mask and a frequency mask (SpecAugment), and with probability
`view_mix_p` mixed with another patch, so that only what survives these is shared by the two views.
With `view_shift_frames` S the second view is first cut from the clip S frames or fewer earlier or later
(`shifted_crops`, on patches prepared with context frames): two overlapping patches of one clip, as in
COLA, and for a short sound the same sound at another place in the patch.

With `lead_frames` L every training patch itself is cut 0..L frames earlier (`lead_crops`): a short sound,
stored at the start of its patch, then sits anywhere in the first L frames of it, after silence, as
inference places it when it averages a short clip over `FrontEnd.short_positions` places.
"""
from __future__ import annotations

import librosa
import numpy as np

from coala_embed.audio import FrontEnd
from training.trainer.config import TrainConfig

BANDLIMIT_HZ = (3400.0, 8000.0)


def mel_band_centres(frontend: dict | None) -> np.ndarray:
    """Centre frequency (Hz) of each mel band of the front end that made the patches (the paper's when None)."""
    fe = FrontEnd.from_dict(frontend) if frontend else FrontEnd()
    edges = librosa.mel_frequencies(fe.n_mels + 2, fmin=fe.fmin, fmax=fe.fmax or fe.sample_rate / 2)
    return edges[1:-1]


def augment(x: np.ndarray, t: np.ndarray, cfg: TrainConfig | dict, rng: np.random.Generator, band_centres: np.ndarray):
    """x (B, bands, frames) scaled patches, t (B, n_tags) multi-hot; returns augmented copies."""
    cfg = TrainConfig.of(cfg)
    mix_p, band_p = cfg.mix_p, cfg.bandlimit_p
    if not (mix_p or band_p):
        return x, t
    x, t = x.copy(), t.copy()
    n = len(x)
    if mix_p:
        chosen = np.flatnonzero(rng.random(n) < mix_p)
        partner = (chosen + rng.integers(1, n, len(chosen))) % n  # never itself
        x[chosen] = np.maximum(x[chosen], x[partner])
        t[chosen] = np.maximum(t[chosen], t[partner])
    if band_p:
        chosen = np.flatnonzero(rng.random(n) < band_p)
        cutoffs = rng.uniform(*BANDLIMIT_HZ, len(chosen))
        x[chosen] *= (band_centres[None, :] <= cutoffs[:, None])[:, :, None]  # bands above the cut-off -> 0
    return x, t


VIEW_GAIN_DB = 6.0  # uniform in +-6 dB
VIEW_MAX_FRAMES, VIEW_MAX_BANDS = 20, 16  # widest masks: 20 of 96 frames (0.46 s), 16 of 96 bands


def band_ranges(frontend: dict | None, n_mels: int) -> np.ndarray:
    """Per-band log-mel range of the scaler (max - min): a gain of g shifts scaled band b by ln(g) / range_b.
    Without a fitted scaler (the published HDF5 data) a typical range of the corpus, 17, for every band."""
    if frontend and frontend.get("scaler_min") is not None:
        return np.asarray(frontend["scaler_max"], np.float32) - np.asarray(frontend["scaler_min"], np.float32)
    return np.full(n_mels, 17.0, np.float32)


def audio_view(x: np.ndarray, cfg: TrainConfig | dict, rng: np.random.Generator, ranges: np.ndarray) -> np.ndarray:
    """Another view of each patch of x (B, bands, frames), scaled to [0, 1]: gain, masks, maybe mixing."""
    n, bands, frames = x.shape
    v = x.copy()
    mix_p = TrainConfig.of(cfg).view_mix_p
    if mix_p:
        chosen = np.flatnonzero(rng.random(n) < mix_p)
        v[chosen] = np.maximum(v[chosen], x[(chosen + rng.integers(1, n, len(chosen))) % n])
    # gain: a shift of the log-mel; bins at the scale's floor (digital silence) stay silent
    shift = np.log(10.0) / 20 * rng.uniform(-VIEW_GAIN_DB, VIEW_GAIN_DB, n)[:, None] / ranges[None, :]
    v = np.where(v > 0, np.clip(v + shift[:, :, None].astype(np.float32), 0.0, None), v)
    for i in range(n):  # masked bins set to 0, the scaled value of silence
        f0, fw = rng.integers(0, frames), rng.integers(0, VIEW_MAX_FRAMES + 1)
        b0, bw = rng.integers(0, bands), rng.integers(0, VIEW_MAX_BANDS + 1)
        v[i, :, f0:f0 + fw] = 0.0
        v[i, b0:b0 + bw, :] = 0.0
    return v


def centre_crops(x: np.ndarray, context: int) -> np.ndarray:
    """The patches of x (B, bands, frames + 2 context) without their context frames."""
    return x[:, :, context:x.shape[2] - context] if context else x


def _crops_at(x: np.ndarray, context: int, offsets: np.ndarray, reach: int, key: str) -> np.ndarray:
    """Each patch of x (B, bands, frames + 2 context) cut `offsets[i]` frames from its centre crop
    (negative: earlier); `key`, the setting asking for up to `reach` frames, is named if context is short."""
    if not 0 < reach <= context:
        raise ValueError(f"{key}={reach} needs patches prepared with at least that many context "
                         f"frames (--context-frames); these have {context}")
    frames = x.shape[2] - 2 * context
    return np.stack([x[i, :, context + o:context + o + frames] for i, o in enumerate(offsets)])


def lead_crops(x: np.ndarray, context: int, max_lead: int, rng: np.random.Generator) -> np.ndarray:
    """Each patch of x (B, bands, frames + 2 context) cut at its own random 0..max_lead frames earlier."""
    return _crops_at(x, context, -rng.integers(0, max_lead + 1, len(x)), max_lead, "lead_frames")


def shifted_crops(x: np.ndarray, context: int, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each patch of x (B, bands, frames + 2 context) cut at its own random shift of -max_shift..max_shift frames."""
    return _crops_at(x, context, rng.integers(-max_shift, max_shift + 1, len(x)), max_shift, "view_shift_frames")
