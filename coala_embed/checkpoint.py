"""Checkpoints: a folder with `model.safetensors` and `config.json`, verified by sha256 before loading.

`config.json` carries everything needed to use the weights correctly: the network's shape, every
front-end parameter including the per-band scaler, the tag vocabulary, and provenance. Weights are
read with safetensors, never unpickled.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from .audio import FrontEnd
from .model import COALA, ModelConfig

FORMAT = "coala-embed-checkpoint"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
HUB_ID = re.compile(r"^(?:hf://)?(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found, fetched, verified or loaded."""


@dataclasses.dataclass
class Model:
    """A loaded checkpoint: the network in eval mode, its front end and its tag vocabulary."""

    net: COALA
    frontend: FrontEnd
    tags: list[str]
    config: dict
    source: str
    device: torch.device

    @property
    def embedding_size(self) -> int:
        return self.net.cfg.embedding_size

    @property
    def sha256(self) -> str:
        return self.config["weights_sha256"]

    def __repr__(self):
        return (f"Model(variant={self.net.cfg.variant!r}, embedding_size={self.embedding_size}, "
                f"n_tags={len(self.tags)}, source={self.source!r}, device={str(self.device)!r})")


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
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME]))
    except LocalEntryNotFoundError as e:
        raise CheckpointError(
            f"{repo_id}: not in the local Hugging Face cache and the Hub cannot be reached "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}); fetch it once while online ({e})") from None
    except Exception as e:
        raise CheckpointError(f"{repo_id}: could not fetch from the Hugging Face Hub ({type(e).__name__}: {e})") from None


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(source=None, device=None) -> Model:
    """Load a checkpoint.

    Args:
        source: None for the weights bundled with the package; a checkpoint folder, or its
            `config.json` / `model.safetensors`; or a Hugging Face Hub repo id, optionally
            `org/name@revision`, fetched into the Hub's normal cache (honours HF_HOME,
            HF_HUB_OFFLINE and HF_ENDPOINT).
        device: torch device for inference ('cpu', 'cuda', 'cuda:1', ...); default CUDA if available.

    Raises:
        CheckpointError: missing, unreachable, tampered (sha256 mismatch) or malformed checkpoint.
    """
    folder = resolve_source(source)
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder / CONFIG_NAME}: unreadable checkpoint config ({e})") from None
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{folder}: not a {FORMAT} version {FORMAT_VERSION} checkpoint")
    weights = folder / config.get("weights_file", WEIGHTS_NAME)
    if not weights.exists():
        raise CheckpointError(f"{weights}: weights file missing")
    digest = sha256_file(weights)
    if digest != config["weights_sha256"]:
        raise CheckpointError(
            f"{weights}: sha256 {digest} does not match {config['weights_sha256']} recorded in {CONFIG_NAME}; "
            "the file is corrupt or has been modified")
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
    return Model(net=net, frontend=frontend, tags=list(config["tags"]), config=config,
                 source=str(source) if source is not None else "bundled", device=device)
