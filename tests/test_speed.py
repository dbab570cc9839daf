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

from coala_embed import audio, decode

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


@pytest.mark.parametrize("n_frames", [1, 5, 96, 430, 1504])
def test_log_mel_equals_the_sparse_product(n_frames):
    """What the front end computed with scipy.sparse (CSR @ |STFT|) before, bit for bit."""
    import scipy.sparse

    fe = audio.FrontEnd()
    y = (0.3 * np.random.RandomState(n_frames).randn((n_frames - 1) * fe.hop_length + fe.n_fft)).astype(np.float32)
    spec = audio.stft_magnitude(y, fe)
    ref = np.log(scipy.sparse.csr_matrix(fe.mel_basis()) @ spec + fe.log_eps).T.astype(np.float32)
    ours = audio.log_mel_frames(y, fe)
    assert ours.dtype == ref.dtype and ours.flags["C_CONTIGUOUS"] and np.array_equal(ours, ref)
    other = audio.FrontEnd(sample_rate=16000, n_fft=512, n_mels=64, fmin=50.0, power=2.0)
    spec = audio.stft_magnitude(y, other) ** 2
    ref = np.log(scipy.sparse.csr_matrix(other.mel_basis()) @ spec + other.log_eps).T.astype(np.float32)
    assert np.array_equal(audio.log_mel_frames(y, other), ref)


@pytest.mark.parametrize("channels", [2, 3, 5, 7, 8, 11])
def test_mono_mix_equals_numpy_mean(channels):
    rng = np.random.RandomState(channels)
    for scale in (1e-30, 1e-3, 1.0, 1e30):
        block = (scale * rng.randn(20001, channels)).astype(np.float32)
        block[::97], block[1::89] = -0.0, 0.0
        ref = block.mean(axis=1, dtype=np.float32)
        ours = decode._checked_mono(block, "x")
        assert ours.dtype == np.float32 and np.array_equal(ours, ref) and np.array_equal(np.signbit(ours), np.signbit(ref))


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
                  if m.split(".")[0] in ("librosa", "numba", "resampy", "scipy"))}))
