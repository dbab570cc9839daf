"""Checkpoints: a folder with `model.safetensors` and `config.json`, verified by sha256 before loading.

`config.json` carries everything needed to use the weights correctly: the network's shape, every
front-end parameter including the per-band scaler, the tag vocabulary, and provenance. Weights are
read with safetensors, never unpickled. A checkpoint may also hold `encoder.onnx` (the inference encoder
for onnxruntime, coala_embed.onnx_export), `vocabulary.json` (which tags describe sounds, and English
words onto them; coala_embed.vocabulary) and `tag_head.safetensors` (a classifier of sound tags;
coala_embed.tag_head), each recorded with its sha256 like the weights. Nothing here imports
torch at import time: `load_model(..., backend="onnx")` needs only numpy, safetensors and onnxruntime.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .audio import FrontEnd
from .modelconfig import ModelConfig
from .options import BACKENDS
from .tag_head import TAG_HEAD_NAME, TagHead
from .vocabulary import VOCABULARY_NAME, Vocabulary

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .model import COALA
    from .numpy_net import NumpyNet

FORMAT = "coala-embed-checkpoint"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ONNX_NAME = "encoder.onnx"
ONNX_INT8_NAME = "encoder.int8.onnx"  # precision='int8': encoder.onnx quantized (python -m training.quantize)
# what load_model fetches from the Hub, and so what training.export --push must upload
CHECKPOINT_FILES = (CONFIG_NAME, WEIGHTS_NAME, ONNX_NAME, ONNX_INT8_NAME, VOCABULARY_NAME, TAG_HEAD_NAME)
HUB_ID = re.compile(r"^(?:hf://)?(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found, fetched, verified or loaded."""


@dataclasses.dataclass(frozen=True)
class HostDevice:
    """The device of a model loaded with backend='onnx': onnxruntime on the CPU (`type` as torch.device's)."""

    type: str = "cpu"

    def __str__(self):
        return self.type


@dataclasses.dataclass
class Model:
    """A loaded checkpoint: the network in eval mode, its front end and its tag vocabulary.

    With backend='onnx', `net` is the tag side in numpy (coala_embed.numpy_net) and onnxruntime runs the
    encoder: `onnx_path`, the checkpoint's verified encoder.onnx, or None (exported on first use from the
    weights in `folder`, coala_embed.onnx_export).
    """

    net: COALA | NumpyNet
    frontend: FrontEnd
    tags: list[str]
    config: dict
    source: str
    device: torch.device | HostDevice
    backend: str = "torch"
    folder: Path | None = None
    onnx_path: Path | None = None
    vocabulary: Vocabulary | None = None  # None: the plain vocabulary of `tags` (every tag a sound tag)
    tag_vectors: np.ndarray | None = dataclasses.field(default=None, repr=False)  # coala_embed.tags, on first use
    tag_head: TagHead | None = dataclasses.field(default=None, repr=False)  # None: tags ranked by cosine alone
    silence: np.ndarray | None = dataclasses.field(default=None, repr=False)  # coala_embed.tags.silent, on first use

    def __post_init__(self):
        if self.vocabulary is None:
            self.vocabulary = Vocabulary.plain(self.tags)

    @property
    def embedding_size(self) -> int:
        return self.net.cfg.embedding_size

    @property
    def sha256(self) -> str:
        return self.config["weights_sha256"]

    def __repr__(self):
        return (f"Model(variant={self.net.cfg.variant!r}, embedding_size={self.embedding_size}, "
                f"n_tags={len(self.tags)}, source={self.source!r}, device={str(self.device)!r}, "
                f"backend={self.backend!r})")


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(folder, net: COALA, frontend: FrontEnd, tags, provenance: dict | None = None,
                    inference_only: bool = True, licence: dict | None = None) -> Path:
    """Write `model.safetensors` + `config.json` into folder; returns the folder.

    `licence`, if given, is stored as the config's "licence" (the weights' terms travel with them).
    """
    import torch
    from safetensors.torch import save

    if frontend.scaler_min is None:
        raise ValueError("the front end has no fitted scaler; a checkpoint must carry one")
    if len(tags) != net.cfg.n_tags:
        raise ValueError(f"{len(tags)} tags for a model with n_tags={net.cfg.n_tags}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = net.inference_state_dict() if inference_only else net.state_dict()
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    weights = folder / WEIGHTS_NAME
    tmp = weights.with_suffix(".tmp")
    with open(tmp, "wb") as f:  # open() gives the umask's mode; safetensors' save_file would give 0600
        f.write(save(state))
    os.replace(tmp, weights)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "embedding_size": net.cfg.embedding_size,
        "model": net.cfg.to_dict(),
        "frontend": frontend.to_dict(),
        "tags": list(tags),
        "weights_file": WEIGHTS_NAME,
        "weights_sha256": sha256_file(weights),
        "provenance": provenance or {},
    }
    if licence is not None:
        config["licence"] = licence
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=1) + "\n")
    return folder


