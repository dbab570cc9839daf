"""The command line's embedding options (coala_embed.cli): one flag per field of EmbedOptions, each checked as
EmbedOptions checks it, the backend chosen where none is given, and the model loaded for them."""
from __future__ import annotations

import dataclasses
import os

import click

from .decode import RESAMPLERS
from .options import BACKENDS, ONNX_ONLY, ONNX_PRECISIONS, PRECISIONS, EmbedOptions


def default_backend(model, device, option_kw: dict):
    """The command line's backend when none is given: onnxruntime where it is installed and can run the
    model (on the CPU, fp32 or int8; the bundled weights ship encoder.onnx, other checkpoints need the onnx
    package to export theirs), because it starts in a fraction of a second and measured faster than torch on CPUs
    (README, Speed); else torch. A --device other than cpu, or an NVIDIA device without --device, keeps torch."""
    import importlib.util

    if option_kw.get("backend") is not None:
        return
    gpu = str(device) != "cpu" if device is not None else os.path.exists("/dev/nvidiactl")
    exportable = model is None or importlib.util.find_spec("onnx") is not None
    precision = option_kw.get("precision") or "fp32"
    usable = importlib.util.find_spec("onnxruntime") is not None and precision in ONNX_PRECISIONS
    option_kw["backend"] = "onnx" if usable and exportable and not gpu else "torch"


def load_for(model, device, option_kw: dict):
    """The model for these options (checked together first: e.g. --backend onnx computes in fp32 only);
    an unset backend is chosen here (default_backend), in option_kw."""
    from .checkpoint import CheckpointError
    from .engine import get_model

    default_backend(model, device, option_kw)
    try:
        backend = EmbedOptions(**option_kw).backend
    except (TypeError, ValueError) as e:
        raise click.UsageError(str(e))
    try:
        loaded = get_model(model, device, backend)
        if option_kw.get("precision") == "int8":  # a checkpoint without its int8 encoder: said before any audio
            from .onnx_export import int8_encoder

            int8_encoder(loaded)
        return loaded
    except CheckpointError as e:
        raise click.ClickException(str(e))
    except (RuntimeError, ValueError) as e:  # e.g. an unknown or unavailable torch device
        raise click.ClickException(str(e))


CHOICES = {"resampler": RESAMPLERS, "precision": PRECISIONS, "backend": BACKENDS}


def check_option(ctx, param, value):
    """Validate one option as EmbedOptions does (its message, under the flag's name). Rules between options
    are checked once all are known (load_for): int8 alone is valid, for the onnx backend it implies."""
    if value is not None:
        alone = {"backend": "onnx"} if param.name == "precision" and value in ONNX_ONLY else {}
        try:
            EmbedOptions(**{param.name: value, **alone})
        except (TypeError, ValueError) as e:
            raise click.BadParameter(str(e)) from None
    return value


def common_options(f):
    """--model and --device, then one flag per field of EmbedOptions (declared in coala_embed.options)."""
    for field in reversed(dataclasses.fields(EmbedOptions)):
        flag, help_text = field.metadata["flag"], field.metadata["help"]
        if field.type == "bool":
            f = click.option(flag, field.name, is_flag=True, help=help_text)(f)
            continue
        kind = click.Choice(CHOICES[field.name]) if field.name in CHOICES else int if "int" in field.type else float
        default = None if field.name == "backend" else field.default  # chosen by default_backend
        if field.name == "backend":
            help_text += " [default: onnx where onnxruntime is installed, on the CPU at fp32 or int8; else torch]"
        f = click.option(flag, field.name, type=kind, default=default, callback=check_option,
                         show_default=default is not None, help=help_text)(f)
    f = click.option("--device", default=None,
                     help="Torch device, e.g. cpu, cuda, cuda:1 [default: cuda if available, else cpu].")(f)
    f = click.option("--model", "model_source", default=None, metavar="SOURCE",
                     help="Checkpoint folder or file, or Hugging Face Hub id org/name[@revision] "
                          "[default: the weights bundled with the package].")(f)
    return f
