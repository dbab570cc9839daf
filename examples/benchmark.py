"""Speed of coala-embed against librosa MFCCs on the same generated audio, in one run (< 5 min idle).

    python examples/benchmark.py                    # 100 ten-second 44.1 kHz stereo WAVs, plus a 1-hour file
    python examples/benchmark.py --files 20 --no-hour --sweep

Prints, as seconds of audio per wall-clock second (x real time) and as a ratio to the MFCC baseline:
- first-file latency in a fresh process: import, model load, first and second file (`process_file`);
- the CLI on one 1-s file and on all N files, process start included (`python -m coala_embed.cli`),
  with each backend (and onnx int8 where the checkpoint has encoder.int8.onnx), against a plain librosa
  MFCC script over the same files as a whole process;
- end to end in process (`process_file`: decode, resample, log-mel, encoder, .npz writing), torch fp32
  and bf16, onnxruntime fp32 and int8, with the front end beside the encoder (default workers) and without;
- each stage alone: decode, resample, log-mel, the encoder in fp32 and bf16 (torch), onnxruntime fp32 and int8;
- the same files through librosa: load + resample to 22050 Hz + 20 MFCCs with deltas (mean and std);
- the resamplers: soxr HQ (the default) against resampy's kaiser_best and kaiser_fast;
- optionally (--sweep) the encoder alone across batch sizes, plain network vs the inference path;
- peak memory (RSS) and speed for a 1-hour 44.1 kHz file, in a fresh process.

Each in-process figure is the best of --repeat runs. The model is the bundled one if present, else a
randomly initialised full-size COALA (speed does not depend on the weight values). Numbers depend on
what else runs on the machine: the load average is printed at the start and the end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf


def log(msg=""):
    print(msg, flush=True)


def make_files(folder: Path, n: int, seconds: float, sr: int, channels: int = 2) -> list[Path]:
    rng = np.random.RandomState(0)
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(n):
        f0 = 80 * 2 ** (i % 48 / 8)
        y = 0.3 * np.sin(2 * np.pi * f0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * (i % 5 + 1) * t / seconds))
        y += 0.05 * rng.randn(len(t)) * (rng.rand(len(t) // 4410 + 1).repeat(4410)[: len(t)] > 0.7)
        if channels > 1:  # the other channels: the same sound, quieter, with their own noise
            y = np.stack([y] + [0.8 * y + 0.02 * rng.randn(len(t)) for _ in range(channels - 1)], axis=1)
        p = folder / f"clip{i:03d}.wav"
        sf.write(p, y.astype(np.float32), sr, subtype="PCM_16")
        paths.append(p)
    return paths


def package_env() -> dict:
    """The environment for child processes: they import the same coala_embed as this process."""
    import coala_embed

    env = dict(os.environ)
    root = str(Path(coala_embed.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


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


def staged(paths, model, batch_size, resampler="soxr_hq", precisions=("fp32", "bf16")):
    """The pipeline of process_file, one stage at a time, timed; the encoder once per precision."""
    import torch

    from coala_embed import decode, encoder, patches

    t = dict(decode=0.0, resample=0.0, mel=0.0)
    fe = model.frontend
    all_patches = []
    for p in paths:
        t0 = time.perf_counter()
        rate, blocks = decode.mono_blocks_from_file(p)
        decoded = list(blocks)
        t1 = time.perf_counter()
        blocks = list(decode.clip_blocks(lambda: iter(decoded), rate, fe, resampler))  # peak level (if set), resample
        t2 = time.perf_counter()
        all_patches += [x for x, _ in patches.iter_patches(blocks, fe)]
        t3 = time.perf_counter()
        t["decode"] += t1 - t0
        t["resample"] += t2 - t1
        t["mel"] += t3 - t2
    patches = np.concatenate(all_patches)
    for precision in precisions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bf16 where it is slow: measured all the same
            net, fmt, dtype = encoder.inference_encoder(model, precision)
        with torch.inference_mode():
            net(torch.from_numpy(patches[:batch_size]).unsqueeze(1).to(dtype).contiguous(memory_format=fmt))
            t0 = time.perf_counter()
            for i in range(0, len(patches), batch_size):
                x = torch.from_numpy(patches[i:i + batch_size]).unsqueeze(1).to(dtype)
                net(x.contiguous(memory_format=fmt)).float().numpy()
        t[f"encoder {precision}"] = time.perf_counter() - t0
    for precision, stage in (("fp32", "encoder onnx"), ("int8", "encoder onnx int8")):
        try:  # onnxruntime (backend="onnx"), when installed; int8 where the checkpoint has its quantized encoder
            from coala_embed.onnx_encoder import OnnxEncoder

            onnx = OnnxEncoder(model, precision=precision)
        except (ImportError, ValueError):
            continue
        onnx.submit([patches[:batch_size]])()
        t0 = time.perf_counter()
        for i in range(0, len(patches), batch_size):
            onnx.submit([patches[i:i + batch_size]])()
        t[stage] = time.perf_counter() - t0
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


MFCC_SCRIPT = """
import sys, numpy as np, librosa
for p in sys.argv[1:]:
    y, sr = librosa.load(p, sr=22050, mono=True)
    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    full = np.concatenate([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)])
    np.save(p + ".mfcc.npy", np.concatenate([full.mean(axis=1), full.std(axis=1)]))
