"""The COALA networks (Favory et al., 2020), defined once for inference and training.

Audio side: a 5-block convolutional encoder mapping a 1x96x96 patch to a 128x3x3 = 1152-d latent,
a bias-free affine layer into the space shared with tags, and a mirrored transposed-convolution
decoder. The downstream embedding is that latent followed by block 4's map averaged over time
(`embedding_from_maps`; modelconfig says why). Tag side: an MLP encoder of a multi-hot vector into the
same 1152-d space, its affine layer, and an MLP decoder. `TagClassifier` is the supervised "CNN"
baseline head.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .modelconfig import VARIANTS, ModelConfig  # noqa: F401  (defined torch-free; imported from here too)


def _conv_dropout(cfg: ModelConfig) -> nn.Module:
    return nn.Dropout2d(cfg.dropout) if cfg.conv_dropout == "channel" else nn.Dropout(cfg.dropout)


def _conv_block(c_in, c_out, cfg: ModelConfig):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        _conv_dropout(cfg),
    )


def embedding_from_maps(maps: list[torch.Tensor], cfg: ModelConfig) -> torch.Tensor:
    """The downstream embedding from every block's output map (B, channels, mel rows, frames): the last
    map flattened (the latent), then each of cfg.time_mean_blocks averaged over frames, flattened
    channel-major (channel c, mel row m at c * rows + m)."""
    return torch.cat([maps[-1].flatten(1)] + [maps[b - 1].mean(dim=3).flatten(1) for b in cfg.time_mean_blocks], 1)


class AudioEncoder(nn.Module):
    """(B, 1, n_mels, frames) patches -> (B, latent_size) latents, taken after the last ReLU (`forward`,
    what training aligns), or -> (B, embedding_size) downstream embeddings (`embed`)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        channels = [1] + [cfg.n_filters] * cfg.n_blocks
        self.blocks = nn.Sequential(*[_conv_block(a, b, cfg) for a, b in zip(channels, channels[1:])])

    def forward(self, x):
        return self.blocks(x).flatten(1)

    def embed(self, x):
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return embedding_from_maps(maps, self.cfg)


def _phases(y, c_out: int):
    """(B, 4 c_out, L + 1, L + 1) -> the strided view (B, c_out, L, 2, L, 2) with [.., m, a, n, b] =
    y[:, (2a + b) c_out + c, m + a, n + b]: phase (a, b) of output pixel (2m + a, 2n + b), for any layout."""
    B, _, P, Q = y.shape
    sb, sk, sp, sq = y.stride()
    return y.as_strided((B, c_out, P - 1, 2, Q - 1, 2), (sb, sk, sp, 2 * c_out * sk + sp, sq, c_out * sk + sq),
                        y.storage_offset())


class _Interleave(torch.autograd.Function):
    """The phases of a sub-pixel convolution into one map of y's memory layout: one copy each way
    (autograd's as_strided backward takes two)."""

    @staticmethod
    def forward(ctx, y, c_out: int):
        B, _, P, Q = y.shape
        fmt = torch.channels_last if y.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        ctx.c_out, ctx.shape, ctx.fmt = c_out, y.shape, fmt
        out = torch.empty((B, c_out, 2 * P - 2, 2 * Q - 2), dtype=y.dtype, device=y.device, memory_format=fmt)
        out.view(B, c_out, P - 1, 2, Q - 1, 2).copy_(_phases(y, c_out))
        return out

    @staticmethod
    def backward(ctx, grad):
        B, _, P, Q = ctx.shape
        # the last row and column of each phase are not used by any output pixel: zero gradient
        grad_y = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=ctx.fmt).zero_()
        _phases(grad_y, ctx.c_out).copy_(grad.unflatten(2, (P - 1, 2)).unflatten(4, (Q - 1, 2)))
        return grad_y, None


class SubPixelConvTranspose2d(nn.ConvTranspose2d):
    """ConvTranspose2d(k=4, stride 2, pad 1) computed as sub-pixel convolution: one stride-1 2x2
    convolution with 4x the output channels (one group per output phase) on the input padded by one,
    whose phases are then interleaved into the 2x larger map.

    Same parameters, state dict and result as nn.ConvTranspose2d (up to float rounding): the conv weight
    is rearranged from the transposed one on every call, so gradients reach the paper's parameters. Why:
    oneDNN's weight gradient of a strided deconvolution is slow on CPU (half of an AE-C training step),
    while stride-1 convolutions take its fast path.
    """

    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels, kernel_size=4, stride=2, padding=1)

    def forward(self, x):
        # Output row 2m + a (phase a) sums x[m-1] w[3] + x[m] w[1] (a = 0) or x[m] w[2] + x[m+1] w[0]
        # (a = 1): padded row m + a + p times kernel tap 3 - a - 2p, i.e. tap 2p + a of the flipped kernel.
        w = self.weight.flip(2, 3).unflatten(3, (2, 2)).unflatten(2, (2, 2))  # (in, out, p, a, q, b)
        w = w.permute(3, 5, 1, 0, 2, 4).reshape(4 * self.out_channels, self.in_channels, 2, 2)  # (a, b, out)
        if self.weight.is_contiguous(memory_format=torch.channels_last) and not self.weight.is_contiguous():
            w = w.contiguous(memory_format=torch.channels_last)  # a channels-last net stays so (the conv follows)
        y = F.conv2d(x, w, self.bias.repeat(4), padding=1)  # (B, 4 out, L + 1, L + 1)
        return _Interleave.apply(y, self.out_channels)


