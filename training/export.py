"""Export a training run as a coala-embed checkpoint, and push a checkpoint folder to the Hugging Face Hub.

    python -m training.export --run runs/aec --out weights [--metrics runs/eval/results.json]
    python -m training.export --push weights --repo-id org/coala-embed-aec   # needs a Hub token
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import torch

from coala_embed.audio import FrontEnd
from coala_embed.checkpoint import save_checkpoint
from training.train import build_net


def export_run(run, out, metrics: dict | None = None) -> Path:
    """Write the run's final network (inference modules), front end with scaler, tags and provenance."""
    run = Path(run)
    cfg = json.loads((run / "config.json").read_text())
    if cfg.get("frontend") is None:
        raise ValueError(f"{run}: trained on data without a stored front end (HDF5); cannot export a usable checkpoint")
    state = torch.load(run / "ckpt.pt", map_location="cpu", weights_only=True)
    net = build_net(cfg, len(cfg["tags"]))
    net.load_state_dict(state["net"])
    history = json.loads(state["history"])
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    training = {k: v for k, v in cfg.items() if k not in ("tags", "frontend")}
    provenance = {
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "corpus_manifest_sha256": cfg.get("corpus_manifest_sha256"),
        "training_config": training,
        "epochs_trained": state["epoch"],
        "training_seconds": round(state["elapsed"], 1),
        "hardware": summary.get("hardware", f"{platform.machine()}, torch {torch.__version__}"),
        "final_epoch": history[-1] if history else None,
        "evaluation": metrics or {},
    }
    return save_checkpoint(out, net, FrontEnd.from_dict(cfg["frontend"]), cfg["tags"], provenance)


def summarise_evaluation(results: dict) -> dict:
    """The figures of a training.evaluate results.json worth carrying in a checkpoint's provenance."""
    return {
        "command": results.get("command"),
        "protocol": results.get("protocol"),
        "accuracy": {task: {name: {"mean": round(a["mean"], 4), "std": round(a["std"], 4)} for name, a in t["accuracy"].items()}
                     for task, t in results.get("tasks", {}).items()},
    }


def push_to_hub(folder, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a checkpoint folder (config.json + model.safetensors) to a Hub model repo; returns its URL.

    Users then load it with `coala_embed.load_model("org/name")` or `coala-embed --model org/name`.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, allow_patterns=["config.json", "model.safetensors", "*.md"])
    return str(commit)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="training run folder (ckpt.pt, config.json)")
    p.add_argument("--out", help="checkpoint folder to write (e.g. weights)")
    p.add_argument("--metrics", help="results.json of training.evaluate; its accuracies go into the provenance")
    p.add_argument("--push", help="checkpoint folder to upload to the Hub")
    p.add_argument("--repo-id", help="Hub repo id for --push")
    args = p.parse_args(argv)
    if args.push:
        print(push_to_hub(args.push, args.repo_id))
        return
    metrics = summarise_evaluation(json.loads(Path(args.metrics).read_text())) if args.metrics else None
    folder = export_run(args.run, args.out, metrics)
    print(f"wrote {folder}: {json.loads((folder / 'config.json').read_text())['weights_sha256']}")


if __name__ == "__main__":
    main()
