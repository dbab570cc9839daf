"""End-to-end throughput of coala-embed against librosa MFCCs, on generated audio.

    python examples/benchmark.py                    # 100 ten-second 44.1 kHz WAVs, plus a 1-hour file
    python examples/benchmark.py --threads 1 --no-hour --sweep

Prints, as seconds of audio per wall-clock second (x real time):
- coala-embed end to end (`process_file`: decode, resample, log-mel, encoder, .npz writing), fp32;
- the share of each stage, from a staged pass over the same files;
- the same files through librosa: load + resample to 22050 Hz + 20 MFCCs with deltas (mean and std);
- the resamplers: soxr HQ (the default) against resampy's kaiser_best and kaiser_fast;
- optionally (--sweep) the encoder alone across batch sizes, plain network vs the inference path;
- peak memory (RSS) and speed for a 1-hour 44.1 kHz file, in a fresh process.

The model is the bundled one if present, else a randomly initialised full-size COALA (speed does not
depend on the weight values). Numbers depend on what else runs on the machine: the load average is
printed at the start and the end.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def log(msg=""):
    print(msg, flush=True)


def make_files(folder: Path, n: int, seconds: float, sr: int) -> list[Path]:
    rng = np.random.RandomState(0)
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(n):
        f0 = 80 * 2 ** (i % 48 / 8)
        y = 0.3 * np.sin(2 * np.pi * f0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * (i % 5 + 1) * t / seconds))
        y += 0.05 * rng.randn(len(t)) * (rng.rand(len(t) // 4410 + 1).repeat(4410)[: len(t)] > 0.7)
        p = folder / f"clip{i:03d}.wav"
        sf.write(p, y.astype(np.float32), sr, subtype="PCM_16")
        paths.append(p)
    return paths


def get_model_source(arg, tmp: Path):
    from coala_embed.checkpoint import CONFIG_NAME, bundled_weights_dir

    if arg:
        return arg, arg
    if (bundled_weights_dir() / CONFIG_NAME).exists():
        return None, "bundled weights"
    import torch

    from coala_embed import COALA, FrontEnd, ModelConfig, save_checkpoint

    torch.manual_seed(0)
    fe = FrontEnd().with_scaler(np.full(96, -16.0), np.full(96, 4.0))
    save_checkpoint(tmp / "random_ckpt", COALA(ModelConfig()).eval(), fe, [f"t{i}" for i in range(1000)])
    return str(tmp / "random_ckpt"), "randomly initialised full-size COALA (no bundled weights)"


def staged(paths, model, batch_size, resampler="soxr_hq"):
    """The pipeline of process_file, one stage at a time, timed."""
    import torch

    from coala_embed import audio, core

    t = dict(decode=0.0, resample=0.0, mel=0.0, encoder=0.0)
    fe = model.frontend
    all_patches = []
    for p in paths:
        t0 = time.perf_counter()
        rate, blocks = audio.mono_blocks_from_file(p)
        decoded = list(blocks)
        t1 = time.perf_counter()
        blocks = list(audio.clip_blocks(lambda: iter(decoded), rate, fe, resampler))  # peak level (if set), resample
        t2 = time.perf_counter()
        all_patches += [x for x, _ in audio.iter_patches(blocks, fe)]
        t3 = time.perf_counter()
        t["decode"] += t1 - t0
        t["resample"] += t2 - t1
        t["mel"] += t3 - t2
    patches = np.concatenate(all_patches)
    t0 = time.perf_counter()
    encoder, fmt = core._inference_encoder(model)
    with torch.inference_mode():
        for i in range(0, len(patches), batch_size):
            x = torch.from_numpy(patches[i:i + batch_size]).unsqueeze(1)
            encoder(x.contiguous(memory_format=fmt)).numpy()
    t["encoder"] = time.perf_counter() - t0
    return t, len(patches)


def mfcc_baseline(paths):
    import librosa

    feats = []
    for p in paths:
        y, sr = librosa.load(p, sr=22050, mono=True)  # soxr_hq, as librosa does by default
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
        full = np.concatenate([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)])
        feats.append(np.concatenate([full.mean(axis=1), full.std(axis=1)]))
    return np.stack(feats)


def encoder_sweep(model, seconds_per_patch, duration=1.5):
    import torch

    from coala_embed import core

    fast, fmt = core._inference_encoder(model)
    x = torch.from_numpy(np.random.RandomState(0).rand(128, 1, 96, 96).astype(np.float32))
    rows = []
    for bs in (8, 32, 64, 128):
        for name, net, f in (("plain", model.net.audio_encoder, torch.contiguous_format), ("inference path", fast, fmt)):
            xb = x[:bs].contiguous(memory_format=f)
            with torch.inference_mode():
                net(xb)
                t0, n = time.perf_counter(), 0
                while time.perf_counter() - t0 < duration:
                    net(xb)
                    n += bs
                rate = n / (time.perf_counter() - t0)
            rows.append((bs, name, rate))
            log(f"  encoder batch {bs:3d} {name:15s} {rate:7.0f} patches/s = {rate * seconds_per_patch:6.0f}x real time")
    return rows


HOUR_SCRIPT = r"""
import json, resource, sys, time
import torch
if len(sys.argv) > 4 and sys.argv[4] != "0":
    torch.set_num_threads(int(sys.argv[4]))