"""


def mfcc_process_wall(paths) -> float:
    """Wall time of a plain librosa MFCC script over the files, as a whole process (its imports included)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", MFCC_SCRIPT, *map(str, paths)], check=True, capture_output=True)
    return time.perf_counter() - t0


def encoder_sweep(model, seconds_per_patch, duration=1.5):
    import torch

    from coala_embed import encoder

    fast, fmt, _ = encoder.inference_encoder(model)
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
    env = package_env()
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


FIRST_FILE_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import coala_embed
t1 = time.perf_counter()
model = coala_embed.load_model(None if sys.argv[1] == "-" else sys.argv[1], device="cpu")
t2 = time.perf_counter()
coala_embed.process_file([sys.argv[2]], output_dir=sys.argv[4], model=model, overwrite=True)
t3 = time.perf_counter()
coala_embed.process_file([sys.argv[3]], output_dir=sys.argv[4], model=model, overwrite=True)
t4 = time.perf_counter()
print("RESULT" + json.dumps({"import": t1 - t0, "load": t2 - t1, "first": t3 - t2, "second": t4 - t3}))
"""


def first_file(source, paths, out: Path) -> dict:
    p = subprocess.run([sys.executable, "-c", FIRST_FILE_SCRIPT, source or "-", str(paths[0]), str(paths[1]), str(out)],
                       capture_output=True, text=True, env=package_env())
    if p.returncode:
        raise RuntimeError(p.stderr)
    return json.loads([line for line in p.stdout.splitlines() if line.startswith("RESULT")][-1][6:])


def cli_wall(source, paths, out: Path, *options) -> float:
    """Wall time of the command line on these files, Python's start included."""
    cmd = [sys.executable, "-m", "coala_embed.cli", *map(str, paths), "-o", str(out), "-q", "--overwrite",
           "--device", "cpu", *options] + (["--model", source] if source else [])
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=package_env())
    wall = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(p.stderr)
    return wall


