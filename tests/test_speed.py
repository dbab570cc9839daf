"""The fast paths: a front end without librosa that is bit-identical to it, front-end workers beside the
encoder, and reduced precision. Speed itself is measured by examples/benchmark.py, not here."""
from __future__ import annotations

import json
import subprocess
import sys

import librosa
import numpy as np
import pytest
import scipy.signal

from coala_embed import audio

from conftest import tone, write_wav


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [
    (22000, 1024, 96, 0.0, None), (16000, 512, 64, 50.0, 7000.0), (44100, 2048, 128, 0.0, None),
    (8000, 256, 40, 20.0, None), (22050, 1024, 96, 0, 11025)])
def test_mel_filters_equal_librosa(sr, n_fft, n_mels, fmin, fmax):
    ours = audio.mel_filters(sr, n_fft, n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.dtype == ref.dtype and np.array_equal(ours, ref)


@pytest.mark.parametrize("n", [1, 255, 1000, 1024, 2048])
def test_hann_window_equals_scipy(n):
    assert np.array_equal(audio.fft_window("hann", n), scipy.signal.get_window("hann", n, fftbins=True))


@pytest.mark.parametrize("n_samples", [1024, 5000, 66000, 770007])
def test_stft_magnitude_equals_librosa(n_samples):
    fe = audio.FrontEnd()
    y = (0.3 * np.random.RandomState(n_samples).randn(n_samples)).astype(np.float32)
    ref = np.abs(librosa.stft(y, n_fft=fe.n_fft, hop_length=fe.hop_length, window=fe.window, center=False))
    ours = audio.stft_magnitude(y, fe)
    assert ours.dtype == ref.dtype and np.array_equal(ours, ref)


def test_other_windows_still_follow_scipy():
    fe = audio.FrontEnd(window="hamming")
    y = (0.3 * np.random.RandomState(0).randn(9000)).astype(np.float32)
    ref = np.abs(librosa.stft(y, n_fft=fe.n_fft, hop_length=fe.hop_length, window="hamming", center=False))
    assert np.array_equal(audio.stft_magnitude(y, fe), ref)


IMPORTS_SCRIPT = r"""
import json, sys
import coala_embed
model = coala_embed.load_model(sys.argv[1], device="cpu")
(r,) = coala_embed.process_file([sys.argv[2]], output_dir=sys.argv[3], model=model)
print(json.dumps({"status": r.status, "modules": sorted(m for m in sys.modules
                  if m.split(".")[0] in ("librosa", "numba", "resampy") or m.startswith("scipy.signal"))}))
"""


def test_embedding_a_file_imports_neither_librosa_nor_numba(small_ckpt_dir, tmp_path):
    """They cost ~2 s on the first file of every process (scipy.signal, numba compilation)."""
    wav = write_wav(tmp_path / "x.wav", 3.0, 44100, channels=2)
    p = subprocess.run([sys.executable, "-c", IMPORTS_SCRIPT, str(small_ckpt_dir), wav, str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res == {"status": "written", "modules": []}
