"""Clips with raw tags -> the corpus: share caps per source, the tag vocabulary, manifest.jsonl and
vocab.json, and the per-source / per-domain table a build prints."""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import Dict, List

import numpy as np

from training.corpus import domains
from training.corpus import tags as tagmod


def cap_source_share(records: List[dict], max_share: float, seed: int = 0) -> List[dict]:
    """Keep every source at most ``max_share`` of the clips: a seeded random choice of the clips of a
    larger one (in manifest order), the largest first, until none is over."""
    rng = np.random.default_rng(seed)
    keep = np.ones(len(records), bool)
    while True:
        counts = Counter(r["source"] for r, k in zip(records, keep) if k)
        src, c = counts.most_common(1)[0] if counts else (None, 0)
        total = sum(counts.values())
        if c <= max_share * total:
            return [r for r, k in zip(records, keep) if k]
        allowed = int(max_share * (total - c) / (1 - max_share))
        idx = [i for i, r in enumerate(records) if keep[i] and r["source"] == src]
        keep[rng.choice(idx, len(idx) - allowed, replace=False)] = False


def capped_and_final(records: List[dict], out_dir: str, max_share: float, min_count: int = 10):
    """cap_source_share + finalize until no source of the *final* corpus is over ``max_share``.

    finalize drops clips left without tags, mostly of the small sources, which pushes the large
    one's share back over the cap; so cap again among the kept clips until the share holds.
    Each pass keeps fewer clips, so this ends."""
    pool = records
    while True:
        vocab, kept = finalize(cap_source_share(pool, max_share), out_dir, min_count=min_count)
        top = Counter(r["source"] for r in kept).most_common(1)
        if not top or top[0][1] <= max_share * len(kept) or len(kept) == len(pool):
            return vocab, kept
        kept_paths = {r["path"] for r in kept}
        pool = [r for r in pool if r["path"] in kept_paths]


def finalize(records: List[dict], out_dir: str, max_frac=0.7, min_count=10, max_tags=1000):
    """Apply the vocabulary filters; write manifest.jsonl and vocab.json. Returns (vocab, kept).

    A tag must occur in ``min_count`` different source files (not clips: see tags.build_vocab).

    Every key of a record but ``raw_tags`` is kept in the manifest (path, source, source_file,
    duration, and version, licence, domain where the builder added them)."""
    vocab, idx, tags = tagmod.filter_tags([r["raw_tags"] for r in records], max_frac, min_count, max_tags,
                                          groups=[(r["source"], r["source_file"]) for r in records])
    kept = []
    for i, t in zip(idx, tags):
        r = {k: v for k, v in records[i].items() if k != "raw_tags"}
        r["tags"] = t
        r["domain"] = domains.domain(t)
        kept.append(r)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "manifest.jsonl"), "w") as f:
        for r in kept:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(out_dir, "vocab.json"), "w") as f:
        json.dump(vocab, f, indent=0)
    return vocab, kept


def table(kept: List[dict], heldout: Dict[str, int]) -> str:
    """Markdown tables per source and per domain: clips, share, hours, real-world-tagged clips."""
    n = len(kept) or 1
    lines = ["| source | clips | % | hours | real-world-tagged | main domain |", "|---|---|---|---|---|---|"]
    by_src: Dict[str, List[dict]] = {}
    for r in kept:
        by_src.setdefault(r["source"], []).append(r)
    for src, rs in sorted(by_src.items(), key=lambda kv: -len(kv[1])):
        dom = Counter(r["domain"] for r in rs).most_common(1)[0][0]
        rw = sum(domains.is_real_world(r["tags"]) for r in rs)
        lines.append(f"| {src} | {len(rs)} | {100 * len(rs) / n:.1f} | {sum(r['duration'] for r in rs) / 3600:.2f} "
                     f"| {rw} | {dom} |")
    for name, c in heldout.items():
        lines.append(f"| {name} (held out) | {c} | - | - | - | - |")
    lines += ["", "| domain | clips | % | hours | sources |", "|---|---|---|---|---|"]
    for d in domains.DOMAINS:
        rs = [r for r in kept if r["domain"] == d]
        srcs = Counter(r["source"] for r in rs)
        lines.append(f"| {d} | {len(rs)} | {100 * len(rs) / n:.1f} | {sum(r['duration'] for r in rs) / 3600:.2f} "
                     f"| {len(srcs)} |")
    rw = sum(domains.is_real_world(r["tags"]) for r in kept)
    notes = sum(r["domain"] == domains.NOTES and domains.is_real_world(r["tags"]) for r in kept)
    lines += ["", f"total: {len(kept)} clips, {sum(r['duration'] for r in kept) / 3600:.2f} h; "
              f"real-world-tagged {rw} (of them rendered notes {notes})"]
    return "\n".join(lines)
