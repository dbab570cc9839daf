"""Audio files -> training clips: decode, mono, 22000 Hz, at most `max_segs` 10-s clips per file (short
or silent ones dropped), 16-bit FLAC, with the raw tags of a source's tagger; and held-out sets, one
clip per labelled file with a labels.csv (the layout of ../shared/data)."""
from __future__ import annotations

import csv
import os
import re
import shutil
from multiprocessing import Pool
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from training.corpus import sourcetags
from training.corpus import tags as tagmod
from training.corpus.files import find_audio
from training.corpus.github import GITHUB

SR = 22000
MAX_SEG_S = 10.0
MAX_SEGS = 30            # 5 min of a long recording: real audio is scarce, use it
MIN_CLIP_S = 0.1
MIN_TAIL_S = 1.0          # later segments of a long file must be at least this long
SILENCE_PEAK = 1e-3       # -60 dBFS


def decode(path: str) -> Tuple[np.ndarray, int]:
    """Decode to float32 mono. Falls back to librosa/audioread if libsndfile fails."""
    try:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        y = y.mean(axis=1)
    except Exception:
        import librosa
        y, sr = librosa.load(path, sr=None, mono=True)
    return np.ascontiguousarray(y, dtype=np.float32), int(sr)


def resample(y: np.ndarray, sr: int, target: int = SR) -> np.ndarray:
    if sr == target or len(y) == 0:
        return y
    import soxr
    return soxr.resample(y, sr, target, quality="HQ").astype(np.float32)


def is_silent(y: np.ndarray) -> bool:
    return len(y) == 0 or float(np.max(np.abs(y))) < SILENCE_PEAK


def segments(y: np.ndarray, sr: int = SR, max_segs: int = MAX_SEGS) -> List[np.ndarray]:
    """At most ``max_segs`` MAX_SEG_S segments; drops short / silent ones.

    A file that holds no more than ``max_segs`` segments (a tail shorter than MIN_TAIL_S not
    counted) is cut into consecutive ones; a longer file gives ``max_segs`` full segments
    spread evenly from its start to its end, so a long recording is sampled all over rather
    than only at its beginning.
    """
    seg = int(round(MAX_SEG_S * sr))
    n_full, tail = divmod(len(y), seg)
    if n_full + (tail >= MIN_TAIL_S * sr) > max_segs:
        starts = np.linspace(0, len(y) - seg, max_segs).round().astype(int)
        return [y[a:a + seg] for a in starts if not is_silent(y[a:a + seg])]
    out = []
    for i in range(n_full + (tail > 0)):
        s = y[i * seg:(i + 1) * seg]
        min_len = MIN_CLIP_S if i == 0 else MIN_TAIL_S
        if len(s) < min_len * sr or is_silent(s):
            continue
        out.append(s)
    return out


def _process_one(job):
    """Worker: (src, out_base_abs, rel_base, max_segs) -> list of (rel_path, duration)."""
    src, out_base, rel_base, max_segs = job
    try:
        y, sr = decode(src)
    except Exception as e:  # undecodable file
        return src, [], f"decode failed: {e}"
    if not np.all(np.isfinite(y)):
        y = np.nan_to_num(y)
    y = resample(y, sr, SR)
    segs = segments(y, SR, max_segs)
    res = []
    for k, s in enumerate(segs):
        suffix = "" if len(segs) == 1 and k == 0 else f"_seg{k}"
        out = out_base + suffix + ".flac"
        os.makedirs(os.path.dirname(out), exist_ok=True)
        sf.write(out, np.clip(s, -1.0, 1.0), SR, subtype="PCM_16", format="FLAC")
        res.append((rel_base + suffix + ".flac", len(s) / SR))
    return src, res, None


def pool_map(func, jobs, workers, chunksize=1):
    if workers <= 1 or len(jobs) <= 1:
        return [func(j) for j in jobs]
    with Pool(workers) as pool:
        return list(pool.imap(func, jobs, chunksize=chunksize))


def _short_rel(rel: str) -> str:
    """Drop boring leading path components for output naming."""
    parts = list(Path(rel).parts)
    while parts and parts[0] in ("usr", "share", "games", "lib", "."):
        parts.pop(0)
    return str(Path(*parts)) if parts else rel