class AudioDecoder(nn.Module):
    """(B, latent_size) -> (B, 1, n_mels, frames) reconstruction in [0, 1]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.shape = (cfg.n_filters, cfg.patch_frames >> cfg.n_blocks, cfg.n_mels >> cfg.n_blocks)
        layers = []
        for _ in range(cfg.n_blocks - 1):
            layers += [
                SubPixelConvTranspose2d(cfg.n_filters, cfg.n_filters),
                nn.BatchNorm2d(cfg.n_filters),
                nn.ReLU(),
                _conv_dropout(cfg),
            ]
        layers += [SubPixelConvTranspose2d(cfg.n_filters, 1), nn.BatchNorm2d(1), nn.Sigmoid()]
        self.blocks = nn.Sequential(*layers)

    def forward(self, z):
        return self.blocks(z.view(-1, *self.shape))


def _mlp(sizes, dropout, last_activation: nn.Module):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        last = i == len(sizes) - 2
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), last_activation if last else nn.ReLU()]
        if not (last and isinstance(last_activation, nn.Sigmoid)):
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class TagEncoder(nn.Module):
    """(B, n_tags) multi-hot -> (B, latent_size)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = _mlp([cfg.n_tags, cfg.tag_hidden, cfg.tag_hidden, cfg.latent_size], cfg.dropout, nn.ReLU())

    def forward(self, t):
        return self.net(t)


class TagDecoder(nn.Module):
    """(B, latent_size) -> (B, n_tags) tag probabilities."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = _mlp([cfg.latent_size, cfg.tag_hidden, cfg.tag_hidden, cfg.n_tags], cfg.dropout, nn.Sigmoid())

    def forward(self, z):
        return self.net(z)


class TagClassifier(nn.Module):
    """The supervised baseline head: latent -> Linear-ReLU-Linear-Sigmoid tag probabilities."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.latent_size
        self.net = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, cfg.n_tags), nn.Sigmoid())

    def forward(self, z):
        return self.net(z)


def _affine(cfg):
    return nn.Sequential(nn.Linear(cfg.latent_size, cfg.latent_size, bias=False), nn.Dropout(cfg.dropout))


DECODERS = ("audio_decoder.", "tag_decoder.")  # AE-C's training-only modules (state-dict prefixes)


class COALA(nn.Module):
    """All modules of one variant. AE-C: everything; E-C: encoders and affines; CNN: encoder and classifier.

    Inference needs only `audio_encoder` (and, for the tag side, the affines and `tag_encoder`); a
    checkpoint may therefore hold a subset of these modules, see `load_state`. `decoders=False` leaves
    AE-C's decoders out (inference: 2.2 M parameters fewer, none of them random weights in memory).
    """

    def __init__(self, cfg: ModelConfig, decoders: bool = True):
        super().__init__()
        self.cfg = cfg
        self.audio_encoder = AudioEncoder(cfg)
        if cfg.variant == "cnn":
            self.classifier = TagClassifier(cfg)
            return
        self.audio_affine = _affine(cfg)
        self.tag_encoder = TagEncoder(cfg)
        self.tag_affine = _affine(cfg)
        if cfg.variant == "ae-c" and decoders:
            self.audio_decoder = AudioDecoder(cfg)
            self.tag_decoder = TagDecoder(cfg)

    @property
    def has_tag_space(self) -> bool:
        return hasattr(self, "tag_encoder")

    def inference_state_dict(self) -> dict:
        """Weights that inference uses: the decoders are for training only."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(DECODERS)}

    def load_state(self, state: dict):
        """Load a full or an inference-only state dict; decoders may be missing, nothing else.

        A model built without decoders ignores the decoder weights of a full state dict.
        """
        if not hasattr(self, "audio_decoder"):
            state = {k: v for k, v in state.items() if not k.startswith(DECODERS)}
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(DECODERS)]
        if missing or unexpected:
            raise ValueError(f"weights do not match the {self.cfg.variant} model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return self
