"""The shape of a COALA network (`ModelConfig`), stored in every checkpoint's config.json.

Apart from coala_embed.model so that a checkpoint can be read without torch (backend="onnx").
"""
from __future__ import annotations

import dataclasses

VARIANTS = ("ae-c", "e-c", "cnn")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    variant: str = "ae-c"
    n_tags: int = 1000
    n_filters: int = 128
    n_blocks: int = 5
    patch_frames: int = 96
    n_mels: int = 96
    tag_hidden: int = 512
    dropout: float = 0.25
    # "element": nn.Dropout on conv feature maps, as the reference; "channel": nn.Dropout2d, which drops
    # whole feature maps and draws ~1000x fewer random numbers (dropout was half of a CPU training step).
    # Either way dropout is off at inference, so this only matters for training.
    conv_dropout: str = "element"

    def __post_init__(self):
        if self.conv_dropout not in ("element", "channel"):
            raise ValueError(f"conv_dropout must be 'element' or 'channel', got {self.conv_dropout!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        for side in (self.patch_frames, self.n_mels):
            if side % 2 ** self.n_blocks:
                raise ValueError(f"patch side {side} is not divisible by 2**n_blocks")

    @property
    def embedding_size(self) -> int:
        return self.n_filters * (self.patch_frames >> self.n_blocks) * (self.n_mels >> self.n_blocks)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**d)
