"""precision='int8': the checkpoint's encoder quantized by training.quantize, run by onnxruntime.

Written once beside the weights (calibrated on prepared patches, reproducibly), verified like every file of
a checkpoint, refused when stale, deterministic whatever the batch size, close to fp32, and on the command
line without torch.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import coala_embed  # noqa: E402
from coala_embed import CheckpointError, EmbedOptions, load_model  # noqa: E402
from coala_embed.audio import log_mel, scale  # noqa: E402
from coala_embed.checkpoint import bundled_weights_dir, sha256_file  # noqa: E402

from conftest import tone, write_wav  # noqa: E402
from test_onnx import _run_without_torch  # noqa: E402


def _cosines(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _sounds(sr=22050, seconds=12.0, seed=0):
    """Tones, chirps and noise bursts: audio with structure, not one tone."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.2 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * rng.standard_normal(len(t))
    y[int(3 * sr):int(5 * sr)] += 0.3 * np.sin(2 * np.pi * 1200 * t[:int(2 * sr)])
    return y.astype(np.float32)


def _prepared(folder, model, n=96, seed=0):
    """A minimal training.prepare folder for `model`: meta.json and validation patches of real log-mels."""
    folder.mkdir()
    fe = model.frontend
    frames = scale(log_mel(_sounds(fe.sample_rate, 40.0, seed), fe), fe)  # (n_frames, n_mels)
    starts = np.linspace(0, len(frames) - fe.patch_frames, n).astype(int)
    patches = np.stack([frames[s:s + fe.patch_frames].T for s in starts]).astype(np.float32)
    np.save(folder / "val_patches.npy", patches)
    np.save(folder / "val_tags.npy", np.zeros((n, len(model.tags)), np.uint8))
    meta = {"tags": model.tags, "frontend": fe.to_dict()}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def int8_ckpt(ckpt_dir, tmp_path_factory):
    from training import quantize

    root = tmp_path_factory.mktemp("int8")
    folder = root / "ckpt"
    shutil.copytree(ckpt_dir, folder)
    data = _prepared(root / "prepared", load_model(folder, device="cpu"))
    assert quantize.main(["--weights", str(folder), "--data", str(data)]) == 0
    return folder


def test_quantize_records_a_verified_reproducible_file(int8_ckpt, tmp_path):
    from training import quantize

    config = json.loads((int8_ckpt / "config.json").read_text())
    assert config["onnx_int8_file"] == "encoder.int8.onnx"
    assert config["onnx_int8_sha256"] == sha256_file(int8_ckpt / "encoder.int8.onnx")
    assert config["onnx_int8"]["weights_sha256"] == config["weights_sha256"]
    assert config["onnx_int8"]["provenance"]["calibration_patches"] == 96
    assert config["onnx_sha256"] == sha256_file(int8_ckpt / "encoder.onnx")  # exported first: it had none
    again = tmp_path / "again"
    shutil.copytree(int8_ckpt, again)
    model = load_model(again, device="cpu")
    assert quantize.main(["--weights", str(again), "--data", str(int8_ckpt.parent / "prepared")]) == 0
    assert sha256_file(again / "encoder.int8.onnx") == config["onnx_int8_sha256"]  # same data, same bytes
    other = tmp_path / "other-scaler"
    shutil.copytree(int8_ckpt.parent / "prepared", other)
    meta = json.loads((other / "meta.json").read_text())
    meta["frontend"]["scaler_min"][0] -= 1.0
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit, match="scaled with another scaler_min"):
        quantize.main(["--weights", str(again), "--data", str(other)])
    assert model.sha256 == config["weights_sha256"]


def test_int8_is_close_to_fp32_and_the_same_at_any_batch_size(int8_ckpt):
    model = load_model(int8_ckpt, backend="onnx")
    y = _sounds(seed=3)
    fp32, _ = coala_embed.get_embedding(y, 22050, model=model, frames=True, backend="onnx")
    int8, _ = coala_embed.get_embedding(y, 22050, model=model, frames=True, backend="onnx", precision="int8")
    assert fp32.shape == int8.shape and not np.array_equal(fp32, int8)  # the quantized graph ran
    assert _cosines(fp32, int8).min() > 0.98
    for batch_size in (1, 3):
        again, _ = coala_embed.get_embedding(y, 22050, model=model, frames=True, backend="onnx", precision="int8",
                                             batch_size=batch_size)
        assert np.array_equal(again, int8)
    torch_model = load_model(int8_ckpt, device="cpu")  # a torch-loaded model runs the same file
    same = coala_embed.get_embedding(y, 22050, model=torch_model, backend="onnx", precision="int8")
    assert np.array_equal(same, int8.mean(axis=0, dtype=np.float64).astype(np.float32))


def test_int8_options_and_stale_or_missing_files_are_refused(int8_ckpt, ckpt_dir, tmp_path):
    with pytest.raises(ValueError, match="backend='onnx'"):
        EmbedOptions(precision="int8")  # torch has no int8 encoder
    EmbedOptions(backend="onnx", precision="int8")
    y = tone(3.0, 22050)
    with pytest.raises(ValueError, match="no int8 encoder.*training.quantize"):
        coala_embed.get_embedding(y, 22050, model=load_model(ckpt_dir, backend="onnx"), backend="onnx",
                                  precision="int8")
    tampered = tmp_path / "tampered"
    shutil.copytree(int8_ckpt, tampered)
    data = bytearray((tampered / "encoder.int8.onnx").read_bytes())
    data[-1] ^= 1
    (tampered / "encoder.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        coala_embed.get_embedding(y, 22050, model=load_model(tampered, backend="onnx"), backend="onnx",
                                  precision="int8")
    stale = tmp_path / "stale"
    shutil.copytree(int8_ckpt, stale)
    config = json.loads((stale / "config.json").read_text())
    config["onnx_int8"]["weights_sha256"] = "0" * 64  # as after new weights were written beside it
    (stale / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="quantized from other weights"):
        coala_embed.get_embedding(y, 22050, model=load_model(stale, backend="onnx"), backend="onnx",
                                  precision="int8")


