"""A full tiny run: generated corpus -> patches -> train -> export -> load_model -> embed; plus the
published HDF5 layout, resuming, the variants, and DistributedDataParallel with 2 gloo processes."""
import fnmatch
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import coala_embed
from coala_embed.checkpoint import CHECKPOINT_FILES
from coala_embed.model import COALA, ModelConfig
from training.corpus import prepare
from training.scripts import pack
from training.trainer import export, network
from training.trainer import loop as train
from training.trainer.augment import audio_view, augment, band_ranges, centre_crops, lead_crops, mel_band_centres, shifted_crops
from training.trainer.data import load_hdf5, load_hdf5_vocabulary, load_prepared
from training.trainer.config import ConfigError, TrainConfig
from training.trainer.losses import coala_losses, generalised_kl, identical_rows, nt_xent, tag_bce, tag_overlap

REPO = Path(__file__).resolve().parents[1]
TINY = {"epochs": 2, "batch_size": 8, "png_every": 1, "num_threads": 1, "device": "cpu"}


def _config(**over):
    cfg = json.loads((REPO / "training" / "configs" / "paper.json").read_text())
    cfg.update(TINY)
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """40 short clips of four kinds (low tone, high tone, noise, clicks), each tagged accordingly."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    kinds = {"low": ["tone", "low"], "high": ["tone", "high"], "noise": ["noise"], "click": ["click", "percussive"]}
    rows = []
    for i in range(40):
        kind = list(kinds)[i % 4]
        sr = 44100 if i % 5 == 0 else 22000
        n = int(sr * rng.uniform(0.5, 4.0))
        t = np.arange(n) / sr
        if kind == "low":
            y = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t)
        elif kind == "high":
            y = 0.3 * np.sin(2 * np.pi * rng.uniform(2000, 5000) * t)
        elif kind == "noise":
            y = 0.1 * rng.standard_normal(n)
        else:
            y = np.zeros(n)
            y[:: sr // 8] = 0.9
        path = root / "audio" / f"{kind}_{i}.flac"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, y, sr)
        rows.append({"path": f"audio/{path.name}", "tags": kinds[kind], "package": "generated"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "vocab.json").write_text(json.dumps(["tone", "low", "high", "noise", "click", "percussive"]))
    return root


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare.prepare(corpus, out, workers=1)
    return out


def test_prepare_writes_scaled_patches_and_stratified_split(prepared):
    meta = json.loads((prepared / "meta.json").read_text())
    assert meta["clips"] == 40 and meta["train_patches"] + meta["val_patches"] == 40
    assert 3 <= meta["val_patches"] <= 6
    tr, va = load_prepared(prepared, "train"), load_prepared(prepared, "val")
    assert tr.patches.shape[1:] == (96, 96) and tr.tags.shape[1] == 6 and len(va) == meta["val_patches"]
    # the scaler is fitted on the training patches: exactly [0, 1] there
    assert float(np.min(tr.patches)) == pytest.approx(0.0, abs=1e-6)
    assert float(np.max(tr.patches)) == pytest.approx(1.0, abs=1e-6)
    fe = coala_embed.FrontEnd.from_dict(meta["frontend"])
    assert len(fe.scaler_min) == 96 and fe.sample_rate == 22000


def test_prepare_peak_normalises_and_saves_the_level(corpus, tmp_path):
    meta = prepare.prepare(corpus, tmp_path / "peak", workers=1, limit=8, peak_dbfs=-6.0)
    fe = coala_embed.FrontEnd.from_dict(meta["frontend"])
    assert fe.peak_dbfs == -6.0
    # the same clip at a tenth of the level gives the same log-mel once normalised
    path = corpus / "audio" / "low_0.flac"
    y, sr = sf.read(path, dtype="float32")
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, 0.1 * y, sr, subtype="FLOAT")
    # (float32 rounding of the STFT moves bins ~100 dB below the peak by up to 1%)
    np.testing.assert_allclose(prepare.clip_log_mel(quiet, fe), prepare.clip_log_mel(path, fe), atol=0.02)
    assert not np.allclose(prepare.clip_log_mel(quiet, coala_embed.FrontEnd()), prepare.clip_log_mel(path, fe), atol=0.5)


def test_prepare_caps_clips_per_identical_tag_set(corpus, tmp_path):
    clips = [{"path": f"{i}.wav", "tags": ["speech", "voice"] if i < 30 else ["dog", "bark"]} for i in range(34)]
    clips[5]["tags"] = ["voice", "speech", "dropped"]  # same set once tags outside the vocabulary go
    index = {t: i for i, t in enumerate(["speech", "voice", "dog", "bark"])}
    kept = prepare.cap_tag_sets(clips, index, max_clips=10, seed=0)
    assert sum(c["tags"][0] != "dog" for c in kept) == 10 and sum(c["tags"][0] == "dog" for c in kept) == 4
    assert [int(c["path"][:-4]) for c in kept] == sorted(int(c["path"][:-4]) for c in kept)  # manifest order
    assert kept == prepare.cap_tag_sets(clips, index, max_clips=10, seed=0)
    assert kept != prepare.cap_tag_sets(clips, index, max_clips=10, seed=1)
    meta = prepare.prepare(corpus, tmp_path / "capped", workers=1, max_clips_per_tag_set=4)
    assert meta["clips"] == 16 and meta["max_clips_per_tag_set"] == 4  # 4 kinds of 10 clips, 4 of each kept


def test_prepare_with_context_keeps_the_patches_and_adds_the_clips_neighbouring_frames(corpus, prepared, tmp_path):
    meta = prepare.prepare(corpus, tmp_path / "wide", workers=1, context_frames=24)
    plain = json.loads((prepared / "meta.json").read_text())
    assert meta["context_frames"] == 24 and json.loads(json.dumps(meta["frontend"])) == plain["frontend"]  # the same scaler
    for split in ("train", "val"):
        wide, narrow = load_prepared(tmp_path / "wide", split), load_prepared(prepared, split)
        assert wide.patches.shape[1:] == (96, 96 + 48)
        np.testing.assert_array_equal(centre_crops(np.asarray(wide.patches), 24), narrow.patches)
    # a clip shorter than a patch: its best patch starts at frame 0, so the left context is silence
    fe = coala_embed.FrontEnd()
    path = corpus / "audio" / "low_0.flac"
    frames = prepare.clip_log_mel(path, fe)
    patches, error = prepare._extract((path, 1, fe, 24))
    start = prepare.best_patch_starts(frames, fe)[0]
    assert error is None and patches.shape == (1, 96 + 48, 96)
    padded = np.concatenate([np.full((24, 96), np.log(np.float32(fe.log_eps))), frames, np.full((24, 96), np.log(np.float32(fe.log_eps)))])
    np.testing.assert_array_equal(patches[0], padded[start:start + 96 + 48])


def test_shifted_crops_cut_each_patch_within_its_context():
    rng = np.random.default_rng(0)
    x = np.broadcast_to(np.arange(96 + 16, dtype=np.float32), (64, 4, 96 + 16)).copy()  # value = frame index
    np.testing.assert_array_equal(centre_crops(x, 8)[:, 0, 0], np.full(64, 8.0))
    crops = shifted_crops(x, 8, 5, rng)
    starts = crops[:, 0, 0]
    assert crops.shape == (64, 4, 96) and starts.min() >= 3 and starts.max() <= 13 and len(set(starts)) > 5
    np.testing.assert_array_equal(crops, np.broadcast_to(starts[:, None, None] + np.arange(96, dtype=np.float32), crops.shape))
    with pytest.raises(ValueError, match="context"):
        shifted_crops(x, 8, 9, rng)
    with pytest.raises(ValueError, match="context"):
        train.views_to_input(x, {"lambda_audio_audio": 1.0, "view_shift_frames": 4, "channels_last": False}, rng,
                             band_ranges(None, 4), "cpu", context=0)


def test_lead_crops_cut_each_patch_up_to_l_frames_earlier():
    rng = np.random.default_rng(0)
    x = np.broadcast_to(np.arange(96 + 16, dtype=np.float32), (64, 4, 96 + 16)).copy()  # value = frame index
    crops = lead_crops(x, 8, 6, rng)
    starts = crops[:, 0, 0]
    assert crops.shape == (64, 4, 96) and starts.min() >= 2 and starts.max() <= 8 and len(set(starts)) == 7
    np.testing.assert_array_equal(crops, np.broadcast_to(starts[:, None, None] + np.arange(96, dtype=np.float32), crops.shape))
    with pytest.raises(ValueError, match="context"):
        lead_crops(x, 8, 9, rng)


def test_training_with_lead_crops(corpus, tmp_path):
    data = tmp_path / "wide"
    prepare.prepare(corpus, data, workers=1, context_frames=8)
    summary = train.train(_config(variant="e-c", epochs=1, lead_frames=8), tmp_path / "run", data=data)
    assert np.isfinite(summary["final"]["train_contrastive"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lead_frames"] == 8


def test_training_with_shifted_views_on_context_patches(corpus, tmp_path):
    data = tmp_path / "wide"
    prepare.prepare(corpus, data, workers=1, context_frames=8)
    cfg = _config(variant="e-c", epochs=1, lambda_audio_audio=1.0, view_shift_frames=8, mix_p=0.5)
    summary = train.train(cfg, tmp_path / "run", data=data)
    assert np.isfinite(summary["final"]["train_audio_audio"]) and np.isfinite(summary["final"]["val_audio_audio"])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["preparation"]["context_frames"] == 8


def test_best_patch_is_the_loudest():
    fe = coala_embed.FrontEnd()
    frames = np.zeros((400, 96), np.float32)
    frames[240:336] = 5.0
    assert prepare.best_patch_starts(frames, fe) == [240]
    assert len(prepare.best_patch_starts(frames, fe, k=3)) == 3


def test_losses():
    x = torch.rand(4, 1, 96, 96)
    assert float(generalised_kl(x, x)) == pytest.approx(0.0, abs=1e-3)
    assert float(generalised_kl(x, torch.rand_like(x))) > 1.0
    a = torch.randn(8, 16)
    assert float(nt_xent(a, a, 0.1)) < float(nt_xent(a, torch.randn(8, 16), 0.1))


def test_tag_bce_runs_in_float32_outside_autocast():
    """CUDA's autocast refuses BCE on probabilities (the tag decoder ends in a sigmoid): tag_bce leaves it."""
    t = (torch.rand(8, 20) < 0.2).float()
    t_hat = torch.rand(8, 20)
    expected = torch.nn.functional.binary_cross_entropy(t_hat.clamp(1e-5, 1 - 1e-5), t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = tag_bce(t, t_hat.bfloat16())
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(expected), rel=1e-2)