def build_clips(root: str, package: str, out_dir: str, theme: Sequence[str] = (),
                tagger: Optional[Callable[[str, str], Optional[List[str]]]] = None,
                workers: int = 2, files: Optional[Sequence[str]] = None,
                max_segs: int = MAX_SEGS, stop: Sequence[str] = (), log=print) -> List[dict]:
    """Turn a folder of audio files into clips under <out_dir>/audio/<package>/.

    Independent of apt and git: ``root`` is any directory (an extracted package, a snapshot).
    ``tagger(root, rel)`` gives the raw tag text of a file (None leaves the file out; default:
    its directories and stem). Returns one record per clip with *raw* (cleaned but not
    vocabulary-filtered) tags: {"path", "raw_tags", "source", "source_file", "duration"}.
    """
    tagger = tagger or sourcetags.TAGGERS["path"]
    files = list(files) if files is not None else find_audio(root)
    jobs, texts, taken, same_name = [], {}, set(), 0
    for rel in files:
        t = tagger(root, rel)
        if t is None:
            continue
        base_rel = os.path.join("audio", safe_name(package), os.path.splitext(_short_rel(rel))[0])
        if base_rel in taken:  # boom.ogg beside boom.wav: one sound in two formats, and one output file
            same_name += 1
            continue
        taken.add(base_rel)
        src = os.path.join(root, rel)
        jobs.append((src, os.path.join(out_dir, base_rel), base_rel, max_segs))
        texts[src] = (rel, t)
    records, failed = [], 0
    extra_stop = package_stop_words(package) | {w for s in stop for w in tagmod.tokenize(s)}
    for src, clips, err in pool_map(_process_one, jobs, workers, chunksize=8):
        if err:
            failed += 1
            continue
        rel, t = texts[src]
        raw = tagmod.clean_words(list(t) + list(theme), extra_stop=extra_stop)
        for path, dur in clips:
            records.append({"path": path, "raw_tags": raw, "source": package,
                            "source_file": "/" + rel.lstrip("./"), "duration": round(dur, 3)})
    log(f"[{package}] {len(files)} files, {len(jobs)} tagged -> {len(records)} clips ({failed} undecodable"
        + (f", {same_name} left out: the name of an earlier file in another format)" if same_name else ")"))
    return records


def package_stop_words(package: str) -> set:
    """Words of a source's name that say nothing about its sounds: all of a Debian package's name
    (`hedgewars data`), but only the owner of a GitHub repository, whose name often says what it
    holds (`SplendidGrandPiano`, `body_percussion`: their clips had lost `piano` and `body`)."""
    if package.startswith(GITHUB):
        owner = package[len(GITHUB):].split("/")[0]
        return {"github", *tagmod.tokenize(owner)}
    return set(tagmod.tokenize(package))


def safe_name(source: str) -> str:
    """A folder name for a source: 'github:owner/name' -> 'github_owner_name'."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", source)


def write_heldout(root: str, name: str, out_dir: str, labeller, files: Sequence[str], workers: int = 2,
                  log=print, max_segs: int = 1) -> int:
    """Clips of each file that ``labeller(rel) -> (label, group) | None`` labels, into
    <out_dir>/heldout/<name>/ as FLAC + labels.csv (file,label,group), the ../shared/data layout:
    the first 10 s, or up to ``max_segs`` 10-s clips spread over a long field recording (all of one
    file's clips share its group)."""
    hd = os.path.join(out_dir, "heldout", name)
    shutil.rmtree(hd, ignore_errors=True)
    jobs, labels, taken = [], {}, set()
    for rel in files:
        lab = labeller(rel)
        if lab is None:
            continue
        base = os.path.splitext(rel)[0].replace(os.sep, "__")
        if base in taken:  # the same sound in another format would overwrite the first's clip
            continue
        taken.add(base)
        src = os.path.join(root, rel)
        jobs.append((src, os.path.join(hd, base), base, max_segs))
        labels[src] = lab
    rows = []
    for src, clips, err in pool_map(_process_one, jobs, workers, chunksize=8):
        for path, _ in clips:
            rows.append((path, *labels[src]))
    os.makedirs(hd, exist_ok=True)
    with open(os.path.join(hd, "labels.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "group"])
        w.writerows(sorted(rows))
    log(f"[{name}] held out: {len(rows)} clips, {len({r[1] for r in rows})} labels, "
        f"{len({r[2] for r in rows})} groups -> {hd}")
    return len(rows)
