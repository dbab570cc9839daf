"""The tag side of the aligned space: tag vectors, audio mapped into their space, zero-shot tags.

A model loaded with backend='onnx' computes them in numpy (coala_embed.numpy_net), others in torch.
Zero-shot tags rank the sound tags with the checkpoint's tag head where it has one (coala_embed.tag_head).
"""
from __future__ import annotations

import numpy as np

from .checkpoint import Model
from .core import clip_or_clips, get_embedding
from .engine import get_model
from .options import EmbedOptions


def _apply(model: Model, layers: tuple[str, ...], x: np.ndarray) -> np.ndarray:
    """x (n, d) float32 through the named modules of model.net in turn, as float32 numpy."""
    if model.backend == "onnx":  # coala_embed.numpy_net
        for name in layers:
            x = getattr(model.net, name)(x)
        return x
    import torch

    with torch.inference_mode():
        t = torch.as_tensor(x, device=model.device)
        for name in layers:
            t = getattr(model.net, name)(t)
        return t.float().cpu().numpy()


def _require_tag_space(model: Model):
    if not model.net.has_tag_space:
        raise ValueError(f"this {model.net.cfg.variant} checkpoint has no tag encoder aligned with audio")


def resolve_tags(words, model=None, device=None) -> dict[str, list[str]]:
    """The tags each word or phrase stands for: {word: [tags]} (coala_embed.vocabulary).

    A tag stands for itself; another English word for the few tags the model's vocabulary.json maps it to
    ('puppy' -> dog, ...); a phrase for the tags of its words ('dog barking' -> dog, bark).
    Raises ValueError naming the words of one that maps to no tag; a phrase's other words that map to none
    are left out with a warning (coala_embed.vocabulary.UnmappedWords) naming them.
    """
    model = get_model(model, device)
    words = [words] if isinstance(words, str) else list(words)
    return {w: model.vocabulary.resolve(w) for w in words}


def get_tag_embedding(tags, model=None, device=None, return_tags: bool = False):
    """Vectors of tag sets in the space aligned with audio (tag encoder + affine layer).

    Args:
        tags: one word or phrase ('dog', 'dog barking'), one set of them (['dog', 'bark']), or a list of sets
            ([['dog'], ['car horn']]). Tags stand for themselves, other words for the tags they resolve
            to (`resolve_tags`); a set's vector is that of the union of its tags.
        return_tags: also return {word: [tags]}, the tags each word stood for.
    Returns:
        float32 (1152,) for one word or set, (n_sets, 1152) for a list of sets; with return_tags, a pair.
    """
    model = get_model(model, device)
    _require_tag_space(model)
    single = isinstance(tags, str) or all(isinstance(t, str) for t in tags)
    sets = [[tags] if isinstance(tags, str) else list(tags)] if single else [list(s) for s in tags]
    if not all(sets):
        raise ValueError("an empty set of tags has no vector")
    used = resolve_tags([w for s in sets for w in s], model)
    index = {t: i for i, t in enumerate(model.tags)}
    rows = [sorted({index[t] for w in tag_set for t in used[w]}) for tag_set in sets]
    if model.vocabulary.tag_sets:
        vectors = tag_vectors(model)
        out = np.stack([vectors[r].mean(axis=0) for r in rows])
    else:  # no training tag sets known: the multi-hot of the set's tags through the tag encoder
        out = _apply(model, ("tag_encoder", "tag_affine"), _multi_hot(rows, len(model.tags)))
    out = out[0] if single else out
    return (out, used) if return_tags else out


def _multi_hot(rows: list[list[int]], n_tags: int) -> np.ndarray:
    out = np.zeros((len(rows), n_tags), np.float32)
    for r, cols in enumerate(rows):
        out[r, cols] = 1.0
    return out


def tag_vectors(model: Model) -> np.ndarray:
    """(n_tags, D) unit vectors, one per tag, in the space aligned with audio: the mean of the unit vectors
    of the training clips' distinct tag sets that hold the tag (the checkpoint's vocabulary `tag_sets`).

    Why not the tag alone through the tag encoder: in training it only ever saw whole sets ('bark' with
    'dog', 'domestic animals, pets' and 'animal'), and a lone tag is an input it never saw. Measured with
    the shipped weights (training/EXPERIMENTS.md), the right tag's median rank among the sound tags fell
    from 85 to 34.5 on esc50-dev, 198 to 37 on ysl, 52 to 14 on held-out notes and 212 to 81 on openclonk.
    A tag in no set (none such in the shipped weights) keeps its lone vector. Computed once per model
    (4,681 sets in the shipped vocabulary: about a second on 2 cores).
    """
    if model.tag_vectors is None:
        sets = _multi_hot(model.vocabulary.tag_sets, len(model.tags))  # (n_sets, n_tags)
        set_vecs = _unit(_apply(model, ("tag_encoder", "tag_affine"), sets))
        vectors = _unit(sets.T @ set_vecs)  # float32: a sum of at most a few thousand unit vectors per tag
        alone = ~sets.any(axis=0)
        if alone.any():
            lone = np.eye(len(model.tags), dtype=np.float32)[alone]  # such a tag alone, as before
            vectors[alone] = _unit(_apply(model, ("tag_encoder", "tag_affine"), lone))
        model.tag_vectors = vectors
    return model.tag_vectors


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def align_audio(embeddings: np.ndarray, model=None, device=None) -> np.ndarray:
    """Map audio embeddings (..., embedding_size) into the space shared with tags (the audio affine
    layer of their first latent_size values, the latent; (..., latent_size) is taken as it is)."""
    model = get_model(model, device)
    _require_tag_space(model)
    x = np.asarray(embeddings, np.float32)
    latent = model.net.cfg.latent_size
    if x.ndim == 0 or x.shape[-1] not in (model.embedding_size, latent):
        raise ValueError(f"align_audio: embeddings of this model have {model.embedding_size} values (or {latent}, "
                         f"the latent alone), got shape {x.shape}")
    return _apply(model, ("audio_affine",), x[..., :latent])


