"""coala-embed: audio embeddings from COALA co-aligned audio and tag autoencoders.

    import coala_embed
    emb = coala_embed.get_embedding(y, sr)            # (1152,) float32, mean over 96-frame patches
    emb, ts = coala_embed.get_embedding(y, sr, frames=True)
    coala_embed.process_file(["a.wav", "b.flac"], output_dir="feats")
    coala_embed.predict_tags(y, sr, top_k=5)
"""
from .audio import SAMPLE_RATE, AudioError, FrontEnd
from .checkpoint import CheckpointError, Model, load_model, save_checkpoint
from .core import embed_files, get_embedding, process_file
from .engine import clip_mean
from .model import COALA, ModelConfig
from .options import EmbedOptions
from .sinks import FileResult
from .tags import align_audio, get_tag_embedding, predict_tags

from .version import __version__
EMBEDDING_SIZE = 1152

__all__ = [
    "SAMPLE_RATE", "EMBEDDING_SIZE", "AudioError", "CheckpointError", "FrontEnd", "Model", "ModelConfig", "COALA",
    "EmbedOptions", "FileResult", "load_model", "save_checkpoint", "get_embedding", "process_file", "embed_files",
    "clip_mean", "get_tag_embedding", "align_audio", "predict_tags",
]