def bundled_weights_dir() -> Path:
    """The `weights/` folder installed inside the package (or beside it in a source checkout)."""
    installed = Path(__file__).resolve().parent / "weights"
    if (installed / CONFIG_NAME).exists():
        return installed
    return Path(__file__).resolve().parent.parent / "weights"


def resolve_source(source=None) -> Path:
    """A local checkpoint folder for `source`: None (bundled), a folder or file, or a Hub repo id[@revision]."""
    if source is None:
        folder = bundled_weights_dir()
        if not (folder / CONFIG_NAME).exists():
            raise CheckpointError(
                "no weights are bundled with this installation of coala-embed "
                f"(looked in {folder}); pass a checkpoint folder or a Hugging Face Hub id as `model`")
        return folder
    path = Path(os.path.expanduser(os.fspath(source)))
    if path.exists():
        folder = path.parent if path.is_file() else path
        if not (folder / CONFIG_NAME).exists():
            raise CheckpointError(f"{source}: not a coala-embed checkpoint (no {CONFIG_NAME} in {folder})")
        return folder
    match = HUB_ID.match(str(source))
    if not match:
        raise CheckpointError(f"{source}: no such file or folder, and not a Hugging Face Hub id like 'org/name[@revision]'")
    return _download_from_hub(match["repo"], match["rev"])


def _download_from_hub(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(CHECKPOINT_FILES)))
    except LocalEntryNotFoundError as e:
        raise CheckpointError(
            f"{repo_id}: not in the local Hugging Face cache and the Hub cannot be reached "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}); fetch it once while online ({e})") from None
    except Exception as e:
        raise CheckpointError(f"{repo_id}: could not fetch from the Hugging Face Hub ({type(e).__name__}: {e})") from None


def default_device() -> torch.device:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def read_config(folder: Path) -> dict:
    """A checkpoint folder's config.json, checked to be this format."""
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder / CONFIG_NAME}: unreadable checkpoint config ({e})") from None
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{folder}: not a {FORMAT} version {FORMAT_VERSION} checkpoint")
    return config


def verified_file(folder: Path, config: dict, kind: str, default_name: str | None = None) -> Path:
    """The checkpoint's `<kind>_file` ("weights", "onnx"), whose sha256 must be config's `<kind>_sha256`."""
    path = folder / config.get(f"{kind}_file", default_name)
    if not path.exists():
        raise CheckpointError(f"{path}: {kind} file missing")
    digest = sha256_file(path)
    if digest != config.get(f"{kind}_sha256"):
        raise CheckpointError(
            f"{path}: sha256 {digest} does not match {config.get(f'{kind}_sha256')} recorded in {CONFIG_NAME}; "
            "the file is corrupt or has been modified")
    return path


def record_file(folder: Path, kind: str, path: Path, **entries):
    """Record `path` in the checkpoint's config.json as its `<kind>_file` with `<kind>_sha256` (what
    `verified_file` checks), plus any other top-level `entries`."""
    config_path = Path(folder) / CONFIG_NAME
    config = json.loads(config_path.read_text())
    config.update({f"{kind}_file": Path(path).name, f"{kind}_sha256": sha256_file(path), **entries})
    config_path.write_text(json.dumps(config, indent=1) + "\n")


def read_vocabulary(folder: Path, config: dict) -> Vocabulary | None:
    """The checkpoint's verified vocabulary.json, if config.json records one."""
    if not config.get("vocabulary_file"):
        return None
    path = verified_file(folder, config, "vocabulary")
    try:
        return Vocabulary.read(path, config["tags"])
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: malformed vocabulary ({e})") from None


