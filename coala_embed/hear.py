"""The HEAR 2021 API (https://hearbenchmark.com/hear-api.html), for hear-eval-kit and similar tools.

    import coala_embed.hear as module
    model = module.load_model()                                   # bundled weights
    scene = module.get_scene_embeddings(audio, model)             # (n_sounds, 1920)
    emb, ts = module.get_timestamp_embeddings(audio, model)       # (n_sounds, T, 1920), (n_sounds, T) in ms

`audio` is a float32 torch tensor (n_sounds, n_samples) at `model.sample_rate` = 22050 Hz (HEAR allows
16000, 22050, 44100 or 48000; the COALA front end then resamples to its own 22000 Hz).

Choices:
- Scene embeddings are COALA's clip embedding: the mean over non-overlapping 96-frame patches.
- Timestamp embeddings use patches with a hop of 2 STFT frames (2 * 512 / 22000 s = 46.5 ms, under
  HEAR's 50 ms), centred (`center=True`: half a patch of silence at both ends), so the first timestamp
  is 0 ms and each embedding describes the ~2.2 s patch centred on its timestamp.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .checkpoint import Model
from .checkpoint import load_model as _load_checkpoint
from .core import get_embedding
from .options import DEFAULT_BATCH_SIZE

SAMPLE_RATE = 22050
TIMESTAMP_HOP_FRAMES = 2


class HearModel(nn.Module):
    """A loaded COALA checkpoint with the attributes the HEAR API requires.

    It is a torch Module holding the network, so `model.to(device)` / `model.cuda()` move it.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, model: Model, batch_size: int = DEFAULT_BATCH_SIZE):
        super().__init__()
        self.coala = model
        self.net = model.net  # registered as a sub-module so that .to() moves the weights
        self.batch_size = batch_size
        self.scene_embedding_size = model.embedding_size
        self.timestamp_embedding_size = model.embedding_size
        fe = model.frontend
        self.timestamp_hop_seconds = TIMESTAMP_HOP_FRAMES * fe.hop_length / fe.sample_rate

    def _synced(self) -> Model:
        self.coala.device = next(self.net.parameters()).device
        self.net.eval()
        return self.coala

    def forward(self, audio):
        return get_scene_embeddings(audio, self)


def load_model(model_file_path: str = "", device=None) -> HearModel:
    """Load COALA for HEAR.

    Args:
        model_file_path: "" for the weights bundled with the package; otherwise a checkpoint folder,
            its config.json or model.safetensors, or a Hugging Face Hub id org/name[@revision].
        device: torch device; default CUDA if available.
    """
    return HearModel(_load_checkpoint(model_file_path or None, device))


def _as_clips(audio) -> list[np.ndarray]:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().to("cpu", torch.float32).numpy()
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2:
        raise ValueError(f"audio must have shape (n_sounds, n_samples), got {audio.shape}")
    return list(audio)


def get_scene_embeddings(audio, model: HearModel) -> torch.Tensor:
    """(n_sounds, n_samples) audio at model.sample_rate -> (n_sounds, 1920) float32 clip embeddings."""
    coala = model._synced()
    clips = _as_clips(audio)
    if not clips:
        return torch.zeros((0, model.scene_embedding_size), dtype=torch.float32, device=coala.device)
    emb = get_embedding(clips, model.sample_rate, model=coala, batch_size=model.batch_size)
    return torch.from_numpy(np.stack(emb).astype(np.float32)).to(coala.device)


def get_timestamp_embeddings(audio, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_sounds, n_samples) audio -> embeddings (n_sounds, T, 1920) and timestamps (n_sounds, T) in ms.

    Timestamps are the centres of the patches, every ~46.5 ms from 0.
    """
    coala = model._synced()
    clips = _as_clips(audio)
    if not clips:
        empty = torch.zeros((0, 0, model.timestamp_embedding_size), dtype=torch.float32, device=coala.device)
        return empty, torch.zeros((0, 0), dtype=torch.float32, device=coala.device)
    out = get_embedding(clips, model.sample_rate, model=coala, batch_size=model.batch_size, frames=True,
                        center=True, hop_size=model.timestamp_hop_seconds)
    emb = np.stack([e for e, _ in out]).astype(np.float32)
    ts = np.stack([t for _, t in out]) * 1000.0
    return torch.from_numpy(emb).to(coala.device), torch.from_numpy(ts.astype(np.float32)).to(coala.device)