def test_cli_int8_without_torch(int8_ckpt, tmp_path):
    wav = write_wav(tmp_path / "c.wav", 5.0, 44100, channels=2, freq=700)
    done = _run_without_torch("from coala_embed.cli import main; main()", "--backend", "onnx", "--precision",
                              "int8", "--model", str(int8_ckpt), "-o", str(tmp_path / "out"), "-q", wav)
    assert done.returncode == 0, done.stderr
    import soundfile as sf

    y, sr = sf.read(wav)
    with np.load(tmp_path / "out" / "c.npz") as z:
        assert json.loads(str(z["settings"]))["precision"] == "int8"
        ref = coala_embed.get_embedding(y, sr, model=load_model(int8_ckpt, backend="onnx"), backend="onnx",
                                        precision="int8")
        assert np.array_equal(z["mean"], ref)
    chosen = _run_without_torch("from coala_embed.cli import main; main()", "--precision", "int8", "--model",
                                str(int8_ckpt), "-o", str(tmp_path / "chosen"), "-q", wav)  # no --backend: onnx
    assert chosen.returncode == 0, chosen.stderr
    with np.load(tmp_path / "chosen" / "c.npz") as z:
        assert json.loads(str(z["settings"]))["backend"] == "onnx" and np.array_equal(z["mean"], ref)
    bad = _run_without_torch("from coala_embed.cli import main; main()", "--backend", "torch", "--precision", "int8",
                             "--model", str(int8_ckpt), "-o", str(tmp_path / "bad"), wav)
    assert bad.returncode == 2 and "backend='onnx'" in bad.stderr and "Traceback" not in bad.stderr


def test_the_bundled_int8_encoder_is_close_to_fp32():
    model = load_model(bundled_weights_dir(), backend="onnx")
    assert model.config["onnx_int8"]["weights_sha256"] == model.sha256
    y = _sounds(seed=5)
    fp32 = coala_embed.get_embedding(y, 22050, model=model, backend="onnx")
    int8 = coala_embed.get_embedding(y, 22050, model=model, backend="onnx", precision="int8")
    assert _cosines(fp32, int8) > 0.995


def test_int8_gives_the_front_end_every_core(monkeypatch):
    """The int8 encoder takes a fraction of the front end's time: its default workers are one a core (up to 8)."""
    from coala_embed import pipeline

    for cpus, fp32, int8 in ((1, 1, 1), (2, 2, 2), (6, 2, 6), (16, 2, 8)):
        monkeypatch.setattr(pipeline.os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)), raising=False)
        assert (pipeline.default_workers("cpu"), pipeline.default_workers("cpu", "int8")) == (fp32, int8)


def test_int8_outputs_are_not_fp32_outputs_and_search_embeds_queries_as_its_rows(int8_ckpt, tmp_path):
    """An .npz made at fp32 is stale for an int8 run and the other way round (bf16 is not: rounding); a
    collection embedded in int8 embeds its queries in int8, so a file finds itself at cosine 1."""
    from coala_embed.search import search

    wavs = [write_wav(tmp_path / f"{n}.wav", 3.0, 22050, freq=f, seed=i)
            for i, (n, f) in enumerate((("a", 300), ("b", 1200), ("c", 2500)))]
    model = load_model(int8_ckpt, backend="onnx")
    out = tmp_path / "feats"

    def statuses(**kw):
        return [r.status for r in coala_embed.process_file(wavs, output_dir=out, model=model, backend="onnx", **kw)]

    assert statuses() == ["written"] * 3
    assert statuses(precision="int8") == ["written"] * 3
    assert statuses(precision="int8") == ["skipped"] * 3
    assert statuses() == ["written"] * 3
    statuses(precision="int8")
    hit = search(out, [wavs[1]], top_k=1, model=model)[0][0]
    assert os.path.basename(hit.path).startswith("b.") and hit.score == pytest.approx(1.0, abs=1e-6)


def test_the_sklearn_transformer_runs_int8(int8_ckpt, tmp_path):
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    from coala_embed.sklearn import CoalaEmbedder

    wav = write_wav(tmp_path / "s.wav", 4.0, 22050, freq=500)
    est = CoalaEmbedder(model=str(int8_ckpt), backend="onnx", precision="int8")
    assert clone(est).get_params()["precision"] == "int8"
    out = est.fit_transform([wav])
    import soundfile as sf

    y, sr = sf.read(wav)
    model = load_model(int8_ckpt, backend="onnx")
    assert np.array_equal(out[0], coala_embed.get_embedding(y, sr, model=model, backend="onnx", precision="int8"))
    with pytest.raises(ValueError, match="backend='onnx'"):
        CoalaEmbedder(model=str(int8_ckpt), precision="int8").fit_transform([wav])
