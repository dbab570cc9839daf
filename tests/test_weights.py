"""The weights shipped in weights/: they load offline, verify, carry their front end and provenance,
and give sensible, deterministic embeddings and tags."""
import json

import numpy as np
import pytest

import coala_embed
from coala_embed import audio
from coala_embed.checkpoint import bundled_weights_dir, sha256_file


@pytest.fixture(scope="module")
def model():
    return coala_embed.load_model(device="cpu")


def test_bundled_checkpoint_verifies_and_has_the_reference_front_end(model):
    folder = bundled_weights_dir()
    config = json.loads((folder / "config.json").read_text())
    assert sha256_file(folder / "model.safetensors") == config["weights_sha256"] == model.sha256
    fe = model.frontend
    assert (fe.sample_rate, fe.n_fft, fe.hop_length, fe.n_mels, fe.patch_frames) == (22000, 1024, 512, 96, 96)
    assert fe.power == 1.0 and fe.window == "hann" and fe.log_eps == audio.LOG_EPS
    lo, hi = np.array(fe.scaler_min), np.array(fe.scaler_max)
    assert lo.shape == (96,) and np.all(hi > lo) and np.isfinite(lo).all()
    assert model.net.has_tag_space and model.embedding_size == 1920 and model.net.cfg.latent_size == 1152
    assert len(model.tags) == model.net.cfg.n_tags == len(set(model.tags))


def test_provenance_names_the_corpus_the_training_runs_and_the_evaluation(model):
    prov = model.config["provenance"]
    assert len(prov["corpus_manifest_sha256"]) == 64
    runs = prov.get("ingredients", [prov])  # a soup (training/soup.py) lists every run averaged into it
    for run in runs:
        assert run["training_config"]["variant"] == model.net.cfg.variant
        assert run["epochs_trained"] >= 1 and run["training_seconds"] > 0
        assert run["corpus_manifest_sha256"] == prov["corpus_manifest_sha256"]
    assert "esc50-dev" in prov["evaluation"]["accuracy"]


def test_bundled_embeddings_are_deterministic_and_not_collapsed(model):
    sr = 22050
    t = np.arange(3 * sr) / sr
    rng = np.random.default_rng(0)
    clips = [0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 3000 * t), 0.1 * rng.standard_normal(len(t))]
    a = np.stack(coala_embed.get_embedding(clips, sr, model=model))
    b = np.stack(coala_embed.get_embedding(clips, sr, model=model, batch_size=1))
    assert np.abs(a - b).max() < 1e-5
    assert np.isfinite(a).all() and (a > 0).mean() > 0.01
    cos = a @ a.T / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(a, axis=1))
    assert cos[0, 2] < 0.999 and cos[1, 2] < 0.999  # a tone and noise do not map to the same vector


def test_bundled_zero_shot_tags_come_from_the_vocabulary(model):
    sr = 22050
    y = 0.1 * np.random.default_rng(1).standard_normal(2 * sr)
    tags = coala_embed.predict_tags(y, sr, top_k=5, model=model)
    assert len(tags) == 5 and all(t in model.vocabulary.sound_tags for t, _ in tags)
    scores = [s for _, s in tags]
    assert scores == sorted(scores, reverse=True) and np.isfinite(scores).all()
    assert model.tag_head.tags == model.vocabulary.sound_tags  # ranked by the head (tests/test_tag_head.py)
    head = model.config["tag_head"]["provenance"]
    assert head["weights_sha256"] == model.sha256 and head["corpus_manifest_sha256"]


def test_licence_travels_with_the_weights(model):
    """The shipped config says what an export writes now, and the weights' README lists every source of
    the corpus they were trained on as training/sources.csv records it (corpus v4), held-out ones marked;
    sources.csv's newer rows are decisions recorded in SOURCES.md."""
    import csv
    import re

    from training.trainer.export import WEIGHTS_LICENCE

    assert model.config["licence"] == WEIGHTS_LICENCE and WEIGHTS_LICENCE["spdx"] == "NOASSERTION"
    folder = bundled_weights_dir()
    readme = (folder / "README.md").read_text()
    rows = re.findall(r"^\| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", readme, flags=re.M)[1:]  # after the header row
    assert len(rows) >= 50
    listed = " ".join(r[2] for r in rows)
    for licence in ("GPL-2", "GPL-2+", "GPL-3+", "AGPL-3.0", "LGPL-2.1+", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "ODbL-1.0"):
        assert licence in listed and licence in WEIGHTS_LICENCE["summary"]
    sources = folder.parent / "training" / "sources.csv"
    if not sources.exists():
        pytest.skip("not a source checkout")
    recorded = {r["package"]: r for r in csv.DictReader(sources.open(newline=""))}
    # sources.csv may run ahead of the shipped weights (sources added for the next corpus); each such
    # row must be a recorded decision in training/SOURCES.md, and every source of the weights a row
    newer = set(recorded) - {r[0] for r in rows}
    assert {r[0] for r in rows} <= set(recorded)
    decisions = (sources.parent / "SOURCES.md").read_text()
    assert all(package.split("/")[-1] in decisions for package in newer), newer
    for package, version, licences, kind in rows:
        assert recorded[package]["version"] == version
        assert recorded[package]["licence"].replace(" | ", ", ") == licences
        assert ("held out" in kind) == (recorded[package]["role"] == "heldout")
