"""Zero-shot tagging on a labelled set: which class names the model has as tags, and how often the
nearest class (audio vector against tag vectors, cosine, no training) is the right one.

    python -m training.zeroshot --model shipped=bundled --model v2=runs/x/export --data ../shared/data/esc50-dev

Three readings of "a class is a tag": `exact` (the class name, with '_' read as '-' or ' ', is one tag),
`words` (the class's tag set is the words of its name that are tags: `hand_saw` -> ['saw']) and
`mapped` (the tag check: the name made into tags as the corpus makes a file name into tags, so
`Animals` -> ['animal'], fsdd's `7` -> ['seven'], `crying_baby` -> ['crying', 'baby']).
Accuracy is over the clips of covered classes, choosing among the covered classes only; chance is
1 / their number. The median rank is that of the right tag (the best placed of the class's tags)
among all the model's tags, over the same clips: 1 is the top tag; it does not depend on which
other classes the set has.
"""
from __future__ import annotations

import argparse
import json
import re

import numpy as np

import coala_embed
from training.corpus.sourcetags import number_words
from training.corpus.tags import clean_words
from training.evaluation.datasets import load_dataset
from training.evaluation.extractors import parse_model_arg

MODES = ("exact", "words", "mapped")


def mapped_words(name: str) -> list[str]:
    """A class name as the corpus would tag it: a whole number by its word, then the corpus's
    cleaning of file names (words, stop words dropped, singular)."""
    return clean_words([number_words(name.strip()) or name])


def class_tag_sets(classes, vocabulary, mode: str) -> dict[str, list[str]]:
    """The tag set that stands for each class the model can name; classes it cannot name are left out."""
    vocab = set(vocabulary)
    sets = {}
    for c in classes:
        if mode == "exact":
            names = [t for t in dict.fromkeys((c, c.replace("_", "-"), c.replace("_", " "))) if t in vocab]
            if names:
                sets[c] = names[:1]
        elif mode in ("words", "mapped"):
            split = re.split(r"[_\-\s]+", c.lower()) if mode == "words" else mapped_words(c)
            words = [w for w in dict.fromkeys(split) if w in vocab]
            if words:
                sets[c] = words
        else:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return sets


def nearest_class_accuracy(audio_vecs: np.ndarray, labels, class_vecs: np.ndarray, classes) -> float:
    """Top-1 accuracy of the cosine-nearest class vector, over the clips whose label is in `classes`."""
    labels = np.asarray(labels, dtype=object)
    keep = np.isin(labels, list(classes))
    a = audio_vecs[keep] / np.maximum(np.linalg.norm(audio_vecs[keep], axis=1, keepdims=True), 1e-12)
    t = class_vecs / np.maximum(np.linalg.norm(class_vecs, axis=1, keepdims=True), 1e-12)
    predicted = np.asarray(classes, dtype=object)[np.argmax(a @ t.T, axis=1)]
    return float(np.mean(predicted == labels[keep])) if keep.any() else float("nan")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def tag_ranks(audio_vecs: np.ndarray, labels, sets: dict, tag_vecs: np.ndarray, vocabulary) -> np.ndarray:
    """Per clip of a class in `sets`: the rank (1 = nearest) of its class's best-placed tag among all
    `vocabulary` tags (rows of `tag_vecs`), by cosine to the clip's aligned audio vector."""
    index = {t: i for i, t in enumerate(vocabulary)}
    keep = [i for i, label in enumerate(labels) if label in sets]
    if not keep:
        return np.zeros(0, int)
    sims = _unit(audio_vecs[keep]) @ _unit(tag_vecs).T
    best = np.asarray([sims[r, [index[t] for t in sets[labels[i]]]].max() for r, i in enumerate(keep)])
    return 1 + (sims > best[:, None]).sum(axis=1)


def clip_means(model, files) -> np.ndarray:
    means = []
    for path, embeddings, _, error in coala_embed.embed_files([str(f) for f in files], model=model):
        if error:
            raise RuntimeError(f"{path}: {error}")
        means.append(embeddings.mean(axis=0))
    return np.stack(means)


def report(model, dataset) -> dict:
    audio = coala_embed.align_audio(clip_means(model, dataset.files), model)
    tag_vecs = coala_embed.get_tag_embedding([[t] for t in model.tags], model)
    labels = dataset.labels.tolist()
    out = {"classes": len(dataset.classes), "tags": len(model.tags)}
    for mode in MODES:
        sets = class_tag_sets(dataset.classes, model.tags, mode)
        covered = sorted(sets)
        acc = nearest_class_accuracy(audio, dataset.labels, coala_embed.get_tag_embedding(
            [sets[c] for c in covered], model).reshape(len(covered), -1), covered) if covered else float("nan")
        ranks = tag_ranks(audio, labels, sets, tag_vecs, model.tags)
        out[mode] = {"covered": len(covered), "tag_sets": sets, "top1": acc,
                     "chance": 1 / len(covered) if covered else float("nan"),
                     "clips": int(len(ranks)), "median_rank": float(np.median(ranks)) if len(ranks) else float("nan")}
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
            for mode in MODES:
                m = r[mode]
                print(f"{name} {ds.name} {mode}: {m['covered']} of {r['classes']} classes are tags, "
                      f"top-1 {100 * m['top1']:.1f} % (chance {100 * m['chance']:.1f} %), "
                      f"median rank of the right tag {m['median_rank']:g} of {r['tags']} ({m['clips']} clips)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(full, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
