"""A uniform model soup: one checkpoint whose weights are the element-wise mean of several fine-tunes.

    python -m training.soup --out runs/soup runs/ecft/export runs/s1/export runs/s2/export ... \
        [--metrics runs/eval/results.json]

Why: seeds of one recipe differ by +-0.3 on the mean over the development sets (seven seeds of the
22-epoch E-C continuation: 58.8 to 59.4), so shipping one seed ships its luck, and picking the best
seed picks on the evaluation sets. The mean of their weights is one network of the same size and
speed that scored as well as the seeds' mean score (59.2 against 59.1; training/EXPERIMENTS.md).
Fine-tunes of one start stay in one basin of the loss, so their average is a working network
(Wortsman et al. 2022, "Model soups"); networks trained from different starts do not average: give
only fine-tunes of one checkpoint. Every tensor is averaged, batch-norm running statistics included
(recomputing those on clean training patches instead was measured, and fitted the network worse).
"""
from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import coala_embed
from coala_embed.checkpoint import save_checkpoint
from coala_embed.onnx_export import export_onnx
from training.trainer.export import WEIGHTS_LICENCE, summarise_evaluation
from training.vocabulary import copy_into


def average_states(states: list[dict]) -> dict:
    """Element-wise mean of state dicts with the same keys and shapes (summed in float64)."""
    keys = list(states[0])
    for i, state in enumerate(states[1:], 1):
        if list(state) != keys or any(state[k].shape != states[0][k].shape for k in keys):
            raise ValueError(f"state {i} has other tensors or shapes than state 0")
    return {k: (sum(s[k].double() for s in states) / len(states)).to(states[0][k].dtype) for k in keys}


def _ingredient(model) -> dict:
    """What the soup's provenance keeps of each checkpoint averaged into it."""
    prov = model.config.get("provenance", {})
    keep = ("corpus_manifest_sha256", "training_config", "epochs_trained", "training_seconds", "hardware", "final_epoch")
    return {"source": model.source, "weights_sha256": model.sha256, **{k: prov.get(k) for k in keep}}


def soup(sources, out, metrics: dict | None = None) -> Path:
    """Average the checkpoints in `sources` (same network, front end and tags) into a checkpoint at `out`."""
    if len(sources) < 2:
        raise ValueError("a soup needs at least two checkpoints")
    models = [coala_embed.load_model(s, device="cpu") for s in sources]
    first = models[0]
    for m in models[1:]:
        for what, a, b in (("network", m.net.cfg.to_dict(), first.net.cfg.to_dict()),
                           ("front end", m.frontend.to_dict(), first.frontend.to_dict()),
                           ("tag vocabulary", m.tags, first.tags)):
            if a != b:
                raise ValueError(f"{m.source}: its {what} differs from {first.source}'s; only fine-tunes of "
                                 "one start (same network, front end and tags) can be averaged")
    first.net.load_state_dict(average_states([m.net.state_dict() for m in models]))
    provenance = {
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "soup": "uniform mean of the weights of the checkpoints below (training/soup.py)",
        "corpus_manifest_sha256": _ingredient(first)["corpus_manifest_sha256"],
        "ingredients": [_ingredient(m) for m in models],
        "evaluation": metrics or {},
    }
    vocabulary = shared_vocabulary(models)  # looked at before anything is written
    folder = save_checkpoint(out, first.net, first.frontend, first.tags, provenance, licence=WEIGHTS_LICENCE)
    export_onnx(folder)  # the soup's encoder.onnx beside its weights, as training.export writes (backend="onnx")
    if vocabulary:
        copy_into(folder, vocabulary)
    else:
        print(f"no vocabulary.json (the ingredients carry none, or not the same one); build it with "
              f"`python -m training.vocabulary --weights {folder} --data PREPARED`")
    return folder


def shared_vocabulary(models) -> Path | None:
    """The ingredients' vocabulary.json when every one carries the same file (it depends on the tags and
    the training tag sets, which fine-tunes on one prepared corpus share), so that the soup keeps its sound
    tags, word table and tag sets without a rebuild; else None."""
    shas = {m.config.get("vocabulary_sha256") for m in models}
    if len(shas) != 1 or None in shas:
        return None
    return Path(models[0].folder) / models[0].config["vocabulary_file"]  # verified against the tags by load_model


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.soup", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", help="checkpoint folders (exports of fine-tunes of one start)")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--metrics", help="results.json of training.evaluate; its accuracies go into the provenance")
    args = p.parse_args(argv)
    metrics = summarise_evaluation(json.loads(Path(args.metrics).read_text())) if args.metrics else None
    folder = soup(args.sources, args.out, metrics)
    print(f"wrote {folder}: {json.loads((folder / 'config.json').read_text())['weights_sha256']}")


if __name__ == "__main__":
    main()
