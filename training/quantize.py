"""`python -m training.quantize --weights weights --data prepared`: a checkpoint's int8 encoder.

Static quantization (onnxruntime.quantization, QDQ: int8 weights per output channel, uint8 activations) of
the checkpoint's encoder.onnx, which is exported first where the checkpoint has none. Activation ranges are
calibrated on CALIBRATION_PATCHES validation patches of the prepared corpus the weights were trained on,
drawn with a fixed seed (the same data gives the same file). Writes `encoder.int8.onnx` beside the weights
and records its sha256, the weights' sha256 and the provenance in config.json; `precision='int8'` (onnx
backend) runs it. Needs the `onnx` package (coala-embed[train]); about 5 s on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import coala_embed
from coala_embed.checkpoint import ONNX_INT8_NAME, record_file
from coala_embed.onnx_export import INPUT_NAME, export_onnx
from training.trainer.data import load_prepared, prepared_for

CALIBRATION_PATCHES = 512
BATCH = 64
SEED = 0


def calibration_patches(data: Path, n: int = CALIBRATION_PATCHES, seed: int = SEED) -> np.ndarray:
    patches = load_prepared(data, "val").patches
    rows = np.sort(np.random.default_rng(seed).choice(len(patches), size=min(n, len(patches)), replace=False))
    return np.asarray(patches[rows], np.float32)


def quantize(model, folder: Path, calibration: np.ndarray) -> Path:
    """Write folder's encoder.int8.onnx from its encoder.onnx (model: loaded from folder with backend='onnx'),
    calibrated on (n, n_mels, frames) patches."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Patches(CalibrationDataReader):
        def __init__(self):
            self.start = 0

        def get_next(self):
            if self.start >= len(calibration):
                return None
            self.start += BATCH
            return {INPUT_NAME: calibration[self.start - BATCH:self.start, None]}

    source = model.onnx_path or export_onnx(folder)
    path = Path(folder) / ONNX_INT8_NAME
    with tempfile.TemporaryDirectory() as tmp:
        prepared, out = Path(tmp) / "pre.onnx", Path(tmp) / ONNX_INT8_NAME
        quant_pre_process(str(source), str(prepared))  # shapes inferred and graph tidied, as onnxruntime advises
        quantize_static(str(prepared), str(out), Patches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        os.replace(out, path)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.quantize", description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, type=Path, help="checkpoint folder")
    p.add_argument("--data", required=True, type=Path, help="the training.prepare folder the weights were trained on")
    p.add_argument("--patches", type=int, default=CALIBRATION_PATCHES, help="calibration patches")
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args(argv)
    start = time.time()
    model = coala_embed.load_model(args.weights, device="cpu", backend="onnx")
    meta = prepared_for(model, args.data)
    calibration = calibration_patches(args.data, args.patches, args.seed)
    path = quantize(model, args.weights, calibration)
    import onnxruntime

    provenance = {"data": str(args.data), "corpus_manifest_sha256": meta.get("corpus_manifest_sha256"),
                  "calibration_patches": len(calibration), "seed": args.seed, "method": "static QDQ, MinMax, "
                  "int8 weights per channel, uint8 activations", "onnxruntime": onnxruntime.__version__,
                  "seconds": round(time.time() - start, 1),
                  "command": "python -m training.quantize " + " ".join(argv if argv is not None else sys.argv[1:])}
    record_file(args.weights, "onnx_int8", path, onnx_int8={"weights_sha256": model.sha256, "provenance": provenance})
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(calibration)} calibration patches, "
          f"{time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
