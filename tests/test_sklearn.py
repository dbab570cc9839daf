"""The scikit-learn transformer."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from coala_embed import AudioError, get_embedding  # noqa: E402
from coala_embed.sklearn import CoalaEmbedder  # noqa: E402

from conftest import tone, write_wav  # noqa: E402


@pytest.fixture(scope="module")
def dataset(small_ckpt_dir):
    """Low tones vs high tones, as arrays at 16 kHz."""
    freqs = [150, 200, 250, 300, 350, 400, 2500, 3000, 3500, 4000, 4500, 5000]
    X = [tone(0.6, 16000, f, seed=i) for i, f in enumerate(freqs)]
    y = np.array([0] * 6 + [1] * 6)
    return X, y


def test_params_and_clone(small_ckpt_dir):
    est = CoalaEmbedder(model=str(small_ckpt_dir), sr=16000, hop_size=0.5, batch_size=8, device="cpu")
    params = est.get_params()
    assert params == {"model": str(small_ckpt_dir), "sr": 16000, "hop_size": 0.5, "batch_size": 8, "device": "cpu"}
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert not hasattr(twin, "embedding_size_")
    est.set_params(batch_size=4)
    assert est.batch_size == 4
    CoalaEmbedder(model="/does/not/exist")  # no work in __init__


def test_transform_arrays_and_paths(small_ckpt_dir, tmp_path):
    est = CoalaEmbedder(model=str(small_ckpt_dir), sr=16000, device="cpu").fit()
    assert est.embedding_size_ == 72
    a, b = tone(1.0, 16000), tone(2.0, 16000, 1000)
    out = est.transform([a, b])
    assert out.shape == (2, 72) and out.dtype == np.float32
    np.testing.assert_allclose(out[1], get_embedding(b, 16000, model=est._model()), atol=1e-5)
    # a 2-d array: one equal-length clip per row
    np.testing.assert_allclose(est.transform(np.stack([a, a])), np.stack([out[0], out[0]]), atol=1e-5)
    # file paths (their own rate) and arrays mixed
    p = write_wav(tmp_path / "x.wav", 2.0, 16000, freq=1000, subtype="FLOAT")
    mixed = est.transform([str(p), a])
    np.testing.assert_allclose(mixed[0], out[1], atol=1e-5)
    assert len(est.get_feature_names_out()) == 72


def test_errors(small_ckpt_dir, tmp_path):
    est = CoalaEmbedder(model=str(small_ckpt_dir), device="cpu")
    with pytest.raises(ValueError, match="sample rate"):
        est.transform([tone(1.0, 16000)])
    with pytest.raises(AudioError, match="missing.wav"):
        est.transform([str(tmp_path / "missing.wav")])
    with pytest.raises(TypeError, match="single path"):
        est.transform(str(tmp_path / "a.wav"))


def test_pipeline_and_cross_val_score(small_ckpt_dir, dataset):
    X, y = dataset
    pipe = make_pipeline(CoalaEmbedder(model=str(small_ckpt_dir), sr=16000, device="cpu"), StandardScaler(),
                         LogisticRegression(max_iter=500))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (12,)
    fitted = pickle.loads(pickle.dumps(pipe))  # the cached model is not part of the estimator
    np.testing.assert_array_equal(fitted.predict(X), pipe.predict(X))
