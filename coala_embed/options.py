"""The embedding options: declared once here, validated before any audio is read.

Every entry point (`get_embedding`, `process_file`, `embed_files`, `predict_tags`, the scikit-learn
transformer, Ray and the command line) takes these as keyword arguments or as one `EmbedOptions`,
so an option is added in one place: a field below (its `help` is the command line's).
"""
from __future__ import annotations

import dataclasses
import numbers

from .decode import RESAMPLERS

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
ONNX_ONLY = ("int8",)  # the checkpoint's quantized encoder (encoder.int8.onnx): onnxruntime runs it, torch cannot
ONNX_PRECISIONS = ("fp32", *ONNX_ONLY)
BACKENDS = ("torch", "onnx")
DEFAULT_BATCH_SIZE = 128  # patches per forward pass; larger batches measured faster on CPU (README, Speed)


def _option(default, help: str, flag: str, affects_output: bool = True, arithmetic: bool = False):
    """A field with its command-line flag and help; `affects_output`: recorded as output metadata;
    `arithmetic`: it only changes how the same function is computed (outputs stay current, see `framing`)."""
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag, "affects_output": affects_output,
                                                        "arithmetic": arithmetic})


@dataclasses.dataclass(frozen=True)
class EmbedOptions:
    """How audio becomes embeddings. Only the first six change the numbers (see `identity`)."""

    hop_size: float | None = _option(
        None, "Seconds between patch starts, rounded to whole STFT frames (23.3 ms) [default: one patch, "
              "~2.23 s, non-overlapping].", "--hop-size")
    center: bool = _option(False, "Pad half a patch at both ends so that patch centres start at t=0.", "--center")
    clip_seconds: float | None = _option(
        None, "Pad with silence or cut each clip to this many seconds first.", "--clip-seconds")
    resampler: str = _option("soxr_hq", "Resampling filter: soxr's HQ (streaming) or resampy's kaiser_best / "
                                        "kaiser_fast.", "--resampler")
    precision: str = _option("fp32", "Encoder arithmetic: bf16 is faster on CPUs with AVX512-BF16/AMX and on "
                                     "CUDA, fp16 on CUDA (torch); int8, the checkpoint's quantized encoder, "
                                     "~3x faster on CPUs (onnx backend). All move embeddings slightly.", "--precision",
                       arithmetic=True)
    backend: str = _option("torch", "What runs the encoder: torch, or onnxruntime on the CPU (fp32 or int8; "
                                    "needs coala-embed[onnx], not torch; fp32 within 1e-4 of torch's).", "--backend",
                     arithmetic=True)
    batch_size: int = _option(DEFAULT_BATCH_SIZE, "Patches per forward pass, shared across files; results do "
                                                  "not depend on it.", "--batch-size", affects_output=False)
    num_workers: int | None = _option(
        None, "Threads decoding and computing log-mel of the next files while the encoder runs; 0: none "
              "[default: 2 on CPU (1 on one core), one a core up to 8 with int8, up to 8 with CUDA].",
        "--workers", affects_output=False)

    def __post_init__(self):
        _check_number("hop_size", self.hop_size, positive=True, optional=True)
        _check_number("clip_seconds", self.clip_seconds, positive=True, optional=True)
        if not _is_bool(self.center):
            raise TypeError(f"center must be True or False, got {self.center!r}")
        for name in ("hop_size", "clip_seconds"):  # numpy scalars as plain floats: metadata is JSON
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "center", bool(self.center))
        _check_choice("resampler", self.resampler, RESAMPLERS)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("backend", self.backend, BACKENDS)
        if self.backend == "onnx" and self.precision not in ONNX_PRECISIONS:
            raise ValueError(f"backend='onnx' computes in fp32 or int8, got precision={self.precision!r}")
        if self.backend == "torch" and self.precision in ONNX_ONLY:
            raise ValueError("precision='int8' is the checkpoint's quantized encoder in onnxruntime: use "
                             "backend='onnx' (--backend onnx)")
        _check_int("batch_size", self.batch_size, minimum=1)
        if self.num_workers is not None:
            _check_int("num_workers", self.num_workers, minimum=0)
        object.__setattr__(self, "batch_size", int(self.batch_size))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def of(cls, options: "EmbedOptions | None" = None, caller: str = "", **kw) -> "EmbedOptions":
        """`options` (or the defaults) with the keyword arguments kw replacing its fields."""
        unknown = sorted(set(kw) - set(cls.names()))
        if unknown:
            raise TypeError(f"{caller or 'EmbedOptions'}() got unexpected keyword argument(s) {unknown}; "
                            f"the embedding options are {list(cls.names())}")
        if options is not None and not isinstance(options, cls):
            raise TypeError(f"options must be an EmbedOptions, got {type(options).__name__}")
        return dataclasses.replace(options or cls(), **kw)

    @classmethod
    def split(cls, kw: dict) -> tuple[dict, dict]:
        """kw as (embedding options, the rest)."""
        names = set(cls.names())
        return {k: v for k, v in kw.items() if k in names}, {k: v for k, v in kw.items() if k not in names}

    def identity(self) -> dict:
        """The options that change the embeddings, as output metadata records them (with the weights' sha256)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata["affects_output"]}

    @classmethod
    def framing(cls, settings: dict) -> dict:
        """Recorded output settings (`identity` and the weights' sha256) less the arithmetic options (backend,
        precision: the same function within rounding): an output made with other ones is stale. Except int8:
        the quantized encoder is another function (embeddings 2.5 % away, cosine 0.9994), so it counts."""
        arithmetic = {f.name for f in dataclasses.fields(cls) if f.metadata["arithmetic"]}
        out = {k: v for k, v in settings.items() if k not in arithmetic}
        if settings.get("precision") in ONNX_ONLY:
            out.update(precision=settings["precision"], backend="onnx")
        return out


def _is_bool(x) -> bool:
    return isinstance(x, bool) or type(x).__name__ == "bool_"


def _check_number(name, value, positive=False, optional=False):
    if value is None and optional:
        return
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds{' or None' if optional else ''}, got {value!r}")
    if positive and not value > 0:  # also refuses NaN
        raise ValueError(f"{name} must be positive, got {value!r}")
    if value == float("inf"):
        raise ValueError(f"{name} must be finite, got {value!r}")


def _check_int(name, value, minimum):
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
