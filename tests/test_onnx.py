"""backend='onnx': the encoder exported to ONNX and run by onnxruntime, the tag side in numpy, no torch.

Parity with the torch path on the same clips, the sha256 discipline of encoder.onnx (beside the
weights and in the cache), a process that cannot import torch, and the command line's --backend onnx.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import coala_embed  # noqa: E402
from coala_embed import CheckpointError, EmbedOptions, load_model  # noqa: E402
from coala_embed.checkpoint import bundled_weights_dir, sha256_file  # noqa: E402
from coala_embed.encoder import TorchEncoder  # noqa: E402
from coala_embed.onnx_encoder import OnnxEncoder  # noqa: E402
from coala_embed.onnx_export import export_onnx  # noqa: E402

from conftest import TAGS, tone, write_wav  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _cosines(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture(scope="module")
def onnx_ckpt(ckpt_dir, tmp_path_factory):
    """A copy of the test checkpoint with its encoder.onnx exported beside the weights."""
    folder = tmp_path_factory.mktemp("onnx_ckpt") / "ckpt"
    shutil.copytree(ckpt_dir, folder)
    export_onnx(folder)
    return folder


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_export_records_the_file_and_load_verifies_it(onnx_ckpt):
    config = json.loads((onnx_ckpt / "config.json").read_text())
    assert config["onnx_file"] == "encoder.onnx"
    assert config["onnx_sha256"] == sha256_file(onnx_ckpt / "encoder.onnx")
    assert config["weights_sha256"] == sha256_file(onnx_ckpt / "model.safetensors")
    model = load_model(onnx_ckpt, backend="onnx")
    assert model.backend == "onnx" and model.onnx_path == onnx_ckpt / "encoder.onnx"
    assert str(model.device) == "cpu" and model.embedding_size == 1920 and model.tags == TAGS


def test_a_tampered_onnx_file_is_refused(onnx_ckpt, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(onnx_ckpt, folder)
    data = bytearray((folder / "encoder.onnx").read_bytes())
    data[-100] ^= 1  # one bit of a weight
    (folder / "encoder.onnx").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(folder, backend="onnx")
    (folder / "encoder.onnx").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_model(folder, backend="onnx")


def test_onnx_matches_torch_on_the_same_clips(model, onnx_ckpt):
    sr = 22050
    rng = np.random.default_rng(0)
    clips = [tone(4.0, sr, 300), 0.2 * rng.standard_normal(7 * sr).astype(np.float32), tone(1.0, sr, 2000, seed=2)]
    ref = coala_embed.get_embedding(clips, sr, model=model, frames=True, hop_size=0.5)
    got = coala_embed.get_embedding(clips, sr, model=load_model(onnx_ckpt, backend="onnx"), frames=True,
                                    hop_size=0.5, backend="onnx")
    for (e_ref, t_ref), (e, t) in zip(ref, got):
        assert e.shape == e_ref.shape and e.dtype == np.float32
        np.testing.assert_array_equal(t, t_ref)
        assert np.abs(e - e_ref).max() < 1e-4 * max(1.0, np.abs(e_ref).max())
        assert _cosines(e, e_ref).min() > 0.99999
    # a torch model runs with backend='onnx' too (its encoder exported in memory): the same graph
    same = coala_embed.get_embedding(clips, sr, model=model, frames=True, hop_size=0.5, backend="onnx")
    for (e, _), (e_mem, _) in zip(got, same):
        np.testing.assert_array_equal(e, e_mem)


def test_the_bundled_encoder_onnx_matches_the_bundled_torch_encoder():
    folder = bundled_weights_dir()
    assert json.loads((folder / "config.json").read_text())["onnx_file"] == "encoder.onnx"
    light = load_model(backend="onnx")
    assert light.onnx_path == folder / "encoder.onnx"
    torch_model = load_model(device="cpu")
    patches = np.random.default_rng(0).uniform(0, 1, (37, 96, 96)).astype(np.float32)
    a = OnnxEncoder(light).submit([patches[:20], patches[20:]])()
    b = TorchEncoder(torch_model).submit([patches])()
    assert np.abs(a - b).max() < 1e-4 and _cosines(a, b).min() > 0.99999


def test_the_tag_side_in_numpy_matches_torch(model, onnx_ckpt):
    light = load_model(onnx_ckpt, backend="onnx")
    sets = [[t] for t in TAGS] + [TAGS[:3]]
    a, b = coala_embed.get_tag_embedding(sets, model=light), coala_embed.get_tag_embedding(sets, model=model)
    assert a.shape == b.shape == (len(sets), 1152) and np.abs(a - b).max() < 1e-5 * max(1.0, np.abs(b).max())
    x = np.random.default_rng(1).standard_normal((5, 1920)).astype(np.float32)
    np.testing.assert_allclose(coala_embed.align_audio(x, model=light), coala_embed.align_audio(x, model=model),
                               atol=1e-5, rtol=1e-5)
    # only the latent (the first 1152 values) reaches the tag space; the latent alone is taken as well
    np.testing.assert_array_equal(coala_embed.align_audio(x, model=light), coala_embed.align_audio(x[:, :1152], model=light))
    with pytest.raises(ValueError, match="1920 values"):
        coala_embed.align_audio(x[:, :1000], model=model)
    y = tone(3.0, 22050)
    tags_light = coala_embed.predict_tags(y, 22050, top_k=5, model=light, backend="onnx")
    tags_torch = coala_embed.predict_tags(y, 22050, top_k=5, model=model)
    assert [t for t, _ in tags_light] == [t for t, _ in tags_torch]


def test_a_checkpoint_without_onnx_exports_once_into_the_cache(ckpt_dir, model, tmp_path):
    light = load_model(ckpt_dir, backend="onnx")
    assert light.onnx_path is None
    y = tone(3.0, 22050)
    first = coala_embed.get_embedding(y, 22050, model=light, backend="onnx")
    cached = tmp_path / "cache" / "coala-embed" / (light.sha256 + "-tm4") / "encoder.onnx"
    assert cached.exists()
    assert (cached.parent / "encoder.onnx.sha256").read_text().strip() == sha256_file(cached)
    cached.write_bytes(b"not an onnx model")  # a damaged cache is exported again, not used
    from coala_embed import onnx_encoder

    onnx_encoder._sessions.clear()
    again = coala_embed.get_embedding(y, 22050, model=light, backend="onnx")
    np.testing.assert_array_equal(first, again)
    assert sha256_file(cached) == (cached.parent / "encoder.onnx.sha256").read_text().strip()
    assert np.abs(first - coala_embed.get_embedding(y, 22050, model=model)).max() < 1e-4


def test_the_cache_keeps_apart_embedding_layouts_of_the_same_weights(ckpt_dir, tmp_path):
    """A checkpoint written before time_mean_blocks existed has the same weights and the latent alone as its
    embedding: the cached graph of one layout must never serve the other."""
    old = tmp_path / "old"
    shutil.copytree(ckpt_dir, old)
    config = json.loads((old / "config.json").read_text())
    del config["model"]["time_mean_blocks"]
    (old / "config.json").write_text(json.dumps(config))
    y = tone(3.0, 22050)
    new_model, old_model = load_model(ckpt_dir, backend="onnx"), load_model(old, backend="onnx")
    assert new_model.sha256 == old_model.sha256 and old_model.net.cfg.time_mean_blocks == ()
    new_emb = coala_embed.get_embedding(y, 22050, model=new_model, backend="onnx")
    old_emb = coala_embed.get_embedding(y, 22050, model=old_model, backend="onnx")
    latent = new_model.net.cfg.latent_size
    assert new_emb.shape == (new_model.embedding_size,) and old_emb.shape == (latent,) == (old_model.embedding_size,)
    np.testing.assert_array_equal(new_emb[:latent], old_emb)


def test_backend_options_are_checked(onnx_ckpt):
    with pytest.raises(ValueError, match="backend"):
        EmbedOptions(backend="tensorflow")
    with pytest.raises(ValueError, match="fp32"):
        EmbedOptions(backend="onnx", precision="bf16")
    light = load_model(onnx_ckpt, backend="onnx")
    with pytest.raises(ValueError, match="backend='onnx'"):  # no torch network to run
        coala_embed.get_embedding(tone(1.0, 22050), 22050, model=light)
    with pytest.raises(ValueError, match="CPU"):
        load_model(onnx_ckpt, device="cuda", backend="onnx")


NO_TORCH = "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError


def _run_without_torch(code: str, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", NO_TORCH + code, *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=REPO)


def test_embedding_and_tags_without_torch(onnx_ckpt, model, tmp_path):
    wav = write_wav(tmp_path / "a.wav", 4.0, 44100, channels=2, freq=500)
    code = ("import json, coala_embed, soundfile as sf\n"
            "y, sr = sf.read(sys.argv[2])\n"
            "emb = coala_embed.get_embedding(y, sr, model=sys.argv[1], backend='onnx')\n"
            "tags = coala_embed.predict_tags(y, sr, top_k=3, model=sys.argv[1], backend='onnx')\n"
            "print(json.dumps({'emb': emb.tolist(), 'tags': [t for t, _ in tags],"
            " 'torch': [m for m in sys.modules if m.startswith('torch')]}))\n")
    done = _run_without_torch(code, str(onnx_ckpt), wav)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["torch"] == ["torch"]  # only the blocked entry: nothing imported it
    import soundfile as sf

    y, sr = sf.read(wav)
    ref = coala_embed.get_embedding(y, sr, model=model)
    assert np.abs(np.array(out["emb"], np.float32) - ref).max() < 1e-4
    assert out["tags"] == [t for t, _ in coala_embed.predict_tags(y, sr, top_k=3, model=model)]


def test_bundled_tag_head_ranks_without_torch(tmp_path):
    """The bundled weights' tag head (numpy) ranks the sound tags with no torch imported, as the torch backend does."""
    wav = write_wav(tmp_path / "h.wav", 3.0, 22050, freq=300)
    code = ("import json, coala_embed, soundfile as sf\n"
            "y, sr = sf.read(sys.argv[1])\n"
            "tags = coala_embed.predict_tags(y, sr, top_k=5, backend='onnx')\n"
            "print(json.dumps({'tags': tags, 'torch': [m for m in sys.modules if m.startswith('torch')]}))\n")
    done = _run_without_torch(code, str(wav))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["torch"] == ["torch"]
    import soundfile as sf

    y, sr = sf.read(wav)
    bundled = coala_embed.load_model(device="cpu")
    assert bundled.tag_head is not None
    ref = coala_embed.predict_tags(y, sr, top_k=5, model=bundled)
    assert [t for t, _ in out["tags"]] == [t for t, _ in ref]
    assert np.allclose([s for _, s in out["tags"]], [s for _, s in ref], atol=1e-3)


def test_cli_backend_onnx_without_torch(onnx_ckpt, model, tmp_path):
    wav = write_wav(tmp_path / "b.wav", 3.0, 22050, freq=800)
    done = _run_without_torch("from coala_embed.cli import main; main()", "--backend", "onnx", "--model",
                              str(onnx_ckpt), "-o", str(tmp_path / "out"), "-q", wav)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "out" / "b.npz") as z:
        settings = json.loads(str(z["settings"]))
        assert settings["backend"] == "onnx" and settings["precision"] == "fp32"
        import soundfile as sf

        y, sr = sf.read(wav)
        assert np.abs(z["mean"] - coala_embed.get_embedding(y, sr, model=model)).max() < 1e-4
    bad = _run_without_torch("from coala_embed.cli import main; main()", "--backend", "onnx", "--precision", "bf16",
                             "--model", str(onnx_ckpt), "-o", str(tmp_path / "out2"), wav)
    assert bad.returncode != 0 and "fp32" in bad.stderr and "Traceback" not in bad.stderr
