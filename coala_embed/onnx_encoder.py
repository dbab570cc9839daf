"""The encoder run by onnxruntime on the CPU (backend='onnx'), as the engine calls it.

`OnnxEncoder.submit(batch)` has coala_embed.encoder.TorchEncoder's interface. Sessions are built once
per encoder and thread count and kept for the process. The encoder graph comes from
coala_embed.onnx_export (BatchNorm folded, fp32), or the checkpoint's int8 quantization of it (precision='int8',
written by training.quantize); no torch is imported.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

import numpy as np

from .checkpoint import Model
from .onnx_export import INPUT_NAME, onnx_for

_sessions: dict = {}
SPIN = False  # onnxruntime's busy-waiting between batches; off leaves those cores to the front-end threads


def default_threads() -> int:
    """Intra-op threads as torch would use: torch's own setting if torch is imported, else OMP_NUM_THREADS
    (or MKL_NUM_THREADS), else the number of physical cores (as torch counts them, SMT siblings once)."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    cpus = range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        try:
            topology = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
            cores.add((open(topology + "physical_package_id").read().strip(), open(topology + "core_id").read().strip()))
        except OSError:
            cores.add(("cpu", cpu))
    return max(1, len(cores))


def session(model: Model, threads: int | None = None, precision: str = "fp32"):
    """The onnxruntime session of model's encoder, fp32 or its int8 quantization (cached by the graph's
    sha256 and the thread count)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("backend='onnx' needs onnxruntime: pip install 'coala-embed[onnx]'") from None
    threads = threads or default_threads()
    digest, graph = onnx_for(model, precision)
    key = (digest, threads, SPIN)
    if key not in _sessions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if SPIN else "0")
        source = graph if isinstance(graph, bytes) else os.fspath(graph)
        _sessions[key] = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return _sessions[key]


class OnnxEncoder:
    """The inference encoder of `model` in onnxruntime, fed (n, n_mels, patch_frames) float32 patches."""

    def __init__(self, model: Model, threads: int | None = None, precision: str = "fp32"):
        self.session = session(model, threads, precision)

    def submit(self, batch: list[np.ndarray]) -> Callable[[], np.ndarray]:
        """Run the batch (the concatenation of the arrays); the returned function gives its (n, D) float32
        embeddings (computed already: onnxruntime runs synchronously, releasing the GIL meanwhile)."""
        x = np.concatenate(batch).astype(np.float32, copy=False)[:, None]
        out = self.session.run(None, {INPUT_NAME: x})[0]
        return lambda: out