def best_of(repeat, fn):
    walls = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
    return min(walls)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sr", type=int, default=44100)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=None, help="default: coala_embed's default")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--model", default=None, help="checkpoint source (default: bundled, else random weights)")
    ap.add_argument("--repeat", type=int, default=2, help="in-process figures are the best of this many runs")
    ap.add_argument("--resampler-files", type=int, default=10, help="files used for the resampler comparison (0: skip)")
    ap.add_argument("--no-hour", action="store_true", help="skip the 1-hour file")
    ap.add_argument("--hour-seconds", type=int, default=3600, help=argparse.SUPPRESS)  # shorter, to try the script
    ap.add_argument("--sweep", action="store_true", help="also time the encoder alone across batch sizes")
    ap.add_argument("--json", default=None, help="write the numbers to this file")
    args = ap.parse_args(argv)
    if args.files < 2:
        ap.error("--files must be at least 2 (the first-file latency needs a second file)")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from coala_embed import core, decode, encoder, options, pipeline, process_file

    batch_size = args.batch_size or options.DEFAULT_BATCH_SIZE
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    bf16_native = encoder._cpu_has("_is_avx512_bf16_supported") or encoder._cpu_has("_is_amx_tile_supported")
    out = {"load_start": os.getloadavg(), "threads": torch.get_num_threads(), "batch_size": batch_size,
           "cpus": os.cpu_count(), "cpu": cpu, "torch": torch.__version__, "bf16_native": bf16_native,
           "workers": pipeline.default_workers("cpu")}
    log(f"{cpu}, {os.cpu_count()} CPUs (bf16 {'native: AVX512-BF16/AMX' if bf16_native else 'emulated'}), "
        f"load average {out['load_start'][0]:.2f}; torch {torch.__version__} with {out['threads']} threads, "
        f"batch size {batch_size}, {out['workers']} front-end worker(s)")

    with tempfile.TemporaryDirectory(prefix="coala-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "audio").mkdir()
        source, what = get_model_source(args.model, tmp)
        log(f"model: {what}")
        t0 = time.perf_counter()
        paths = make_files(tmp / "audio", args.files, args.seconds, args.sr, args.channels)
        one_second = make_files(tmp, 1, 1.0, args.sr, args.channels)
        total = args.files * args.seconds
        log(f"generated {args.files} x {args.seconds:g} s WAVs at {args.sr} Hz, {args.channels} channel(s) "
            f"({total:.0f} s of audio) in {time.perf_counter() - t0:.1f} s")

        model = core.get_model(source, "cpu")
        process_file(paths[:1], output_dir=tmp / "warm", model=model)  # first-call costs, in this process

        log("\nlibrosa MFCC baseline (load + resample to 22050 + 20 MFCCs, deltas, mean/std):")
        mfcc_baseline(paths[:1])  # librosa's first call imports scipy.signal and compiles with numba
        mw = best_of(args.repeat, lambda: mfcc_baseline(paths))
        mfcc = out["mfcc_rtf"] = total / mw
        log(f"  {total:.0f} s of audio in {mw:.2f} s = {mfcc:.0f}x real time")

        def row(name, seconds, audio_seconds=total):
            rtf = audio_seconds / seconds
            log(f"  {name:40s} {seconds:7.2f} s  {rtf:7.0f}x real time  {rtf / mfcc:5.2f}x MFCC")
            return rtf

        log("\nfirst file, fresh process (import, model load, first and second file):")
        ff = out["first_file"] = first_file(source, paths, tmp / "ff")
        log(f"  import {ff['import']:.2f} s, model load {ff['load']:.2f} s, first file {ff['first']:.3f} s, "
            f"second file {ff['second']:.3f} s ({args.seconds:g} s each)")

        log("\ncommand line against a librosa MFCC script, both as whole processes (Python's start included):")
        mfcc_wall = out["mfcc_process_wall"] = min(mfcc_process_wall(paths) for _ in range(args.repeat))
        row(f"librosa MFCC script on the {args.files} files", mfcc_wall)
        out["cli_wall"] = {}
        for backend in ("onnx", "torch"):
            try:
                w1 = min(cli_wall(source, one_second, tmp / "cli1", "--backend", backend) for _ in range(args.repeat))
                w = min(cli_wall(source, paths, tmp / "cli", "--backend", backend) for _ in range(args.repeat))
            except RuntimeError as e:  # onnxruntime not installed
                log(f"  --backend {backend}: {str(e).strip().splitlines()[-1]}")
                continue
            out["cli_wall"][backend] = {"one_second_file": w1, "files": w}
            row(f"coala-embed --backend {backend} ({w1:.2f} s for one 1-s file)", w)
        wb = cli_wall(source, paths, tmp / "cli", "--backend", "torch", "--precision", "bf16")
        out["cli_wall"]["torch bf16"] = {"files": wb}
        row("coala-embed --backend torch --precision bf16", wb)
        try:
            wq = min(cli_wall(source, paths, tmp / "cli", "--backend", "onnx", "--precision", "int8")
                     for _ in range(args.repeat))
            out["cli_wall"]["onnx int8"] = {"files": wq}
            row("coala-embed --backend onnx --precision int8", wq)
        except RuntimeError as e:  # onnxruntime not installed, or a checkpoint without encoder.int8.onnx
            log(f"  --precision int8: {str(e).strip().splitlines()[-1]}")

        log("\nend to end in process (process_file, writing .npz):")
        e2e = {}
        for backend, precision in (("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8")):
            for workers in (None, 0):
                def run():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        results = process_file(paths, output_dir=tmp / "feats", model=model, batch_size=batch_size,
                                               overwrite=True, num_workers=workers, precision=precision,
                                               backend=backend)
                    assert all(r.status == "written" for r in results), [r.error for r in results if r.error]
                label = f"{backend} {precision}, {'default workers' if workers is None else 'no workers (num_workers=0)'}"
                try:
                    e2e[label] = row(label, best_of(args.repeat, run))
                except (ImportError, ValueError) as e:
                    log(f"  {label}: {e}")
        out["e2e"] = e2e

        log("\nstages alone (a staged pass over the same files; each the best of the passes):")
        runs = [staged(paths, model, batch_size) for _ in range(args.repeat)]
        t, n_patches = {k: min(r[0][k] for r in runs) for k in runs[0][0]}, runs[0][1]
        out["stage_seconds"] = t
        out["stages"] = {k: row(k, v) for k, v in t.items()}
        front = t["decode"] + t["resample"] + t["mel"]
        row("front end (decode + resample + log-mel)", front)
        log(f"  ({n_patches} patches; one patch is {model.frontend.patch_seconds:.2f} s of audio)")

        log("\nagainst the targets (ratios from this run):")
        ratios = out["ratios"] = {}
        for backend, walls in out["cli_wall"].items():
            ratios[f"mfcc_script_over_cli_{backend}"] = mfcc_wall / walls["files"]
            log(f"  CLI --backend {backend} on {args.files} files, whole processes: "
                f"{mfcc_wall / walls['files']:.2f}x faster than the MFCC script (target >= 2.5x)")
        if "onnx" in out["cli_wall"]:
            log(f"  one 1-s file on the command line, onnx: {out['cli_wall']['onnx']['one_second_file']:.2f} s "
                "(target < 0.5 s)")
        for (backend, precision), stage in ((("torch", "fp32"), "encoder fp32"), (("torch", "bf16"), "encoder bf16"),
                                            (("onnx", "fp32"), "encoder onnx"), (("onnx", "int8"), "encoder onnx int8")):
            best = max((v for k, v in e2e.items() if k.startswith(f"{backend} {precision},")), default=None)
            if best is not None and stage in out["stages"]:
                ratios[f"e2e_over_encoder_{backend}_{precision}"] = best / out["stages"][stage]
                log(f"  process_file {backend} {precision} (best workers setting) / encoder alone: "
                    f"{best / out['stages'][stage]:.0%} (target >= 80%)")
        log(f"  first file after model load: {ff['first']:.3f} s (target <= 0.2 s)")

        if args.resampler_files > 0:
            n = min(args.resampler_files, len(paths))
            log(f"\nresamplers ({args.sr} -> {model.frontend.sample_rate} Hz, {n} files):")
            decoded = [np.concatenate(list(decode.mono_blocks_from_file(p)[1])) for p in paths[:n]]
            sub = n * args.seconds
            out["resamplers"] = {}
            for name in decode.RESAMPLERS:
                list(decode.resample_blocks([decoded[0][: args.sr]], args.sr, model.frontend.sample_rate, name))
                t0 = time.perf_counter()
                for y in decoded:
                    list(decode.resample_blocks([y], args.sr, model.frontend.sample_rate, name))
                w = time.perf_counter() - t0
                out["resamplers"][name] = sub / w
                log(f"  {name:12s} {sub / w:8.0f}x real time")

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
