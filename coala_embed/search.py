"""Search a coala-embed collection by sound (a file, or a time range of one) or by words, or both.

    import coala_embed
    index = coala_embed.Index("feats")                           # a Parquet table / folder, or a folder of .npz
    hits = index.search(["query.wav@12.5-15"], text="dog bark", top_k=10)   # one list of Hit per query

Audio queries compare the audio embeddings (cosine similarity). Words alone are scored by the model's
tag head where it has one and the words stand for sound tags: a row's score is the mean log-odds ratio of
those tags, what `predict_tags(labels=[words])` gives it (coala_embed.tag_head; on esc50-dev it put the right
class in the top 10 more often than the cosine, precision@10 0.300 against 0.240: training/EXPERIMENTS.md).
Otherwise, and for sound and words together, a query is compared in the space shared with tags (cosine of
`align_audio` of the collection against `get_tag_embedding` of the words; together: the sum of both unit
vectors). Exact search multiplies the query by the memory-mapped unit vectors, a block at a time; above
`APPROXIMATE_ABOVE` vectors, or with `method='approximate'`, a faiss IVF index (`pip install
"coala-embed[search]"`) proposes candidates that are re-scored exactly. What is computed from the vectors
(the aligned vectors, the head's scores, the faiss index) is saved in the collection's `.coala-search/` cache
and computed again when the collection changed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np

from . import collection as _collection
from .collection import CollectionError
from .engine import clip_mean
from .options import EmbedOptions

APPROXIMATE_ABOVE = 250_000  # measured at 1M vectors: exact 3.9 s a query (float16 cache), approximate 13 ms
CHUNK_ROWS = 65536
HEAD_ROWS = 8192  # rows the tag head scores at once: its hidden layer is (HEAD_ROWS, 1024) float32
RANGE = re.compile(r"^(?P<path>.+)@(?P<start>\d+(?:\.\d*)?)?-(?P<end>\d+(?:\.\d*)?)?$")


class SearchError(ValueError):
    """A query or collection that cannot be searched (the message says which and why)."""


@dataclasses.dataclass
class Hit:
    path: str
    score: float
    start: float | None  # seconds; None when unknown
    end: float | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Query:
    """A sound (`path`, optionally `start`-`end` seconds) and/or words."""
    path: str | None = None
    start: float | None = None
    end: float | None = None
    text: str | None = None

    @classmethod
    def parse(cls, spec: str, text: str | None = None) -> "Query":
        """'file.wav', 'file.wav@12.5-15', 'file.wav@60-' (to the end); a path that exists is taken whole."""
        m = RANGE.match(spec)
        if m and not os.path.exists(spec) and (m["start"] or m["end"]):
            start, end = float(m["start"] or 0), (float(m["end"]) if m["end"] else None)
            if end is not None and end <= start:
                raise SearchError(f"empty time range in query {spec!r}: end {end} <= start {start}")
            return cls(m["path"], start, end, text)
        return cls(spec, None, None, text)

    def label(self) -> str:
        parts = []
        if self.path:
            rng = "" if self.start is None else f"@{self.start:g}-{'' if self.end is None else f'{self.end:g}'}"
            parts.append(self.path + rng)
        if self.text:
            parts.append(f'"{self.text}"')
        return " + ".join(parts)


def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = CHUNK_ROWS):
    """(scores, ids), each (n_queries, k) best first: cosine of unit queries with unit rows, a block at a time."""
    n, k = len(vectors), min(k, len(vectors))
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for s in range(0, n, chunk):
        scores = queries @ np.asarray(vectors[s:s + chunk], np.float32).T
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(scores, part, 1)], 1)
        best_i = np.concatenate([best_i, part + s], 1)
        if best_s.shape[1] > k:
            keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)


def best_of(scores: np.ndarray, k: int):
    """(scores, ids), each (1, k) best first, of one row of scores over the whole collection."""
    k = min(k, len(scores))
    part = np.argpartition(-scores, k - 1)[:k]
    part = part[np.argsort(-scores[part], kind="stable")]
    return scores[part][None], part[None].astype(np.int64)


class Index:
    """A searchable collection (see the module's docstring).

    Args:
        collection: a Parquet table file, a folder of tables (shards), or a folder of .npz (recursive).
        model: a `Model`, checkpoint folder or Hub id (default: bundled); must be the one that made the collection.
        frames: search patches (needs --frames tables; .npz always hold them) and report where in each file.
        method: 'auto' (approximate above APPROXIMATE_ABOVE vectors), 'exact' or 'approximate'.
        dtype: the cache's float type, 'float16', 'float32' or 'auto' (float32 up to 1 GiB).
        nprobe: clusters the approximate index visits per query (default: its own choice, see ann.py).
    """

    def __init__(self, collection, model=None, frames: bool = False, method: str = "auto", dtype: str = "auto",
                 device=None, nprobe: int | None = None):
        from . import Model, load_model

        if method not in ("auto", "exact", "approximate"):
            raise ValueError(f"method must be 'auto', 'exact' or 'approximate', got {method!r}")
        self.model = model if isinstance(model, Model) else load_model(model, device=device)
        self.collection = Path(collection)
        try:
            self.rows = _collection.load(collection, frames, self.model.frontend.patch_seconds, dtype)
        except CollectionError as e:
            raise SearchError(str(e)) from None
        self._check_model()
        approximate = method == "approximate" or (method == "auto" and len(self) > APPROXIMATE_ABOVE)
        if approximate and method == "auto":
            try:
                import faiss  # noqa: F401
            except ImportError:
                warnings.warn(f"{len(self)} vectors: install faiss-cpu (pip install 'coala-embed[search]') "
                              "for approximate search; searching exactly")
                approximate = False
        self.method = "approximate" if approximate else "exact"
        self.nprobe = nprobe
        self._spaces: dict[str, np.ndarray] = {"audio": self.rows.vectors}
        self._ann: dict = {}

    def __len__(self):
        return len(self.rows.owner)

    def _check_model(self):
        s = self.rows.settings
        if not s:
            return
        if s.get("weights_sha256") and s["weights_sha256"] != self.model.sha256:
            raise SearchError(f"{self.collection} was embedded by another model (weights sha256 "
                              f"{s['weights_sha256']}) than the one searching it ({self.model.sha256}): "
                              "search it with --model of that model, or embed it again")
        width = self.rows.vectors.shape[1]
        if width != self.model.embedding_size:  # same weights, another layout: 0.8 and earlier wrote the latent alone
            raise SearchError(f"{self.collection} holds {width}-d embeddings and this model gives "
                              f"{self.model.embedding_size}-d ones (coala-embed 0.9 appends block 4's profile to the "
                              f"{self.model.net.cfg.latent_size}-d latent): embed it again with this version")
        fe = s.get("frontend")
        if fe is not None and fe != self.model.frontend.to_dict():
            raise SearchError(f"{self.collection} was embedded with another front end ({fe}) than the model's "
                              f"({self.model.frontend.to_dict()}; weights sha256 {self.model.sha256})")

    def _options(self) -> dict:
        """The options the collection was embedded with, so a query is framed as its rows were; the
        arithmetic (backend, precision) stays this model's, within rounding, unless the rows are int8
        (EmbedOptions.framing)."""
        recorded, _ = EmbedOptions.split(self.rows.settings or {})
        return EmbedOptions.framing(recorded)

    # -- queries ---------------------------------------------------------------------------------------------
    def embed_query(self, q: Query) -> np.ndarray:
        """The (1920,) audio embedding of a query's sound (the mean over its patches)."""
        from . import embed_files, get_embedding

        if not os.path.isfile(q.path):
            raise SearchError(f"query file not found: {q.path}")
        if q.start is None:
            for _, emb, _, error in embed_files([q.path], model=self.model, **self._options()):
                if error is not None:
                    error = str(error)
                    raise SearchError(f"cannot decode query {q.path}: "
                                      f"{error[len(q.path) + 2:] if error.startswith(q.path + ': ') else error}")
                return clip_mean(emb)
        import soundfile as sf

        try:
            info = sf.info(q.path)
            stop = None if q.end is None else int(round(q.end * info.samplerate))
            y, sr = sf.read(q.path, start=int(round(q.start * info.samplerate)), stop=stop, dtype="float32",
                            always_2d=True)
        except Exception as e:  # soundfile raises several types for undecodable files
            raise SearchError(f"cannot decode query {q.path}: {e}") from None
        if not len(y):
            raise SearchError(f"query {q.label()} holds no audio (the file lasts {info.duration:.2f} s)")
        return get_embedding(y, sr, model=self.model, **self._options())

    def head_columns(self, text: str) -> list[int] | None:
        """The tag head's outputs that words stand for, or None where the head cannot score them."""
        from .tags import head_columns

        try:
            columns = head_columns(self.model, [text])
        except ValueError as e:
            raise SearchError(str(e)) from None
        return None if columns is None else columns[0]

    def text_vector(self, text: str) -> np.ndarray:
        from . import get_tag_embedding

        if not getattr(self.model.net, "has_tag_space", False):
            raise SearchError("this model has no tag space: it cannot search by words")
        try:  # words as get_tag_embedding and `coala-embed tags --labels` take them: the model's vocabulary
            return get_tag_embedding(text, model=self.model)
        except ValueError as e:
            raise SearchError(str(e)) from None

    def query_vector(self, q: Query) -> tuple[str, np.ndarray]:
        """(space, query): 'audio' and a unit vector for sound alone; 'head' and the head's columns for words
        alone that the tag head scores; else 'aligned' and a unit vector as soon as words take part."""
        from . import align_audio

        if q.text is None:
            return "audio", _unit(self.embed_query(q))
        if q.path is None and getattr(self.model.net, "has_tag_space", False):
            columns = self.head_columns(q.text)
            if columns is not None:
                return "head", np.asarray(columns)
        vec = _unit(self.text_vector(q.text))
        if q.path is not None:
            vec = vec + _unit(align_audio(self.embed_query(q)[None], model=self.model)[0])
        return "aligned", _unit(vec)

    # -- search ----------------------------------------------------------------------------------------------
    def vectors(self, space: str) -> np.ndarray:
        """'audio': the unit vectors (N, D); 'aligned': in the space shared with tags (N, latent), unit length;
        'head': the tag head's scores (n_head_tags, N), a row per tag so that a query reads whole rows."""
        if space not in self._spaces:
            if space == "aligned":
                self._spaces[space] = self._derived("aligned", self.model.net.cfg.latent_size, self._aligned_block)
            else:
                self._spaces[space] = self._derived("head", len(self.model.tag_head.tags), self._head_block,
                                                    by_row=False)
        return self._spaces[space]

    def _aligned_block(self, s: int, e: int) -> np.ndarray:
        from . import align_audio

        return _unit(align_audio(np.array(self.rows.vectors[s:e], np.float32), model=self.model))

    def _head_block(self, s: int, e: int) -> np.ndarray:
        return self.model.tag_head.scores(self.rows.embeddings(slice(s, e)))

    def _derived(self, name: str, width: int, block, by_row: bool = True) -> np.ndarray:
        """(N, width) rows computed from the collection's vectors `block(start, end)` at a time ((width, N) with
        by_row=False), in the vectors' float type; cached beside them under a name that holds the model's and
        the collection's fingerprints, so that a changed collection or model computes them again."""
        src, n = self.rows.vectors, len(self)
        key = hashlib.sha256(f"{self.model.sha256}\0{self.model.config.get('tag_head_sha256')}\0"
                             f"{self.rows.fingerprint}".encode()).hexdigest()[:16]
        path = None if self.rows.cache is None else self.rows.cache / f"{name}-{key}.bin"
        shape = (n, width) if by_row else (width, n)
        if path is not None and path.exists() and path.stat().st_size == shape[0] * shape[1] * src.itemsize:
            return np.memmap(path, dtype=src.dtype, mode="r", shape=shape)
        out = tmp = None
        if path is not None:  # written straight to the file: a million rows need not fit in memory twice
            try:
                for old in path.parent.glob(f"{name}-*.bin"):  # another collection's or model's: stale
                    old.unlink(missing_ok=True)
                tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                out = np.memmap(tmp, dtype=src.dtype, mode="w+", shape=shape)
            except OSError as e:
                warnings.warn(f"cannot cache the {name} vectors in {path.parent}: {e}")
                tmp = None
        if out is None:
            out = np.empty(shape, src.dtype)
        step = CHUNK_ROWS if by_row else HEAD_ROWS
        for s in range(0, n, step):
            e = min(n, s + step)
            if by_row:
                out[s:e] = block(s, e)
            else:
                out[:, s:e] = block(s, e).T
        if tmp is None:
            return out
        out.flush()
        del out
        os.replace(tmp, path)
        return np.memmap(path, dtype=src.dtype, mode="r", shape=shape)

    def ann(self, space: str = "audio"):
        """The approximate index of a space (built, or read from the cache when up to date)."""
        from .ann import ApproximateIndex

        if space not in self._ann:
            path = None if self.rows.cache is None else self.rows.cache / f"ann-{space}-{self.model.sha256[:16]}.faiss"
            self._ann[space] = ApproximateIndex.load_or_build(self.vectors(space), path, self.rows.fingerprint)
        return self._ann[space]

    def top(self, space: str, queries: np.ndarray, k: int):
        """(scores, ids) of the k best vectors per query, by this index's method."""
        if space == "head":  # a whole row per tag: a scan as fast as an index would be, and exact
            rows = self.vectors("head")
            return best_of(np.mean([np.asarray(rows[c], np.float32) for c in queries[0]], axis=0), k)
        if self.method == "exact":
            return exact_top(self.vectors(space), queries, k)
        return self.ann(space).search(queries, k, nprobe=self.nprobe)

    def search(self, queries=(), text: str | None = None, top_k: int = 10, per_file: int = 1) -> list[list[Hit]]:
        """One list of hits per query, best first.

        queries: Query objects or strings ('file.wav', 'file.wav@12.5-15'); each becomes one query, combined
            with `text` when both are given. With no queries, `text` alone is the one query.
        per_file: with frames, at most this many patches of one file among the hits (default 1: the best place).
        """
        qs = [q if isinstance(q, Query) else Query.parse(os.fspath(q), text) for q in queries]
        qs = [dataclasses.replace(q, text=text) if text is not None and q.text is None else q for q in qs]
        if not qs:
            if text is None:
                raise SearchError("nothing to search for: give query files and/or words")
            qs = [Query(text=text)]
        per_file = per_file if self.rows.frames else 1
        out = []
        for q in qs:
            space, vec = self.query_vector(q)
            out.append(self._hits(space, vec[None], top_k, max(1, per_file)))
        return out

    def _hits(self, space, vec, top_k, per_file) -> list[Hit]:
        from .tags import silent

        rows, n = self.rows, len(self)
        k = min(n, top_k * (4 if per_file < top_k and rows.frames else 1))
        while True:
            scores, ids = self.top(space, vec, k)
            hits, count = [], {}
            quiet = set()
            if space != "audio":  # words never find digital silence: it has no tags (coala_embed.tags.silent)
                found = np.sort(ids[0][ids[0] >= 0])
                quiet = set(found[silent(self.model, self.rows.embeddings(found))].tolist())
            for score, i in zip(scores[0], ids[0]):
                if i < 0 or i in quiet:
                    continue
                f = int(rows.owner[i])
                if count.get(f, 0) >= per_file:
                    continue
                count[f] = count.get(f, 0) + 1
                start, end = float(rows.start[i]), float(rows.end[i])
                hits.append(Hit(rows.files[f], float(score), start, None if np.isnan(end) else end))
                if len(hits) == top_k:
                    return hits
            if k >= n:
                return hits
            k = min(n, k * 4)


def search(collection, queries=(), text: str | None = None, top_k: int = 10, frames: bool = False, model=None,
           method: str = "auto", per_file: int = 1) -> list[list[Hit]]:
    """`Index(collection, model, frames, method).search(queries, text, top_k, per_file)` in one call."""
    return Index(collection, model=model, frames=frames, method=method).search(queries, text, top_k, per_file)


def hits_json(results, queries_given: int) -> str:
    """--json: an array of {path, score, start, end}; one such array per query when several are given."""
    arrays = [[h.to_dict() for h in hits] for hits in results]
    return json.dumps(arrays if queries_given > 1 else arrays[0], indent=1)
