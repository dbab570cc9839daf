"""The vocabulary on a labelled set: where each clip's class ranks among all tags and among sound tags
only, and zero-shot top-1 among the classes whose names resolve (coala_embed.vocabulary): by the cosine of
the aligned space, and (`head_*`) as `predict_tags` ranks them where the checkpoint has a tag head.

    python -m training.scripts.vocabulary_zeroshot ../shared/data/esc50-dev [--model DIR]

A class name (`car_horn` read as 'car horn') stands for the tags it resolves to; its rank in a clip's
ranking is that of the best-ranked of them (1 = first). Evaluation data only: nothing here trains.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import coala_embed
from coala_embed.tags import tag_scores
from training.evaluation.datasets import load_dataset
from training.evaluation.zeroshot import class_tag_sets, clip_means, nearest_class_accuracy, tag_ranks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("--model", default=None, help="checkpoint folder [default: the bundled weights]")
    args = p.parse_args(argv)
    model = coala_embed.load_model(args.model, device="cpu")
    data = load_dataset(args.data)
    resolved, unresolved = {}, {}
    for c in data.classes:
        try:
            resolved[c] = model.vocabulary.resolve(c.replace("_", " "))
        except ValueError as e:
            unresolved[c] = str(e)
    means = clip_means(model, data.files)
    audio = coala_embed.align_audio(means, model)
    out = {"classes": len(data.classes), "resolved": resolved, "unresolved": sorted(unresolved)}
    for name, names in (("all_tags", model.tags), ("sound_tags", model.vocabulary.sound_tags)):
        candidates = set(names)
        sets = {c: [t for t in tags if t in candidates] for c, tags in resolved.items()}
        sets = {c: tags for c, tags in sets.items() if tags}
        r = tag_ranks(audio, data.labels.tolist(), sets, coala_embed.get_tag_embedding([[n] for n in names], model),
                      list(names))
        out[f"median_rank_{name}"] = float(np.median(r))
        out[f"candidates_{name}"] = len(names)
    covered = sorted(resolved)
    class_vecs = coala_embed.get_tag_embedding([[c.replace("_", " ")] for c in covered], model)
    out["top1_resolved"] = nearest_class_accuracy(audio, data.labels, class_vecs, covered)
    words = class_tag_sets(data.classes, model.tags, "words")  # before: the words of a name that are tags
    out["top1_words_before"] = nearest_class_accuracy(audio, data.labels, coala_embed.get_tag_embedding(
        [words[c] for c in sorted(words)], model), sorted(words))
    out["covered_words_before"] = len(words)
    if model.tag_head is not None:
        out.update(head_report(model, means, data.labels.tolist(), resolved))
    print(json.dumps(out, indent=1))
    return 0


def head_report(model, means, labels, resolved) -> dict:
    """The right tag's median rank among the head's tags and top-1 among the classes with a head tag, both
    through coala_embed.tags.tag_scores: what `predict_tags` and `coala-embed tags --labels` rank by."""
    names, scores = tag_scores(model, means)
    column = {t: i for i, t in enumerate(names)}
    sets = {c: [column[t] for t in tags if t in column] for c, tags in resolved.items()}
    sets = {c: cols for c, cols in sets.items() if cols}
    keep = [i for i, label in enumerate(labels) if label in sets]
    best = np.asarray([scores[i, sets[labels[i]]].max() for i in keep])
    ranks = 1 + (scores[keep] > best[:, None]).sum(axis=1)
    classes = sorted(sets)
    _, class_scores = tag_scores(model, means[keep], labels=[c.replace("_", " ") for c in classes])
    predicted = np.asarray(classes, dtype=object)[np.argmax(class_scores, axis=1)]
    return {"head_median_rank_sound_tags": float(np.median(ranks)), "head_classes": len(classes),
            "head_top1": float(np.mean(predicted == np.asarray(labels, dtype=object)[keep]))}


if __name__ == "__main__":
    raise SystemExit(main())
