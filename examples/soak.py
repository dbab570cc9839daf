"""Soak test of the command line at scale: kills, restarts, shards, two writers, a full disk (run by hand).

    python examples/soak.py                       # 10,000 generated files, 20 kills (~15-25 min on 2 cores)
    python examples/soak.py --files 300 --kills 4 # a short version (tests/test_soak.py runs one)

Generates files of mixed formats (WAV 16-bit / float, FLAC, OGG, MP3), rates (8-96 kHz), lengths and
channels in nested folders, with damaged ones among them (text, empty, header only, cut in half, NaN
samples, two inputs with the same stem). Then, with a small random checkpoint (speed does not depend on
the weights) and the real CLI in fresh processes:
1. clean runs, npz and Parquet: the reference;
2. npz, Parquet, and Parquet in 3 shards, each killed with SIGKILL at random moments and restarted
   until a run completes;
3. two processes writing the same npz folder at once, and two the same Parquet table (one must refuse);
4. a disk filled part-way (a small tmpfs, when this process may mount one): the run must stop at the
   first full write with a clear message and exit 1, leave nothing half-written, and resume once there
   is room.
Checks at the end: every good file has exactly one output, bit-identical to the clean run; every bad
file one failure naming it; no temporary, lock or part file left; no duplicate row. Prints the counts
and exits 1 on any mismatch.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

FORMATS = [("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")]
RATES = [8000, 16000, 22050, 44100, 48000, 96000]
BAD = ("text", "empty", "header", "cut_wav", "cut_mp3", "nan")


def make_files(root: Path, n: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """n files under root: about 3 % damaged (named bad_*), the rest good; returns (good, bad)."""
    rng = random.Random(seed)
    good, bad = [], []
    for i in range(n):
        folder = root / f"d{i % 17:02d}" / f"e{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        if i % 33 == 5:
            kind = BAD[(i // 33) % len(BAD)]
            bad.append(_damaged(folder / f"bad_{kind}_{i:05d}", kind, rng))
            continue
        ext, subtype = FORMATS[i % len(FORMATS)]
        sr = rng.choice(RATES if ext != "mp3" else [22050, 44100, 48000])
        seconds = rng.choice([0.05, 0.3, 1.0, 2.5, 4.0, 7.0])
        channels = 1 + (i % 3 == 0)
        t = np.arange(int(seconds * sr)) / sr
        y = 0.3 * np.sin(2 * np.pi * rng.uniform(80, 3000) * t) + 0.02 * np.random.RandomState(i).randn(len(t))
        y = np.stack([y] * channels, axis=1) if channels > 1 else y
        name = folder / f"clip{i:05d}.{ext}"
        sf.write(name, y.astype(np.float32), sr, format=ext.upper() if ext != "ogg" else "OGG", subtype=subtype)
        good.append(name)
        if i % 97 == 0:  # the same stem in another format, in the same folder
            twin = name.with_suffix(".flac" if ext != "flac" else ".wav")
            sf.write(twin, y.astype(np.float32), sr)
            good.append(twin)
    return good, bad


def _damaged(stem: Path, kind: str, rng: random.Random) -> Path:
    sr = 16000
    y = 0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * sr) / sr).astype(np.float32)
    if kind == "text":
        p = stem.with_suffix(".wav")
        p.write_text("not audio at all")
    elif kind == "empty":
        p = stem.with_suffix(".flac")
        p.write_bytes(b"")
    elif kind == "nan":
        p = stem.with_suffix(".wav")
        y[rng.randrange(len(y))] = np.nan
        sf.write(p, y, sr, subtype="FLOAT")
    else:
        p = stem.with_suffix(".mp3" if kind == "cut_mp3" else ".wav")
        if kind == "cut_mp3":
            sf.write(p, y, 44100, format="MP3", subtype="MPEG_LAYER_III")
        else:
            sf.write(p, y, sr, subtype="PCM_16")
        data = p.read_bytes()
        p.write_bytes(data[:30] if kind == "header" else data[: len(data) // 2])
    return p


def make_checkpoint(folder: Path) -> Path:
    import torch

    from coala_embed import COALA, FrontEnd, ModelConfig, save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig(n_tags=20, n_filters=8)
    rng = np.random.RandomState(0)
    fe = FrontEnd().with_scaler(-16.0 + rng.uniform(0, 1, 96), 3.0 + rng.uniform(0, 1, 96))
    return save_checkpoint(folder, COALA(cfg).eval(), fe, [f"tag{i:02d}" for i in range(20)])


def cli(args: list, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "coala_embed.cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def run_with_kills(args: list, env: dict, kills: int, rng: random.Random, max_delay: float) -> tuple[int, str, int]:
    """Run the CLI, SIGKILL it `kills` times at random moments, then let a last run finish: (rc, stderr, kills)."""
    done = 0
    while True:
        p = cli(args, env)
        if done < kills:
            try:
                p.wait(timeout=rng.uniform(0.3, max_delay))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.communicate()
                done += 1
                continue
        _, err = p.communicate()  # the last run (or one that finished before its kill) completes
        return p.returncode, err, done


def load_npz_folder(folder: Path) -> dict:
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            rel = str(f.relative_to(folder))
            if f.suffix != ".npz":
                out[rel] = None  # a stray file (temporary, lock): counted as a problem
                continue
            with np.load(f) as z:
                out[rel] = (z["embedding"].copy(), z["timestamps"].copy())
    return out


def load_table_folder(folder: Path) -> tuple[dict, list[str]]:
    import pyarrow.dataset as ds

    files = sorted(p.name for p in folder.iterdir())
    table = ds.dataset(str(folder), format="parquet").to_table(columns=["key", "status", "error", "embedding"])
    rows = {}
    for key, status, error, emb in zip(*(table[c].to_pylist() for c in ("key", "status", "error", "embedding"))):
        rows.setdefault(key, []).append((status, error, None if emb is None else np.asarray(emb, np.float32)))
    return rows, files


def failures(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("failed: ")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs in all, spread over the killed runs")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one, removed)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.work or tempfile.mkdtemp(prefix="coala-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    problems: list[str] = []
    t0 = time.time()

    data = work / "audio"
    good, bad = make_files(data, args.files, args.seed)
    ckpt = make_checkpoint(work / "ckpt")
    common = ["--model", ckpt, "--device", "cpu", "-q"]
    print(f"{len(good)} good and {len(bad)} damaged files in {time.time() - t0:.0f} s; working in {work}", flush=True)

    # 1. the reference: clean runs
    ref_npz, ref_table = work / "ref_npz", work / "ref_table"
    clean_seconds = []
    for out, extra in ((ref_npz, []), (ref_table, ["--format", "parquet"])):
        started = time.time()
        p = cli([data, "-o", out, *extra, *common], env)
        _, err = p.communicate()
        clean_seconds.append(time.time() - started)
        if p.returncode != 1 or len(failures(err)) != len(bad):
            problems.append(f"clean run {out.name}: exit {p.returncode}, {len(failures(err))} failures for {len(bad)} bad files")
    reference = load_npz_folder(ref_npz)
    ref_rows, _ = load_table_folder(ref_table)
    print(f"clean runs done at {time.time() - t0:.0f} s", flush=True)

    # 2. killed and restarted: npz, Parquet, Parquet in 3 shards
    # kill at random moments while a run still works: within the time a whole clean run took (a fixed range let
    # a fast machine finish short runs before any kill)
    max_delay = min(2.0 + args.files / 1000, max(0.4, 0.9 * min(clean_seconds)))
    kills = 0
    runs = {"npz": (work / "k_npz", []), "parquet": (work / "k_table", ["--format", "parquet"])}
    runs.update({f"shard{k}": (work / "k_shards", ["--format", "parquet", "--shard", f"{k}/3"]) for k in range(3)})
    last_err = {}
    for i, (name, (out, extra)) in enumerate(runs.items()):
        share = -(-(args.kills - kills) // (len(runs) - i))  # what earlier runs did not use moves on
        delay = max(0.35, max_delay / 3) if "shard" in name else max_delay  # a shard is a third of the work
        rc, err, n = run_with_kills([data, "-o", out, *extra, *common], env, share, rng, delay)
        kills += n
        last_err[name] = err
    print(f"{kills} kills done at {time.time() - t0:.0f} s", flush=True)

    # 3. two writers at once
    pair = [cli([data, "-o", work / "two_npz", *common], env) for _ in range(2)]
    pair_err = [p.communicate()[1] for p in pair]
    tables = [cli([data, "-o", work / "two_table", "--format", "parquet", *common], env) for _ in range(2)]
    table_results = [(p.communicate()[1], p.returncode) for p in tables]
    refused = sum("another run is writing" in err for err, _ in table_results)
    if refused != 1:
        problems.append(f"two writers of one table: {refused} refused (expected 1)")
    cli([data, "-o", work / "two_table", "--format", "parquet", *common], env).communicate()  # finish the refused one's part

    # 4. a full disk
    full_checked = _full_disk(work, data, common, env, len(bad), problems)

    # checks
    duplicates = mismatches = lost = 0
    for out in (work / "k_npz", work / "two_npz"):
        got = load_npz_folder(out)
        for rel, arrays in got.items():
            if arrays is None:
                problems.append(f"{out.name}: stray file {rel}")
            elif rel not in reference:
                problems.append(f"{out.name}: unexpected output {rel}")
            elif not all(np.array_equal(a, b) for a, b in zip(arrays, reference[rel])):
                mismatches += 1
        lost += len(set(reference) - set(got))
    for out in (work / "k_table", work / "k_shards", work / "two_table"):
        rows, files = load_table_folder(out)
        stray = [f for f in files if ".part-" in f or f.startswith(".")]
        if stray:
            problems.append(f"{out.name}: left behind {stray[:3]}")
        duplicates += sum(len(v) - 1 for v in rows.values())
        lost += len(set(ref_rows) - set(rows))
        for key, versions in rows.items():
            status, _, emb = versions[-1]
            ref_status, _, ref_emb = ref_rows[key][0]
            if status != ref_status or (emb is not None and not np.array_equal(emb, ref_emb)):
                mismatches += 1
    for name, err in {**last_err, "two_npz a": pair_err[0], "two_npz b": pair_err[1]}.items():
        named = {line.split(": ", 2)[1] for line in failures(err)}
        if name == "npz" and len(named) != len(bad):  # the finishing run retries every bad file
            problems.append(f"{name}: the last run named {len(named)} bad files, expected {len(bad)}")
    n_bad_rows = sum(1 for v in load_table_folder(work / "k_table")[0].values() if v[-1][0] == "failed")
    if n_bad_rows != len(bad):
        problems.append(f"k_table: {n_bad_rows} failed rows for {len(bad)} bad files")
    print(f"files {len(good) + len(bad)} (good {len(good)}, bad {len(bad)}), kills {kills}, duplicates {duplicates}, "
          f"mismatches {mismatches}, lost {lost}, full disk {'checked' if full_checked else 'skipped (no tmpfs)'}, "
          f"{time.time() - t0:.0f} s")
    for p in problems:
        print("problem:", p)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if problems or duplicates or mismatches or lost else 0)


def _full_disk(work: Path, data: Path, common: list, env: dict, n_bad: int, problems: list) -> bool:
    """Fill a small tmpfs part-way and embed into it: stop, exit 1, nothing half-written, then resume."""
    mnt = work / "small_disk"
    mnt.mkdir()
    need = sum(-(-f.stat().st_size // 4096) * 4 for f in (work / "ref_npz").rglob("*.npz"))  # KiB in 4-KiB pages
    size_kb = max(16, need // 3)  # room for about a third of the outputs
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        return False
    try:
        p = cli([data, "-o", mnt / "feats", *common], env)
        _, err = p.communicate()
        if p.returncode != 1 or "the disk is full" not in err or err.count("disk is full") != 1:
            problems.append(f"full disk: exit {p.returncode}, stderr {err[-300:]!r}")
        for f in (mnt / "feats").rglob("*"):
            if f.is_file():
                try:
                    np.load(f).close()
                except Exception:
                    problems.append(f"full disk: half-written {f}")
        saved = work / "after_full"
        shutil.copytree(mnt / "feats", saved)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    p = cli([data, "-o", saved, *common], env)  # room again: the run resumes
    _, err = p.communicate()
    if p.returncode != 1 or len(failures(err)) != n_bad:
        problems.append(f"full disk, resumed: exit {p.returncode}, {len(failures(err))} failures")
    return True


if __name__ == "__main__":
    main()
