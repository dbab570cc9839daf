"""The inference encoder as ONNX, for onnxruntime (backend='onnx'): written beside a checkpoint's weights
(`export_onnx`, training.export) or exported on first use into a cache (`onnx_for`).

The graph is the encoder of coala_embed.encoder.inference_encoder: each block's BatchNorm folded into
its convolution (in float64, then float32), Conv(4x4, stride 2, pad 1) -> ReLU per block, then the
embedding of coala_embed.model.embedding_from_maps (the last map flattened, each time-averaged block's
map as ReduceMean over frames -> Flatten, all concatenated): (batch, 1, n_mels, patch_frames) float32
patches -> (batch, embedding_size) float32, the batch axis dynamic. It is built from the weights with
numpy and onnx's helpers, so exporting needs the `onnx` package, not torch, and the same weights and
layout always give the same bytes (no tracer, no version stamp).

A checkpoint's `config.json` records the file as "onnx_file" and its sha256 as "onnx_sha256", which
load_model(backend='onnx') verifies as it verifies the weights. Cached exports live in
`$XDG_CACHE_HOME/coala-embed/<weights sha256>[-tm<block>...]/encoder.onnx` (default ~/.cache; the
layout's blocks in the name), with their sha256 in `encoder.onnx.sha256`; one that does not match is
exported again.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Mapping

import numpy as np

from .checkpoint import (CONFIG_NAME, ONNX_INT8_NAME, ONNX_NAME, WEIGHTS_NAME, CheckpointError, Model, read_config,
                         read_numpy_state, verified_file)
from .modelconfig import ModelConfig
from .numpy_net import BN_EPS

OPSET = 17
IR_VERSION = 8  # onnxruntime >= 1.10 reads it
INPUT_NAME, OUTPUT_NAME = "patches", "embeddings"


def folded_blocks(state: Mapping[str, np.ndarray], cfg: ModelConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) of each encoder convolution with its eval-mode BatchNorm folded in, float32."""
    blocks = []
    for i in range(cfg.n_blocks):
        p = f"audio_encoder.blocks.{i}."
        w, b = (np.asarray(state[p + "0." + k], np.float64) for k in ("weight", "bias"))
        gamma, beta, mean, var = (np.asarray(state[p + "1." + k], np.float64)
                                  for k in ("weight", "bias", "running_mean", "running_var"))
        scale = gamma / np.sqrt(var + BN_EPS)
        blocks.append(((w * scale[:, None, None, None]).astype(np.float32), ((b - mean) * scale + beta).astype(np.float32)))
    return blocks


def encoder_onnx(state: Mapping[str, np.ndarray], cfg: ModelConfig, weights_sha256: str) -> bytes:
    """The serialized ONNX model of the inference encoder of these weights (state: name -> array)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise CheckpointError("exporting the encoder to ONNX needs the onnx package: pip install onnx") from None
    nodes, initializers, x = [], [], INPUT_NAME
    for i, (w, b) in enumerate(folded_blocks(state, cfg)):
        initializers += [numpy_helper.from_array(w, f"conv{i}.weight"), numpy_helper.from_array(b, f"conv{i}.bias")]
        nodes += [helper.make_node("Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [f"conv{i}"],
                                   kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"])]
        x = f"relu{i}"
    parts = ["latent"]
    nodes.append(helper.make_node("Flatten", [x], ["latent"], axis=1))
    for block in cfg.time_mean_blocks:  # relu{block - 1}: (batch, channels, mel rows, frames)
        nodes += [helper.make_node("ReduceMean", [f"relu{block - 1}"], [f"time_mean{block}"], axes=[3], keepdims=0),
                  helper.make_node("Flatten", [f"time_mean{block}"], [f"profile{block}"], axis=1)]
        parts.append(f"profile{block}")
    nodes.append(helper.make_node("Concat", parts, [OUTPUT_NAME], axis=1) if len(parts) > 1
                 else helper.make_node("Identity", parts, [OUTPUT_NAME]))
    graph = helper.make_graph(
        nodes, "coala_audio_encoder",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 1, cfg.n_mels, cfg.patch_frames])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", cfg.embedding_size])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="coala-embed", doc_string="COALA audio encoder, BatchNorm folded")
    helper.set_model_props(model, {"weights_sha256": weights_sha256})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _write_atomic(path: Path, data: bytes):
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_onnx(folder) -> Path:
    """Write `encoder.onnx` beside a checkpoint's weights (verified first) and record it in config.json."""
    folder = Path(folder)
    config = read_config(folder)
    weights = verified_file(folder, config, "weights", WEIGHTS_NAME)
    data = encoder_onnx(read_numpy_state(weights, config["weights_sha256"]), ModelConfig.from_dict(config["model"]),
                        config["weights_sha256"])
    _write_atomic(folder / ONNX_NAME, data)
    updated = {}
    for key, value in config.items():  # recorded right after the weights' entries
        if key not in ("onnx_file", "onnx_sha256"):
            updated[key] = value
        if key == "weights_sha256":
            updated.update(onnx_file=ONNX_NAME, onnx_sha256=hashlib.sha256(data).hexdigest())
    _write_atomic(folder / CONFIG_NAME, (json.dumps(updated, indent=1) + "\n").encode())
    return folder / ONNX_NAME