def _nt_xent_by_hand(a, b, tau, same):
    """NT-Xent one anchor at a time; vector k belongs to item k % n, its positive is the other view."""
    z = torch.nn.functional.normalize(torch.cat([a, b]), dim=1)
    n, total = len(a), 0.0
    for k in range(2 * n):
        pos = (k + n) % (2 * n)
        keep = [m for m in range(2 * n) if m != k and (m == pos or not same[k % n, m % n])]
        logits = torch.stack([z[k] @ z[m] / tau for m in keep])
        total += float(torch.logsumexp(logits, 0) - z[k] @ z[pos] / tau)
    return total / (2 * n)


def test_nt_xent_can_mask_identical_tag_sets():
    t = torch.tensor([[1, 0, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [1, 0, 1]], dtype=torch.float32)
    same = identical_rows(t)
    assert same.tolist()[0] == [True, True, False, False, True] and same[2].sum() == 1
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    masked = float(nt_xent(a, b, 0.1, same))
    assert masked == pytest.approx(_nt_xent_by_hand(a, b, 0.1, same), rel=1e-5)
    assert masked != pytest.approx(float(nt_xent(a, b, 0.1)), rel=1e-3)
    distinct = identical_rows(torch.eye(5))
    assert float(nt_xent(a, b, 0.1, distinct)) == pytest.approx(float(nt_xent(a, b, 0.1)), rel=1e-6)
    # as a config switch of the objective: only the contrastive term changes
    torch.manual_seed(0)
    net = COALA(ModelConfig(variant="e-c", n_tags=3)).eval()
    x = torch.rand(5, 1, 96, 96)
    cfg = _config(variant="e-c")
    with torch.no_grad():
        paper = coala_losses(net, x, t, cfg)["contrastive"]
        fixed = coala_losses(net, x, t, {**cfg, "mask_same_tags": True})["contrastive"]
    assert float(fixed) < float(paper)  # fewer terms in every denominator that had an identical tag set


def _multi_positive_by_hand(a, b, tau, overlap):
    """The weighted multi-positive loss one anchor at a time: -sum_m w_km log p_km / sum_m w_km."""
    z = torch.nn.functional.normalize(torch.cat([a, b]), dim=1)
    n, total = len(a), 0.0
    for k in range(2 * n):
        others = [m for m in range(2 * n) if m != k]
        logits = torch.stack([z[k] @ z[m] / tau for m in others])
        log_p = logits - torch.logsumexp(logits, 0)
        w = torch.tensor([1.0 if m == (k + n) % (2 * n) else float(overlap[k % n, m % n]) for m in others])
        total += float(-(w * log_p).sum() / w.sum())
    return total / (2 * n)


def test_multi_positive_pulls_clips_that_share_tags():
    t = torch.tensor([[1, 0, 1, 0], [1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.float32)
    overlap = tag_overlap(t)
    assert overlap[0, 1] == 1.0 and overlap[0, 3] == pytest.approx(1 / 3) and overlap[0, 2] == 0.0
    assert float(tag_overlap(torch.zeros(2, 3)).abs().sum()) == 0.0  # untagged: no overlap, no nan
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    got = float(nt_xent(a, b, 0.1, overlap=overlap))
    assert got == pytest.approx(_multi_positive_by_hand(a, b, 0.1, overlap), rel=1e-5)
    assert got != pytest.approx(float(nt_xent(a, b, 0.1)), rel=1e-3)
    assert float(nt_xent(a, b, 0.1, overlap=torch.zeros(5, 5))) == pytest.approx(float(nt_xent(a, b, 0.1)), rel=1e-6)
    # embeddings grouped by shared tags score lower than the same embeddings shuffled across items
    grouped = torch.tensor([[1.0, 0], [1.0, 0.1], [0, 1.0], [0.7, 0.7], [-1.0, 0]])
    shuffled = grouped[[2, 4, 0, 3, 1]]
    assert float(nt_xent(grouped, grouped, 0.1, overlap=overlap)) < float(nt_xent(shuffled, shuffled, 0.1, overlap=overlap))
    # as a config switch: changes only the contrastive term, and cannot be combined with masking
    torch.manual_seed(0)
    net = COALA(ModelConfig(variant="e-c", n_tags=4)).eval()
    x = torch.rand(5, 1, 96, 96)
    cfg = _config(variant="e-c")
    with torch.no_grad():
        paper = coala_losses(net, x, t, cfg)
        multi = coala_losses(net, x, t, {**cfg, "multi_positive": True})
    assert float(multi["contrastive"]) != pytest.approx(float(paper["contrastive"]), rel=1e-4)
    with pytest.raises(ConfigError, match="choose one"):
        TrainConfig.of({**cfg, "multi_positive": True, "mask_same_tags": True})


def test_sound_targets_zero_other_tags_and_drop_untagged_patches(prepared, tmp_path):
    from training.scripts.sound_targets import write_sound_targets

    src = load_prepared(prepared, "train")
    keep = np.zeros(src.tags.shape[1], bool)
    keep[np.argmax(np.asarray(src.tags).sum(0))] = True  # the commonest tag only
    counts = write_sound_targets(prepared, tmp_path / "sound", keep)
    out = load_prepared(tmp_path / "sound", "train")
    rows = np.flatnonzero(np.asarray(src.tags)[:, keep].any(1))
    assert counts["train"] == {"patches": len(rows), "dropped_without_sound_tags": len(src) - len(rows)}
    assert 0 < len(rows) < len(src)
    assert np.array_equal(out.patches, np.asarray(src.patches)[rows])
    assert np.asarray(out.tags)[:, ~keep].sum() == 0 and np.asarray(out.tags).any(1).all()
    assert np.array_equal(np.asarray(out.tags)[:, keep], np.asarray(src.tags)[rows][:, keep])


def test_full_tiny_run_exports_a_loadable_checkpoint(prepared, tmp_path, monkeypatch):
    run = tmp_path / "run"
    summary = train.train(_config(), run, data=prepared)
    assert summary["epochs"] == 2
    log = (run / "log.csv").read_text().splitlines()
    assert len(log) == 3 and "val_contrastive" in log[0] and "patches_per_s" in log[0]
    assert (run / "recon" / "epoch_002.png").exists()
    folder = export.export_run(run, tmp_path / "export")
    model = coala_embed.load_model(folder, device="cpu")
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["provenance"]["epochs_trained"] == 2 and cfg["provenance"]["corpus_manifest_sha256"]
    assert cfg["provenance"]["training_config"]["preparation"] == {
        "clips": 40, "train_patches": 36, "val_patches": 4, "patches_per_clip": 1, "max_clips_per_tag_set": None,
        "context_frames": 0, "val_fraction": 0.1, "seed": 0}
    assert model.tags[:2] == ["tone", "low"]
    y = 0.3 * np.sin(2 * np.pi * 200 * np.arange(44100) / 22050)
    emb = coala_embed.get_embedding(y, 22050, model=model)
    assert emb.shape == (1920,) and np.isfinite(emb).all()
    assert len(coala_embed.predict_tags(y, 22050, top_k=3, model=model)) == 3
    assert model.frontend.short_positions == 1 and model.frontend.pad_tail_over is None  # the run's, as prepared
    export.main(["--run", str(run), "--out", str(tmp_path / "cli")])  # the command line sets the measured framing
    fe = coala_embed.load_model(tmp_path / "cli", device="cpu").frontend
    assert fe.short_positions == export.SHORT_POSITIONS and fe.pad_tail_over == export.PAD_TAIL_OVER
    export.main(["--run", str(run), "--out", str(tmp_path / "ref"), "--short-positions", "1", "--pad-tail-over", "none"])
    assert coala_embed.load_model(tmp_path / "ref", device="cpu").frontend == model.frontend  # the COALA framing

    # a vocabulary.json built for these tags (as by another run on the same corpus) comes along
    vocab = {"format": "coala-embed-vocabulary", "format_version": 1, "licences": {}, "sound_tags": {"Music": ["tone"]},
             "other_tags": model.tags[1:], "words": {"sine": ["tone"]}}
    (tmp_path / "vocabulary.json").write_text(json.dumps(vocab))
    export.main(["--run", str(run), "--out", str(tmp_path / "voc"), "--vocabulary-from", str(tmp_path / "vocabulary.json")])
    voc = coala_embed.load_model(tmp_path / "voc", device="cpu")
    assert voc.vocabulary.resolve("sine") == ["tone"] and voc.vocabulary.sound_tags == ["tone"]
    (tmp_path / "vocabulary.json").write_text(json.dumps(dict(vocab, other_tags=model.tags[2:])))
    with pytest.raises(ValueError, match="not the model's"):
        export.main(["--run", str(run), "--out", str(tmp_path / "bad"), "--vocabulary-from", str(tmp_path)])
    assert not (tmp_path / "bad").exists()  # refused before anything was written

    # a tag head for its sound tags, fitted on the prepared patches (training.tag_head)
    from training import tag_head

    assert tag_head.main(["--weights", str(tmp_path / "voc"), "--data", str(prepared), "--epochs", "2",
                          "--hidden", "8", "--seeds", "0,1"]) == 0
    voc = coala_embed.load_model(tmp_path / "voc", device="cpu")
    assert voc.tag_head.tags == ["tone"] and voc.tag_head.w1.shape == (1920, 16)  # two heads side by side
    assert voc.config["tag_head"]["provenance"]["seeds"] == [0, 1]
    from safetensors.numpy import load_file  # float16 on disk, float32 once loaded
    assert load_file(str(tmp_path / "voc" / "tag_head.safetensors"))["w1"].dtype == np.float16
    assert voc.tag_head.w1.dtype == np.float32
    assert voc.config["tag_head"]["provenance"]["train_patches"] == int((np.asarray(
        load_prepared(prepared, "train").tags)[:, 0] > 0).sum())
    assert [t for t, _ in coala_embed.predict_tags(y, 22050, top_k=3, model=voc)] == ["tone"]
    other = tmp_path / "other-scaler"  # patches scaled otherwise are not what the encoder sees: refused
    shutil.copytree(prepared, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["frontend"]["scaler_max"][0] += 1.0
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit, match="scaled with another scaler_max"):
        tag_head.main(["--weights", str(tmp_path / "voc"), "--data", str(other), "--epochs", "1"])

    # its int8 encoder, calibrated on the same prepared patches (training.quantize)
    from training import quantize

    assert quantize.main(["--weights", str(tmp_path / "voc"), "--data", str(prepared)]) == 0
    voc = coala_embed.load_model(tmp_path / "voc", backend="onnx")
    fp32 = coala_embed.get_embedding(y, 22050, model=voc, backend="onnx")
    int8 = coala_embed.get_embedding(y, 22050, model=voc, backend="onnx", precision="int8")
    assert not np.array_equal(fp32, int8) and np.dot(fp32, int8) / np.linalg.norm(fp32) / np.linalg.norm(int8) > 0.98

    # --push uploads every file load_model fetches from the Hub (the ONNX encoder, vocabulary and tag head too)
    uploaded = []

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, *args, **kwargs):
            pass

        def upload_folder(self, folder_path, repo_id, allow_patterns):
            uploaded.extend(f.name for f in Path(folder_path).iterdir()
                            if any(fnmatch.fnmatch(f.name, p) for p in allow_patterns))
            return "commit-url"

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    export.main(["--push", str(tmp_path / "voc"), "--repo-id", "org/name"])
    assert sorted(uploaded) == sorted(CHECKPOINT_FILES)


def test_resume_continues_from_the_checkpoint(prepared, tmp_path, capsys):
    run = tmp_path / "run"
    train.train(_config(epochs=1), run, data=prepared)
    first = torch.load(run / "ckpt.pt", weights_only=True)["net"]
    summary = train.train(_config(epochs=2), run, data=prepared)
    assert "resumed from" in capsys.readouterr().out
    assert summary["epochs"] == 2
    assert [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2]
    second = torch.load(run / "ckpt.pt", weights_only=True)["net"]
    assert not torch.equal(first["audio_encoder.blocks.0.0.weight"], second["audio_encoder.blocks.0.0.weight"])


def test_an_early_stop_of_a_long_schedule_keeps_each_epoch_and_exports_any(prepared, tmp_path):
    """stop_after_epoch ends the run early with the lr of the long schedule; keep_epoch_checkpoints keeps
    every epoch's checkpoint, which training.export --checkpoint exports (the shipped weights are such a mean)."""
    run = tmp_path / "run"
    cfg = _config(epochs=5, stop_after_epoch=2, keep_epoch_checkpoints=True, lr_schedule="cosine", variant="e-c")
    summary = train.train(cfg, run, data=prepared)
    assert summary["epochs"] == 2 and sorted(p.name for p in run.glob("ckpt*.pt")) == ["ckpt-e001.pt", "ckpt-e002.pt", "ckpt.pt"]
    lrs = [json.loads(line)["lr"] for line in (run / "log.jsonl").read_text().splitlines()]
    full = train.train(dict(cfg, stop_after_epoch=0, keep_epoch_checkpoints=False), tmp_path / "full", data=prepared)
    full_lrs = [json.loads(line)["lr"] for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert full["epochs"] == 5 and lrs == full_lrs[:2]  # the same schedule, cut short
    last = torch.load(run / "ckpt.pt", weights_only=True)["net"]
    assert all(torch.equal(v, last[k]) for k, v in torch.load(run / "ckpt-e002.pt", weights_only=True)["net"].items())
    export.main(["--run", str(run), "--checkpoint", str(run / "ckpt-e001.pt"), "--out", str(tmp_path / "e1")])
    first = torch.load(run / "ckpt-e001.pt", weights_only=True)["net"]
    model = coala_embed.load_model(tmp_path / "e1", device="cpu")
    assert json.loads((tmp_path / "e1" / "config.json").read_text())["provenance"]["epochs_trained"] == 1
    w = "audio_encoder.blocks.0.0.weight"
    assert torch.equal(model.net.state_dict()[w], first[w]) and not torch.equal(first[w], last[w])
    with pytest.raises(Exception, match="stop_after_epoch=6"):
        train.train(dict(cfg, stop_after_epoch=6), tmp_path / "bad", data=prepared)


def test_warm_start_copies_the_tensors_that_fit(tmp_path):
    from conftest import make_checkpoint

    folder = make_checkpoint(tmp_path / "ckpt", seed=3, variant="e-c")  # 20 tags
    source = coala_embed.load_model(folder, device="cpu").net.state_dict()
    torch.manual_seed(0)
    net = network.build_net(_config(variant="ae-c"), n_tags=6)
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    copied = network.warm_start(net, str(folder))
    state = net.state_dict()
    assert "audio_encoder.blocks.0.0.weight" in copied and "audio_affine.0.weight" in copied
    assert "tag_encoder.net.0.weight" not in copied and "tag_encoder.net.4.weight" in copied  # 20 -> 6 tags
    for k, v in state.items():
        torch.testing.assert_close(v, source[k] if k in copied else fresh[k], rtol=0, atol=0, msg=k)
    assert not any(k.startswith("audio_decoder.") for k in copied)


def test_augment_mixes_with_tag_union_and_band_limits():
    rng = np.random.default_rng(0)
    x = rng.random((16, 96, 96), dtype=np.float32)
    t = (rng.random((16, 10)) < 0.2).astype(np.float32)
    centres = mel_band_centres(None)
    assert centres.shape == (96,) and 3000 < centres[60] < 5000 < centres[-1] < 11025
    same = augment(x, t, {}, np.random.default_rng(1), centres)
    assert same[0] is x and same[1] is t

    xm, tm = augment(x, t, {"mix_p": 1.0}, np.random.default_rng(1), centres)
    assert (xm >= x).all() and (tm >= t).all() and not np.array_equal(xm, x)
    for i in range(16):  # each sample became the max of itself and one other sample, tags the union
        partners = [j for j in range(16) if j != i and np.array_equal(xm[i], np.maximum(x[i], x[j]))]
        assert partners and np.array_equal(tm[i], np.maximum(t[i], t[partners[0]]))

    xb, tb = augment(x, t, {"bandlimit_p": 1.0}, np.random.default_rng(1), centres)
    assert np.array_equal(tb, t) and np.array_equal(xb[:, centres < 3400], x[:, centres < 3400])
    assert (xb[:, centres > 8000] == 0).all()
    again = augment(x, t, {"mix_p": 0.5, "bandlimit_p": 0.5}, np.random.default_rng(1), centres)
    assert np.array_equal(again[0], augment(x, t, {"mix_p": 0.5, "bandlimit_p": 0.5}, np.random.default_rng(1), centres)[0])


def _structured_patches(n, seed=0):
    """Patches unlike each other: each a random smooth band profile times a random time envelope."""
    rng = np.random.default_rng(seed)
    bands = np.cumsum(rng.standard_normal((n, 96)), axis=1)
    frames = np.cumsum(rng.standard_normal((n, 96)), axis=1)
    x = bands[:, :, None] + frames[:, None, :]
    x -= x.min(axis=(1, 2), keepdims=True)
    return (x / x.max(axis=(1, 2), keepdims=True)).astype(np.float32)


def test_audio_view_is_a_masked_regained_copy():
    x = _structured_patches(8)
    x[:, :10] = 0.0  # silent bands stay silent under any gain
    ranges = band_ranges(None, 96)
    v = audio_view(x, {}, np.random.default_rng(0), ranges)
    assert v.shape == x.shape and v.dtype == np.float32 and (v >= 0).all() and (v[:, :10] == 0).all()
    assert not np.array_equal(v, x) and np.array_equal(v, audio_view(x, {}, np.random.default_rng(0), ranges))
    kept = v > 0  # outside the masks, the view is the patch shifted by one gain per patch (ln(g) / 17 <= 0.041)
    shift = [np.median((v[i] - x[i])[kept[i]]) for i in range(8)]
    assert max(abs(s) for s in shift) <= 0.041 and len(set(np.round(shift, 5))) > 1
    np.testing.assert_allclose((v - x)[kept], np.concatenate([np.full(kept[i].sum(), shift[i]) for i in range(8)]), atol=1e-3)
    mixed = audio_view(x, {"view_mix_p": 1.0}, np.random.default_rng(0), ranges)
    for i in range(8):  # each view is (gain and masks aside) the maximum of its patch and another one
        kept = mixed[i] > 0
        error = [np.abs(mixed[i] - np.maximum(x[i], x[j]))[kept].max() for j in range(8) if j != i]
        assert min(error) < 0.045 and np.abs(mixed[i] - x[i])[kept].max() > 0.1
    fe = {"scaler_min": [-16.0] * 96, "scaler_max": [4.0] * 96}
    assert np.allclose(band_ranges(fe, 96), 20.0)


def test_audio_audio_term_is_off_by_default_and_aligns_views_when_on():
    torch.manual_seed(0)
    net = COALA(ModelConfig(variant="e-c", n_tags=6))
    patches = _structured_patches(16)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(patches).unsqueeze(1)
    t = torch.from_numpy((rng.random((16, 6)) < 0.3).astype(np.float32))
    view = lambda: torch.from_numpy(audio_view(patches, {}, rng, band_ranges(None, 96))).unsqueeze(1)
    # off (the shipped configs): no term, the same loss whether a view is given or not, no views drawn
    cfg = _config(variant="e-c")
    assert cfg["lambda_audio_audio"] == 0.0 and train.views_to_input(patches, cfg, rng, None, "cpu") is None
    net.eval()
    with torch.no_grad():
        plain, with_view = coala_losses(net, x, t, cfg), coala_losses(net, x, t, cfg, view())
    assert "audio_audio" not in with_view and float(with_view["total"]) == float(plain["total"])
    # on: lower for two views of the same patches than for views of other patches, and lowered by training
    on = {**cfg, "lambda_audio_audio": 1.0}
    with torch.no_grad():
        v = view()
        aligned = float(coala_losses(net, x, t, on, v)["audio_audio"])
        shuffled = float(coala_losses(net, x, t, on, v.roll(1, 0))["audio_audio"])
        assert float(coala_losses(net, x, t, on, v)["total"]) == pytest.approx(float(plain["total"]) + aligned, rel=1e-5)
    assert aligned < shuffled
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    with torch.no_grad():
        before = float(coala_losses(net.eval(), x, t, on, v)["audio_audio"])
    for _ in range(15):
        loss = coala_losses(net.train(), x, t, on, view())["audio_audio"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(coala_losses(net.eval(), x, t, on, v)["audio_audio"])
    assert after < before


def test_training_with_the_audio_audio_term_logs_it(prepared, tmp_path):
    summary = train.train(_config(variant="e-c", epochs=1, lambda_audio_audio=1.0, view_mix_p=0.5), tmp_path / "aa", data=prepared)
    assert np.isfinite(summary["final"]["train_audio_audio"]) and np.isfinite(summary["final"]["val_audio_audio"])


def test_training_with_augmentation(prepared, tmp_path):
    summary = train.train(_config(epochs=1, mix_p=0.5, bandlimit_p=0.5), tmp_path / "aug", data=prepared)
    assert np.isfinite(summary["final"]["train_total"])


@pytest.mark.parametrize("variant", ["e-c", "cnn"])
def test_ablation_variants_train(prepared, tmp_path, variant):
    summary = train.train(_config(variant=variant, epochs=1, bf16=False, channels_last=False), tmp_path / variant, data=prepared)
    assert np.isfinite(summary["final"]["train_total"])


_HEAP = """
import ctypes, sys, torch
from training.trainer.machine import heap_for_large_blocks

class Mallinfo2(ctypes.Structure):  # glibc's own accounting of its heap and of its mmap-ed blocks
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
assert heap_for_large_blocks(sys.argv[1] == "heap")
before = libc.mallinfo2()
block = torch.empty(25_000_000).fill_(1.0)  # 100 MB, an activation of a training step
mapped = libc.mallinfo2().hblkhd - before.hblkhd
del block
kept = libc.mallinfo2().fordblks - before.fordblks  # freed bytes glibc holds for the next malloc
print(mapped, kept)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_heap_for_large_blocks_keeps_freed_activations_for_the_next_step():
    # glibc's counters, not the kernel's page faults: how a sandbox or VM counts faults differs between
    # machines (24,414 faults per 100 MB on CI's with the heap kept, ~0 here); the time it saves is
    # measured by training/benchmark_train.py
    def mapped_and_kept(mode):  # a fresh process each: the setting and the heap it keeps are process-wide
        out = subprocess.run([sys.executable, "-c", _HEAP, mode], cwd=REPO, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, out.stderr[-2000:]
        return [int(v) for v in out.stdout.split()]

    mapped, kept = mapped_and_kept("glibc")
    assert mapped >= 100_000_000 and kept < 1_000_000  # its own mapping, unmapped when freed
    mapped, kept = mapped_and_kept("heap")
    # from the heap, and kept there once freed; what the process allocates between the free and the count
    # may take a few KB of it (99,961,568 bytes kept in a fresh CI environment, 100,000,000+ in another)
    assert mapped == 0 and kept >= 99_000_000


def test_published_hdf5_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    for name, n in (("spec_tags_top_1000", 24), ("spec_tags_top_1000_val", 8)):
        with h5py.File(tmp_path / name, "w") as f:
            g = f.create_group("dataset")
            g["data"] = rng.random((n, 96, 96), dtype=np.float32)
            g["label"] = (rng.random((n, 1000)) < 0.01).astype(np.int16)
            g["id"] = np.arange(n, dtype=np.int32)[:, None]
    (tmp_path / "tags.json").write_text(json.dumps({str(i): f"tag{i}" for i in range(1000)}))
    data = load_hdf5(tmp_path / "spec_tags_top_1000")
    x, t = data.batch(np.array([5, 1, 3]))
    assert x.shape == (3, 96, 96) and t.shape == (3, 1000) and x.dtype == np.float32
    assert load_hdf5_vocabulary(tmp_path / "tags.json")[7] == "tag7"
    files = [str(tmp_path / n) for n in ("spec_tags_top_1000", "spec_tags_top_1000_val", "tags.json")]
    summary = train.train(_config(epochs=1), tmp_path / "run", hdf5=files)
    assert summary["epochs"] == 1


def _free_port() -> int:
    # a fixed port fails when another job on the machine holds it; the kernel picks one that is free
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_two_gloo_processes(prepared, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "training.train", "--data", str(prepared), "--out", str(run),
           "--set", "epochs=1", "batch_size=4", "device=\"cpu\"", "num_threads=1", "png_every=0"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert row["epoch"] == 1 and np.isfinite(row["train_total"])


def test_pack_round_trip_in_parts_within_half_a_step(prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(pack, "BLOCK_BYTES", 20_000)  # several blocks and parts from a tiny folder
    info = pack.pack(prepared, tmp_path / "packed", part_mib=30_000 / 2**20, workers=1)
    assert info["parts"] > 1 and sorted(p.name for p in (tmp_path / "packed").iterdir())[0] == "part-000"
    pack.unpack(tmp_path / "packed", tmp_path / "out", workers=1)
    for split in ("train", "val"):
        original, packed = load_prepared(prepared, split), load_prepared(tmp_path / "out", split)
        x, y = np.asarray(original.patches), np.asarray(packed.patches)
        step = (x.max() - x.min()) / pack.LEVELS
        assert y.dtype == np.float32 and y.shape == x.shape
        assert np.abs(y - x).max() <= step / 2 + 1e-6
        np.testing.assert_array_equal(packed.tags, original.tags)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["packed_uint8"] and meta["tags"] == json.loads((prepared / "meta.json").read_text())["tags"]
    # the unpacked folder trains like the original
    assert train.train(_config(epochs=1, png_every=0), tmp_path / "run", data=tmp_path / "out")["epochs"] == 1
    last = sorted((tmp_path / "packed").iterdir())[-1]
    shutil.rmtree(last)
    with pytest.raises(FileNotFoundError, match="blocks missing"):
        pack.unpack(tmp_path / "packed", tmp_path / "again", workers=1)


def test_device_train_probes_plans_trains_and_exports_side_by_side(prepared, tmp_path):
    from training.scripts import device_train

    pack.pack(prepared, tmp_path / "packed", workers=1)
    device_train.main(["--packed", str(tmp_path / "packed"), "--work", str(tmp_path / "work"), "--budget-s", "3",
                       "--probe-batches", "2", "--threads", "1",
                       "--run", "ec", "variant=e-c batch_size=8 device=cpu",
                       "--run", "aec", "variant=ae-c batch_size=8 device=cpu mix_p=0.25"])
    plan = json.loads((tmp_path / "work" / "export" / "plan.json").read_text())
    for name, variant in (("ec", "e-c"), ("aec", "ae-c")):
        assert plan[name]["patches_per_s_probe"] > 0 and plan[name]["exit"] == 0
        assert plan[name]["final"]["epoch"] == plan[name]["epochs"] >= 1
        model = coala_embed.load_model(tmp_path / "work" / "export" / name, device="cpu")
        assert model.net.cfg.variant == variant
        with tarfile.open(tmp_path / "work" / "export" / f"{name}.tar") as tar:
            assert {f"{name}/model.safetensors", f"{name}/config.json", f"{name}/log.jsonl"} <= set(tar.getnames())


def test_device_train_fixed_epochs_skips_the_probe(prepared, tmp_path):
    from training.scripts import device_train

    pack.pack(prepared, tmp_path / "packed", workers=1)
    device_train.main(["--packed", str(tmp_path / "packed"), "--work", str(tmp_path / "work"), "--budget-s", "3",
                       "--stop-s", "300", "--epochs", "2", "--threads", "1",
                       "--run", "s1", "variant=e-c batch_size=8 device=cpu seed=1"])
    plan = json.loads((tmp_path / "work" / "export" / "plan.json").read_text())
    assert not (tmp_path / "work" / "probe").exists() and "patches_per_s_probe" not in plan["s1"]
    assert plan["s1"]["exit"] == 0 and plan["s1"]["epochs"] == plan["s1"]["final"]["epoch"] == 2


def test_vocabulary_lists_the_training_tag_sets(prepared, tmp_path):
    """training.vocabulary --data: the distinct tag sets of the prepared training patches, written one per
    line and read back by the package; a prepared folder of other tags is refused."""
    from coala_embed.vocabulary import Vocabulary
    from training import vocabulary

    meta = json.loads((prepared / "meta.json").read_text())
    tags = meta["tags"]
    sets = vocabulary.training_tag_sets(prepared, tags)
    rows = {tuple(np.flatnonzero(r)) for r in np.load(prepared / "train_tags.npy") if r.any()}
    assert sorted(map(tuple, sets)) == sorted(rows) and len(sets) == len(rows) > 1
    voc = {"format": "coala-embed-vocabulary", "format_version": 1, "licences": {}, "sound_tags": {"Music": tags[:1]},
           "other_tags": tags[1:], "words": {"sine": tags[:1]}, "tag_sets": sets}
    (tmp_path / "config.json").write_text(json.dumps({"tags": tags}))
    path = vocabulary.write(tmp_path, voc)
    assert Vocabulary.read(path, tags).tag_sets == sets
    assert json.loads((tmp_path / "config.json").read_text())["vocabulary_sha256"]
    with pytest.raises(ValueError, match="not the checkpoint's"):
        vocabulary.training_tag_sets(prepared, tags[::-1])


def test_soup_averages_fine_tunes_and_refuses_other_starts(tmp_path):
    """training.soup: every tensor of the soup is the mean of its ingredients', the front end, tags and
    licence are kept, each ingredient is named in the provenance; a checkpoint with another front end
    (e.g. another corpus's scaler) is refused, naming it."""
    from conftest import make_checkpoint

    from coala_embed.checkpoint import save_checkpoint
    from training.trainer import soup

    a = coala_embed.load_model(make_checkpoint(tmp_path / "a", seed=0, n_filters=8), device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():  # a "fine-tune" of a: same network, front end and tags, other weights
        for t in a.net.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn_like(t))
    save_checkpoint(tmp_path / "b", a.net, a.frontend, a.tags)
    a, b = (coala_embed.load_model(tmp_path / n, device="cpu") for n in "ab")
    soup.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "soup")])
    s = coala_embed.load_model(tmp_path / "soup", device="cpu")
    sa, sb, ss = a.net.state_dict(), b.net.state_dict(), s.net.state_dict()
    for k in sa:
        if sa[k].is_floating_point():
            torch.testing.assert_close(ss[k], (sa[k] + sb[k]) / 2)
    assert s.frontend == a.frontend and s.tags == a.tags and s.config["licence"]["spdx"] == "NOASSERTION"
    assert [i["weights_sha256"] for i in s.config["provenance"]["ingredients"]] == [a.sha256, b.sha256]
    y = np.random.default_rng(0).uniform(-0.3, 0.3, 22000 * 3).astype(np.float32)
    assert coala_embed.get_embedding(y, 22000, model=s).shape == (a.embedding_size,)
    # its encoder.onnx is written beside the weights (backend="onnx" needs no export on first use)
    assert (tmp_path / "soup" / s.config["onnx_file"]).exists() and len(s.config["onnx_sha256"]) == 64
    onnx_model = coala_embed.load_model(tmp_path / "soup", device="cpu", backend="onnx")
    np.testing.assert_allclose(coala_embed.get_embedding(y, 22000, model=onnx_model, backend="onnx"),
                               coala_embed.get_embedding(y, 22000, model=s), rtol=1e-5, atol=1e-4)

    assert "vocabulary_file" not in s.config  # the ingredients carried none

    # ingredients carrying the same vocabulary.json pass it on; differing ones pass none
    from coala_embed.checkpoint import sha256_file
    from training.vocabulary import copy_into
    vocab = {"format": "coala-embed-vocabulary", "format_version": 1, "licences": {},
             "sound_tags": {"Music": a.tags[:1]}, "other_tags": a.tags[1:], "words": {"sine": a.tags[:1]}}
    (tmp_path / "vocabulary.json").write_text(json.dumps(vocab))
    for n in "ab":
        copy_into(tmp_path / n, tmp_path / "vocabulary.json")
    soup.soup([tmp_path / "a", tmp_path / "b"], tmp_path / "soup-v")
    sv = coala_embed.load_model(tmp_path / "soup-v", device="cpu")
    assert sv.vocabulary.resolve("sine") == a.tags[:1]
    assert sv.config["vocabulary_sha256"] == sha256_file(tmp_path / "a" / "vocabulary.json")
    assert sv.vocabulary.sound_tags == a.tags[:1]
    (tmp_path / "vocabulary.json").write_text(json.dumps(dict(vocab, words={"hum": a.tags[:1]})))
    copy_into(tmp_path / "b", tmp_path / "vocabulary.json")
    soup.soup([tmp_path / "a", tmp_path / "b"], tmp_path / "soup-x")
    assert "vocabulary_file" not in json.loads((tmp_path / "soup-x" / "config.json").read_text())

    make_checkpoint(tmp_path / "c", seed=2, n_filters=8)  # another scaler
    with pytest.raises(ValueError, match="c: its front end differs"):
        soup.soup([tmp_path / "a", tmp_path / "c"], tmp_path / "bad")
    with pytest.raises(ValueError, match="at least two"):
        soup.soup([tmp_path / "a"], tmp_path / "bad")
    with pytest.raises(ValueError, match="other tensors or shapes"):
        soup.average_states([sa, {k: v for k, v in sa.items() if "running" not in k}])


def test_warm_start_copies_tag_weights_by_tag_when_the_vocabulary_differs(tmp_path):
    """Same-sized vocabularies of other words must not share weights by position: each tag the two
    vocabularies share keeps its own column and rows, a new tag keeps its fresh initialisation."""
    from conftest import make_checkpoint

    folder = make_checkpoint(tmp_path / "ckpt", seed=3, variant="e-c")
    model = coala_embed.load_model(folder, device="cpu")
    source, old_tags = model.net.state_dict(), list(model.tags)
    new_tags = [old_tags[5], "brand-new", old_tags[0]] + [f"other{i}" for i in range(len(old_tags) - 3)]
    torch.manual_seed(0)
    net = network.build_net(_config(variant="ae-c"), n_tags=len(new_tags))
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    network.warm_start(net, str(folder), new_tags)
    state = net.state_dict()
    w, w_old = state["tag_encoder.net.0.weight"], source["tag_encoder.net.0.weight"]
    torch.testing.assert_close(w[:, 0], w_old[:, 5], rtol=0, atol=0)
    torch.testing.assert_close(w[:, 2], w_old[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(w[:, 1], fresh["tag_encoder.net.0.weight"][:, 1], rtol=0, atol=0)
    cnn = make_checkpoint(tmp_path / "cnn", seed=4, variant="cnn")
    cnn_source = coala_embed.load_model(cnn, device="cpu").net.state_dict()
    cnn_net = network.build_net(_config(variant="cnn"), n_tags=len(new_tags))
    cnn_fresh = {k: v.clone() for k, v in cnn_net.state_dict().items()}
    network.warm_start(cnn_net, str(cnn), new_tags)
    out_rows = [k for k, v in cnn_source.items() if k.startswith("classifier.") and v.dim() and v.shape[0] == len(old_tags)]
    assert out_rows
    for k in out_rows:
        torch.testing.assert_close(cnn_net.state_dict()[k][0], cnn_source[k][5], rtol=0, atol=0, msg=k)
        torch.testing.assert_close(cnn_net.state_dict()[k][1], cnn_fresh[k][1], rtol=0, atol=0, msg=k)
    torch.testing.assert_close(state["tag_encoder.net.4.weight"], source["tag_encoder.net.4.weight"], rtol=0, atol=0)
    # the same vocabulary: copied whole, as before
    net2 = network.build_net(_config(variant="ae-c"), n_tags=len(old_tags))
    network.warm_start(net2, str(folder), old_tags)
    torch.testing.assert_close(net2.state_dict()["tag_encoder.net.0.weight"], w_old, rtol=0, atol=0)


def test_epoch_order_caps_speech_and_keeps_the_rest():
    from training.trainer.data import epoch_order

    capped = np.zeros(1000, bool)
    capped[:600] = True  # 60 % speech, as in the corpus
    plain = epoch_order(1000, capped, 0.0, np.random.default_rng(7))
    np.testing.assert_array_equal(plain, np.random.default_rng(7).permutation(1000))  # off: as before
    orders = [epoch_order(1000, capped, 1 / 3, np.random.default_rng(s)) for s in (1, 2)]
    for order in orders:
        assert len(set(order.tolist())) == len(order)  # no repeats
        assert set(range(600, 1000)) <= set(order.tolist())  # every non-speech patch, every epoch
        assert abs(capped[order].mean() - 1 / 3) < 0.01
    assert set(orders[0].tolist()) != set(orders[1].tolist())  # a fresh speech subset each epoch
    with pytest.raises(ValueError, match="speech_share"):
        epoch_order(10, capped[:10], 1.5, np.random.default_rng(0))


def test_narrow_targets_keep_what_a_spoken_word_or_a_rendered_note_is(tmp_path):
    from training.corpus.ontology import Ontology
    from training.scripts.narrow_targets import keep_mask, write_narrow_targets

    entries = [("/m/human", "Human sounds", ["/m/voice", "/m/resp"]), ("/m/voice", "Human voice", ["/m/speech"]),
               ("/m/speech", "Speech", []), ("/m/resp", "Respiratory sounds", ["/m/breath"]),
               ("/m/breath", "Breathing", []), ("/m/animal", "Animal", ["/m/pets"]),
               ("/m/pets", "Domestic animals, pets", ["/m/dog"]), ("/m/dog", "Dog", []),
               ("/m/music", "Music", ["/m/inst"]), ("/m/inst", "Musical instrument", ["/m/sax"]),
               ("/m/sax", "Saxophone", []), ("/m/things", "Sounds of things", ["/m/pipe"]), ("/m/pipe", "Pipe", [])]
    path = tmp_path / "ontology.json"
    path.write_text(json.dumps([{"id": i, "name": n, "child_ids": c} for i, n, c in entries]))
    tags = ["speech", "word", "dog", "domestic animals, pets", "animal", "human voice", "human sounds", "seven",
            "note", "instrument", "saxophone", "musical instrument", "music", "breathing", "respiratory sounds",
            "pipe", "sounds of things"]
    ontology = Ontology(path)
    ontology.wordnet = type("NoWordNet", (), {"synsets": lambda self, *a: []})()  # wordnet-base: no test dependency
    words, notes = keep_mask("spoken-words", tags, ontology), keep_mask("rendered-notes", tags, ontology)
    assert [t for t, k in zip(tags, words) if not k] == [
        "dog", "domestic animals, pets", "animal", "note", "instrument", "saxophone", "musical instrument", "music",
        "breathing", "respiratory sounds", "pipe", "sounds of things"]
    assert [t for t, k in zip(tags, notes) if not k] == [  # pipe stays: General MIDI's family of flutes
        "speech", "dog", "domestic animals, pets", "animal", "human voice", "human sounds", "breathing",
        "respiratory sounds", "sounds of things"]

    def rows(*sets):
        return np.array([[t in s for t in tags] for s in sets], np.uint8)
    voice = {"speech", "human voice", "human sounds"}
    said_dog = voice | {"word", "dog", "domestic animals, pets", "animal"}
    bark = {"dog", "domestic animals, pets", "animal"}
    said_seven = voice | {"word", "seven"}
    sax = {"note", "instrument", "saxophone", "musical instrument", "music", "pipe"}
    sax_breath = sax | {"breathing", "respiratory sounds", "human sounds", "sounds of things"}
    breath = {"breathing", "respiratory sounds", "human sounds"}
    data = tmp_path / "prepared"
    data.mkdir()
    for split in ("train", "val"):
        np.save(data / f"{split}_tags.npy", rows(said_dog, bark, said_seven, sax_breath, breath))
        np.save(data / f"{split}_patches.npy", np.random.default_rng(0).random((5, 96, 96), np.float32))
    counts = write_narrow_targets(data, tmp_path / "narrow", tags, {"spoken-words": words, "rendered-notes": notes})
    assert counts["train"] == {"spoken-words": {"patches": 2, "tags_removed": 3},
                               "rendered-notes": {"patches": 1, "tags_removed": 4}}
    out = load_prepared(tmp_path / "narrow", "train")
    assert np.array_equal(np.asarray(out.tags), rows(voice | {"word"}, bark, said_seven, sax, breath))
    assert np.array_equal(out.patches, np.load(data / "train_patches.npy"))
