"""Find evaluation clips inside the training corpus by audio fingerprint, and exclude those clips.

    python -m training.decontaminate CORPUS REFERENCE_DIR... [--workers 2]

CORPUS is a folder with manifest.jsonl (training/corpus/build.py); every REFERENCE_DIR is searched for audio
files (e.g. ../shared/data and the held-out sets). Every reference clip is compared with every corpus
clip; each match (corpus clip, reference clip, score, offset) is printed and written, with the list of
excluded corpus clips, to CORPUS/decontamination.json, which training/corpus/prepare.py honours.

The fingerprint is the landmark hash of Wang (2003, "An industrial-strength audio search algorithm"):
audio decoded and resampled by coala_embed's front end to 8000 Hz mono (so that the sample rate, channel
count and format of a copy do not matter; 8 kHz is the rate of the slowest reference set), the local
maxima of the log spectrogram (a constellation that a level change does not move and that lossy coding
mostly keeps), and hashes of pairs of nearby peaks (f1, f2, dt). A copy of a clip, cropped or not,
shares many hashes with it *at one consistent time offset*; unrelated sounds share a few at scattered
offsets. References are held in an inverted index (hashes sorted once, looked up with searchsorted);
corpus clips stream through worker processes, so memory does not grow with the corpus.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter

from coala_embed import audio, decode
from training.corpus.files import find_audio

RATE = 8000
N_FFT = 512  # 64 ms window, 15.6 Hz bins
HOP = 64  # 8 ms frames: a copy cropped at any sample is at most 4 ms off the reference's frame grid
FRONT_END = audio.FrontEnd(sample_rate=RATE)  # only its rate is used: decode + mono + soxr resampling
MIN_BIN, MAX_BIN = 4, 248  # 62-3875 Hz: the resampler's roll-off near 4 kHz differs between copies
PEAK_FREQ, PEAK_TIME = 4, 3  # a peak is the maximum of its (2*4+1 bins) x (2*3+1 frames) neighbourhood,
PEAK_RANGE_DB = 60.0  # within 60 dB of the clip's loudest bin (drops dither and digital silence)
LOCAL_RANGE_DB = 40.0  # and within 40 dB of the loudest bin within 0.5 s
MAX_DT = 63  # pairs span 1-63 frames (0.5 s): 6 bits
MAX_DF = 64  # and at most 64 bins (1 kHz)
FAN_OUT = 10  # each peak pairs with the 10 next peaks in that zone
MAX_REPEAT = 2  # hashes that recur more often in a clip are dropped
DT_TOLERANCE = 1  # reference hashes are also filed under dt +- 1
MAX_REFS_PER_HASH = 20  # hashes of more reference clips than this are not indexed
# a match: this many of the clip's hashes at one offset, and this share of the hashes of the sparser of
# the two clips in the part they share. Measured on ../shared/data (training/EXPERIMENTS.md): every
# esc50-dev copy and 91% of the fsdd copies that were resampled, cropped (to as little as 0.12 s),
# level-changed and re-encoded pass (those missed are under 0.4 s), no pair of different recordings
# does, nor any of 5,640 real game, speech-prompt and weather clips.
MIN_SCORE = 20
MIN_FRACTION = 0.1
REPORT = "decontamination.json"


def peaks(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame and bin of the spectral peaks of a mono 8 kHz signal, sorted by time then frequency."""
    if len(y) < N_FFT:
        y = np.pad(y, (0, N_FFT - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP]
    spec = np.abs(np.fft.rfft(frames * np.hanning(N_FFT).astype(np.float32), axis=1))[:, :MAX_BIN]
    level = 20 * np.log10(spec + 1e-10)
    local_max = maximum_filter(level, size=(2 * PEAK_TIME + 1, 2 * PEAK_FREQ + 1), mode="constant", cval=-np.inf)
    # ... and within LOCAL_RANGE_DB of the loudest bin within +-0.5 s: the strong peaks, which a copy keeps,
    # not the noise between them, whose local maxima move with any change
    loudest = maximum_filter(level.max(axis=1), size=2 * RATE // (2 * HOP) + 1, mode="nearest")
    is_peak = ((level == local_max) & (level > level.max() - PEAK_RANGE_DB) & (spec > 1e-6)
               & (level > loudest[:, None] - LOCAL_RANGE_DB))
    is_peak[:, :MIN_BIN] = False
    t, f = np.nonzero(is_peak)  # row-major: sorted by time, then frequency
    return t.astype(np.int32), f.astype(np.int32)


def hashes(t: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmark hashes f1 | f2 | dt (24 bits) and their anchor frames, FAN_OUT pairs per anchor."""
    out_h, out_t = [], []
    taken = np.zeros(len(t), np.int32)
    for k in range(1, 4 * FAN_OUT):  # candidates: the next peaks in time order
        a, b = np.arange(len(t) - k), np.arange(k, len(t))
        dt, df = t[b] - t[a], f[b] - f[a]
        ok = (dt >= 1) & (dt <= MAX_DT) & (np.abs(df) <= MAX_DF) & (taken[a] < FAN_OUT)
        a, b = a[ok], b[ok]
        taken[a] += 1
        out_h.append((f[a].astype(np.uint32) << 15) | (f[b].astype(np.uint32) << 6) | (t[b] - t[a]).astype(np.uint32))
        out_t.append(t[a])
    h, t = np.concatenate(out_h), np.concatenate(out_t)
    # a hash that recurs in a clip (a steady tone, a hum, a loop) locates nothing and would match any
    # other clip with that tone at every offset: keep only the hashes that occur at most MAX_REPEAT times
    _, inverse, count = np.unique(h, return_inverse=True, return_counts=True)
    keep = count[inverse] <= MAX_REPEAT
    return h[keep], t[keep]


def signal(path) -> np.ndarray:
    """Mono 8 kHz samples of an audio file, by coala_embed's decoder and resampler (raises audio.AudioError)."""
    return np.concatenate(list(decode.file_clip_blocks(path, FRONT_END)))


def landmarks(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hashes and anchor frames of a mono 8 kHz signal."""
    return hashes(*peaks(y))


class Index:
    """Inverted index of reference hashes: sorted hash values, with the reference and frame of each."""

    def __init__(self, prints: list[tuple[np.ndarray, np.ndarray]]):
        self.anchors = [np.sort(t) for _, t in prints]  # to count the hashes a copy of a part can share
        self.n_frames = np.array([int(a.max(initial=0)) + 1 for a in self.anchors])
        h = np.concatenate([h for h, _ in prints] or [np.zeros(0, np.uint32)])
        t = np.concatenate([t for _, t in prints] or [np.zeros(0, np.int32)])
        ref = np.repeat(np.arange(len(prints), dtype=np.int32), [len(h) for h, _ in prints])
        # the two peaks of a pair in a copy shifted by part of a frame can round to frames one further
        # apart or closer: each reference hash is also filed under dt - 1 and dt + 1
        dt = (h & 63).astype(np.int64)
        variants = [(h, t, ref)]
        for d in range(1, DT_TOLERANCE + 1):
            for sign in (-1, 1):
                ok = (dt + sign * d >= 1) & (dt + sign * d <= MAX_DT)
                variants.append(((h[ok].astype(np.int64) + sign * d).astype(np.uint32), t[ok], ref[ok]))
        h, t, ref = (np.concatenate(v) for v in zip(*variants))
        # a hash that many reference clips share (one speaker's room hum, a common click) tells them apart
        # from nothing, and would match every other recording made there: it is not indexed
        values, n_refs = np.unique(np.unique(h.astype(np.int64) << 32 | ref) >> 32, return_counts=True)
        self.stop_hashes = values[n_refs > MAX_REFS_PER_HASH].astype(np.uint32)
        keep = ~np.isin(h, self.stop_hashes)
        order = np.argsort(h[keep], kind="stable")
        self.hash, self.frame, self.ref = h[keep][order], t[keep][order], ref[keep][order]
        # where each hash value's postings start: a lookup instead of a binary search (hashes < MAX_BIN << 15)
        self.starts = np.searchsorted(self.hash, np.arange((MAX_BIN << 15) + 1)).astype(np.int32)

    def match(self, h: np.ndarray, t: np.ndarray) -> list[tuple[int, int, int, float, int]]:
        """(reference, score, offset, fraction, span) of each reference that a clip's landmarks match.

        The score is the number of the clip's hashes that match the reference at one time offset (or the
        next: a copy cropped at any sample lands a fraction of a frame off the reference's grid); the
        fraction divides it by the hashes of the sparser of the two in the part they share. Offset
        (corpus frame - reference frame) and span (first to last matching anchor) are in frames.
        """
        lo, hi = self.starts[h], self.starts[h + 1]
        n = (hi - lo).astype(np.int64)
        query = np.repeat(np.arange(len(h)), n)
        posting = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
        ref = self.ref[posting]
        candidate = np.bincount(ref, minlength=len(self.anchors)) >= MIN_SCORE  # most references: a few hits
        query, posting, ref = query[candidate[ref]], posting[candidate[ref]], ref[candidate[ref]].astype(np.int64)
        if len(ref) == 0:
            return []
        offset = t[query].astype(np.int64) - self.frame[posting]  # corpus frame - reference frame
        span = 1 << 20  # offsets lie within +-2^19 frames (1.2 h) of each other
        key, count = np.unique(ref * span + offset + span // 2, return_counts=True)
        after = np.minimum(np.searchsorted(key, key + 1), len(key) - 1)
        # upper bound of the hashes at offsets o and o + 1 (a hash that matched two dt variants counts twice)
        score = count + np.where(key[after] == key + 1, count[after], 0)
        best: dict[int, int] = {}
        for i in np.flatnonzero(score >= MIN_SCORE):
            r = int(key[i] // span)
            if r not in best or score[i] > score[best[r]]:
                best[r] = i
        out = []
        for r, i in best.items():
            o = int(key[i] % span - span // 2)
            hit = (ref == r) & ((offset == o) | (offset == o + 1))
            matched = np.unique(query[hit])  # each clip hash once
            frames = t[matched]
            if len(matched) >= MIN_SCORE:
                out.append((r, len(matched), o, min(1.0, len(matched) / self._overlap(r, o, t)),
                            int(frames.max() - frames.min())))
        return out

    def _overlap(self, r: int, offset: int, t: np.ndarray) -> int:
        """Hashes of the sparser clip in the part the two share at this offset (corpus = reference + offset)."""
        lo, hi = max(0, -offset), min(int(self.n_frames[r]), int(t.max(initial=0)) + 1 - offset)
        in_ref = np.searchsorted(self.anchors[r], hi) - np.searchsorted(self.anchors[r], lo)
        in_clip = np.count_nonzero((t - offset >= lo) & (t - offset < hi))
        return max(1, min(int(in_ref), int(in_clip)))


_INDEX: Index | None = None  # the references, in each worker process


def _set_index(index: Index):
    global _INDEX
    _INDEX = index


def _reference_job(path):
    try:
        return landmarks(signal(path)), None
    except audio.AudioError as e:
        return landmarks(np.zeros(0, np.float32)), str(e)


def _match_job(path):
    try:
        y = signal(path)
    except audio.AudioError as e:
        return [], 0.0, str(e)
    return _INDEX.match(*landmarks(y)), len(y) / RATE, None


def decontaminate(corpus, references, workers: int = 2, log=print) -> dict:
    """Compare every corpus clip with every reference clip; write and return the report."""
    corpus = Path(corpus)
    manifest = corpus / "manifest.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{corpus}: no manifest.jsonl (expected a corpus built by training.corpus)")
    manifest_bytes = manifest.read_bytes()
    clips = [json.loads(line)["path"] for line in manifest_bytes.decode().splitlines() if line.strip()]
    ref_paths, ref_dirs = [], []
    for folder in references:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder}: reference folder does not exist")
        found = [os.path.join(folder, rel) for rel in find_audio(str(folder))]
        if not found:
            raise ValueError(f"{folder}: no audio files in the reference folder")
        ref_paths += found
        ref_dirs.append({"folder": str(folder), "clips": len(found)})

    t0 = time.time()
    with Pool(workers) as pool:
        prints = pool.map(_reference_job, ref_paths, chunksize=32)
    failures = [f"reference {e}" for _, e in prints if e]
    index = Index([p for p, _ in prints])
    t_refs = time.time() - t0
    log(f"{len(ref_paths)} reference clips, {len(index.hash)} hashes, {t_refs:.1f} s")

    matches, excluded, audio_seconds = [], set(), 0.0
    with Pool(workers, initializer=_set_index, initargs=(index,)) as pool:
        results = pool.imap(_match_job, [corpus / c for c in clips], chunksize=32)
        for clip, (found, seconds, error) in zip(clips, results):
            audio_seconds += seconds
            if error:
                failures.append(f"corpus {error}")
            for r, score, offset, fraction, span in found:
                if fraction < MIN_FRACTION:
                    continue
                matches.append({"clip": clip, "reference": ref_paths[r], "score": score,
                                "fraction": round(fraction, 3), "offset_seconds": round(offset * HOP / RATE, 3),
                                "matched_seconds": round(span * HOP / RATE, 3)})
                excluded.add(clip)
    t_corpus = time.time() - t0 - t_refs
    for m in matches:
        log(f"match: {m['clip']}  {m['reference']}  score {m['score']}  fraction {m['fraction']}  "
            f"offset {m['offset_seconds']} s")
    report = {
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "references": ref_dirs,
        "reference_clips": len(ref_paths),
        "corpus_clips": len(clips),
        "corpus_audio_hours": round(audio_seconds / 3600, 2),
        "matches": matches,
        "excluded": sorted(excluded),
        "failures": failures,
        "seconds": {"references": round(t_refs, 1), "corpus": round(t_corpus, 1)},
        "workers": workers,
        "fingerprint": {"rate": RATE, "n_fft": N_FFT, "hop": HOP, "bins": [MIN_BIN, MAX_BIN],
                        "peak_neighbourhood": [PEAK_TIME, PEAK_FREQ], "peak_range_db": PEAK_RANGE_DB,
                        "max_dt": MAX_DT, "max_df": MAX_DF, "fan_out": FAN_OUT,
                        "min_score": MIN_SCORE, "min_fraction": MIN_FRACTION},
    }
    tmp = corpus / (REPORT + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, corpus / REPORT)  # never a half-written report
    log(f"{len(clips)} corpus clips ({audio_seconds / 3600:.2f} h) in {t_corpus:.1f} s "
        f"({len(clips) / max(t_corpus, 1e-9):.0f} clips/s, {workers} workers); {len(matches)} matches, "
        f"{len(excluded)} clips excluded, {len(failures)} unreadable; report: {corpus / REPORT}")
    return report


def excluded_paths(corpus, manifest_bytes: bytes) -> set[str] | None:
    """Clips that CORPUS/decontamination.json excludes; None when the corpus was never checked.

    A report made for another manifest is an error, not a silent pass: the corpus changed since it was
    checked, and its new clips were never compared with the evaluation sets.
    """
    path = Path(corpus) / REPORT
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    if report["manifest_sha256"] != hashlib.sha256(manifest_bytes).hexdigest():
        raise ValueError(f"{path}: made for another manifest.jsonl; run python -m training.decontaminate again")
    return set(report["excluded"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", help="folder with manifest.jsonl")
    p.add_argument("references", nargs="+", help="folders of evaluation audio (searched recursively)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    try:
        decontaminate(args.corpus, args.references, args.workers)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
