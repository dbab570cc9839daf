"""Export a training run as a coala-embed checkpoint, and push a checkpoint folder to the Hugging Face Hub.

    python -m training.export --run runs/aec --out weights [--metrics runs/eval/results.json]
    python -m training.export --push weights --repo-id org/coala-embed-aec   # needs a Hub token
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
from pathlib import Path

import torch

from coala_embed.audio import FrontEnd
from coala_embed.checkpoint import CHECKPOINT_FILES, save_checkpoint
from coala_embed.onnx_export import export_onnx
from training.trainer.config import TrainConfig
from training.trainer.network import build_net

# clips shorter than one patch are embedded at this many places and averaged (EXPERIMENTS.md, "Short clips
# at several places in the patch": +2.4 fsdd, +2.1 openclonk, +3.4 dspspeech20 for the shipped weights)
SHORT_POSITIONS = 3
# audio after the last whole patch of a longer clip becomes one more (silence-padded) patch when it lasts
# more than this fraction of a patch (EXPERIMENTS.md, "The end of a clip": +1.9 on the held-out notes)
PAD_TAIL_OVER = 0.25

# The weights learn from the corpus of training/sources.csv, whose licences include GPL-2, GPL-2+,
# GPL-3+, LGPL-2.1+ and CC-BY-SA-3.0/4.0; no single licence satisfies all of them, so none is asserted
# (README, "Licence of the weights"). Stored in every exported config.json.
WEIGHTS_LICENCE = {
    "spdx": "NOASSERTION",
    "code": "MIT",
    "summary": ("The weights are not offered under the code's MIT licence. They were trained on sounds under "
                "GPL-2, GPL-2+, GPL-3+, AGPL-3.0, LGPL-2.1+, CC-BY-SA-3.0, CC-BY-SA-4.0, ODbL-1.0 and permissive licences "
                "(the weights' README.md and training/sources.csv list each package, version and licence). If trained weights are a "
                "derivative work of their training data, those copyleft and share-alike terms apply; no single "
                "licence satisfies all of them, so none is asserted. Redistribute the weights, or weights "
                "derived from them, with that list and under the share-alike terms of those sources."),
    "training_data_licences": "README.md beside these weights; training/sources.csv in the source",
}


def export_run(run, out, metrics: dict | None = None, framing: dict | None = None, checkpoint=None) -> Path:
    """Write the run's final network (inference modules), front end with scaler, tags and provenance.

    framing: front-end fields that training does not use, set for inference (e.g. {"short_positions": 3,
    "pad_tail_over": 0.25}); None keeps the run's front end as it is. checkpoint: another of the run's
    checkpoints than its last, `ckpt.pt` (e.g. `ckpt-e005.pt`, kept by keep_epoch_checkpoints)."""
    run = Path(run)
    cfg = json.loads((run / "config.json").read_text())
    if cfg.get("frontend") is None:
        raise ValueError(f"{run}: trained on data without a stored front end (HDF5); cannot export a usable checkpoint")
    state = torch.load(checkpoint or run / "ckpt.pt", map_location="cpu", weights_only=True)
    net = build_net(TrainConfig.from_run(cfg), len(cfg["tags"]))
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
    frontend = dataclasses.replace(FrontEnd.from_dict(cfg["frontend"]), **(framing or {}))
    folder = save_checkpoint(out, net, frontend, cfg["tags"], provenance, licence=WEIGHTS_LICENCE)
    export_onnx(folder)  # encoder.onnx beside the weights, its sha256 in config.json (backend="onnx")
    return folder


def summarise_evaluation(results: dict) -> dict:
    """The figures of a training.evaluate results.json worth carrying in a checkpoint's provenance."""
    return {
        "command": results.get("command"),
        "protocol": results.get("protocol"),
        "accuracy": {task: {name: {"mean": round(a["mean"], 4), "std": round(a["std"], 4)} for name, a in t["accuracy"].items()}
                     for task, t in results.get("tasks", {}).items()},
    }


def push_to_hub(folder, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a checkpoint folder (the files load_model fetches, and its README) to a Hub model repo;
    returns the commit's URL.

    Users then load it with `coala_embed.load_model("org/name")` or `coala-embed --model org/name`.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, allow_patterns=[*CHECKPOINT_FILES, "*.md"])
    return str(commit)


def _fraction_or_none(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="training run folder (ckpt.pt, config.json)")
    p.add_argument("--out", help="checkpoint folder to write (e.g. weights)")
    p.add_argument("--checkpoint", metavar="FILE", help="export this checkpoint of the run (e.g. RUN/ckpt-e005.pt, "
                   "kept with keep_epoch_checkpoints=true) instead of its last, RUN/ckpt.pt")
    p.add_argument("--metrics", help="results.json of training.evaluate; its accuracies go into the provenance")
    p.add_argument("--short-positions", type=int, default=SHORT_POSITIONS,
                   help="places at which a clip shorter than one patch is embedded and averaged at inference "
                        f"(default {SHORT_POSITIONS}, measured in training/EXPERIMENTS.md; 1 = the COALA reference)")
    p.add_argument("--pad-tail-over", type=_fraction_or_none, default=PAD_TAIL_OVER, metavar="X|none",
                   help="the end of a clip after its last whole patch becomes one more silence-padded patch when it "
                        f"lasts more than X of a patch (default {PAD_TAIL_OVER}, measured in training/EXPERIMENTS.md; "
                        "none = the COALA reference, which drops it)")
    p.add_argument("--vocabulary-from", metavar="PATH",
                   help="copy this vocabulary.json (or a checkpoint folder's), built for the same tags, beside the "
                        "weights; without it, build one with `python -m training.vocabulary --weights OUT --data PREPARED`")
    p.add_argument("--push", help="checkpoint folder to upload to the Hub")
    p.add_argument("--repo-id", help="Hub repo id for --push")
    args = p.parse_args(argv)
    if args.push:
        print(push_to_hub(args.push, args.repo_id))
        return
    metrics = summarise_evaluation(json.loads(Path(args.metrics).read_text())) if args.metrics else None
    framing = {"short_positions": args.short_positions, "pad_tail_over": args.pad_tail_over}
    vocabulary = None
    if args.vocabulary_from:  # checked before anything is written: a wrong one leaves no half-made folder
        from training.vocabulary import copy_into, fitting

        vocabulary = fitting(args.vocabulary_from, json.loads((Path(args.run) / "config.json").read_text())["tags"])
    folder = export_run(args.run, args.out, metrics, framing, checkpoint=args.checkpoint)
    if vocabulary:
        copy_into(folder, vocabulary)
    else:
        print(f"no vocabulary.json: every tag counts as a sound tag; build it with "
              f"`python -m training.vocabulary --weights {folder} --data PREPARED`")
    print(f"wrote {folder}: {json.loads((folder / 'config.json').read_text())['weights_sha256']}")


if __name__ == "__main__":
    main()
