"""Corpus -> training patches: the max-energy patch of each clip, per-band scaler, 90/10 stratified split.

    python -m training.prepare --corpus /work/corpus --out /work/prepared [--patches-per-clip 1] [--peak-dbfs -6]
        [--max-clips-per-tag-set 2000] [--context-frames 24]

Reads `<corpus>/manifest.jsonl` ({"path", "tags", ...} per clip) and `<corpus>/vocab.json`, leaves out
the clips that `<corpus>/decontamination.json` excludes (training/corpus/decontaminate.py), computes
log-mel frames with coala_embed's front end, picks each clip's 96-frame patch of highest summed log
energy (searched every 12 frames, as the COALA reference; of the peak-normalised clip with
--peak-dbfs, a level then saved in the front end), splits clips 90/10 with multilabel
stratification, fits the per-band min-max scaler on the training patches only, and writes scaled
patches as memory-mappable .npy files with `meta.json` (see training/trainer/data.py).

With --context-frames C each stored patch carries C more frames on either side (the clip's own frames,
or digital silence past its ends), so that training can draw views shifted by up to C frames; the
trainer takes the centre 96 frames as the patch, which is then the same patch as without context.

With --renditions K and any of --aug-room, --aug-background, --aug-mic, --aug-codec, --aug-pitch-speed,
each training clip also gives K renditions of its waveform in other acoustic settings
(training/corpus/augment_wave.py), cut into patches by the same front end, with the clip's tags; they
follow the clean training patches in train_*.npy, and `augmentations.jsonl` says what each drew.
Validation clips are never augmented, nor used as backgrounds. All off, the output is what it was.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from functools import lru_cache
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from coala_embed import audio, decode
from training.corpus import augment_wave, decontaminate

SEARCH_HOP_FRAMES = 12


def best_patch_starts(frames: np.ndarray, fe: audio.FrontEnd, k: int = 1) -> list[int]:
    """Starts of the k highest-energy, non-overlapping patches (summed log-mel), searched every 12 frames."""
    P = fe.patch_frames
    candidates = np.arange(0, len(frames) - P + 1, SEARCH_HOP_FRAMES)
    cumulative = np.concatenate([[0.0], np.cumsum(frames.sum(axis=1, dtype=np.float64))])
    energy = cumulative[candidates + P] - cumulative[candidates]
    chosen: list[int] = []
    for i in np.argsort(-energy, kind="stable"):
        start = int(candidates[i])
        if all(abs(start - c) >= P for c in chosen):
            chosen.append(start)
            if len(chosen) == k:
                break
    return chosen


def clip_wave(path, fe: audio.FrontEnd) -> np.ndarray:
    """A clip's mono waveform at the front end's rate (and level, with fe.peak_dbfs)."""
    return np.concatenate(list(decode.file_clip_blocks(path, fe)))


def wave_log_mel(y: np.ndarray, fe: audio.FrontEnd) -> np.ndarray:
    """Unscaled log-mel frames (n_frames, n_mels) of a waveform, zero-padded to at least one patch."""
    if len(y) < fe.min_samples:
        y = np.pad(y, (0, fe.min_samples - len(y)))
    return audio.log_mel(y, fe)


def clip_log_mel(path, fe: audio.FrontEnd) -> np.ndarray:
    return wave_log_mel(clip_wave(path, fe), fe)


def cut_patches(frames: np.ndarray, fe: audio.FrontEnd, k: int, context: int) -> np.ndarray:
    """The k best patches of a clip's frames, each with `context` frames either side."""
    starts = best_patch_starts(frames, fe, k)
    if context:  # silence (the log-mel of zeros) beyond the clip's ends
        frames = np.pad(frames, ((context, context), (0, 0)), constant_values=np.log(np.float32(fe.log_eps)))
    return np.stack([frames[s:s + fe.patch_frames + 2 * context] for s in starts])


def _extract(args):
    path, k, fe, context = args
    try:
        frames = clip_log_mel(path, fe)
    except audio.AudioError as e:
        return None, str(e)
    return cut_patches(frames, fe, k, context), None


