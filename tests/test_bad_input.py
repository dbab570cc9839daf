"""Every kind of bad or unusual input gets a clear error naming the input, or a correct result."""
from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

import coala_embed
from coala_embed import AudioError, CheckpointError, get_embedding, load_model, process_file
from coala_embed import checkpoint as ckpt_module

from conftest import make_checkpoint, tone, write_wav


def _one(path, model, tmp_path):
    (r,) = process_file([path], output_dir=tmp_path / "out", model=model)
    return r


# ---------------------------------------------------------------------------------------- files


def test_missing_path(model, tmp_path):
    r = _one(tmp_path / "nope.wav", model, tmp_path)
    assert r.status == "failed" and "nope.wav" in r.error and "no such file" in r.error
    assert not (tmp_path / "out" / "nope.npz").exists()


def test_directory_given_as_file(model, tmp_path):
    (tmp_path / "d.wav").mkdir()
    r = _one(tmp_path / "d.wav", model, tmp_path)
    assert r.status == "failed" and "is a directory" in r.error


def test_non_audio_file(model, tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n" * 100)
    r = _one(p, model, tmp_path)
    assert r.status == "failed" and "notes.wav" in r.error and "not a readable audio file" in r.error


def test_empty_wav(model, tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros(0, np.float32), 16000)
    r = _one(p, model, tmp_path)
    assert r.status == "failed" and "empty.wav" in r.error and "no samples" in r.error


def test_zero_byte_file(model, tmp_path):
    p = tmp_path / "zero.wav"
    p.write_bytes(b"")
    r = _one(p, model, tmp_path)
    assert r.status == "failed" and "zero.wav" in r.error


def test_truncated_wav(model, tmp_path):
    good = write_wav(tmp_path / "good.wav", 6.0, 16000)
    data = open(good, "rb").read()
    # cut inside the header: unreadable, reported
    (tmp_path / "header.wav").write_bytes(data[:30])
    r = _one(tmp_path / "header.wav", model, tmp_path)
    assert r.status == "failed" and "header.wav" in r.error
    # cut inside the samples (an interrupted copy): libsndfile reads what is there as if it were the
    # whole file; the RIFF header's size says otherwise, and the file fails as truncated, nothing written
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2 + 1])
    r = _one(tmp_path / "cut.wav", model, tmp_path)
    assert r.status == "failed" and r.output is None
    assert "cut.wav: truncated: the header promises 6.00 s, the data holds 3.00 s" in r.error
    # an MP3 cut in half (its Xing header counts the frames) fails the same way; a whole one is embedded
    y = tone(5.0, 44100)
    sf.write(tmp_path / "whole.mp3", y, 44100, format="MP3", subtype="MPEG_LAYER_III")
    mp3 = (tmp_path / "whole.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(mp3[: len(mp3) // 2])
    assert _one(tmp_path / "whole.mp3", model, tmp_path).status == "written"
    r = _one(tmp_path / "cut.mp3", model, tmp_path)
    assert r.status == "failed" and "cut.mp3: truncated: the header promises 5.00 s" in r.error


def test_nan_and_inf_in_file(model, tmp_path):
    y = tone(3.0, 16000)
    y[1000] = np.nan
    sf.write(tmp_path / "nan.wav", y, 16000, subtype="FLOAT")
    y[1000] = np.inf
    sf.write(tmp_path / "inf.wav", y, 16000, subtype="FLOAT")
    for name in ("nan.wav", "inf.wav"):
        r = _one(tmp_path / name, model, tmp_path)
        assert r.status == "failed" and name in r.error and "NaN or infinite" in r.error


def test_bad_file_does_not_disturb_others(model, tmp_path, wav_dir):
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    paths = [wav_dir / "a.wav", tmp_path / "bad.wav", wav_dir / "b.wav"]
    results = process_file(paths, output_dir=tmp_path / "o", model=model, batch_size=3)
    assert [r.status for r in results] == ["written", "failed", "written"]
    with np.load(tmp_path / "o" / "b.npz") as z:
        y, sr = sf.read(wav_dir / "b.wav")
        np.testing.assert_allclose(z["mean"], get_embedding(y, sr, model=model), atol=1e-5)


def test_unwritable_output_folder(model, wav_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot create output folder .*a_file"):
        process_file([wav_dir / "a.wav"], output_dir=blocker / "feats", model=model)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_output_folder(model, wav_dir, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        (r,) = process_file([wav_dir / "a.wav"], output_dir=out, model=model)
        assert r.status == "failed" and "not writable" in r.error
    finally:
        out.chmod(0o755)


# ---------------------------------------------------------------------------------------- arrays


@pytest.mark.parametrize("y, message", [
    (np.zeros(0, np.float32), "no samples"),
    (np.zeros((0, 2), np.float32), "no samples"),
    (np.zeros((16000, 0), np.float32), "no samples"),
    (np.zeros((2, 16000), np.float32), "Transpose"),
    (np.zeros((4, 4, 4), np.float32), "shape"),
    (np.array(["a", "b"]), "numeric"),
])
def test_bad_arrays(model, y, message):
    with pytest.raises(AudioError, match=message):
        get_embedding(y, 16000, model=model)


def test_nan_inf_arrays(model):
    for bad in (np.nan, np.inf, -np.inf):
        y = tone(2.0, 16000)
        y[-1] = bad
        with pytest.raises(AudioError, match="NaN or infinite"):
            get_embedding(y, 16000, model=model)
    with pytest.raises(AudioError, match="clip 1"):  # a list names the bad clip
        get_embedding([tone(1.0, 16000), np.full(100, np.nan)], 16000, model=model)


@pytest.mark.parametrize("sr", [0, 4000, 7999, 192001, 384000, 16000.5, "16000", None])
def test_bad_sample_rates(model, sr):
    with pytest.raises(AudioError, match="sample rate"):
        get_embedding(tone(1.0, 16000), sr, model=model)


def test_silence_gives_a_finite_embedding(model, tmp_path):
    emb = get_embedding(np.zeros(3 * 16000, np.float32), 16000, model=model)
    assert emb.shape == (1920,) and np.isfinite(emb).all()
    sf.write(tmp_path / "silent.wav", np.zeros(3 * 16000, np.int16), 16000)
    r = _one(tmp_path / "silent.wav", model, tmp_path)
    assert r.status == "written"
    with np.load(r.output) as z:
        np.testing.assert_allclose(z["mean"], emb, atol=1e-6)


@pytest.mark.parametrize("n", [1, 100, 8000])
def test_shorter_than_one_patch(model, n):
    y = tone(n / 8000, 8000)
    frames, ts = get_embedding(y, 8000, model=model, frames=True)
    assert frames.shape == (1, 1920) and np.isfinite(frames).all()
    assert ts[0] == pytest.approx(95 / 2 * 512 / 22000)


def test_short_file(model, tmp_path):
    sf.write(tmp_path / "blip.wav", tone(0.05, 44100), 44100)
    r = _one(tmp_path / "blip.wav", model, tmp_path)
    assert r.status == "written" and r.n_patches == 1


def test_extreme_sample_rates_agree(model, tmp_path):
    """The same 1 kHz tone at 8 kHz and at 192 kHz: the front end resamples both to 22 kHz."""
    def sine(sr):  # no noise: noise fills a band that depends on the rate
        return (0.3 * np.sin(2 * np.pi * 1000 * np.arange(4 * sr) / sr)).astype(np.float32)

    ref = get_embedding(sine(22000), 22000, model=model)
    for sr in (8000, 192000):
        emb = get_embedding(sine(sr), sr, model=model)
        assert np.isfinite(emb).all()
        cos = emb @ ref / np.linalg.norm(emb) / np.linalg.norm(ref)
        assert cos > 0.99, (sr, cos)
        write_wav(tmp_path / f"r{sr}.wav", 4.0, sr, freq=1000)
        r = _one(tmp_path / f"r{sr}.wav", model, tmp_path)
        assert r.status == "written"


def test_rate_out_of_range_file(model, tmp_path):
    write_wav(tmp_path / "low.wav", 1.0, 4000)
    r = _one(tmp_path / "low.wav", model, tmp_path)
    assert r.status == "failed" and "low.wav" in r.error and "4000 Hz" in r.error


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_is_mixed_to_mono(model, tmp_path, channels):
    y = tone(3.0, 44100, 700, channels=channels)
    emb = get_embedding(y, 44100, model=model)
    np.testing.assert_allclose(emb, get_embedding(y.mean(axis=1), 44100, model=model), atol=1e-5)
    sf.write(tmp_path / f"ch{channels}.wav", y, 44100, subtype="FLOAT")
    r = _one(tmp_path / f"ch{channels}.wav", model, tmp_path)
    assert r.status == "written"
    with np.load(r.output) as z:
        np.testing.assert_allclose(z["mean"], emb, atol=1e-5)


def test_int16_and_float64(model, tmp_path):
    y = tone(3.0, 16000)
    ref = get_embedding(y, 16000, model=model)
    y16 = np.round(y * 32767).astype(np.int16)
    np.testing.assert_allclose(get_embedding(y16, 16000, model=model), ref, atol=2e-3)
    np.testing.assert_allclose(get_embedding(y.astype(np.float64), 16000, model=model), ref, atol=1e-5)
    np.testing.assert_allclose(get_embedding(np.stack([y16, y16], 1), 16000, model=model),
                               get_embedding(y16, 16000, model=model), atol=1e-5)
    sf.write(tmp_path / "i16.wav", y16, 16000, subtype="PCM_16")
    sf.write(tmp_path / "f64.wav", y.astype(np.float64), 16000, subtype="DOUBLE")
    for name in ("i16.wav", "f64.wav"):
        r = _one(tmp_path / name, model, tmp_path)
        with np.load(r.output) as z:
            np.testing.assert_allclose(z["mean"], ref, atol=2e-3)


# ---------------------------------------------------------------------------------------- long audio


def test_one_hour_file_streams_with_bounded_memory(small_ckpt_dir, tmp_path):
    sr, seconds = 8000, 3600
    path = tmp_path / "hour.wav"
    rng = np.random.RandomState(0)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        for minute in range(seconds // 60):
            t = np.arange(60 * sr) / sr
            f.write((0.2 * np.sin(2 * np.pi * (200 + 5 * minute) * t) + 0.01 * rng.randn(len(t))).astype(np.float32))
    assert sf.info(path).duration == seconds
    model = load_model(small_ckpt_dir, device="cpu")
    full_decode = seconds * 22000 * 4  # the resampled signal alone, float32: 317 MB

    tracemalloc.start()
    try:
        (r,) = process_file([path], output_dir=tmp_path / "out", model=model, batch_size=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status == "written", r.error
    expected = (seconds * 22000 + 1024 - 1024) // 512 // 96  # whole non-overlapping patches
    assert abs(r.n_patches - expected) <= 1
    print(f"1-hour file: traced peak {peak / 1e6:.1f} MB (the resampled signal alone: {full_decode / 1e6:.0f} MB)")
    assert peak < 64e6 and peak < full_decode / 5, f"peak {peak / 1e6:.0f} MB"
    with np.load(r.output) as z:
        assert z["embedding"].shape == (r.n_patches, model.embedding_size)
        assert np.all(np.diff(z["timestamps"]) > 0) and z["timestamps"][-1] < seconds


# ---------------------------------------------------------------------------------------- checkpoints


def test_tampered_weights(tmp_path):
    folder = make_checkpoint(tmp_path / "ck", n_filters=8)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 .* does not match"):
        load_model(folder, device="cpu")


def test_missing_and_foreign_checkpoints(tmp_path):
    folder = make_checkpoint(tmp_path / "ck", n_filters=8)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights file missing"):
        load_model(folder)
    (tmp_path / "other").mkdir()
    with pytest.raises(CheckpointError, match="not a coala-embed checkpoint"):
        load_model(tmp_path / "other")
    with pytest.raises(CheckpointError, match="no such file or folder"):
        load_model(tmp_path / "missing" / "x")


def test_pickle_files_are_never_loaded(tmp_path):
    folder = make_checkpoint(tmp_path / "ck", n_filters=8)
    import json

    config = json.loads((folder / "config.json").read_text())
    import torch

    torch.save({"x": torch.zeros(1)}, folder / "model.pt")
    config["weights_file"] = "model.pt"
    config["weights_sha256"] = ckpt_module.sha256_file(folder / "model.pt")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="malformed"):
        load_model(folder, device="cpu")


def test_no_bundled_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt_module, "bundled_weights_dir", lambda: tmp_path)
    with pytest.raises(CheckpointError, match="no weights are bundled"):
        load_model()
    with pytest.raises(CheckpointError, match="no weights are bundled"):
        coala_embed.core.get_model(None, "cpu")


# ----------------------------------------------------------------------------------------------
# issue 32's findings: each of these failed before it was fixed


def test_a_few_samples_give_short_clip_patches_not_an_anonymous_error(model, tmp_path):
    """1 sample at 44.1 kHz resamples to none at 22 kHz: it is a short clip (3 places in silence), not
    'contains no samples' without a file name."""
    sf.write(tmp_path / "one.wav", np.array([0.5], np.float32), 44100)
    r = _one(tmp_path / "one.wav", model, tmp_path)
    assert r.status == "written" and r.error is None
    with np.load(r.output) as z:
        assert z["embedding"].shape[0] == model.frontend.short_positions and np.isfinite(z["mean"]).all()
    assert np.isfinite(get_embedding(np.array([0.5], np.float32), 44100, model=model)).all()


@pytest.mark.parametrize("kw, error, message", [
    ({"batch_size": 1.5}, TypeError, "batch_size must be a whole number"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"resampler": "bogus"}, ValueError, "resampler must be one of"),
    ({"precision": "int4"}, ValueError, "precision must be one of"),
    ({"precision": "int8"}, ValueError, "use backend='onnx'"),
    ({"hop_size": -1.0}, ValueError, "hop_size must be positive"),
    ({"hop_size": "1"}, TypeError, "hop_size must be a number"),
    ({"num_workers": -1}, ValueError, "num_workers must be >= 0"),
    ({"center": "yes"}, TypeError, "center must be True or False"),
    ({"hopsize": 1.0}, TypeError, "unexpected keyword argument.*hopsize"),
])
def test_parameter_errors_name_the_parameter_before_any_audio_is_read(model, tmp_path, kw, error, message):
    opened = []
    real = coala_embed.decode.mono_blocks_from_file
    coala_embed.decode.mono_blocks_from_file = lambda *a, **k: opened.append(a) or real(*a, **k)
    try:
        with pytest.raises(error, match=message):
            get_embedding(tone(1.0, 22050), 22050, model=model, **kw)
        with pytest.raises(error, match=message):
            process_file([write_wav(tmp_path / "a.wav", 1.0)], output_dir=tmp_path / "out", model=model, **kw)
    finally:
        coala_embed.decode.mono_blocks_from_file = real
    assert not opened and not (tmp_path / "out").exists()


def test_numpy_scalar_rates_and_tensors_that_require_grad(model):
    import torch

    y = tone(1.0, 22050)
    want = get_embedding(y, 22050, model=model)
    for sr in (np.float32(22050), np.int64(22050), np.float64(22050.0), 22050.0):
        np.testing.assert_array_equal(get_embedding(y, sr, model=model), want)
    t = torch.from_numpy(y.copy()).requires_grad_(True)
    np.testing.assert_array_equal(get_embedding(t, 22050, model=model), want)
    with pytest.raises(AudioError, match="audio: sample rate must be an integer"):
        get_embedding(y, np.float32(22050.5), model=model)


def test_a_path_given_twice_or_spelled_twice_is_embedded_once(model, tmp_path, monkeypatch):
    p = write_wav(tmp_path / "a.wav", 1.0)
    monkeypatch.chdir(tmp_path)
    results = process_file([p, p, "./a.wav", "../" + tmp_path.name + "/a.wav"], output_dir=tmp_path / "out", model=model)
    assert [r.status for r in results] == ["written"] * 4 and len({r.output for r in results}) == 1
    assert os.listdir(tmp_path / "out") == ["a.npz"]
    again = process_file(["./a.wav"], output_dir=tmp_path / "out", model=model)
    assert again[0].status == "skipped"
    os.utime(p, ns=(os.stat(p).st_atime_ns, os.stat(p).st_mtime_ns + 10**9))  # the file changed since
    assert process_file([p], output_dir=tmp_path / "out", model=model)[0].status == "written"
