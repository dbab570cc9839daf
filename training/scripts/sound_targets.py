"""A prepared folder whose tag targets are only the words that describe sounds (issue 35, item 2).

    python -m training.scripts.sound_targets --data /work/prepared-v5 --out /work/prepared-v5-sound \
        --snapshots /work/.mirror

The vocabulary builder (training/vocabulary.py) sorts the prepared data's tags into sound tags and
others (speakers' names, places, game words). This writes a copy of the prepared folder in which the
other tags' columns are zero, so that a run on it learns its alignment only from sound words, with the
same 1000-tag network as the run it is compared with (warm starts and the evaluation stay the same).
Patches left with no tag at all are dropped: an empty tag set embeds as one point shared by every such
patch, which the contrastive loss would treat as a label. meta.json records what was done.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training.corpus import ontology as onto
from training.vocabulary import Builder

SPLITS = ("train", "val")


def sound_columns(tags: list[str], ontology: onto.Ontology) -> np.ndarray:
    """(n_tags,) bool: True for the tags the vocabulary builder lists as sound tags."""
    sound = set(Builder(ontology, tags).sound)
    return np.array([t in sound for t in tags])


def write_sound_targets(data: Path, out: Path, keep: np.ndarray) -> dict:
    """Copy the prepared folder `data` to `out` with only the `keep` columns of the tags; returns counts."""
    out.mkdir(parents=True, exist_ok=False)
    counts = {}
    for split in SPLITS:
        tags = np.load(data / f"{split}_tags.npy")
        kept = tags * keep[None, :].astype(tags.dtype)
        rows = np.flatnonzero(kept.any(1))
        patches = np.load(data / f"{split}_patches.npy", mmap_mode="r")
        subset = np.lib.format.open_memmap(out / f"{split}_patches.npy", mode="w+", dtype=patches.dtype,
                                           shape=(len(rows),) + patches.shape[1:])
        for start in range(0, len(rows), 4096):  # bounded memory: the training split is ~2 GB
            subset[start:start + 4096] = patches[rows[start:start + 4096]]
        subset.flush()
        np.save(out / f"{split}_tags.npy", kept[rows])
        counts[split] = {"patches": int(len(rows)), "dropped_without_sound_tags": int(len(tags) - len(rows))}
    return counts


def parse_derived(doc: str, argv=None, kinds=None):
    """The command line of a script that derives one prepared folder from another: (args, its meta.json,
    the ontology that sorts its tags). `kinds`: the kinds of clip `--kind` may name, if it takes any."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="a prepared folder (training.prepare)")
    ap.add_argument("--out", required=True, type=Path, help="new folder to write")
    ap.add_argument("--ontology", default=onto.ONTOLOGY_SOURCE)
    ap.add_argument("--snapshots")
    ap.add_argument("--wordnet", default="/usr/share/wordnet")
    if kinds:
        ap.add_argument("--kind", required=True, action="append", choices=sorted(kinds),
                        help="a kind of clip to narrow; repeat for several")
    args = ap.parse_args(argv)
    meta = json.loads((args.data / "meta.json").read_text())
    return args, meta, onto.load_ontology(args.ontology, args.snapshots, args.wordnet)


def main(argv=None) -> int:
    args, meta, ontology = parse_derived(__doc__, argv)
    keep = sound_columns(meta["tags"], ontology)
    counts = write_sound_targets(args.data, args.out, keep)
    meta["sound_targets"] = {"derived_from": str(args.data), "sound_tags": int(keep.sum()),
                             "zeroed_tags": [t for t, k in zip(meta["tags"], keep) if not k], **counts}
    meta["train_patches"], meta["val_patches"] = counts["train"]["patches"], counts["val"]["patches"]
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"{int(keep.sum())} sound tags of {len(keep)}; " +
          "; ".join(f"{s}: {c['patches']} patches, {c['dropped_without_sound_tags']} dropped" for s, c in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
