"""The shape of a COALA network (`ModelConfig`), stored in every checkpoint's config.json.

The downstream embedding of a patch is the last block's flattened map (the paper's 128 x 3 x 3 = 1152-d
feature, also the latent the contrastive loss aligns with tags) followed by, for each block in
`time_mean_blocks`, that block's map averaged over time: its channels x mel rows, a learnt spectral
profile (block 4: 128 x 6 = 768). Measured on every development set (training/EXPERIMENTS.md, 0.9.0):
block 4's profile adds 1.8 points to the mean at no training cost; the paper's feature is still the
first `latent_size` values.

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
    # 1-based blocks whose time-averaged maps follow the last block's in the embedding (see above).
    # A checkpoint written before this field existed has none (`from_dict`), so its embedding is unchanged.
    time_mean_blocks: tuple[int, ...] = (4,)

    def __post_init__(self):
        object.__setattr__(self, "time_mean_blocks", tuple(int(b) for b in self.time_mean_blocks))
        if any(not 1 <= b < self.n_blocks for b in self.time_mean_blocks) or \
                len(set(self.time_mean_blocks)) != len(self.time_mean_blocks):
            raise ValueError(f"time_mean_blocks must be distinct blocks in 1..{self.n_blocks - 1}, "
                             f"got {list(self.time_mean_blocks)}")
        if self.conv_dropout not in ("element", "channel"):
            raise ValueError(f"conv_dropout must be 'element' or 'channel', got {self.conv_dropout!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        for side in (self.patch_frames, self.n_mels):
            if side % 2 ** self.n_blocks:
                raise ValueError(f"patch side {side} is not divisible by 2**n_blocks")

    @property
    def latent_size(self) -> int:
        """Size of the last block's flattened map: the latent aligned with tags (the paper's embedding)."""
        return self.n_filters * (self.patch_frames >> self.n_blocks) * (self.n_mels >> self.n_blocks)

    @property
    def embedding_size(self) -> int:
        """Size of the downstream embedding: the latent, then each time-averaged block's channels x mel rows."""
        return self.latent_size + sum(self.n_filters * (self.n_mels >> b) for b in self.time_mean_blocks)

    @property
    def layout_key(self) -> str:
        """'' for the latent alone, else one '-tm<block>' per time-averaged block ('-tm4'): what names a cache
        that must keep the embedding layouts of the same weights apart (ONNX exports, evaluation vectors)."""
        return "".join(f"-tm{b}" for b in self.time_mean_blocks)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["time_mean_blocks"] = list(self.time_mean_blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**{"time_mean_blocks": (), **d})
