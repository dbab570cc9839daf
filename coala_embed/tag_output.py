"""What `coala-embed tags` prints: each file's tags and, with --frames, each time range's, streamed as text
lines, CSV rows or one JSON array; and `--list-tags`. The command itself is in coala_embed.cli."""
from __future__ import annotations

import csv
import json
import sys

import numpy as np

from .collection import patch_ranges
from .decode import duration_of
from .engine import clip_mean
from .tags import rank_tags

SILENCE = "(digital silence: no tags)"


def file_tags(model, path: str, emb: np.ndarray, stamps: np.ndarray, frames: bool, top_k: int, **rank):
    """(the file's ranked tags, [(start, end, ranked tags)] per time range with frames) for one embedded file.

    A clip shorter than a patch is embedded at several places in one patch: one time range, scored on their
    mean. `rank`: all_tags and labels, as rank_tags takes them."""
    whole = rank_tags(model, clip_mean(emb)[None], top_k, **rank)[0]
    if not frames:
        return whole, []
    duration = duration_of(path)
    start, end = patch_ranges(stamps, float("inf") if duration is None else duration, model.frontend.patch_seconds)
    ranges, group = np.unique(np.round(np.stack([start, end], axis=1), 3), axis=0, return_inverse=True)
    group = np.ravel(group)
    patches = np.stack([emb[group == g].mean(axis=0) for g in range(len(ranges))])
    return whole, [(float(a), float(b), r) for (a, b), r in zip(ranges, rank_tags(model, patches, top_k, **rank))]


class TagWriter:
    """Streamed file by file to stdout: text lines (fmt None), CSV rows ('csv') or one JSON array ('json')."""

    def __init__(self, fmt: str | None):
        self.fmt, self.first = fmt, True
        self.csv = csv.writer(sys.stdout, lineterminator="\n") if fmt == "csv" else None
        if self.csv:
            self.csv.writerow(["path", "start", "end", "rank", "tag", "score"])

    def write(self, path: str, whole, parts):
        if self.fmt == "json":
            item = {"path": path, "tags": [[t, round(s, 4)] for t, s in whole]}
            if parts:
                item["frames"] = [{"start": round(a, 3), "end": round(b, 3), "tags": [[t, round(s, 4)] for t, s in r]}
                                  for a, b, r in parts]
            sys.stdout.write(("[\n" if self.first else ",\n") + json.dumps(item))
        elif self.csv:
            for start, end, ranked in [("", "", whole)] + [(f"{a:.3f}", f"{b:.3f}", r) for a, b, r in parts]:
                self.csv.writerows([path, start, end, i, t, f"{s:.4f}"] for i, (t, s) in enumerate(ranked, 1))
        else:
            lines = [f"{path}\t{_line(whole)}"] + [f"{path}\t{a:.2f}-{b:.2f}\t{_line(r)}" for a, b, r in parts]
            sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        self.first = False

    def close(self):
        if self.fmt == "json":
            sys.stdout.write("[]\n" if self.first else "\n]\n")


def _line(ranked) -> str:
    return ", ".join(f"{t} ({s:.3f})" for t, s in ranked) or SILENCE


def list_tags(vocabulary, all_tags: bool) -> str:
    """The sound tags under their broad categories (a model without vocabulary.json: its tags, one a line)."""
    groups = dict(vocabulary.categories)
    if all_tags and groups:
        sound = set(vocabulary.sound_tags)
        groups["Other tags (not sounds)"] = [t for t in vocabulary.tags if t not in sound]
    if not groups:
        return "\n".join(vocabulary.tags)
    return "\n".join(f"{name} ({len(members)}):\n" + "\n".join(f"  {t}" for t in members)
                     for name, members in groups.items())
