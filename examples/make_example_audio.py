"""Write a few short synthetic example sounds into examples/audio/ (no downloads, deterministic).

    python examples/make_example_audio.py && coala-embed examples/audio/*.wav --output-dir feats

The files differ in sample rate, channel count and sample format on purpose, to show that the
extractor takes them all: tones, a chord, noise bursts, a chirp, clicks, a short blip and silence.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf


def _t(seconds, sr):
    return np.arange(int(round(seconds * sr))) / sr


def _fade(y, sr, ms=10):
    n = min(len(y) // 2, int(sr * ms / 1000))
    ramp = np.linspace(0, 1, n)
    if y.ndim == 2:
        ramp = ramp[:, None]
    y = y.copy()
    y[:n] *= ramp
    y[len(y) - n:] *= ramp[::-1]
    return y


def examples(rng):
    """(name, samples (n,) or (n, channels), sample rate, libsndfile subtype)."""
    out = []

    sr = 22050
    t = _t(4.0, sr)
    out.append(("tone_440hz", _fade(0.4 * np.sin(2 * np.pi * 440 * t), sr), sr, "PCM_16"))

    sr = 44100
    t = _t(5.0, sr)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) / 3
    left, right = 0.5 * chord, 0.5 * chord * np.exp(-t / 3)
    out.append(("chord_stereo_44k", _fade(np.stack([left, right], 1), sr), sr, "PCM_24"))

    sr = 16000
    t = _t(6.0, sr)
    bursts = np.zeros_like(t)
    for start in (0.5, 2.0, 3.5, 5.0):
        i = int(start * sr)
        n = int(0.4 * sr)
        bursts[i:i + n] = 0.3 * rng.randn(n) * np.hanning(n)
    out.append(("noise_bursts_16k", bursts, sr, "PCM_16"))

    sr = 48000
    t = _t(3.0, sr)
    f0, f1 = 100.0, 12000.0
    phase = 2 * np.pi * f0 * 3.0 / np.log(f1 / f0) * (np.exp(t / 3.0 * np.log(f1 / f0)) - 1)
    out.append(("chirp_48k_float", _fade(0.3 * np.sin(phase), sr).astype(np.float32), sr, "FLOAT"))

    sr = 8000
    clicks = np.zeros(int(3.0 * sr))
    clicks[:: sr // 4] = 0.9
    out.append(("clicks_8k", clicks, sr, "PCM_16"))

    sr = 32000
    t = _t(4.0, sr)
    engine = np.sin(2 * np.pi * 55 * t) * (1 + 0.5 * np.sin(2 * np.pi * 8 * t)) + 0.1 * rng.randn(len(t))
    channels = np.stack([engine * g for g in (1.0, 0.9, 0.7, 0.5, 0.3, 0.6)], 1) * 0.2  # 5.1 layout
    out.append(("engine_6ch_32k", _fade(channels, sr), sr, "PCM_16"))

    sr = 22050
    out.append(("blip_short", _fade(0.5 * np.sin(2 * np.pi * 1000 * _t(0.15, sr)), sr), sr, "PCM_16"))
    out.append(("silence", np.zeros(int(2.0 * sr)), sr, "PCM_16"))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(Path(__file__).resolve().parent / "audio"),
                        help="where to write the WAVs (default: examples/audio beside this script)")
    args = parser.parse_args(argv)
    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(20200713)
    for name, y, sr, subtype in examples(rng):
        path = folder / f"{name}.wav"
        sf.write(path, y, sr, subtype=subtype)
        channels = 1 if y.ndim == 1 else y.shape[1]
        print(f"{path}  {len(y) / sr:.2f} s, {sr} Hz, {channels} ch, {subtype}")


if __name__ == "__main__":
    main()
