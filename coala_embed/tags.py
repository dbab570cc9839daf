"""The tag side of the aligned space: tag vectors, audio mapped into their space, zero-shot tags.

A model loaded with backend='onnx' computes them in numpy (coala_embed.numpy_net), others in torch.
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


def get_tag_embedding(tags, model=None, device=None) -> np.ndarray:
    """Vectors of tag sets in the space aligned with audio (tag encoder + affine layer).

    Args:
        tags: one tag ('dog'), one set of tags (['dog', 'bark']), or a list of sets ([['dog'], ['car', 'engine']]).
            Tags must be in `model.tags`.
    Returns:
        float32 (1152,) for one tag or set, (n_sets, 1152) for a list of sets.
    """
    model = get_model(model, device)
    _require_tag_space(model)
    single = isinstance(tags, str) or all(isinstance(t, str) for t in tags)
    sets = [[tags] if isinstance(tags, str) else list(tags)] if single else [list(s) for s in tags]
    index = {t: i for i, t in enumerate(model.tags)}
    multi_hot = np.zeros((len(sets), len(model.tags)), np.float32)
    for row, tag_set in enumerate(sets):
        unknown = [t for t in tag_set if t.lower() not in index]
        if unknown or not tag_set:
            raise ValueError(f"tags not in the model's vocabulary: {unknown or 'empty set'} (see model.tags)")
        multi_hot[row, [index[t.lower()] for t in tag_set]] = 1.0
    out = _apply(model, ("tag_encoder", "tag_affine"), multi_hot)
    return out[0] if single else out


def align_audio(embeddings: np.ndarray, model=None, device=None) -> np.ndarray:
    """Map audio embeddings (..., 1152) into the space shared with tags (the audio affine layer)."""
    model = get_model(model, device)
    _require_tag_space(model)
    return _apply(model, ("audio_affine",), np.asarray(embeddings, np.float32))


def predict_tags(y, sr, top_k: int = 10, model=None, device=None, options: EmbedOptions | None = None, **kw):
    """Zero-shot tags: the vocabulary tags whose aligned vectors are closest (cosine) to the audio's.

    Takes the arguments of `get_embedding` (y may be a list of clips); returns a list of (tag, cosine
    similarity) pairs, best first, or a list of such lists for a list of clips.
    """
    option_kw, kw = EmbedOptions.split(kw)
    options = EmbedOptions.of(options, "predict_tags", **option_kw)
    model = get_model(model, device, options.backend)
    _require_tag_space(model)
    y = clip_or_clips(y)
    single = not isinstance(y, (list, tuple))
    means = np.atleast_2d(get_embedding(y, sr, model=model, options=options, **kw))
    return rank_tags(model, means, top_k)[0] if single else rank_tags(model, means, top_k)


def rank_tags(model: Model, mean_embeddings: np.ndarray, top_k: int) -> list[list[tuple[str, float]]]:
    """For each clip embedding (n, D), its top_k (tag, cosine similarity) pairs, best first."""
    audio_vecs = align_audio(mean_embeddings, model)
    tag_vecs = get_tag_embedding([[t] for t in model.tags], model)
    a = audio_vecs / np.maximum(np.linalg.norm(audio_vecs, axis=1, keepdims=True), 1e-12)
    t = tag_vecs / np.maximum(np.linalg.norm(tag_vecs, axis=1, keepdims=True), 1e-12)
    sims = a @ t.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :top_k]
    return [[(model.tags[j], float(sims[r, j])) for j in row] for r, row in enumerate(order)]
