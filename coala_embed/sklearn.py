"""A scikit-learn transformer: audio files or arrays in, 1920-d COALA clip embeddings out.

    from sklearn.pipeline import make_pipeline
    from sklearn.linear_model import LogisticRegression
    from coala_embed.sklearn import CoalaEmbedder

    clf = make_pipeline(CoalaEmbedder(), LogisticRegression(max_iter=1000))
    clf.fit(train_paths, train_labels)          # a list of audio file paths
    clf.predict(test_paths)

Needs scikit-learn (`pip install "coala-embed[sklearn]"`). The transformer is stateless: `fit` only
loads the model. The model is loaded lazily and cached per (source, device) outside the estimator's
parameters, so `clone`, `get_params`, pickling and cross-validation copy only the small parameters.
"""
from __future__ import annotations

import os

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_array

from .audio import AudioError
from .checkpoint import Model
from .engine import array_job, clip_mean, embed_jobs, file_job, get_model
from .options import EmbedOptions


class CoalaEmbedder(TransformerMixin, BaseEstimator):
    """COALA clip embeddings (mean over 96-frame patches) of audio files or arrays.

    Args:
        model: None for the bundled weights; a checkpoint folder or file; a Hugging Face Hub id
            org/name[@revision]; or a `Model` from `coala_embed.load_model`.
        sr: sample rate in Hz of array inputs (8000-192000); not needed for file paths.
        hop_size: seconds between patch starts; default one patch (~2.23 s, non-overlapping).
        batch_size: patches per forward pass; results do not depend on it.
        device: torch device ('cpu', 'cuda', ...); default CUDA if available.
        backend, precision: what runs the encoder, as in `get_embedding` ('onnx' and 'int8': the fastest on CPUs).

    `transform(X)` takes a list (or 1-d object array) whose items are file paths or audio arrays of
    shape (n_samples,) or (n_samples, n_channels), or a 2-d numeric array of equal-length mono clips
    (one per row); it returns a float32 array (n_clips, 1920).
    """

    def __init__(self, model=None, sr=None, hop_size=None, batch_size=32, device=None, backend="torch",
                 precision="fp32"):
        self.model = model
        self.sr = sr
        self.hop_size = hop_size
        self.batch_size = batch_size
        self.device = device
        self.backend = backend
        self.precision = precision

    def _model(self) -> Model:
        return get_model(self.model, self.device, self.backend)

    def fit(self, X=None, y=None):
        """Check X's form if given (nothing is decoded, nothing is learnt), load the model; returns self."""
        if X is not None:
            self._items(X)
        self.embedding_size_ = self._model().embedding_size
        return self

    def _items(self, X) -> list:
        """The clips of X (paths or arrays); a numeric X is checked as scikit-learn checks arrays."""
        if isinstance(X, (str, os.PathLike)):
            raise TypeError("X must be a list of paths or arrays, not a single path; wrap it in a list")
        if sparse.issparse(X):
            raise TypeError("X is a sparse matrix, and audio clips must be dense: pass a list of paths or "
                            "arrays, or a dense 2-d (n_clips, n_samples) array (X.toarray())")
        if hasattr(X, "to_numpy"):  # a pandas Series or one-column DataFrame of paths
            X = X.to_numpy()
        elif not isinstance(X, (list, tuple)) and hasattr(X, "__array__"):
            X = np.asarray(X)  # any array-like, including those that only offer __array__
        if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 2:
            try:  # numbers stored as objects are numbers; otherwise one path (or clip) per row
                X = X.astype(np.float64)
            except (TypeError, ValueError):
                X = X.ravel() if X.shape[1] == 1 else X
        if isinstance(X, np.ndarray) and X.dtype.kind in "iufc":
            if X.ndim == 1:
                raise ValueError("a 1-d numeric X is ambiguous. Reshape your data: pass [clip] for one clip, "
                                 "or a 2-d (n_clips, n_samples) array")
            if X.ndim != 2:
                raise ValueError(f"a numeric X must be 2-d (n_clips, n_samples), got shape {X.shape}")
            # no clips, empty clips, NaN / infinity, complex numbers: scikit-learn's own messages
            return list(check_array(X, dtype=None))
        items = list(X)
        if not items:
            raise ValueError("X holds no clips (0 samples); at least 1 is required")
        return items

    def transform(self, X) -> np.ndarray:
        """Embed each item of X; returns (n_items, embedding_size) float32."""
        options = EmbedOptions(hop_size=self.hop_size, batch_size=self.batch_size, backend=self.backend,
                               precision=self.precision)
        model = self._model()
        items = self._items(X)
        jobs = []
        for i, item in enumerate(items):
            if isinstance(item, (str, os.PathLike)):
                jobs.append((os.fspath(item), file_job(item, model, options)))
            else:
                if self.sr is None:
                    raise ValueError("array inputs need the sample rate: CoalaEmbedder(sr=...)")
                jobs.append((f"X[{i}]", array_job(item, self.sr, f"X[{i}]", model, options)))
        out = np.zeros((len(items), model.embedding_size), np.float32)
        for i, (_, emb, _, error) in enumerate(embed_jobs(model, jobs, options)):  # results come in input order
            if error is not None:
                raise AudioError(error)
            out[i] = clip_mean(emb)
        return out

    def get_feature_names_out(self, input_features=None):
        n = getattr(self, "embedding_size_", None) or self._model().embedding_size
        return np.asarray([f"coala{i}" for i in range(n)], dtype=object)

    # Tags (scikit-learn >= 1.6 reads __sklearn_tags__, older versions _more_tags): a stateless
    # transformer of 2-d arrays (one clip per row) and of path strings; its output is float32 whatever
    # the input (the network computes in float32), so only float32 is preserved.
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = True
        tags.input_tags.string = True
        tags.input_tags.sparse = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def _more_tags(self):
        return {"requires_fit": False, "stateless": True, "X_types": ["2darray", "string"],
                "preserves_dtype": [np.float32]}
