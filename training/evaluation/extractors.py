"""Extractors: what turns an audio file into one vector per clip, each with a cache identity.

A checkpoint through coala_embed's batched path (clip vector = the mean of its patch embeddings, the
`mean` that process_file writes), the same architecture with random weights, the MFCC anchor and the
descriptor statistics of the correlation analysis (features.py)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np


EXTRACTION_VERSION = "x1"  # patches: non-overlapping, no centring, no clip padding, soxr_hq; clip = mean


def _json_hash(d) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def frontend_hash(frontend) -> str:
    return _json_hash(frontend.to_dict())


def state_hash(net) -> str:
    """sha256 over the names, shapes and float32 bytes of the inference weights."""
    h = hashlib.sha256()
    for k, v in sorted(net.inference_state_dict().items()):
        t = v.detach().to("cpu").float().contiguous().numpy()
        h.update(f"{k}{tuple(t.shape)}".encode())
        h.update(t.tobytes())
    return h.hexdigest()


@dataclasses.dataclass
class Extractor:
    name: str
    kind: str  # 'model', 'random' or 'mfcc'
    identity: str  # cache key
    info: dict
    dim: int
    # (paths) -> iterator of (path, vector or None, error or None), in input order
    run: Callable[[list[Path]], Iterator[tuple[str, np.ndarray | None, str | None]]]


def _model_runner(model, batch_size: int, precision: str = "fp32"):
    from coala_embed import clip_mean, embed_files
    from coala_embed.options import ONNX_ONLY

    def run(paths):
        backend = "onnx" if precision in ONNX_ONLY else "torch"  # int8: the checkpoint's quantized onnx encoder
        for path, emb, _, error in embed_files(paths, model=model, batch_size=batch_size, precision=precision,
                                               backend=backend):
            if error is not None:
                yield path, None, error
            else:  # exactly process_file's `mean`
                yield path, clip_mean(emb), None
    return run


def model_extractor(model, name: str, kind: str = "model", batch_size: int = 32, extra: dict | None = None,
                    precision: str = "fp32") -> Extractor:
    fe_hash = frontend_hash(model.frontend)
    if kind == "model":
        identity = f"model-{model.sha256[:16]}-fe{fe_hash[:12]}-{EXTRACTION_VERSION}"
    else:
        identity = f"random-s{extra['seed']}-w{model.sha256[:12]}-fe{fe_hash[:12]}-{EXTRACTION_VERSION}"
    identity += model.net.cfg.layout_key  # the embedding's layout (config, not weights); '' keeps the old identity
    if precision != "fp32":  # fp32 keeps the identity (and the cache) it always had
        identity += f"-{precision}"
    info = {"kind": kind, "source": model.source, "variant": model.net.cfg.variant,
            "weights_sha256": model.sha256, "frontend_sha256": fe_hash, "model_config": model.net.cfg.to_dict(),
            "frontend": model.frontend.to_dict(), "embedding_size": model.embedding_size, "cache_identity": identity,
            "clip_vector": "mean over non-overlapping patches (process_file's `mean`)", "precision": precision}
    info.update(extra or {})
    return Extractor(name, kind, identity, info, model.embedding_size, _model_runner(model, batch_size, precision))


def random_model(seed: int = 0, frontend=None, cfg=None, device=None):
    """The COALA architecture with freshly initialised (seeded) weights, wrapped as a checkpoint Model."""
    import torch

    from coala_embed.audio import FrontEnd
    from coala_embed.checkpoint import Model, default_device
    from coala_embed.model import COALA, ModelConfig

    cfg = cfg or ModelConfig()
    if frontend is None:  # unit scaler: the encoder sees unscaled log-mel
        frontend = FrontEnd()
        frontend = frontend.with_scaler([0.0] * frontend.n_mels, [1.0] * frontend.n_mels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = COALA(cfg)
    device = torch.device(device) if device is not None else default_device()
    net.to(device).eval()
    tags = [f"tag{i}" for i in range(cfg.n_tags)]
    config = {"model": cfg.to_dict(), "frontend": frontend.to_dict(), "tags": tags, "weights_sha256": state_hash(net),
              "provenance": {"random_init_seed": seed}}
    return Model(net=net, frontend=frontend, tags=tags, config=config, source=f"random(seed={seed})", device=device)


def mfcc_extractor() -> Extractor:
    """The MFCC anchor. It computes the descriptor statistics of the correlation analysis from the same
    decode and STFT, and keeps them in `ex.side` (path -> vector) for `stats_extractor`."""
    from training.evaluation import features  # librosa: loaded when an evaluation needs it
    side: dict[str, np.ndarray] = {}

    def run(paths):
        for p in paths:
            try:
                anchor, stats = features.clip_features(p)
            except Exception as e:
                yield str(p), None, f"{p}: {type(e).__name__}: {e}"
                continue
            side[str(p)] = stats
            yield str(p), anchor, None

    info = {"kind": "mfcc", "cache_identity": features.MFCC_ID, "sample_rate": features.FEATURE_SR,
            "description": f"{features.N_MFCC} MFCCs + deltas + delta-deltas (width {features.DELTA_WIDTH}), "
                           f"mean and std over time; librosa at {features.FEATURE_SR} Hz, n_fft {features.N_FFT}, "
                           f"hop {features.HOP}, 128 mel bands"}
    ex = Extractor("mfcc", "mfcc", features.MFCC_ID, info, 120, run)
    ex.side = side
    return ex


def stats_extractor(computed: dict | None = None) -> Extractor:
    """Descriptor statistics (features.py); `computed` holds some already (from the MFCC anchor)."""
    from training.evaluation import features
    computed = {} if computed is None else computed

    def run(paths):
        for p in paths:
            if str(p) in computed:
                yield str(p), computed.pop(str(p)), None
                continue
            try:
                yield str(p), features.clip_stats(p), None
            except Exception as e:
                yield str(p), None, f"{p}: {type(e).__name__}: {e}"

    info = {"kind": "stats", "cache_identity": features.STATS_ID, "descriptors": list(features.DESCRIPTORS),
            "statistics": list(features.STATS), "sample_rate": features.FEATURE_SR}
    return Extractor("descriptors", "stats", features.STATS_ID, info, features.STATS_DIM, run)


def parse_model_arg(arg: str) -> tuple[str | None, str]:
    """'NAME=SOURCE' or 'SOURCE' -> (name or None, source)."""
    if "=" in arg:
        name, source = arg.split("=", 1)
        if name and "/" not in name and os.sep not in name:
            return name, source
    return None, arg


def default_model_name(source: str) -> str:
    if source in ("bundled", ""):
        return "bundled"
    p = Path(source)
    if p.exists():
        p = p.resolve()
        if p.is_file():
            p = p.parent
        return f"{p.parent.name}/{p.name}" if p.name in ("export", "weights", "checkpoint") else p.name
    return source  # a Hub id


def build_extractors(model_args: list[str], mfcc: bool = True, random: bool = True, random_seed: int = 0,
                     batch_size: int = 32, device=None, precisions=("fp32",)) -> list[Extractor]:
    from coala_embed.checkpoint import load_model

    extractors, names = [], set()
    first = None
    for arg in model_args:
        name, source = parse_model_arg(arg)
        name = name or default_model_name(source)
        model = load_model(None if source == "bundled" else source, device)
        first = first or model
        for precision in precisions:  # e.g. fp32 and bf16 side by side: same folds, paired
            extractors.append(model_extractor(model, name if precision == "fp32" else f"{name}-{precision}",
                                              batch_size=batch_size, extra={"source_arg": source}, precision=precision))
    if random:
        import dataclasses as dc
        cfg = dc.replace(first.net.cfg, variant="ae-c") if first is not None else None
        model = random_model(random_seed, None if first is None else first.frontend, cfg, device)
        fe_from = f"front end of {extractors[0].name}" if first is not None else "default front end, unit scaler"
        extractors.append(model_extractor(model, "random", kind="random", batch_size=batch_size,
                                          extra={"seed": random_seed, "frontend_from": fe_from}))
    if mfcc:
        extractors.append(mfcc_extractor())
    for ex in extractors:
        if ex.name in names:
            raise ValueError(f"two extractors named {ex.name!r}; name them with --model NAME=SOURCE")
        names.add(ex.name)
    return extractors


def extractor_label(ex: Extractor) -> str:
    """How tables and figures name an extractor."""
    if ex.kind == "mfcc":
        return "MFCC (120-d)"
    if ex.kind == "random":
        return f"random-weight encoder (seed {ex.info.get('seed', 0)})"
    return f"{ex.name} ({ex.info.get('variant', '?').upper()})"
