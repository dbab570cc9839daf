"""The Python API: shapes, determinism, files and their outputs, the tag side."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import coala_embed
from coala_embed import get_embedding, get_tag_embedding, predict_tags, process_file
from coala_embed import core, sinks

from conftest import TAGS, tone, write_wav


def test_mean_and_frames(model):
    y = tone(5.0, 22050)
    emb = get_embedding(y, 22050, model=model)
    assert emb.shape == (1920,) and emb.dtype == np.float32 and np.isfinite(emb).all()
    frames, ts = get_embedding(y, 22050, model=model, frames=True)
    assert frames.shape == (2, 1920) and frames.dtype == np.float32
    assert ts.shape == (2,)
    patch = 96 * 512 / 22000
    np.testing.assert_allclose(ts, [(95 / 2) * 512 / 22000, (95 / 2) * 512 / 22000 + patch], rtol=1e-9)
    np.testing.assert_allclose(frames.mean(axis=0), emb, atol=1e-6)


def test_hop_size_and_center(model):
    y = tone(4.0, 22000)
    frames, ts = get_embedding(y, 22000, model=model, frames=True, hop_size=0.5)
    assert len(frames) == len(ts) > 2
    np.testing.assert_allclose(np.diff(ts), 21 * 512 / 22000)  # 0.5 s = 21.48 frames -> 21
    _, tc = get_embedding(y, 22000, model=model, frames=True, hop_size=0.5, center=True)
    assert tc[0] == 0.0 and 3.5 < tc[-1] <= 4.0
    with pytest.raises(ValueError, match="hop_size"):
        get_embedding(y, 22000, model=model, hop_size=0)


def test_clip_seconds_reference_padding(model):
    frames, _ = get_embedding(tone(1.0, 22000), 22000, model=model, frames=True, clip_seconds=10)
    assert len(frames) == 4  # 10 s padded -> 4 whole non-overlapping patches, as the reference


def test_list_of_clips_matches_single_calls(model):
    clips = [tone(1.0, 8000), tone(4.0, 44100, 660, channels=2), tone(2.5, 16000, 100)]
    rates = [8000, 44100, 16000]
    batched = get_embedding(clips, rates, model=model, batch_size=3)
    assert isinstance(batched, list) and len(batched) == 3
    for clip, sr, emb in zip(clips, rates, batched):
        np.testing.assert_allclose(get_embedding(clip, sr, model=model), emb, atol=1e-5)
    with pytest.raises(ValueError, match="sample rates"):
        get_embedding(clips, [8000, 16000], model=model)


def test_deterministic_across_runs_and_batch_sizes(model):
    y = tone(12.0, 44100, 523, seed=3)
    a, _ = get_embedding(y, 44100, model=model, frames=True, hop_size=1.0)
    b, _ = get_embedding(y, 44100, model=model, frames=True, hop_size=1.0)
    np.testing.assert_array_equal(a, b)  # same call, same bits
    for bs in (1, 5, 64):
        c, _ = get_embedding(y, 44100, model=model, frames=True, hop_size=1.0, batch_size=bs)
        np.testing.assert_allclose(c, a, atol=1e-5, rtol=0)


def test_deterministic_single_vs_many_files(model, wav_dir, tmp_path):
    paths = sorted(str(p) for p in wav_dir.glob("*.wav"))
    many = {p: (e, t) for p, e, t, err in coala_embed.embed_files(paths, model=model, batch_size=4)}
    for p in paths:
        (_, e, t, err), = coala_embed.embed_files([p], model=model, batch_size=32)
        assert err is None
        np.testing.assert_allclose(e, many[p][0], atol=1e-5, rtol=0)
        np.testing.assert_array_equal(t, many[p][1])
        # and a file gives what its decoded array gives
        y, sr = sf.read(p)
        np.testing.assert_allclose(get_embedding(y, sr, model=model), e.mean(axis=0), atol=1e-5)


def test_int_and_float_arrays(model):
    y = tone(3.0, 16000)
    ref = get_embedding(y, 16000, model=model)
    y16 = np.round(y * 32767).astype(np.int16)
    np.testing.assert_allclose(get_embedding(y16, 16000, model=model), ref, atol=2e-3)
    np.testing.assert_allclose(get_embedding(y.astype(np.float64), 16000, model=model), ref, atol=1e-5)
    y32 = y16.astype(np.int32) << 16
    np.testing.assert_allclose(get_embedding(y32, 16000, model=model), get_embedding(y16, 16000, model=model), atol=1e-5)


def test_npz_contents(model, wav_dir, tmp_path):
    out = tmp_path / "feats"
    results = process_file(sorted(wav_dir.glob("*.wav")), output_dir=out, model=model, suffix="coala")
    assert [r.status for r in results] == ["written"] * 3
    assert sorted(os.listdir(out)) == ["a_coala.npz", "b_coala.npz", "c_coala.npz"]
    with np.load(out / "b_coala.npz") as z:
        assert set(z.files) == {"embedding", "timestamps", "mean", "settings", "source"}
        settings = json.loads(str(z["settings"]))  # what made it, as a Parquet table's metadata records
        assert settings["weights_sha256"] == model.sha256 and settings["hop_size"] is None
        assert settings["resampler"] == "soxr_hq" and settings["precision"] == "fp32"
        source = json.loads(str(z["source"]))  # from which file, as it was then
        st = os.stat(wav_dir / "b.wav")
        assert source == {"key": str((wav_dir / "b.wav").resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        assert z["embedding"].shape == (2, 1920) and z["embedding"].dtype == np.float32
        assert z["timestamps"].shape == (2,) and z["timestamps"].dtype == np.float64
        assert z["mean"].shape == (1920,) and z["mean"].dtype == np.float32
        np.testing.assert_allclose(z["mean"], z["embedding"].mean(axis=0), atol=1e-6)
        y, sr = sf.read(wav_dir / "b.wav")
        np.testing.assert_allclose(z["mean"], get_embedding(y, sr, model=model), atol=1e-5)
    assert results[1].n_patches == 2


def test_outputs_beside_inputs_by_default(model, wav_dir):
    (r,) = process_file(str(wav_dir / "c.wav"), model=model)
    assert r.status == "written" and r.output == str(wav_dir / "c.npz") and (wav_dir / "c.npz").exists()


def test_skip_existing_and_overwrite(model, wav_dir, tmp_path):
    paths = sorted(wav_dir.glob("*.wav"))
    out = tmp_path / "feats"
    process_file(paths, output_dir=out, model=model)
    stamp = (out / "a.npz").stat().st_mtime_ns
    os.utime(out / "a.npz", ns=(stamp - 10**9, stamp - 10**9))
    (out / "b.npz").unlink()
    results = process_file(paths, output_dir=out, model=model, batch_size=4)
    assert [r.status for r in results] == ["skipped", "written", "skipped"]
    assert (out / "a.npz").stat().st_mtime_ns == stamp - 10**9
    results = process_file(paths, output_dir=out, model=model, overwrite=True)
    assert [r.status for r in results] == ["written"] * 3
    assert (out / "a.npz").stat().st_mtime_ns != stamp - 10**9


def test_last_partial_batch_flushed_when_later_files_skipped(model, wav_dir, tmp_path):
    paths = sorted(wav_dir.glob("*.wav"))
    out = tmp_path / "feats"
    process_file(paths[2:], output_dir=out, model=model)  # c exists: skipped at the end of the run
    results = process_file(paths, output_dir=out, model=model, batch_size=1000)
    assert [r.status for r in results] == ["written", "written", "skipped"]
    for name in ("a", "b"):
        with np.load(out / f"{name}.npz") as z:
            assert len(z["embedding"]) >= 1


def test_an_output_of_another_embedding_size_is_made_again(model, wav_dir, tmp_path):
    """Up to 0.8 the same weights wrote the 1152-d latent alone: an upgrade must not keep those beside new ones."""
    path = sorted(wav_dir.glob("*.wav"))[0]
    out = tmp_path / "feats"
    process_file([path], output_dir=out, model=model)
    target = out / f"{path.stem}.npz"
    with np.load(target) as z:
        old = {k: z[k] for k in z.files}
    latent = model.net.cfg.latent_size
    np.savez(target, **dict(old, embedding=old["embedding"][:, :latent], mean=old["mean"][:latent]))
    assert [r.status for r in process_file([path], output_dir=out, model=model)] == ["written"]
    with np.load(target) as z:
        assert z["mean"].shape == (model.embedding_size,)
        np.testing.assert_array_equal(z["embedding"], old["embedding"])
    assert [r.status for r in process_file([path], output_dir=out, model=model)] == ["skipped"]


def test_an_output_made_with_other_weights_or_framing_is_made_again(model, wav_dir, tmp_path):
    """A re-run with another hop (or after a weights upgrade of the same width) must not keep stale files;
    only the arithmetic (backend, precision: the same function within rounding) does not make them stale."""
    path = sorted(wav_dir.glob("*.wav"))[0]
    out = tmp_path / "feats"
    target = out / f"{path.stem}.npz"
    assert [r.status for r in process_file([path], output_dir=out, model=model)] == ["written"]
    with np.load(target) as z:
        one_patch = z["embedding"].shape
    assert [r.status for r in process_file([path], output_dir=out, model=model, hop_size=0.5)] == ["written"]
    with np.load(target) as z:
        assert len(z["embedding"]) > one_patch[0] and json.loads(str(z["settings"]))["hop_size"] == 0.5
    assert [r.status for r in process_file([path], output_dir=out, model=model, hop_size=0.5)] == ["skipped"]
    with np.load(target) as z:  # as if another release's weights had written it
        old = {k: z[k] for k in z.files}
    settings = dict(json.loads(str(old["settings"])), weights_sha256="0" * 64)
    np.savez(target, **dict(old, settings=np.array(json.dumps(settings))))
    assert [r.status for r in process_file([path], output_dir=out, model=model, hop_size=0.5)] == ["written"]
    with np.load(target) as z:
        assert json.loads(str(z["settings"]))["weights_sha256"] == model.sha256
    settings = dict(json.loads(str(old["settings"])), backend="onnx", precision="bf16")
    np.savez(target, **dict(old, settings=np.array(json.dumps(settings))))
    assert [r.status for r in process_file([path], output_dir=out, model=model, hop_size=0.5)] == ["skipped"]


def test_output_name_collision(model, tmp_path):
    for sub in ("x", "y", "z"):
        (tmp_path / sub).mkdir()
        write_wav(tmp_path / sub / "same.wav", 1.0)
    write_wav(tmp_path / "x" / "same.flac", 1.0)
    inputs = [tmp_path / "x" / "same.wav", tmp_path / "x" / "same.flac", tmp_path / "y" / "same.wav",
              tmp_path / "z" / "same.wav"]
    results = process_file(inputs, output_dir=tmp_path / "o", model=model)
    # the first keeps <stem>.npz, the next ones <stem>.<ext>.npz; one more with both names taken cannot be placed
    assert [r.status for r in results] == ["written", "written", "written", "failed"]
    assert [Path(r.output).name for r in results[:3]] == ["same.npz", "same.flac.npz", "same.wav.npz"]
    assert "would overwrite" in results[3].error and "z/same.wav" in results[3].error
    again = process_file(inputs, output_dir=tmp_path / "o", model=model)  # not "failed" forever: resumed
    assert [r.status for r in again] == ["skipped", "skipped", "skipped", "failed"]


def test_atomic_write_leaves_no_partial_file(model, wav_dir, tmp_path, monkeypatch):
    out = tmp_path / "feats"
    out.mkdir()
    real_savez = np.savez
    calls = {"n": 0}

    def failing_savez(f, **arrays):
        calls["n"] += 1
        if calls["n"] == 2:
            f.write(b"PK\x03\x04 half an archive")
            raise OSError(28, "No space left on device")
        if calls["n"] == 3:
            f.write(b"PK\x03\x04 half an archive")
            raise OSError(5, "Input/output error")
        return real_savez(f, **arrays)

    monkeypatch.setattr(sinks.np, "savez", failing_savez)
    # a full disk stops the run at the first file it could not write (every later one would fail too)
    with pytest.raises(sinks.DiskFullError, match=r"b\.wav: cannot write .*b\.npz: the disk is full"):
        process_file(sorted(wav_dir.glob("*.wav")), output_dir=out, model=model)
    assert sorted(os.listdir(out)) == ["a.npz"]  # no b.npz, no temporary file
    # another write error fails that file only
    results = process_file(sorted(wav_dir.glob("*.wav")), output_dir=out, model=model)
    assert [r.status for r in results] == ["skipped", "failed", "written"]
    assert "Input/output error" in results[1].error and "b.wav" in results[1].error
    assert sorted(os.listdir(out)) == ["a.npz", "c.npz"]  # no b.npz, no temporary file

    # an interrupt (not an error) mid-write also leaves nothing behind, and the re-run resumes
    calls["n"] = 1
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(sinks.np, "savez", lambda f, **a: (_ for _ in ()).throw(KeyboardInterrupt()))
        process_file(sorted(wav_dir.glob("*.wav")), output_dir=out, model=model)
    assert sorted(os.listdir(out)) == ["a.npz", "c.npz"]
    monkeypatch.setattr(sinks.np, "savez", real_savez)
    results = process_file(sorted(wav_dir.glob("*.wav")), output_dir=out, model=model)
    assert [r.status for r in results] == ["skipped", "written", "skipped"]
    assert sorted(os.listdir(out)) == ["a.npz", "b.npz", "c.npz"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_outputs_get_the_mode_open_would_give(model, wav_dir, tmp_path, umask):
    old = os.umask(umask)
    try:
        with open(tmp_path / "by_open", "wb"):
            pass
        process_file([wav_dir / "a.wav"], output_dir=tmp_path / "feats", model=model)
        coala_embed.save_checkpoint(tmp_path / "ckpt", model.net, model.frontend, model.tags)
    finally:
        os.umask(old)
    expected = os.stat(tmp_path / "by_open").st_mode & 0o777
    assert expected == 0o666 & ~umask
    assert os.stat(tmp_path / "feats" / "a.npz").st_mode & 0o777 == expected
    for name in ("model.safetensors", "config.json"):  # safetensors alone would make the weights 0600
        assert os.stat(tmp_path / "ckpt" / name).st_mode & 0o777 == expected


def test_a_plain_list_of_numbers_is_one_clip(model):
    y = tone(3.0, 22050)
    expected = get_embedding(y.astype(np.float64), 22050, model=model)
    np.testing.assert_array_equal(get_embedding([float(v) for v in y], 22050, model=model), expected)
    assert [t for t, _ in predict_tags(list(map(float, y)), 22050, top_k=3, model=model)] == \
        [t for t, _ in predict_tags(y.astype(np.float64), 22050, top_k=3, model=model)]
    with pytest.raises(coala_embed.AudioError, match="one clip's samples"):
        get_embedding([0.1, y], 22050, model=model)
    # a list of lists is still a list of clips
    two = get_embedding([list(map(float, y)), y], 22050, model=model)
    assert len(two) == 2


def test_load_model_builds_only_what_inference_uses(ckpt_dir, tmp_path):
    """An AE-C checkpoint loads without its decoders: no random-weight modules in memory."""
    from safetensors.torch import load_file

    import coala_embed.hear as hear
    from coala_embed import COALA, FrontEnd, ModelConfig, save_checkpoint

    in_file = sum(t.numel() for t in load_file(ckpt_dir / "model.safetensors").values())
    for net in (coala_embed.load_model(ckpt_dir, device="cpu").net, hear.load_model(str(ckpt_dir), device="cpu").net):
        assert net.cfg.variant == "ae-c" and not hasattr(net, "audio_decoder") and not hasattr(net, "tag_decoder")
        assert sum(t.numel() for t in net.state_dict().values()) == in_file
    # a checkpoint saved with its decoders still loads, and gives the same embeddings without them
    full = COALA(ModelConfig(n_tags=len(TAGS)))
    full.load_state(load_file(ckpt_dir / "model.safetensors"))
    fe = coala_embed.load_model(ckpt_dir, device="cpu").frontend
    save_checkpoint(tmp_path / "full", full, fe, TAGS, inference_only=False)
    assert any(k.startswith("audio_decoder.") for k in load_file(tmp_path / "full" / "model.safetensors"))
    again = coala_embed.load_model(tmp_path / "full", device="cpu")
    assert not hasattr(again.net, "audio_decoder")
    y = tone(3.0, 22050)
    np.testing.assert_array_equal(get_embedding(y, 22050, model=again),
                                  get_embedding(y, 22050, model=coala_embed.load_model(ckpt_dir, device="cpu")))


def test_on_result_callback_order(model, wav_dir, tmp_path):
    seen = []
    paths = sorted(wav_dir.glob("*.wav")) + [tmp_path / "missing.wav"]
    results = process_file(paths, output_dir=tmp_path / "o", model=model, on_result=seen.append)
    assert [r.path for r in seen] == [str(p) for p in paths]
    assert results[-1].status == "failed" and "no such file" in results[-1].error


def test_tag_side(model):
    v = get_tag_embedding("tag03", model=model)
    assert v.shape == (1152,) and v.dtype == np.float32
    vs = get_tag_embedding([["tag03"], ["tag01", "tag02"]], model=model)
    assert vs.shape == (2, 1152)
    np.testing.assert_allclose(vs[0], v, atol=1e-6)
    with pytest.raises(ValueError, match="vocabulary"):
        get_tag_embedding("not-a-tag", model=model)
    tags = predict_tags(tone(2.0, 22050), 22050, top_k=5, model=model)
    assert len(tags) == 5 and all(t in TAGS for t, _ in tags)
    sims = [s for _, s in tags]
    assert sims == sorted(sims, reverse=True) and all(-1 <= s <= 1 for s in sims)
    both = predict_tags([tone(2.0, 22050), tone(1.0, 8000)], [22050, 8000], top_k=3, model=model)
    assert len(both) == 2 and [t for t, _ in both[0]] == [t for t, _ in tags[:3]]
    np.testing.assert_allclose([s for _, s in both[0]], sims[:3], atol=1e-5)


def test_model_by_path_is_loaded_once(ckpt_dir):
    m1 = core.get_model(str(ckpt_dir), "cpu")
    m2 = core.get_model(str(ckpt_dir), "cpu")
    assert m1 is m2
    emb = get_embedding(tone(1.0, 22050), 22050, model=str(ckpt_dir), device="cpu")
    assert emb.shape == (1920,)


def test_model_file_sources(ckpt_dir):
    a = coala_embed.load_model(ckpt_dir / "config.json", device="cpu")
    b = coala_embed.load_model(ckpt_dir / "model.safetensors", device="cpu")
    assert a.sha256 == b.sha256 and len(a.tags) == 20 and a.embedding_size == 1920
    assert a.config["provenance"] == {"note": "test checkpoint"}


def test_fast_inference_path_matches_the_network(model):
    """core folds BatchNorm into the convolutions and runs channels-last; it must equal the plain network."""
    import torch

    from coala_embed.patches import load_patches_array

    y = tone(7.0, 44100, 350, seed=5)
    frames, _ = get_embedding(y, 44100, model=model, frames=True, batch_size=3)
    patches, _ = load_patches_array(y, 44100, model.frontend)
    with torch.inference_mode():
        ref = model.net.audio_encoder.embed(torch.from_numpy(patches).unsqueeze(1)).numpy()
    np.testing.assert_allclose(frames, ref, atol=1e-5, rtol=0)
    assert model.net.audio_encoder.blocks[0][0].weight.is_contiguous()  # the user's network is untouched


def test_peak_normalised_front_end_ignores_input_gain(model, tmp_path, monkeypatch):
    from conftest import make_checkpoint

    folder = make_checkpoint(tmp_path / "ckpt", seed=2, frontend=coala_embed.FrontEnd(peak_dbfs=-6.0), n_filters=8)
    peak_model = coala_embed.load_model(folder, device="cpu")
    assert peak_model.frontend.peak_dbfs == -6.0  # saved with the weights
    y = tone(4.0, 44100, 330, seed=4)
    loud, quiet = get_embedding(y, 44100, model=peak_model), get_embedding(0.02 * y, 44100, model=peak_model)
    np.testing.assert_allclose(quiet, loud, rtol=1e-4, atol=1e-4)
    # the reference front end (no normalisation) does see the gain
    a, b = get_embedding(y, 44100, model=model), get_embedding(0.02 * y, 44100, model=model)
    assert np.linalg.norm(a - b) > 0.1 * np.linalg.norm(a)
    # a file gives what its array gives, whether held after the peak pass or (long) decoded twice
    path = tmp_path / "quiet.wav"
    sf.write(path, 0.02 * y, 44100, subtype="FLOAT")
    for hold_seconds in (coala_embed.decode.HOLD_SECONDS, 1.0):
        monkeypatch.setattr(coala_embed.decode, "HOLD_SECONDS", hold_seconds)
        (_, e, _, err), = coala_embed.embed_files([str(path)], model=peak_model)
        assert err is None
        np.testing.assert_allclose(e.mean(axis=0), quiet, atol=1e-5)
    # with the reference 10-s cut, a louder event after the cut does not change the level of what is kept
    z = np.zeros(22000 * 12, np.float32)
    z[:22000 * 4] = tone(4.0, 22000, 440, amp=0.1)
    z[22000 * 11:] = 0.9
    cut = dict(model=peak_model, clip_seconds=10.0)
    np.testing.assert_allclose(get_embedding(z, 22000, **cut), get_embedding(z[:22000 * 10], 22000, **cut), atol=1e-6)
    # digital silence is left as it is, not divided by a zero peak
    assert np.isfinite(get_embedding(np.zeros(30000, np.float32), 22000, model=peak_model)).all()


def test_clip_seconds_stops_decoding_after_the_cut(model, tmp_path, monkeypatch):
    from conftest import make_checkpoint

    peak_model = coala_embed.load_model(make_checkpoint(tmp_path / "ckpt", seed=2, n_filters=8,
                                                        frontend=coala_embed.FrontEnd(peak_dbfs=-6.0)), device="cpu")
    y = tone(40.0, 44100, 330, seed=5)
    y[44100 * 25:] *= 3.0  # louder after the cut: must not set the level of what is kept
    path = tmp_path / "long.wav"
    sf.write(path, y, 44100, subtype="FLOAT")
    for m in (model, peak_model):
        (_, whole, _, err), = coala_embed.embed_files([str(path)], model=m, clip_seconds=10.0)  # one 30-s block
        assert err is None
        decoded = []
        real_open = coala_embed.decode.mono_blocks_from_file

        def counting_open(p, name=None):
            sr, blocks = real_open(p, name)
            return sr, (decoded.append(len(b)) or b for b in blocks)

        monkeypatch.setattr(coala_embed.decode, "READ_BLOCK_SECONDS", 1.0)
        monkeypatch.setattr(coala_embed.decode, "mono_blocks_from_file", counting_open)
        (_, blocked, _, err), = coala_embed.embed_files([str(path)], model=m, clip_seconds=10.0)
        monkeypatch.undo()
        assert err is None
        # 10 s kept, plus one block of look-ahead (peak scan) or of resampler delay: not the 40 s
        assert sum(decoded) <= 12 * 44100
        np.testing.assert_allclose(blocked, whole, atol=1e-5)


def _small_model_with(frontend, tmp_path):
    """A small fixed checkpoint with this front end, saved and loaded back (the front end travels with it)."""
    from conftest import make_checkpoint

    return coala_embed.load_model(make_checkpoint(tmp_path / "ckpt", seed=3, frontend=frontend, n_filters=8), device="cpu")


def _assert_same_patches(y, fe_a, fe_b, **kw):
    """Both front ends frame y into the same patches (e.g. a framing option that must not touch this case)."""
    from coala_embed import patches as patching

    np.testing.assert_array_equal(patching.load_patches_array(y, 22000, fe_a, **kw)[0],
                                  patching.load_patches_array(y, 22000, fe_b, **kw)[0])


def test_short_clip_at_several_positions(model, tmp_path):
    """short_positions=K: a clip shorter than one patch gives K patches, the clip at evenly spaced places,
    each the patch of the clip preceded by that much silence; longer clips and centred patching as before."""
    import dataclasses

    from coala_embed import patches as patching

    fe1 = model.frontend
    fe5 = dataclasses.replace(fe1, short_positions=5)
    y = tone(0.5, 22000)
    patches, centres = patching.load_patches_array(y, 22000, fe5)
    assert patches.shape == (5, 96, 96) and np.all(np.diff(centres) > 0)
    free = fe1.min_samples - len(y)
    for i, lead in enumerate([free, round(0.75 * free), round(0.5 * free), round(0.25 * free), 0]):
        led, led_t = patching.load_patches_array(np.concatenate([np.zeros(lead, np.float32), y]), 22000, fe1)
        np.testing.assert_allclose(patches[i], led[0], atol=1e-6)  # the same patch as explicit leading silence
        assert centres[i] == pytest.approx(led_t[0] - lead / 22000)  # times of the clip, not of the padded signal
    for kw in ({}, {"center": True}):  # longer clips, and centred patching, are framed as with 1 position
        _assert_same_patches(tone(5.0, 22000) if not kw else y, fe5, fe1, **kw)
    with pytest.raises(ValueError, match="short_positions"):
        patching.FrontEnd(short_positions=0)

    # saved with the weights; the mean is over the K patches, whatever the batch size
    m5 = _small_model_with(fe5, tmp_path)
    assert m5.frontend.short_positions == 5
    frames, ts = get_embedding(y, 22000, model=m5, frames=True)
    assert frames.shape == (5, m5.embedding_size) and len(ts) == 5
    np.testing.assert_allclose(get_embedding(y, 22000, model=m5), frames.mean(axis=0), atol=1e-6)
    np.testing.assert_array_equal(get_embedding(y, 22000, model=m5, batch_size=1),
                                  get_embedding(y, 22000, model=m5, batch_size=7))


def test_tail_padded_into_one_more_patch(model, tmp_path, monkeypatch):
    """pad_tail_over=x: audio after the last whole patch lasting more than x of a patch becomes one more
    patch, exactly the patch of the clip padded with that much explicit silence; less is dropped, as in
    the reference; streaming, overlapping hops, centred patching and clip_seconds behave as they should."""
    import dataclasses

    from coala_embed import patches as patching

    fe = model.frontend
    fe_pad = dataclasses.replace(fe, pad_tail_over=0.25)
    P, hop = fe.patch_frames, fe.hop_length
    patch = P * hop
    padded_lengths = []
    for seconds in (2.3, 3.0, 5.0, 6.0):
        y = tone(seconds, 22000)
        ref, ref_t = patching.load_patches_array(y, 22000, fe)
        got, got_t = patching.load_patches_array(y, 22000, fe_pad)
        left = (1 + len(y) // hop) - len(ref) * P  # frames after the last whole patch
        if left <= 0.25 * P:  # 2.3 s and 5.0 s: under a quarter patch left over, framed as before
            np.testing.assert_array_equal(got, ref)
            continue
        padded_lengths.append(seconds)
        assert len(got) == len(ref) + 1
        np.testing.assert_array_equal(got[:-1], ref)  # the whole patches are untouched
        padded = np.concatenate([y, np.zeros((len(ref) + 1) * patch, np.float32)])  # more silence than needed
        want, want_t = patching.load_patches_array(padded, 22000, fe)
        np.testing.assert_allclose(got[-1], want[len(ref)], atol=1e-6)
        assert got_t[-1] == pytest.approx(want_t[len(ref)])
    assert padded_lengths == [3.0, 6.0]
    assert len(patching.load_patches_array(tone(2.3, 22000), 22000, dataclasses.replace(fe, pad_tail_over=0.0))[0]) == 2

    y = tone(3.0, 22000)  # a hop of half a patch: one more patch on the same grid of starts
    half_ref, half_t = patching.load_patches_array(y, 22000, fe, hop_frames=48)
    half_pad, half_pad_t = patching.load_patches_array(y, 22000, fe_pad, hop_frames=48)
    assert len(half_pad) == len(half_ref) + 1 and half_pad_t[-1] - half_t[-1] == pytest.approx(48 * hop / 22000)
    y7 = tone(7.66, 22000)  # 330 frames; hops longer than a patch skip audio: pad only for audio past the next start
    assert len(patching.load_patches_array(y7, 22000, fe_pad, hop_frames=120)[0]) == 3  # starts 0, 120, 240 (+90 frames)
    _assert_same_patches(y7, fe_pad, fe, hop_frames=200)  # next start 400: no silent patch
    for kw in ({"center": True}, {"clip_seconds": 10.0}):  # reference framing kept
        _assert_same_patches(y, fe_pad, fe, **kw)
    with pytest.raises(ValueError, match="pad_tail_over"):
        patching.FrontEnd(pad_tail_over=1.0)

    # saved with the weights; files streamed in small blocks give the same vectors as arrays
    m = _small_model_with(fe_pad, tmp_path)
    assert m.frontend.pad_tail_over == 0.25
    frames, ts = get_embedding(y, 22000, model=m, frames=True)
    assert len(frames) == 2 and np.all(np.diff(ts) > 0)
    path = tmp_path / "long.wav"
    sf.write(path, y, 22000, subtype="FLOAT")
    monkeypatch.setattr(coala_embed.decode, "READ_BLOCK_SECONDS", 0.5)
    (_, from_file, file_t, err), = coala_embed.embed_files([str(path)], model=m)
    assert err is None
    np.testing.assert_allclose(from_file, frames, atol=1e-5)
    np.testing.assert_allclose(file_t, ts)


def test_a_killed_writers_temporary_files_are_removed_by_the_next_run(model, wav_dir, tmp_path):
    """SIGKILL mid-write leaves `.<stem>.<host>.<pid>.<token>.tmp`; the next run removes those of dead
    processes on this host, and keeps a live writer's."""
    import subprocess
    import sys

    from coala_embed.sinks import _HOST

    out = tmp_path / "feats"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".a.{_HOST}.{int(dead.stdout)}.0123abcd.tmp"
    live = out / f".b.{_HOST}.{os.getpid()}.4567cdef.tmp"
    other_host = out / f".c.elsewhere.{int(dead.stdout)}.89abcdef.tmp"
    for f in (stale, live, other_host):
        f.write_bytes(b"PK half")
    process_file(sorted(wav_dir.glob("*.wav")), output_dir=out, model=model)
    assert not stale.exists() and live.exists() and other_host.exists()