import coala_embed
def rss_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
source = None if sys.argv[1] == "-" else sys.argv[1]
model = coala_embed.load_model(source, device="cpu")
coala_embed.get_embedding(torch.zeros(30000).numpy(), 22050, model=model)  # warm-up
before = rss_mb("VmRSS:")
t0 = time.perf_counter()
(r,) = coala_embed.process_file([sys.argv[2]], output_dir=sys.argv[3], model=model, overwrite=True)
wall = time.perf_counter() - t0
print("RESULT" + json.dumps({"status": r.status, "error": r.error, "patches": r.n_patches, "wall": wall,
      "rss_before": before, "peak": rss_mb("VmHWM:")}))
"""


def hour_file(tmp: Path, source, threads, seconds=3600):
    sr = 44100
    path = tmp / "hour.wav"
    t0 = time.perf_counter()
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        t = np.arange(60 * sr) / sr
        rng = np.random.RandomState(1)
        for minute in range(seconds // 60):
            f.write((0.2 * np.sin(2 * np.pi * (100 + 10 * minute) * t) + 0.02 * rng.randn(len(t))).astype(np.float32))
    log(f"  wrote {path.stat().st_size / 1e6:.0f} MB ({seconds} s at {sr} Hz) in {time.perf_counter() - t0:.1f} s")
    env = dict(os.environ)
    p = subprocess.run([sys.executable, "-c", HOUR_SCRIPT, source or "-", str(path), str(tmp / "hour_out"), str(threads or 0)],
                       capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError(p.stderr)
    res = json.loads([l for l in p.stdout.splitlines() if l.startswith("RESULT")][-1][6:])
    full = seconds * sr * 4 / 1e6
    if res["status"] != "written":
        raise RuntimeError(res["error"])
    log(f"  {res['status']}: {res['patches']} patches in {res['wall']:.1f} s = {seconds / res['wall']:.0f}x real time")
    log(f"  peak RSS {res['peak']:.0f} MB; {res['rss_before']:.0f} MB after loading torch and the model "
        f"(the decoded file alone would take {full:.0f} MB as float32)")
    path.unlink()
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sr", type=int, default=44100)
    ap.add_argument("--batch-size", type=int, default=None, help="default: coala_embed's default")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--model", default=None, help="checkpoint source (default: bundled, else random weights)")
    ap.add_argument("--resampler-files", type=int, default=10, help="files used for the resampler comparison")
    ap.add_argument("--no-hour", action="store_true", help="skip the 1-hour file")
    ap.add_argument("--hour-seconds", type=int, default=3600, help=argparse.SUPPRESS)  # shorter, to try the script
    ap.add_argument("--sweep", action="store_true", help="also time the encoder alone across batch sizes")
    ap.add_argument("--json", default=None, help="write the numbers to this file")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from coala_embed import audio, core, process_file

    batch_size = args.batch_size or core.DEFAULT_BATCH_SIZE
    out = {"load_start": os.getloadavg(), "threads": torch.get_num_threads(), "batch_size": batch_size,
           "cpus": os.cpu_count(), "torch": torch.__version__}
    log(f"load average {out['load_start'][0]:.2f}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"with {out['threads']} threads, batch size {batch_size}, fp32")

    with tempfile.TemporaryDirectory(prefix="coala-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "audio").mkdir()
        source, what = get_model_source(args.model, tmp)
        log(f"model: {what}")
        t0 = time.perf_counter()
        paths = make_files(tmp / "audio", args.files, args.seconds, args.sr)
        total = args.files * args.seconds
        log(f"generated {args.files} x {args.seconds:g} s WAVs at {args.sr} Hz ({total:.0f} s of audio) "
            f"in {time.perf_counter() - t0:.1f} s")

        model = core.get_model(source, "cpu")
        process_file(paths[:1], output_dir=tmp / "warm", model=model)  # first-call costs: mel basis, kernels

        log("\ncoala-embed end to end (process_file, writing .npz):")
        t0 = time.perf_counter()
        results = process_file(paths, output_dir=tmp / "feats", model=model, batch_size=batch_size, overwrite=True)
        wall = time.perf_counter() - t0
        assert all(r.status == "written" for r in results), [r.error for r in results if r.error]
        out["coala_rtf"] = total / wall
        log(f"  {total:.0f} s of audio in {wall:.2f} s = {total / wall:.0f}x real time")

        log("\nstages (a staged pass over the same files):")
        t, n_patches = staged(paths, model, batch_size)
        s = sum(t.values())
        for k, v in t.items():
            log(f"  {k:9s} {v:6.2f} s  {100 * v / s:5.1f}%  ({total / v:7.0f}x real time alone)")
        log(f"  total     {s:6.2f} s  ({n_patches} patches; {total / s:.0f}x real time)")
        out["stages"] = {k: v / s for k, v in t.items()}
        out["stage_seconds"] = t

        log("\nlibrosa MFCC baseline (load + resample to 22050 + 20 MFCCs, deltas, mean/std):")
        t0 = time.perf_counter()
        mfcc_baseline(paths)
        mw = time.perf_counter() - t0
        out["mfcc_rtf"] = total / mw
        log(f"  {total:.0f} s of audio in {mw:.2f} s = {total / mw:.0f}x real time")

        log(f"\nresamplers ({args.sr} -> {model.frontend.sample_rate} Hz, {args.resampler_files} files):")
        decoded = [np.concatenate(list(audio.mono_blocks_from_file(p)[1])) for p in paths[:args.resampler_files]]
        sub = args.resampler_files * args.seconds
        out["resamplers"] = {}
        for name in audio.RESAMPLERS:
            list(audio.resample_blocks([decoded[0][: args.sr]], args.sr, model.frontend.sample_rate, name))
            t0 = time.perf_counter()
            for y in decoded:
                list(audio.resample_blocks([y], args.sr, model.frontend.sample_rate, name))
            w = time.perf_counter() - t0
            out["resamplers"][name] = sub / w
            log(f"  {name:12s} {sub / w:8.0f}x real time")
        t0 = time.perf_counter()
        process_file(paths, output_dir=tmp / "feats_kf", model=model, batch_size=batch_size, resampler="kaiser_fast")
        w = time.perf_counter() - t0
        out["coala_rtf_kaiser_fast"] = total / w
        log(f"  end to end with kaiser_fast: {total / w:.0f}x real time (soxr_hq: {out['coala_rtf']:.0f}x)")

        if args.sweep:
            log("\nencoder alone:")
            out["sweep"] = encoder_sweep(model, model.frontend.patch_seconds)

        if not args.no_hour:
            log("\n1-hour file (44.1 kHz mono, fresh process):")
            out["hour"] = hour_file(tmp, source, args.threads, args.hour_seconds)

    out["load_end"] = os.getloadavg()
    log(f"\nload average at the end {out['load_end'][0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