"""


def test_embedding_a_file_imports_neither_librosa_nor_scipy(small_ckpt_dir, tmp_path):
    """librosa costs ~2 s on the first file of every process (scipy.signal, numba compilation),
    scipy.sparse ~0.3 s (it imports numpy.f2py and numpy.ma)."""
    wav = write_wav(tmp_path / "x.wav", 3.0, 44100, channels=2)
    p = subprocess.run([sys.executable, "-c", IMPORTS_SCRIPT, str(small_ckpt_dir), wav, str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res == {"status": "written", "modules": []}


# ----------------------------------------------------------------------------------------------
# front-end workers


def _mixed_inputs(tmp_path):
    """Files of several rates and lengths, with bad ones among them."""
    d = tmp_path / "in"
    d.mkdir()
    paths = [write_wav(d / "a.wav", 3.0, 22050, freq=300), write_wav(d / "b.wav", 12.5, 44100, channels=2, seed=1)]
    (d / "bad.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    paths.append(str(d / "bad.wav"))
    paths += [write_wav(d / "c.wav", 0.4, 16000, seed=2), str(d / "missing.wav")]
    full = write_wav(d / "truncated.wav", 4.0, 22050, seed=3)
    data = open(full, "rb").read()
    open(full, "wb").write(data[: len(data) // 2])  # header promises more samples than there are
    paths += [full, write_wav(d / "d.wav", 31.0, 48000, seed=4)]
    return paths


@pytest.mark.parametrize("batch_size", [1, 3, 128])
def test_workers_give_bit_identical_results_in_order(small_ckpt_dir, tmp_path, batch_size):
    import coala_embed

    model = coala_embed.load_model(small_ckpt_dir, device="cpu")
    paths = _mixed_inputs(tmp_path)
    runs = {w: list(coala_embed.embed_files(paths, model=model, batch_size=batch_size, num_workers=w))
            for w in (0, 1, 3)}
    assert [r[0] for r in runs[0]] == [str(p) for p in paths]
    assert [r[3] is None for r in runs[0]] == [True, True, False, True, False, False, True]  # truncated fails
    for w in (1, 3):
        for (p0, e0, t0, err0), (p1, e1, t1, err1) in zip(runs[0], runs[w], strict=True):
            assert (p0, err0) == (p1, err1)
            if err0 is None:
                assert np.array_equal(e0, e1) and np.array_equal(t0, t1)


def test_workers_in_process_file_and_arrays(small_ckpt_dir, tmp_path):
    import coala_embed

    model = coala_embed.load_model(small_ckpt_dir, device="cpu")
    paths = _mixed_inputs(tmp_path)
    res0 = coala_embed.process_file(paths, output_dir=tmp_path / "o0", model=model, num_workers=0)
    res2 = coala_embed.process_file(paths, output_dir=tmp_path / "o2", model=model, num_workers=2)
    assert [(r.status, r.error, r.n_patches) for r in res0] == [(r.status, r.error, r.n_patches) for r in res2]
    for r0, r2 in zip(res0, res2):
        if r0.status == "written":
            a, b = np.load(r0.output), np.load(r2.output)
            assert all(np.array_equal(a[k], b[k]) for k in ("embedding", "timestamps", "mean"))
    clips = [tone(s, 22050, seed=i) for i, s in enumerate((0.3, 5.0, 2.0))]
    e0 = coala_embed.get_embedding(clips, 22050, model=model, num_workers=0)
    e2 = coala_embed.get_embedding(clips, 22050, model=model, num_workers=2)
    assert all(np.array_equal(a, b) for a, b in zip(e0, e2))


def test_prefetch_memory_is_bounded_and_errors_surface_in_place():
    import threading
    import time

    from coala_embed import pipeline

    lock = threading.Lock()
    produced = consumed = peak = 0

    def job(n_chunks, k, fail_at=None):
        def make_patches():
            nonlocal produced
            for c in range(n_chunks):
                if c == fail_at:
                    raise KeyError("boom")
                with lock:
                    produced += k
                yield np.zeros((k, 2)), np.arange(k)
        return make_patches

    jobs = [(i, job(50, 4, fail_at=20 if i == 2 else None)) for i in range(6)]
    seen = []
    for key, chunks in pipeline.prefetch(jobs, num_workers=3, max_patches=16):
        n = 0
        try:
            for patches, _ in chunks:
                time.sleep(0.001)  # a slow encoder: the workers run ahead as far as they may
                with lock:
                    consumed += len(patches)
                    peak = max(peak, produced - consumed)
                n += 1
        except KeyError:
            seen.append((key, n, "error"))
            continue
        seen.append((key, n))
    assert seen == [(0, 50), (1, 50), (2, 20, "error"), (3, 50), (4, 50), (5, 50)]
    # budget + the chunk each worker holds while it waits (+ the head's one chunk)
    assert peak <= 16 + 4 * 4
    assert not [t for t in threading.enumerate() if t.name.startswith("coala-frontend")]


def test_prefetch_stops_its_workers_when_the_caller_stops_early():
    import threading

    from coala_embed import pipeline

    def endless():
        while True:
            yield np.zeros((4, 2)), np.arange(4)

    gen = pipeline.prefetch(((i, endless) for i in range(100)), num_workers=2, max_patches=8)
    _, chunks = next(gen)
    next(chunks)
    del chunks
    gen.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("coala-frontend")]


# ----------------------------------------------------------------------------------------------
# precision


def test_bf16_stays_close_to_fp32(model, recwarn):
    import coala_embed

    clips = [tone(s, 44100, f, seed=i) for i, (s, f) in enumerate(((3.0, 220.0), (7.0, 1500.0), (1.0, 5000.0)))]
    fp32 = np.stack(coala_embed.get_embedding(clips, 44100, model=model))
    assert np.array_equal(fp32, np.stack(coala_embed.get_embedding(clips, 44100, model=model, precision="fp32")))
    bf16 = np.stack(coala_embed.get_embedding(clips, 44100, model=model, precision="bf16"))
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, fp32)  # it did run in bf16
    cos = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cos.min() > 0.999, cos


def test_precision_is_checked_and_slow_precisions_warn(model, monkeypatch):
    import torch

    from coala_embed import encoder

    with pytest.raises(ValueError, match="precision must be one of"):
        encoder.check_precision("int8", torch.device("cpu"))
    monkeypatch.setattr(encoder, "_cpu_has", lambda feature: False)
    with pytest.warns(UserWarning, match="neither AVX512-BF16 nor AMX"):
        assert encoder.check_precision("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.warns(UserWarning, match="no AMX-FP16"):
        encoder.check_precision("fp16", torch.device("cpu"))
    monkeypatch.setattr(encoder, "_cpu_has", lambda feature: True)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert encoder.check_precision("bf16", torch.device("cpu")) == torch.bfloat16
        assert encoder.check_precision("fp32", torch.device("cpu")) == torch.float32


def test_cli_workers_and_precision(ckpt_dir, wav_dir, tmp_path, recwarn):
    from click.testing import CliRunner

    from coala_embed.cli import main

    def run(*args):
        return CliRunner().invoke(main, [str(wav_dir), *args, "--model", str(ckpt_dir), "--device", "cpu"],
                                  catch_exceptions=False)

    r0 = run("-o", tmp_path / "w0", "--workers", "0")
    r2 = run("-o", tmp_path / "w2", "--workers", "2")
    rb = run("-o", tmp_path / "bf16", "--precision", "bf16")
    assert (r0.exit_code, r2.exit_code, rb.exit_code) == (0, 0, 0), r0.output + r2.output + rb.output
    for name in ("a", "b", "c"):
        with np.load(tmp_path / "w0" / f"{name}.npz") as a, np.load(tmp_path / "w2" / f"{name}.npz") as b, \
                np.load(tmp_path / "bf16" / f"{name}.npz") as c:
            assert np.array_equal(a["embedding"], b["embedding"])
            assert not np.array_equal(a["embedding"], c["embedding"])
            assert np.allclose(a["embedding"], c["embedding"], atol=0.05 * np.abs(a["embedding"]).max())
    bad = run("-o", tmp_path / "x", "--precision", "int4")
    assert bad.exit_code == 2 and "int4" in bad.output
    no_int8 = run("-o", tmp_path / "y", "--precision", "int8")  # this checkpoint has no encoder.int8.onnx
    assert no_int8.exit_code == 1 and "training.quantize" in no_int8.output and not (tmp_path / "y").exists()
