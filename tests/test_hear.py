"""The HEAR 2021 API adapter."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import coala_embed.hear as hear
from coala_embed import get_embedding

from conftest import tone


@pytest.fixture(scope="module")
def hear_model(ckpt_dir):
    return hear.load_model(str(ckpt_dir), device="cpu")


def test_attributes(hear_model):
    assert hear_model.sample_rate == 22050 and hear_model.sample_rate in (16000, 22050, 44100, 48000)
    assert hear_model.scene_embedding_size == 1920 and hear_model.timestamp_embedding_size == 1920
    assert isinstance(hear_model, torch.nn.Module)
    assert hear_model.timestamp_hop_seconds <= 0.05


def test_scene_embeddings(hear_model):
    audio = torch.from_numpy(np.stack([tone(2.0, 22050, 300), tone(2.0, 22050, 3000, seed=1)]))
    emb = hear.get_scene_embeddings(audio, hear_model)
    assert isinstance(emb, torch.Tensor) and emb.dtype == torch.float32 and emb.shape == (2, 1920)
    ref = get_embedding(audio[1].numpy(), 22050, model=hear_model.coala)
    np.testing.assert_allclose(emb[1].numpy(), ref, atol=1e-5)
    assert not torch.allclose(emb[0], emb[1])


def test_timestamp_embeddings(hear_model):
    seconds = 1.5
    audio = torch.from_numpy(np.stack([tone(seconds, 22050), tone(seconds, 22050, 880)]))
    emb, ts = hear.get_timestamp_embeddings(audio, hear_model)
    assert emb.dtype == torch.float32 and ts.dtype == torch.float32
    assert emb.ndim == 3 and emb.shape[0] == 2 and emb.shape[2] == 1920
    assert ts.shape == emb.shape[:2]
    hop_ms = hear_model.timestamp_hop_seconds * 1000
    assert ts[0, 0] == 0 and torch.allclose(ts[0], ts[1])
    np.testing.assert_allclose(np.diff(ts[0].numpy()), hop_ms, rtol=1e-4)
    assert ts[0, -1] <= seconds * 1000 + hop_ms and ts[0, -1] >= seconds * 1000 - hop_ms
    assert emb.shape[1] == pytest.approx(seconds * 1000 / hop_ms, abs=2)


def test_empty_batch_and_bad_shape(hear_model):
    emb = hear.get_scene_embeddings(torch.zeros((0, 22050)), hear_model)
    assert emb.shape == (0, 1920)
    with pytest.raises(ValueError, match="n_sounds, n_samples"):
        hear.get_scene_embeddings(torch.zeros(22050), hear_model)


def test_module_to_moves_the_network(hear_model):
    m = hear_model.to("cpu")
    assert m is hear_model and next(m.net.parameters()).device.type == "cpu"
    assert hear.get_scene_embeddings(torch.zeros((1, 1000)), m).device.type == "cpu"


def test_default_is_the_bundled_weights(monkeypatch, tmp_path):
    from coala_embed import CheckpointError
    from coala_embed import checkpoint as ckpt_module

    monkeypatch.setattr(ckpt_module, "bundled_weights_dir", lambda: tmp_path)
    with pytest.raises(CheckpointError, match="no weights are bundled"):
        hear.load_model()
