"""coala-embed: audio embeddings from COALA co-aligned audio and tag autoencoders.

    import coala_embed
    emb = coala_embed.get_embedding(y, sr)            # (1920,) float32, mean over 96-frame patches
    emb, ts = coala_embed.get_embedding(y, sr, frames=True)
    coala_embed.process_file(["a.wav", "b.flac"], output_dir="feats")
    coala_embed.predict_tags(y, sr, top_k=5)
    coala_embed.get_embedding(y, sr, backend="onnx")  # onnxruntime, no torch needed

Names are imported when first used (PEP 562), so `import coala_embed` (and the command line) imports
no torch unless the torch backend or the torch network is asked for.
"""
from .audio import SAMPLE_RATE, AudioError, FrontEnd
from .options import EmbedOptions
from .version import __version__

EMBEDDING_SIZE = 1920  # of the bundled weights: the paper's 1152-d latent, then block 4's 768-d profile

_LAZY = {
    "CheckpointError": "checkpoint", "Model": "checkpoint", "load_model": "checkpoint", "save_checkpoint": "checkpoint",
    "embed_files": "core", "get_embedding": "core", "process_file": "core",
    "clip_mean": "engine",
    "COALA": "model", "ModelConfig": "modelconfig",
    "FileResult": "sinks",
    "align_audio": "tags", "get_tag_embedding": "tags", "predict_tags": "tags", "resolve_tags": "tags",
}

__all__ = [
    "SAMPLE_RATE", "EMBEDDING_SIZE", "AudioError", "CheckpointError", "FrontEnd", "Model", "ModelConfig", "COALA",
    "EmbedOptions", "FileResult", "load_model", "save_checkpoint", "get_embedding", "process_file", "embed_files",
    "clip_mean", "get_tag_embedding", "align_audio", "predict_tags", "resolve_tags",
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'coala_embed' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # once
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