def predict_tags(y, sr, top_k: int = 10, model=None, device=None, options: EmbedOptions | None = None,
                 all_tags: bool = False, labels=None, **kw):
    """Zero-shot tags: the model's sound tags ranked for the audio (all its tags with all_tags=True); or, given
    `labels` (words or phrases, e.g. ['dog bark', 'siren']), those labels ranked.

    Takes the arguments of `get_embedding` (y may be a list of clips); returns a list of (tag or label, score)
    pairs, best first, or a list of such lists for a list of clips. The score is that of `rank_tags`. A clip
    of digital silence (all zeros) has no tags: an empty list.
    """
    option_kw, kw = EmbedOptions.split(kw)
    options = EmbedOptions.of(options, "predict_tags", **option_kw)
    model = get_model(model, device, options.backend)
    _require_tag_space(model)
    y = clip_or_clips(y)
    single = not isinstance(y, (list, tuple))
    means = np.atleast_2d(get_embedding(y, sr, model=model, options=options, **kw))
    ranked = rank_tags(model, means, top_k, all_tags=all_tags, labels=labels)
    return ranked[0] if single else ranked


# How far (relative) from the embedding of digital silence an embedding may lie and be silence: the onnx
# backend's lies 5e-7 from torch's, bf16's 3e-3; the nearest of esc50-dev's clips 0.56 (measured, 0.11.0).
SILENCE_TOLERANCE = 0.02


def silent(model: Model, embeddings: np.ndarray) -> np.ndarray:
    """(n,) bool: which embeddings (n, D) are digital silence (a patch of zeros, or a clip of them).

    Audio is scaled to a peak level before its log-mel, so any sound, however quiet, is heard; only exact
    zeros give a patch at the log-mel floor, whose embedding is one fixed vector. What the tag head or the
    cosine says of it means nothing (the bundled weights rank `wolf` first), so silence gets no tags.
    """
    if model.silence is None:
        sr = model.frontend.sample_rate
        model.silence = get_embedding(np.zeros(int(np.ceil(model.frontend.patch_seconds * sr)), np.float32), sr,
                                      model=model, options=EmbedOptions(backend=model.backend))
    x = np.atleast_2d(np.asarray(embeddings, np.float32))
    if x.shape[1] != model.silence.shape[0]:  # the latent alone (align_audio accepts it)
        return np.zeros(len(x), bool)
    distance = np.linalg.norm(x - model.silence, axis=1) / np.linalg.norm(model.silence)
    return distance <= SILENCE_TOLERANCE


def rank_tags(model: Model, mean_embeddings: np.ndarray, top_k: int, all_tags: bool = False,
              labels=None) -> list[list[tuple[str, float]]]:
    """For each clip embedding (n, D), its top_k (tag or label, score) pairs, best first: among the model's
    sound tags, all its tags (all_tags=True), or the given labels (words or phrases).

    Where the checkpoint has a tag head (coala_embed.tag_head), sound tags are scored by it: a log-odds
    ratio, > 0 where the tag is likelier than a priori; a label by the mean of those of the sound tags it
    stands for (`hen` -> chicken, bird, animal: all three count, so a broad `animal` alone cannot decide; on
    esc50-dev's 20 classes zero-shot top-1 was 33.8 % with the mean, 27.5 % with the best of them).
    Otherwise (all_tags, a label standing for no sound tag, a checkpoint without a head) the score is the
    cosine similarity of the aligned audio and tag vectors.
    """
    names, scores = tag_scores(model, mean_embeddings, all_tags=all_tags, labels=labels)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    return [[(names[j], float(scores[r, j])) for j in row if np.isfinite(scores[r, j])] for r, row in enumerate(order)]


def tag_scores(model: Model, mean_embeddings: np.ndarray, all_tags: bool = False, labels=None,
               use_head: bool = True) -> tuple[list[str], np.ndarray]:
    """The names `rank_tags` ranks and their (n, len(names)) scores; use_head=False: cosine throughout.
    Rows of digital silence (`silent`) score -inf throughout: they have no tags."""
    names = list(labels) if labels is not None else model.tags if all_tags else model.vocabulary.sound_tags
    columns = head_columns(model, names, words=labels is not None) if use_head and not all_tags else None
    if columns is not None:
        head = model.tag_head.scores(mean_embeddings)
        scores = np.stack([head[:, c].mean(axis=1) for c in columns], axis=1)
    else:
        audio_vecs = align_audio(mean_embeddings, model)
        scores = _unit(audio_vecs) @ _unit(get_tag_embedding([[t] for t in names], model)).T
    scores[silent(model, mean_embeddings)] = -np.inf
    return names, scores


def head_columns(model: Model, names, words: bool = True) -> list[list[int]] | None:
    """The tag head's outputs each name stands for, or None where the head cannot score every name.

    words=True: a name is a word or phrase, standing for the sound tags it resolves to (`resolve_tags`, which
    raises ValueError where nothing in a name maps to a tag); words=False: a name is a tag. None where the model
    has no head or a name stands for no tag the head scores: such names are ranked by cosine instead, and
    the head's log-odds ratios and cosines are not on one scale, so then all are.
    """
    head = model.tag_head
    if head is None:
        return None
    index = {t: i for i, t in enumerate(head.tags)}
    used = resolve_tags(names, model) if words else {t: [t] for t in names}
    columns = [[index[t] for t in used[name] if t in index] for name in names]
    return columns if all(columns) else None