def read_tag_head(folder: Path, config: dict) -> TagHead | None:
    """The checkpoint's verified tag head, if config.json records one (coala_embed.tag_head)."""
    if not config.get("tag_head_file"):
        return None
    path = folder / config["tag_head_file"]
    if not path.exists():
        raise CheckpointError(f"{path}: tag_head file missing")
    try:  # hashed and parsed from the same bytes: read once
        state = read_numpy_state(path, config["tag_head_sha256"])
        return TagHead.from_state(state, config["tag_head"]["tags"], ModelConfig.from_dict(config["model"]).embedding_size)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: malformed tag head ({e})") from None


def read_numpy_state(weights: Path, weights_sha256: str) -> dict:
    """The tensors of a safetensors file as numpy arrays, hashed and parsed from the same bytes."""
    from safetensors.numpy import load

    data = Path(weights).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != weights_sha256:
        raise CheckpointError(f"{weights}: sha256 {digest} does not match {weights_sha256} recorded in "
                              f"{CONFIG_NAME}; the file is corrupt or has been modified")
    return load(data)


def load_model(source=None, device=None, backend: str = "torch") -> Model:
    """Load a checkpoint.

    Args:
        source: None for the weights bundled with the package; a checkpoint folder, or its
            `config.json` / `model.safetensors`; or a Hugging Face Hub repo id, optionally
            `org/name@revision`, fetched into the Hub's normal cache (honours HF_HOME,
            HF_HUB_OFFLINE and HF_ENDPOINT).
        device: torch device for inference ('cpu', 'cuda', 'cuda:1', ...); default CUDA if available.
        backend: 'torch', or 'onnx': no torch network (none is imported); the encoder runs in onnxruntime
            on the CPU (the checkpoint's encoder.onnx, verified here, or one exported on first use) and
            the tag side in numpy. Embed with such a model with backend='onnx'.

    Raises:
        CheckpointError: missing, unreachable, tampered (sha256 mismatch) or malformed checkpoint.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    folder = resolve_source(source)
    config = read_config(folder)
    weights = verified_file(folder, config, "weights", WEIGHTS_NAME)
    source = str(source) if source is not None else "bundled"
    if backend == "onnx":
        return _load_numpy(folder, config, weights, source, device)
    import torch
    from safetensors.torch import load_file

    from .model import COALA

    try:
        cfg = ModelConfig.from_dict(config["model"])
        frontend = FrontEnd.from_dict(config["frontend"])
        net = COALA(cfg, decoders=False).load_state(load_file(weights))  # inference never uses decoders
    except Exception as e:
        raise CheckpointError(f"{folder}: malformed checkpoint ({e})") from None
    if len(config["tags"]) != cfg.n_tags:
        raise CheckpointError(f"{folder}: {len(config['tags'])} tags for a model with n_tags={cfg.n_tags}")
    try:
        device = torch.device(device) if device is not None else default_device()
        net.to(device).eval()
    except (RuntimeError, AssertionError) as e:  # unknown device string, or CUDA not available
        raise ValueError(f"cannot use torch device {str(device)!r}: {e}") from None
    return Model(net=net, frontend=frontend, tags=list(config["tags"]), config=config, source=source,
                 device=device, folder=folder, vocabulary=read_vocabulary(folder, config),
                 tag_head=read_tag_head(folder, config))


def _load_numpy(folder: Path, config: dict, weights: Path, source: str, device) -> Model:
    """load_model(backend='onnx'): the config, the tag side in numpy and the verified encoder.onnx if any."""
    from .numpy_net import NumpyNet

    if device is not None and str(device) != "cpu":
        raise ValueError(f"backend='onnx' runs on the CPU (onnxruntime), got device={str(device)!r}")
    try:
        cfg = ModelConfig.from_dict(config["model"])
        frontend = FrontEnd.from_dict(config["frontend"])
    except Exception as e:
        raise CheckpointError(f"{folder}: malformed checkpoint ({e})") from None
    if len(config["tags"]) != cfg.n_tags:
        raise CheckpointError(f"{folder}: {len(config['tags'])} tags for a model with n_tags={cfg.n_tags}")
    onnx_path = verified_file(folder, config, "onnx") if config.get("onnx_file") else None
    read_state = functools.partial(read_numpy_state, weights, config["weights_sha256"])
    return Model(net=NumpyNet(cfg, read_state), frontend=frontend, tags=list(config["tags"]),
                 config=config, source=source, device=HostDevice(), backend="onnx", folder=folder,
                 onnx_path=onnx_path, vocabulary=read_vocabulary(folder, config),
                 tag_head=read_tag_head(folder, config))
