"""Shared fixtures: tiny checkpoints built here (no trained weights are needed), audio helpers."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from coala_embed import COALA, FrontEnd, ModelConfig, load_model, save_checkpoint

# the machines that run this suite are small and shared
torch.set_num_threads(min(2, torch.get_num_threads()))

N_TAGS = 20
TAGS = [f"tag{i:02d}" for i in range(N_TAGS)]


def make_checkpoint(folder, seed=0, frontend=None, **model_kw):
    """A randomly initialised but fixed COALA checkpoint (full-size encoder unless model_kw shrinks it)."""
    torch.manual_seed(seed)
    cfg = ModelConfig(n_tags=N_TAGS, **model_kw)
    net = COALA(cfg).eval()
    fe = frontend or FrontEnd()
    # a plausible scaler: log-mel of audio in [-1, 1] lies roughly within [-16, 4]
    rng = np.random.RandomState(seed)
    mins = -16.0 + rng.uniform(0, 1, fe.n_mels)
    maxs = 3.0 + rng.uniform(0, 1, fe.n_mels)
    save_checkpoint(folder, net, fe.with_scaler(mins, maxs), TAGS, provenance={"note": "test checkpoint"})
    return folder


@pytest.fixture(scope="session")
def ckpt_dir(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="session")
def small_ckpt_dir(tmp_path_factory):
    """A narrow encoder (8 filters, 72-d) for tests that push a lot of audio through."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt_small"), seed=1, n_filters=8)


@pytest.fixture(scope="session")
def model(ckpt_dir):
    return load_model(ckpt_dir, device="cpu")


def tone(seconds, sr, freq=440.0, channels=1, amp=0.3, seed=0):
    """A tone plus a little noise, (n,) or (n, channels) float32."""
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.RandomState(seed)
    y = amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.randn(len(t))
    if channels > 1:
        y = np.stack([y * (1 - 0.1 * c) for c in range(channels)], axis=1)
    return y.astype(np.float32)


def write_wav(path, seconds=3.0, sr=22050, channels=1, freq=440.0, subtype="PCM_16", seed=0):
    path = os.fspath(path)
    sf.write(path, tone(seconds, sr, freq, channels, seed=seed), sr, subtype=subtype)
    return path


@pytest.fixture
def wav_dir(tmp_path):
    """Three short WAVs of different rates and lengths."""
    d = tmp_path / "audio"
    d.mkdir()
    write_wav(d / "a.wav", 3.0, 22050, freq=300)
    write_wav(d / "b.wav", 5.5, 44100, channels=2, freq=1000, seed=1)
    write_wav(d / "c.wav", 1.0, 16000, freq=2000, seed=2)
    return d
