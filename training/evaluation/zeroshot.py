"""Zero-shot tagging on a labelled set: which class names the model has as tags, and how often the
nearest class (audio vector against tag vectors, cosine, no training) is the right one.

    python -m training.zeroshot --model shipped=bundled --model v2=runs/x/export --data ../shared/data/esc50-dev

Two readings of "a class is a tag": `exact` (the class name, with '_' read as '-' or ' ', is one tag)
and `words` (the class's tag set is the words of its name that are tags: `hand_saw` -> ['saw']).
Accuracy is over the clips of covered classes, choosing among the covered classes only; chance is
1 / their number.
"""
from __future__ import annotations

import argparse
import json
import re

import numpy as np

import coala_embed
from training.evaluation.datasets import load_dataset
from training.evaluation.extractors import parse_model_arg


def class_tag_sets(classes, vocabulary, mode: str) -> dict[str, list[str]]:
    """The tag set that stands for each class the model can name; classes it cannot name are left out."""
    vocab = set(vocabulary)
    sets = {}
    for c in classes:
        if mode == "exact":
            names = [t for t in dict.fromkeys((c, c.replace("_", "-"), c.replace("_", " "))) if t in vocab]
            if names:
                sets[c] = names[:1]
        elif mode == "words":
            words = [w for w in dict.fromkeys(re.split(r"[_\-\s]+", c.lower())) if w in vocab]
            if words:
                sets[c] = words
        else:
            raise ValueError(f"mode must be 'exact' or 'words', got {mode!r}")
    return sets


def nearest_class_accuracy(audio_vecs: np.ndarray, labels, class_vecs: np.ndarray, classes) -> float:
    """Top-1 accuracy of the cosine-nearest class vector, over the clips whose label is in `classes`."""
    labels = np.asarray(labels, dtype=object)
    keep = np.isin(labels, list(classes))
    a = audio_vecs[keep] / np.maximum(np.linalg.norm(audio_vecs[keep], axis=1, keepdims=True), 1e-12)
    t = class_vecs / np.maximum(np.linalg.norm(class_vecs, axis=1, keepdims=True), 1e-12)
    predicted = np.asarray(classes, dtype=object)[np.argmax(a @ t.T, axis=1)]
    return float(np.mean(predicted == labels[keep])) if keep.any() else float("nan")


def clip_means(model, files) -> np.ndarray:
    means = []
    for path, embeddings, _, error in coala_embed.embed_files([str(f) for f in files], model=model):
        if error:
            raise RuntimeError(f"{path}: {error}")
        means.append(embeddings.mean(axis=0))
    return np.stack(means)


def report(model, dataset) -> dict:
    audio = coala_embed.align_audio(clip_means(model, dataset.files), model)
    out = {"classes": len(dataset.classes)}
    for mode in ("exact", "words"):
        sets = class_tag_sets(dataset.classes, model.tags, mode)
        covered = sorted(sets)
        acc = nearest_class_accuracy(audio, dataset.labels, coala_embed.get_tag_embedding(
            [sets[c] for c in covered], model).reshape(len(covered), -1), covered) if covered else float("nan")
        out[mode] = {"covered": len(covered), "tag_sets": sets, "top1": acc,
                     "chance": 1 / len(covered) if covered else float("nan")}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.zeroshot", description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="NAME=SOURCE or SOURCE (folder, Hub id, bundled)")
    p.add_argument("--data", action="append", required=True, help="labelled set (labels.csv or class folders)")
    p.add_argument("--json", help="write the full report here")
    args = p.parse_args(argv)
    full = {}
    for arg in args.model:
        name, source = parse_model_arg(arg)
        model = coala_embed.load_model(None if source == "bundled" else source)
        name = name or source
        for data in args.data:
            ds = load_dataset(data)
            r = full.setdefault(name, {})[ds.name] = report(model, ds)
            for mode in ("exact", "words"):
                m = r[mode]
                print(f"{name} {ds.name} {mode}: {m['covered']} of {r['classes']} classes are tags, "
                      f"top-1 {100 * m['top1']:.1f} % (chance {100 * m['chance']:.1f} %)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(full, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
