"""`TrainConfig`: every setting of a training run, and its default, in one place.

The defaults are the COALA paper's recipe (training/configs/paper.json spells it out); a recipe file
such as training/configs/cpu.json holds the keys it changes, and `--set KEY=VALUE` changes more. A key
that is not a field is an error that names it and the valid keys, wherever it comes from (a recipe
file, `--set`, a dict given to `train`): a misspelt setting must not train silently with its default.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable, Mapping

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # -- the network (coala_embed.model.ModelConfig)
    variant: str = "ae-c"  # "ae-c", "e-c" or "cnn" (the paper's baseline)
    dropout: float = 0.25
    conv_dropout: str = "element"  # "element" (the reference) or "channel" (whole maps, cheaper on a CPU)
    init_from: str | None = None  # copy matching tensors from a checkpoint (folder, Hub id, "bundled")
    # -- optimisation
    epochs: int = 200
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd", "adam" or "adamw"
    lr: float = 0.005
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # or "cosine", to 5 % of the peak at the last epoch
    seed: int = 0
    # -- the objective (losses.py): weights of the paper's three terms, its temperature
    lambda_audio: float = 5.0
    lambda_tag: float = 5.0
    lambda_contrastive: float = 10.0
    tau: float = 0.1
    mask_same_tags: bool = False  # leave identical tag sets out of each other's NT-Xent negatives
    multi_positive: bool = False  # clips sharing tags are positives too, weighted by tag overlap (Jaccard)
    lambda_audio_audio: float = 0.0  # weight of the audio-audio term between two views (0: off)
    # -- balance (data.epoch_order): at most this share of an epoch's patches carry the tag `speech`, the
    # others drawn anew each epoch (0: every patch every epoch, the shipped balance: ~60 % speech)
    speech_share: float = 0.0
    # -- augmentation (augment.py)
    mix_p: float = 0.0  # share of a batch mixed with another patch, tags united
    bandlimit_p: float = 0.0  # share of a batch low-passed at 3.4-8 kHz
    view_mix_p: float = 0.0  # share of second views mixed with another patch
    view_shift_frames: int = 0  # second view cut up to this many frames away (needs context frames)
    lead_frames: int = 0  # each patch cut up to this many frames earlier (needs context frames)
    # -- the machine
    device: str = "auto"  # "auto": CUDA when there is one
    bf16: bool = True  # bfloat16 autocast
    channels_last: bool = True
    num_threads: int = 0  # torch CPU threads (0: torch's choice)
    max_batches_per_epoch: int = 0  # 0: the whole training split
    # -- where the run ends: an early point of a long schedule (the lr still follows `epochs`), and
    # `ckpt-eNNN.pt` beside `ckpt.pt` after every epoch (training.export --checkpoint, training.soup)
    stop_after_epoch: int = 0  # 0: at `epochs`
    keep_epoch_checkpoints: bool = False
    # -- logging
    png_every: int = 1  # reconstructions figure every N epochs (AE-C; 0: never)
    log_every: int = 20  # console line every N batches (0: never)

    CHOICES = {"variant": ("ae-c", "e-c", "cnn"), "conv_dropout": ("element", "channel"),
               "optimizer": ("sgd", "adam", "adamw"), "lr_schedule": ("constant", "cosine")}

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and type(value) is int:  # 1 for 1.0, as JSON and --set write it
                object.__setattr__(self, f.name, float(value))
            elif not _is(value, f.type):
                raise ConfigError(f"{f.name}={value!r}: must be {f.type}")
        if self.mask_same_tags and self.multi_positive:
            raise ConfigError("mask_same_tags and multi_positive: choose one (identical tag sets are "
                              "positives under multi_positive, so masking them contradicts it)")
        if not 0 <= self.stop_after_epoch <= self.epochs:
            raise ConfigError(f"stop_after_epoch={self.stop_after_epoch}: must be 0 (off) or an epoch in "
                              f"1..epochs={self.epochs}")
        for key, allowed in self.CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}={getattr(self, key)!r}: must be one of {', '.join(allowed)}")

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping, source: str = "config") -> "TrainConfig":
        """The config of these keys, the others at their defaults; an unknown key is an error."""
        unknown = [k for k in values if k not in cls.keys()]
        if unknown:
            raise ConfigError(f"{source}: unknown key{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}; "
                              f"valid keys: {', '.join(cls.keys())}")
        try:
            return cls(**values)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def of(cls, cfg: "TrainConfig | Mapping") -> "TrainConfig":
        """cfg itself, or the config that a dict of some of the keys describes."""
        return cfg if isinstance(cfg, cls) else cls.from_dict(cfg)

    @classmethod
    def from_run(cls, run_config: Mapping) -> "TrainConfig":
        """The settings of a run's config.json, which records its data (tags, front end, corpus) beside
        them; a setting added since the run was trained takes its default, which is what the run did."""
        return cls.from_dict({k: v for k, v in run_config.items() if k in cls.keys()})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        return self.from_dict({**self.to_dict(), **changes})


def _is(value, kind: str) -> bool:
    return {"bool": lambda: type(value) is bool, "int": lambda: type(value) is int, "float": lambda: type(value) is float,
            "str": lambda: isinstance(value, str), "str | None": lambda: value is None or isinstance(value, str)}[kind]()


def parse_overrides(pairs: Iterable[str] | None) -> dict:
    """`KEY=VALUE` strings -> {key: value}; a value is read as JSON (numbers, true, null), else as text."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_config(path=None, overrides: Iterable[str] | None = None) -> TrainConfig:
    """The defaults, changed by a recipe file (JSON) and then by `--set KEY=VALUE` strings."""
    values = {}
    if path is not None:
        values = json.loads(Path(path).read_text())
        TrainConfig.from_dict(values, source=str(path))  # names the file when one of its keys is unknown
    return TrainConfig.from_dict({**values, **parse_overrides(overrides)}, source="--set")
