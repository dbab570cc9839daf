"""A prepared folder in which spoken words are speech only, not the sound their word names (issue 35).

    python -m training.scripts.spoken_word_targets --data prepared --out prepared-words --snapshots SNAPSHOTS

In the corpus a spoken word (a clip tagged `speech` and `word`: GCompris, KTuberling, espeak-ng) also
carries the sound tags of what the word means, and their ontology ancestors: someone saying "dog" is
tagged `dog, domestic animals, pets, animal`. In corpus v5 that is 113 of the 163 clips tagged `dog`,
98 of 154 `cat`, 24 of 28 `crow`: the contrastive loss learns much of what a dog sounds like from a
voice. This writes a copy of the prepared folder in which a spoken word's sound tags are zero except
those of the ontology's Speech category and its ancestors (`speech, human voice, human sounds`); the tags
that name no sound (`word`, `seven`, `place`) stay, so spoken digits and words are still told apart.
Other clips are untouched, and no patch is dropped (every spoken word keeps `speech`), so the patches
are linked, not copied. meta.json records what was done.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from training.corpus import ontology as onto
from training.scripts.sound_targets import SPLITS, parse_derived, sound_columns

SPOKEN_WORD = ("speech", "word")  # the tags every spoken-word clip carries (training/corpus/sourcetags.py)


def speech_tags(ontology: onto.Ontology) -> set[str]:
    """The tags of the ontology's Speech category and of every category above it."""
    return {ontology.tag(c) for cid in ontology.named("speech") for c in ontology.ancestors(cid)}


def spoken_word_mask(tags: list[str], ontology: onto.Ontology) -> np.ndarray:
    """(n_tags,) bool: the columns a spoken word keeps (tags that are no sound, and Speech's tags)."""
    sound, voice = sound_columns(tags, ontology), speech_tags(ontology)
    return np.array([not s or t in voice for t, s in zip(tags, sound)])


def write_spoken_word_targets(data: Path, out: Path, tags: list[str], keep: np.ndarray) -> dict:
    """Copy the prepared folder `data` to `out` with spoken words' tags restricted to `keep`; returns counts."""
    out.mkdir(parents=True, exist_ok=False)
    cols = [tags.index(t) for t in SPOKEN_WORD]
    counts = {}
    for split in SPLITS:
        y = np.load(data / f"{split}_tags.npy")
        spoken = y[:, cols].all(axis=1)
        before = int(y[spoken].sum())
        y[spoken] *= keep.astype(y.dtype)
        np.save(out / f"{split}_tags.npy", y)
        src, dst = data / f"{split}_patches.npy", out / f"{split}_patches.npy"
        try:  # the patches are unchanged: ~3 GB not copied where the file system allows a link
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        counts[split] = {"spoken_word_patches": int(spoken.sum()), "tags_removed": before - int(y[spoken].sum())}
    return counts


def main(argv=None) -> int:
    args, meta, ontology = parse_derived(__doc__, argv)
    keep = spoken_word_mask(meta["tags"], ontology)
    counts = write_spoken_word_targets(args.data, args.out, meta["tags"], keep)
    meta["spoken_word_targets"] = {"derived_from": str(args.data), "kept_tags": int(keep.sum()),
                                   "zeroed_tags": [t for t, k in zip(meta["tags"], keep) if not k], **counts}
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1))
    renditions = args.data / "augmentations.jsonl"  # what each rendition drew: the rows are the same, so it holds
    if renditions.exists():
        shutil.copyfile(renditions, args.out / renditions.name)
    print(f"spoken words keep {int(keep.sum())} of {len(keep)} tags; " +
          "; ".join(f"{s}: {c['spoken_word_patches']} spoken-word patches, {c['tags_removed']} tags removed"
                    for s, c in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
