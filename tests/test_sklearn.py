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
    assert params == {"model": str(small_ckpt_dir), "sr": 16000, "hop_size": 0.5, "batch_size": 8, "device": "cpu",
                      "backend": "torch", "precision": "fp32"}
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert not hasattr(twin, "embedding_size_")
    est.set_params(batch_size=4)
    assert est.batch_size == 4
    CoalaEmbedder(model="/does/not/exist")  # no work in __init__


def test_transform_arrays_and_paths(small_ckpt_dir, tmp_path):
    est = CoalaEmbedder(model=str(small_ckpt_dir), sr=16000, device="cpu").fit()
    assert est.embedding_size_ == 120
    a, b = tone(1.0, 16000), tone(2.0, 16000, 1000)
    out = est.transform([a, b])
    assert out.shape == (2, 120) and out.dtype == np.float32
    np.testing.assert_allclose(out[1], get_embedding(b, 16000, model=est._model()), atol=1e-5)
    # a 2-d array: one equal-length clip per row
    np.testing.assert_allclose(est.transform(np.stack([a, a])), np.stack([out[0], out[0]]), atol=1e-5)
    # file paths (their own rate) and arrays mixed
    p = write_wav(tmp_path / "x.wav", 2.0, 16000, freq=1000, subtype="FLOAT")
    mixed = est.transform([str(p), a])
    np.testing.assert_allclose(mixed[0], out[1], atol=1e-5)
    assert len(est.get_feature_names_out()) == 120


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


# scikit-learn's checks that do not apply to an audio transformer, and why. Every other check must pass,
# and each of these must still fail (so that the list stays true).
NOT_APPLICABLE = {
    # A clip may have any number of samples: the width of a 2-d X is the clips' length, not a fixed
    # number of features, so there is no n_features_in_ to record in fit or to enforce in transform.
    "check_n_features_in": "clip length is not a feature count",
    "check_n_features_in_after_fitting": "clip length is not a feature count",
}


def _run_estimator_checks(est) -> dict:
    """check name -> 'passed', 'skipped' or 'failed: ...' (failed if any variant of the check failed)."""
    from sklearn.utils.estimator_checks import check_estimator

    outcome = {}

    def record(name, status):
        if not outcome.get(name, "").startswith("failed"):
            outcome[name] = status

    try:  # scikit-learn >= 1.6
        results = check_estimator(est, on_fail=None)
        for r in results:
            record(r["check_name"], r["status"] if r["status"] != "failed" else f"failed: {r['exception']!r}")
    except TypeError:  # older versions: generate the checks and run them here
        from unittest import SkipTest

        for e, check in check_estimator(est, generate_only=True):
            name = getattr(check, "func", check).__name__
            try:
                check(e)
                record(name, "passed")
            except SkipTest:
                record(name, "skipped")
            except Exception as x:
                record(name, f"failed: {x!r}")
    return outcome


def test_scikit_learn_estimator_checks(small_ckpt_dir):
    outcome = _run_estimator_checks(CoalaEmbedder(model=str(small_ckpt_dir), sr=16000, device="cpu"))
    assert sum(s == "passed" for s in outcome.values()) >= 40  # the 2-d input tag lets the checks run
    failed = {n: s for n, s in outcome.items() if s.startswith("failed") and n not in NOT_APPLICABLE}
    assert not failed
    assert all(outcome[n].startswith("failed") for n in NOT_APPLICABLE if n in outcome)


def test_tags_say_what_the_transformer_does(small_ckpt_dir):
    from sklearn.utils import get_tags

    est = CoalaEmbedder(model=str(small_ckpt_dir), sr=16000, device="cpu")
    tags = get_tags(est)
    assert not tags.requires_fit and tags.input_tags.two_d_array and tags.input_tags.string
    assert not tags.input_tags.sparse and tags.transformer_tags.preserves_dtype == ["float32"]
    assert est._more_tags()["X_types"] == ["2darray", "string"]  # the same for scikit-learn < 1.6
    X = np.stack([tone(0.5, 16000), tone(0.5, 16000, 900)])
    for dtype in (np.float32, np.float64, np.int16):
        x = (X * 20000).astype(dtype) if dtype == np.int16 else X.astype(dtype)
        assert est.transform(x).dtype == np.float32  # only float32 is preserved, as the tag says


def test_array_likes_object_arrays_and_sparse(small_ckpt_dir):
    import scipy.sparse

    class _NotAnArray:  # as scikit-learn's checks build it: an array-like with only __array__
        def __init__(self, data):
            self.data = np.asarray(data)

        def __array__(self, dtype=None, copy=None):
            return self.data

    est = CoalaEmbedder(model=str(small_ckpt_dir), sr=16000, device="cpu").fit()
    X = np.stack([tone(0.5, 16000), tone(0.5, 16000, 900)]).astype(np.float64)
    expected = est.transform(X)
    np.testing.assert_array_equal(est.transform(_NotAnArray(X)), expected)
    np.testing.assert_array_equal(est.transform(X.astype(object)), expected)
    with pytest.raises(TypeError, match="sparse matrix, and audio clips must be dense"):
        est.fit(scipy.sparse.csr_matrix(X))
    with pytest.raises(TypeError, match="sparse"):
        est.transform(scipy.sparse.csr_array(X))
    with pytest.raises(ValueError, match="NaN"):
        est.fit(np.where(np.arange(X.shape[1]) == 3, np.nan, X))
    with pytest.raises(ValueError, match="no clips"):
        est.fit([])
