"""The tag side of a checkpoint in numpy, for models loaded with backend='onnx' (no torch).

The layers of coala_embed.model in eval mode: the tag encoder is Linear -> BatchNorm1d -> ReLU (dropout
is the identity) three times, the affine layers are bias-free Linears. Read from the checkpoint's
safetensors when first used (`read_state`: coala_embed.checkpoint.read_numpy_state, which re-verifies
their sha256); they match torch's within float rounding (~1e-6).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .modelconfig import ModelConfig

BN_EPS = 1e-5  # torch.nn.BatchNorm's default, which coala_embed.model uses (it is not stored in the weights)
PREFIXES = ("tag_encoder.net.", "tag_affine.", "audio_affine.")


def batch_norm(x: np.ndarray, state: dict, prefix: str) -> np.ndarray:
    """Eval-mode BatchNorm of x (channels on axis 1 for 2-d x) with the running statistics at prefix."""
    inv_std = 1.0 / np.sqrt(state[prefix + "running_var"].astype(np.float64) + BN_EPS)
    scale = (state[prefix + "weight"] * inv_std).astype(np.float32)
    shift = (state[prefix + "bias"] - state[prefix + "running_mean"] * inv_std * state[prefix + "weight"]).astype(np.float32)
    return x * scale + shift


class NumpyNet:
    """What the tag functions (coala_embed.tags) use of a COALA network: cfg, has_tag_space, tag_encoder,
    tag_affine and audio_affine, as functions of float32 arrays."""

    def __init__(self, cfg: ModelConfig, read_state: Callable[[], dict]):
        self.cfg = cfg
        self._read_state = read_state
        self._state: dict | None = None

    @property
    def has_tag_space(self) -> bool:
        return self.cfg.variant != "cnn"

    def _tensors(self) -> dict:
        if self._state is None:
            self._state = {k: v.astype(np.float32) for k, v in self._read_state().items() if k.startswith(PREFIXES)}
        return self._state

    def tag_encoder(self, x: np.ndarray) -> np.ndarray:
        state = self._tensors()
        layers = sorted({int(k.split(".")[2]) for k in state if k.startswith("tag_encoder.net.")})
        for i in layers:
            prefix = f"tag_encoder.net.{i}."
            if prefix + "running_mean" in state:  # BatchNorm1d, then ReLU
                x = np.maximum(batch_norm(x, state, prefix), 0)
            else:  # Linear
                x = x @ state[prefix + "weight"].T + state[prefix + "bias"]
        return x.astype(np.float32, copy=False)

    def tag_affine(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32) @ self._tensors()["tag_affine.0.weight"].T

    def audio_affine(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32) @ self._tensors()["audio_affine.0.weight"].T
