"""Patch sets the trainer reads: this project's prepared folders and the published COALA HDF5 files.

A prepared folder (written by `training.prepare`, training/corpus/prepare.py) holds, per split, `<split>_patches.npy`
(N, n_mels, frames) float32 scaled patches and `<split>_tags.npy` (N, n_tags) uint8 multi-hot, read
through memory maps, plus `meta.json` (front end with scaler, tag vocabulary, corpus hash).
The published layout (Zenodo 3887261) is an HDF5 file with group `dataset` holding `data` (N, 96, 96),
`label` (N, 1000) and `id` (N, 1), with the tag vocabulary in a JSON map from index to word.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# the meta.json fields that say how the patches were made; a run copies them into its config, and so
# into the checkpoints exported from it
PREPARATION_KEYS = ("clips", "train_patches", "val_patches", "patches_per_clip", "max_clips_per_tag_set",
                    "context_frames", "val_fraction", "seed")


class PatchSet:
    """Random access to (patches, multi-hot tags) by index arrays."""

    def __init__(self, patches, tags):
        if len(patches) != len(tags):
            raise ValueError(f"{len(patches)} patches but {len(tags)} tag rows")
        self.patches, self.tags = patches, tags

    def __len__(self):
        return len(self.patches)

    @property
    def n_tags(self) -> int:
        return self.tags.shape[1]

    def batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.sort(idx)  # sorted reads are sequential on disk and required by h5py
        return np.asarray(self.patches[idx], np.float32), np.asarray(self.tags[idx], np.float32)


def epoch_order(n: int, capped: np.ndarray | None, share: float, rng: np.random.Generator) -> np.ndarray:
    """One epoch's patch order: every patch once, except that the rows marked in ``capped`` (bool, n) make
    at most ``share`` of the epoch, a fresh random subset of them each epoch (share 0: no cap).

    This is per-clip sampling weights in the form that keeps an epoch a pass without repeats: a capped
    row's chance to be in an epoch is share/(1-share) * uncapped/capped."""
    if not share or capped is None or not capped.any():
        return rng.permutation(n)
    if not 0 < share < 1:
        raise ValueError(f"speech_share={share}: must be in (0, 1)")
    rows = np.flatnonzero(capped)
    others = np.flatnonzero(~capped)
    keep = min(len(rows), int(share / (1 - share) * len(others)))
    chosen = rng.choice(rows, size=keep, replace=False)
    return rng.permutation(np.concatenate([others, chosen]))


def load_prepared(folder, split: str) -> PatchSet:
    folder = Path(folder)
    return PatchSet(np.load(folder / f"{split}_patches.npy", mmap_mode="r"),
                    np.load(folder / f"{split}_tags.npy", mmap_mode="r"))


def load_prepared_meta(folder) -> dict:
    return json.loads((Path(folder) / "meta.json").read_text())


def prepared_for(model, folder) -> dict:
    """The meta of a prepared folder, checked to be what the model was trained on: its tags, and patches
    scaled as the model's front end scales them (what its encoder sees at inference)."""
    meta = load_prepared_meta(folder)
    if meta["tags"] != model.tags:
        raise SystemExit(f"{folder}: its tags are not the tags of {model.source} (prepare the data the weights "
                         "were trained on)")
    for key in ("scaler_min", "scaler_max"):
        if not np.allclose(meta["frontend"][key], getattr(model.frontend, key), atol=1e-6):
            raise SystemExit(f"{folder}: its patches were scaled with another {key} than {model.source}'s "
                             "front end (prepare the data the weights were trained on)")
    return meta


def load_hdf5(path) -> PatchSet:
    """A published COALA HDF5 file (spec_tags_top_1000[_val]); read lazily through h5py."""
    import h5py

    group = h5py.File(path, "r")["dataset"]
    return PatchSet(group["data"], group["label"])


def load_hdf5_vocabulary(path) -> list[str]:
    """The JSON map from tag index to tag word, as a list ordered by index."""
    mapping = json.loads(Path(path).read_text())
    return [mapping[str(i)] for i in range(len(mapping))]
