"""A prepared folder in which a kind of clip keeps only the sound tags of what it is (issue 35).

    python -m training.scripts.narrow_targets --data prepared --out prepared-notes --snapshots S --kind rendered-notes

Two kinds of corpus clip carry sound tags that name something other than the sound in them:
- spoken words (clips tagged `speech` and `word`: GCompris, KTuberling, espeak-ng) carry the sound tags
  of what the word means, and their ontology ancestors: someone saying "dog" is tagged `dog, domestic
  animals, pets, animal`. In corpus v5 that is 113 of the 163 clips tagged `dog`. Such a clip keeps, of
  its sound tags, those of the ontology's Speech category and its ancestors (`speech, human voice, human
  sounds`).
- rendered notes (clips tagged `note` and `instrument`: soundfonts and sample libraries) carry the words
  of a program or articulation name, which name a timbre, not a source: a saxophone's breath articulation
  is tagged `breathing`, General MIDI's FX 1 (rain) `rain`, its Seashore `seashore`. In corpus v5 that is
  296 of the 319 clips tagged `breathing` and 44 of 45 `applause`. Such a clip loses the sound tags of
  the everyday categories (Animal, Human sounds, Natural sounds, Sounds of things) except the words of
  General MIDI's family names (`pipe`: flutes and recorders), which are what the held-out notes are
  labelled by; it keeps Music's and the acoustic ones (`bass (frequency range)`, `noise`, `echo`).
Tags that name no sound (`word`, `seven`, `place`, `sax`) stay, so clips are still told apart by them.
Other clips are untouched, and no patch is dropped (every such clip keeps `speech` or `instrument`), so
the patches are linked, not copied. meta.json records what was done.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from training.corpus import ontology as onto
from training.corpus.soundfonts import GM_FAMILIES
from training.scripts.sound_targets import SPLITS, parse_derived
from training.vocabulary import Builder

# kind -> the tags every clip of the kind carries (training/corpus/sourcetags.py)
KINDS = {"spoken-words": ("speech", "word"), "rendered-notes": ("note", "instrument")}
EVERYDAY = ("Animal", "Human sounds", "Natural sounds", "Sounds of things")


def keep_mask(kind: str, tags: list[str], ontology: onto.Ontology) -> np.ndarray:
    """(n_tags,) bool: the columns a clip of `kind` keeps (the tags that name no sound, and its own)."""
    category = Builder(ontology, tags).category  # sound tag -> broad category; others name no sound
    if kind == "spoken-words":
        own = {ontology.tag(c) for cid in ontology.named("speech") for c in ontology.ancestors(cid)}
    else:
        family_words = {w for family in GM_FAMILIES for w in family.split()}
        own = {t for t, c in category.items() if c not in EVERYDAY or t in family_words}
    return np.array([t not in category or t in own for t in tags])


def write_narrow_targets(data: Path, out: Path, tags: list[str], keeps: dict[str, np.ndarray]) -> dict:
    """Copy the prepared folder `data` to `out`, with the clips of each kind restricted to its `keeps`
    columns; returns counts per split and kind."""
    out.mkdir(parents=True, exist_ok=False)
    counts = {}
    for split in SPLITS:
        y = np.load(data / f"{split}_tags.npy")
        counts[split] = {}
        for kind, keep in keeps.items():
            of_kind = y[:, [tags.index(t) for t in KINDS[kind]]].all(axis=1)
            before = int(y[of_kind].sum())
            y[of_kind] *= keep.astype(y.dtype)
            counts[split][kind] = {"patches": int(of_kind.sum()), "tags_removed": before - int(y[of_kind].sum())}
        np.save(out / f"{split}_tags.npy", y)
        src, dst = data / f"{split}_patches.npy", out / f"{split}_patches.npy"
        try:  # the patches are unchanged: ~3 GB not copied where the file system allows a link
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    return counts


def main(argv=None) -> int:
    args, meta, ontology = parse_derived(__doc__, argv, kinds=KINDS)
    keeps = {kind: keep_mask(kind, meta["tags"], ontology) for kind in dict.fromkeys(args.kind)}
    counts = write_narrow_targets(args.data, args.out, meta["tags"], keeps)
    meta["narrow_targets"] = {"derived_from": str(args.data), "counts": counts, "zeroed_tags": {
        kind: [t for t, k in zip(meta["tags"], keep) if not k] for kind, keep in keeps.items()}}
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1))
    renditions = args.data / "augmentations.jsonl"  # what each rendition drew: the rows are the same, so it holds
    if renditions.exists():
        shutil.copyfile(renditions, args.out / renditions.name)
    for kind, keep in keeps.items():
        print(f"{kind} keep {int(keep.sum())} of {len(keep)} tags; " + "; ".join(
            f"{s}: {c[kind]['patches']} patches, {c[kind]['tags_removed']} tags removed" for s, c in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