# (corpus, [(path in the corpus, tags)]) of the training clips that can be a background; set in each worker
_AMBIENCE: list = [None, []]


def _set_ambience(corpus, pool):
    _AMBIENCE[:] = [corpus, pool]


@lru_cache(maxsize=16)  # a few backgrounds serve many clips in a row of a worker's chunk
def _ambience_wave(path, fe):
    return clip_wave(path, fe)


def _renditions(args):
    """Patches of the augmented renditions of one clip, and a record of what each drew."""
    path, clip_id, tags, k, fe, context, aug = args
    t0 = time.perf_counter()
    try:
        y = clip_wave(path, fe)
    except audio.AudioError:
        return [], [], 0.0  # the clean pass already kept it, so this does not happen
    corpus, pool = _AMBIENCE
    pick = augment_wave.ambience_picker(pool, tags, lambda p: _ambience_wave(corpus / p, fe))
    patches, records = [], []
    for r in range(aug.renditions):
        z, chain = augment_wave.render(y, fe.sample_rate, tags, aug, clip_id, r, pick)
        if z is None:
            continue
        # the front end's level again (a room or a mix moves the peak), as a recording would get it
        z = np.concatenate(list(decode.clip_blocks(lambda: iter([z]), fe.sample_rate, fe)))
        patches.append(cut_patches(wave_log_mel(z, fe), fe, k, context))
        records.append({"clip": clip_id, "rendition": r, "patches": len(patches[-1]), "chain": chain})
    return patches, records, time.perf_counter() - t0