def cache_dir() -> Path:
    """Where exports made on first use are kept: $XDG_CACHE_HOME/coala-embed (default ~/.cache/coala-embed)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coala-embed"


def onnx_for(model: Model, precision: str = "fp32") -> tuple[str, Path | bytes]:
    """(sha256, what onnxruntime loads) for the encoder of `model`.

    A model loaded with backend='onnx': its checkpoint's encoder.onnx (verified by load_model), or one
    exported from its weights into the cache. A torch model: exported in memory from its network's current
    weights (so it matches the TorchEncoder of the same model). precision='int8': the checkpoint's
    quantized encoder, verified here, whichever backend loaded the model.
    """
    if precision == "int8":
        return model.config.get("onnx_int8_sha256"), int8_encoder(model)
    cfg = model.net.cfg
    if model.backend != "onnx":
        state = {k: v.detach().float().cpu().numpy() for k, v in model.net.audio_encoder.state_dict().items()}
        data = encoder_onnx({"audio_encoder." + k: v for k, v in state.items()}, cfg, model.sha256)
        return hashlib.sha256(data).hexdigest(), data
    if model.onnx_path is not None:
        return model.config["onnx_sha256"], model.onnx_path
    # the graph depends on the weights and on the embedding's layout (config.json's model, not the weights)
    path = cache_dir() / (model.sha256 + cfg.layout_key) / ONNX_NAME
    record = path.with_name(ONNX_NAME + ".sha256")
    if path.exists() and record.exists():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest == record.read_text().strip():
            return digest, path
    weights = model.folder / model.config.get("weights_file", WEIGHTS_NAME)
    data = encoder_onnx(read_numpy_state(weights, model.sha256), cfg, model.sha256)
    digest = hashlib.sha256(data).hexdigest()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, data)
        _write_atomic(record, (digest + "\n").encode())
    except OSError:  # a read-only home: use it from memory this time
        return digest, data
    return digest, path


def int8_encoder(model: Model) -> Path:
    """The checkpoint's verified encoder.int8.onnx. Quantization needs calibration audio (training.quantize
    uses training patches), so it is made once beside the weights, never at run time."""
    config = model.config
    if not config.get("onnx_int8_file") or model.folder is None:
        raise ValueError(f"{model.source}: this checkpoint has no int8 encoder ({ONNX_INT8_NAME}); use "
                         "precision='fp32', or write one with python -m training.quantize")
    made_from = config.get("onnx_int8", {}).get("weights_sha256")
    if made_from != model.sha256:
        raise CheckpointError(f"{model.folder / config['onnx_int8_file']}: quantized from other weights "
                              f"(sha256 {made_from}, these are {model.sha256}); quantize these again")
    return verified_file(model.folder, config, "onnx_int8")
