"""Labelled evaluation sets: a folder with a `labels.csv` (`file,label[,group]`) or one sub-folder of
audio per class; the default sets, and those named by $COALA_EVAL_DATA."""
from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from training.evaluation.report import log

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = [REPO.parent / "shared" / "data" / "esc50-dev", REPO.parent / "shared" / "data" / "fsdd"]
EVAL_DATA_ENV = "COALA_EVAL_DATA"
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".au", ".opus"}


class DatasetError(ValueError):
    pass


@dataclasses.dataclass
class Dataset:
    name: str
    root: Path
    files: list[Path]
    labels: np.ndarray
    groups: np.ndarray | None = None
    group_column: str | None = None
    layout: str = "labels.csv"
    dropped: list[str] = dataclasses.field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels.tolist()))

    def subset(self, keep: np.ndarray) -> "Dataset":
        keep = np.asarray(keep, bool)
        return dataclasses.replace(self, files=[f for f, k in zip(self.files, keep) if k], labels=self.labels[keep],
                                   groups=None if self.groups is None else self.groups[keep])


def load_dataset(root, name: str | None = None) -> Dataset:
    """A labelled set: `labels.csv` (`file,label[,group]`) or one sub-folder of audio per class."""
    root = Path(root)
    name = name or root.name
    csv_path = root / "labels.csv"
    if csv_path.exists():
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            if "file" not in columns or "label" not in columns:
                raise DatasetError(f"{csv_path}: needs a header with 'file' and 'label' columns, got {columns}")
            extra = [c for c in columns if c not in ("file", "label")]
            group_column = next((c for c in ("group", "speaker") if c in extra), extra[0] if extra else None)
            rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
        files, labels, groups, dropped = [], [], [], []
        for r in rows:
            if not r.get("file"):
                continue
            path = root / r["file"]
            if not path.is_file():
                dropped.append(f"{r['file']}: listed in labels.csv but missing")
                continue
            files.append(path)
            labels.append(r["label"])
            groups.append(r.get(group_column, "") if group_column else "")
        layout = "labels.csv"
    else:
        class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        files, labels, dropped = [], [], []
        for d in class_dirs:
            for path in sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS):
                files.append(path)
                labels.append(d.name)
        groups, group_column, layout = [], None, "sub-folders"
        if not files:
            raise DatasetError(f"{root}: neither a labels.csv nor sub-folders of audio files (one per class)")
    if not files:
        raise DatasetError(f"{root}: no audio files")
    groups_arr = None
    if group_column is not None:
        groups_arr = np.asarray(groups, dtype=object)
        if (groups_arr == "").any():  # clips without a group form their own singleton groups
            groups_arr = np.asarray([g if g else f"\0{i}" for i, g in enumerate(groups)], dtype=object)
    return Dataset(name, root, files, np.asarray(labels, dtype=object), groups_arr, group_column, layout, dropped)


def find_datasets(paths: Iterable, announce: Callable[[str], None] = log) -> tuple[list[Dataset], list[dict]]:
    """Load each set that exists; absent or unusable ones are skipped with a message."""
    found, skipped, seen, names = [], [], set(), set()
    for p in paths:
        p = Path(os.path.expanduser(os.fspath(p)))
        key = os.path.realpath(p)
        if key in seen:
            continue
        seen.add(key)
        if not p.is_dir():
            announce(f"skipping data set {p}: not found")
            skipped.append({"path": str(p), "reason": "not found"})
            continue
        try:
            ds = load_dataset(p)
        except (DatasetError, OSError) as e:
            announce(f"skipping data set {p}: {e}")
            skipped.append({"path": str(p), "reason": str(e)})
            continue
        base, i = ds.name, 2
        while ds.name in names:  # two sets with one folder name
            ds.name, i = f"{base}-{i}", i + 1
        names.add(ds.name)
        for msg in ds.dropped[:5]:
            announce(f"{ds.name}: {msg}")
        if len(ds.dropped) > 5:
            announce(f"{ds.name}: ... {len(ds.dropped) - 5} more missing files")
        found.append(ds)
    return found, skipped


def data_paths(paths: Iterable, env: str | None = None) -> list[Path]:
    """``paths`` then the folders in ``env`` (os.pathsep-separated); a folder that is not itself a set
    but holds sets (sub-folders with a labels.csv), as <corpus>/heldout does, stands for those sets."""
    out = []
    for p in [*map(Path, paths), *(Path(e) for e in (env or "").split(os.pathsep) if e)]:
        subsets = sorted(d for d in p.iterdir() if (d / "labels.csv").is_file()) \
            if p.is_dir() and not (p / "labels.csv").exists() else []
        out.extend(subsets or [p])
    return out