def stratified_split(tags: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip indices for train and validation, stratified on the multi-hot tags."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train, val = next(splitter.split(np.zeros(len(tags)), tags))
    return np.sort(train), np.sort(val)


def cap_tag_sets(clips: list[dict], index: dict, max_clips: int, seed: int) -> list[dict]:
    """Keep at most `max_clips` clips (a seeded random choice, in manifest order) of any one exact tag set.

    NT-Xent treats every other clip in a batch as a negative. Clips with identical tags have identical
    tag embeddings, so a tag set that fills a large share of the corpus (tuxpaint's 7,439 spoken
    descriptions, 36% of it) puts many negatives in each batch that the loss cannot tell apart.
    """
    groups: dict[tuple, list[int]] = {}
    for i, clip in enumerate(clips):
        groups.setdefault(tuple(sorted(t for t in clip["tags"] if t in index)), []).append(i)
    rng = np.random.default_rng(seed)
    keep = set()
    for members in groups.values():
        keep.update(rng.choice(members, max_clips, replace=False) if len(members) > max_clips else members)
    return [clip for i, clip in enumerate(clips) if i in keep]


def fit_scaler(patches: np.ndarray, context: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-band min and max over every frame of the training patches (patches: N, frames, bands), their
    context frames left out, so that context does not change the scaler."""
    centre = patches[:, context:patches.shape[1] - context]
    return centre.min(axis=(0, 1)), centre.max(axis=(0, 1))


def write_split(out: Path, split: str, patches: np.ndarray, tags: np.ndarray, fe: audio.FrontEnd):
    scaled = np.lib.format.open_memmap(out / f"{split}_patches.npy", "w+", np.float32,
                                       (len(patches), fe.n_mels, patches.shape[1]))
    for i in range(0, len(patches), 1024):
        scaled[i:i + 1024] = audio.scale(patches[i:i + 1024], fe).transpose(0, 2, 1)  # as at inference
    scaled.flush()
    np.save(out / f"{split}_tags.npy", tags.astype(np.uint8))


def prepare(corpus, out, patches_per_clip: int = 1, val_fraction: float = 0.1, seed: int = 0,
            workers: int = 2, limit: int | None = None, peak_dbfs: float | None = None,
            max_clips_per_tag_set: int | None = None, context_frames: int = 0,
            augment: augment_wave.WaveAugment | None = None) -> dict:
    corpus, out = Path(corpus), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    manifest_bytes = (corpus / "manifest.jsonl").read_bytes()
    clips = [json.loads(line) for line in manifest_bytes.decode().splitlines() if line.strip()]
    excluded = decontaminate.excluded_paths(corpus, manifest_bytes)  # clips found in evaluation sets
    clips = [c for c in clips if excluded is None or c["path"] not in excluded]
    vocab = json.loads((corpus / "vocab.json").read_text())
    index = {t: i for i, t in enumerate(vocab)}
    clips = [c for c in clips if any(t in index for t in c["tags"])][:limit]
    if max_clips_per_tag_set is not None:
        clips = cap_tag_sets(clips, index, max_clips_per_tag_set, seed)
    fe = audio.FrontEnd(peak_dbfs=peak_dbfs)

    jobs = [(corpus / c["path"], patches_per_clip, fe, context_frames) for c in clips]
    with Pool(workers) as pool:
        results = pool.map(_extract, jobs, chunksize=16)
    kept, patch_list, failures = [], [], []
    for clip, (patches, error) in zip(clips, results):
        if error is not None:
            failures.append(error)
            continue
        kept.append(clip)
        patch_list.append(patches)
    multi_hot = np.zeros((len(kept), len(vocab)), np.uint8)
    for row, clip in enumerate(kept):
        multi_hot[row, [index[t] for t in clip["tags"] if t in index]] = 1

    train_clips, val_clips = stratified_split(multi_hot, val_fraction, seed)

    def gather(clip_ids):
        patches = np.concatenate([patch_list[i] for i in clip_ids])
        tags = np.concatenate([np.repeat(multi_hot[i:i + 1], len(patch_list[i]), axis=0) for i in clip_ids])
        return patches, tags

    train_patches, train_tags = gather(train_clips)
    val_patches, val_tags = gather(val_clips)
    # the scaler is the clean training patches', with or without renditions: it is the front end that
    # inference uses on whatever comes, and the clean patches stay the same bytes
    fe = fe.with_scaler(*fit_scaler(train_patches, context_frames))
    augmented = None
    if augment is not None and augment.active():
        augmented = _augment(out, [kept[i] for i in train_clips], corpus, patches_per_clip, fe, context_frames,
                             augment, workers)
        train_clean = len(train_patches)
        if augmented["patches"] is not None:
            train_patches = np.concatenate([train_patches, augmented["patches"]])
            train_tags = np.concatenate([train_tags, multi_hot[train_clips][augmented["clip_rows"]]])
    write_split(out, "train", train_patches, train_tags, fe)
    write_split(out, "val", val_patches, val_tags, fe)
    meta = {
        "frontend": fe.to_dict(),
        "tags": vocab,
        "corpus": str(corpus),
        "corpus_manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "decontaminated_excluded": None if excluded is None else len(excluded),  # None: never checked
        "clips": len(kept),
        "failed_clips": len(failures),
        "failures": failures[:20],
        "train_patches": len(train_patches),
        "val_patches": len(val_patches),
        "patches_per_clip": patches_per_clip,
        "max_clips_per_tag_set": max_clips_per_tag_set,
        "context_frames": context_frames,
        "augmentation": None if augmented is None else dict(
            augment.to_dict(), train_clean_patches=train_clean,
            **{k: v for k, v in augmented.items() if k not in ("patches", "clip_rows")}),
        "val_fraction": val_fraction,
        "seed": seed,
        "seconds": round(time.time() - t0, 1),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def _augment(out: Path, clips: list[dict], corpus: Path, k: int, fe: audio.FrontEnd, context: int,
             aug: augment_wave.WaveAugment, workers: int) -> dict:
    """Renditions of the training clips: their unscaled patches, each patch's clip (row of `clips`), and
    counts for meta.json; what each rendition drew goes to augmentations.jsonl."""
    ambience = [(c["path"], tuple(c["tags"])) for c in clips
                if augment_wave.AMBIENCE_TAGS & set(c["tags"])]
    jobs = [(corpus / c["path"], c["path"], tuple(c["tags"]), k, fe, context, aug) for c in clips]
    t0 = time.time()
    with Pool(workers, initializer=_set_ambience, initargs=(corpus, ambience)) as pool:
        results = pool.map(_renditions, jobs, chunksize=4)
    patches, rows, stages = [], [], dict.fromkeys(aug.enabled(), 0)
    with open(out / "augmentations.jsonl", "w") as f:
        for row, (clip_patches, records, _) in enumerate(results):
            for p, rec in zip(clip_patches, records):
                patches.append(p)
                rows += [row] * len(p)
                for stage in rec["chain"]:
                    stages[next(iter(stage))] += 1
                f.write(json.dumps(rec) + "\n")
    return {"patches": np.concatenate(patches) if patches else None, "clip_rows": np.asarray(rows, int),
            "augmented_patches": len(rows), "renditions_made": sum(len(r[1]) for r in results),
            "stage_counts": stages, "ambience_clips": len(ambience),
            "cpu_seconds_per_clip": round(sum(r[2] for r in results) / max(len(clips), 1), 4),
            "seconds": round(time.time() - t0, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="folder with manifest.jsonl and vocab.json")
    p.add_argument("--out", required=True, help="folder for the prepared patches")
    p.add_argument("--patches-per-clip", type=int, default=1, help="highest-energy non-overlapping patches per clip")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="use only the first N clips (for quick trials)")
    p.add_argument("--peak-dbfs", type=float, default=None,
                   help="peak-normalise every clip to this level first (saved in the front end; default: no scaling)")
    p.add_argument("--max-clips-per-tag-set", type=int, default=None,
                   help="keep at most N clips (seeded random choice) with any one identical tag set (default: all)")
    p.add_argument("--context-frames", type=int, default=0,
                   help="store N more frames on either side of each patch, for shifted views in training (default 0)")
    p.add_argument("--renditions", type=int, default=0,
                   help="augmented renditions per training clip besides the clean one, from the --aug-* stages (default 0)")
    for stage, what in (("room", "be convolved with a simulated shoebox room's impulse response"),
                        ("background", "be mixed with an ambience clip of other tags (or coloured noise) at --aug-snr-db"),
                        ("mic", "pass a cheap microphone: EQ tilt, speaker high-pass, band limit, mild clipping"),
                        ("codec", "take a lossy Vorbis or Opus round trip"),
                        ("pitch-speed", "get small pitch and speed changes (never for clips tagged speech)")):
        p.add_argument(f"--aug-{stage}", action="store_true", help=f"renditions may {what}")
    p.add_argument("--aug-snr-db", type=float, nargs=2, default=(0.0, 20.0), metavar=("LO", "HI"),
                   help="SNR range of the background mix in dB (default 0 20)")
    p.add_argument("--aug-seed", type=int, default=0, help="seed of the renditions (with each clip and rendition index)")
    p.add_argument("--aug-skip-tags", nargs="+", default=(), metavar="TAG",
                   help="make no rendition of clips carrying any of these tags (e.g. speech); the others' are unchanged")
    args = p.parse_args(argv)
    aug = augment_wave.WaveAugment(room=args.aug_room, background=args.aug_background, mic=args.aug_mic,
                                   codec=args.aug_codec, pitch_speed=args.aug_pitch_speed, renditions=args.renditions,
                                   seed=args.aug_seed, snr_db=tuple(args.aug_snr_db),
                                   skip_tags=tuple(args.aug_skip_tags))
    if bool(aug.renditions) != bool(aug.enabled()):
        p.error("--renditions needs at least one --aug-* stage, and an --aug-* stage needs --renditions > 0")
    meta = prepare(args.corpus, args.out, args.patches_per_clip, args.val_fraction, args.seed, args.workers, args.limit,
                   args.peak_dbfs, args.max_clips_per_tag_set, args.context_frames, aug if aug.active() else None)
    print(json.dumps({k: v for k, v in meta.items() if k not in ("frontend", "tags", "failures")}, indent=1))


if __name__ == "__main__":
    main()
