"""Throughput beyond one process, and the size of the outputs, on generated audio (one run).

    PYTHONPATH=. python examples/benchmark_scale.py            # 200 ten-second 44.1 kHz WAVs

Each configuration runs as its own process(es), timed from launch to exit (loading torch and the
model included, as a user sees it), over the same files:
- the CLI, one process (`coala-embed DIR -o OUT`), the baseline;
- two shards at once (`--shard 0/2` and `--shard 1/2`), with torch's default threads and with one each;
- the CLI writing one Parquet table (`--format parquet`), and with `--frames`;
- Ray Data with two workers (`coala_embed.ray.embed_dataset(..., num_workers=2)` on `ray.init(num_cpus=2)`,
  written with `write_parquet`), also timed without starting Ray;
and prints throughput as ratios to the baseline, and the size of each output against the .npz folder.
The load average is printed at the start and the end: other work on the machine changes the numbers.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from benchmark import make_files  # noqa: E402

RAY_SCRIPT = r"""
import sys, time
t0 = time.perf_counter()
import ray, coala_embed.ray
paths, out = sys.argv[1], sys.argv[2]
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
t1 = time.perf_counter()
ds = coala_embed.ray.embed_dataset(open(paths).read().split("\n"), num_workers=2, batch_size=25)
ds.write_parquet(out)
print(time.perf_counter() - t1, t1 - t0)
"""


def launch(args, threads=None):
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def timed(*procs):
    t0 = time.perf_counter()
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs):
        if p.returncode != 0:
            sys.exit(f"failed ({p.args}):\n{err}")
    return time.perf_counter() - t0, outs


def size(folder: Path) -> tuple[int, int]:
    """(bytes in the files, bytes they take on disk) of the outputs in a folder."""
    files = [f.stat() for f in folder.rglob("*") if f.is_file() and not f.name.startswith(".")]
    return sum(s.st_size for s in files), sum(s.st_blocks * 512 for s in files)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sr", type=int, default=44100)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args(argv)
    print("load average at start:", os.getloadavg(), "cores:", os.cpu_count(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "audio").mkdir()
        paths = make_files(tmp / "audio", args.files, args.seconds, args.sr)
        audio_s = args.files * args.seconds
        cli = [sys.executable, "-m", "coala_embed.cli", str(tmp / "audio"), "-q"]
        rows = []

        base, _ = timed(launch(cli + ["-o", str(tmp / "npz")]))
        rows.append(("CLI, 1 process, .npz (baseline)", base))
        t, _ = timed(*(launch(cli + ["-o", str(tmp / "npz2"), "--shard", f"{k}/2"]) for k in range(2)))
        rows.append(("CLI, 2 shards at once, .npz", t))
        t, _ = timed(*(launch(cli + ["-o", str(tmp / "npz3"), "--shard", f"{k}/2"], threads=1) for k in range(2)))
        rows.append(("CLI, 2 shards at once, 1 thread each, .npz", t))
        t_pq, _ = timed(launch(cli + ["-o", str(tmp / "pq"), "--format", "parquet"]))
        rows.append(("CLI, 1 process, Parquet", t_pq))
        t, _ = timed(launch(cli + ["-o", str(tmp / "pqf"), "--format", "parquet", "--frames"]))
        rows.append(("CLI, 1 process, Parquet with --frames", t))
        if not args.no_ray:
            (tmp / "paths.txt").write_text("\n".join(map(str, paths)))
            t, outs = timed(launch([sys.executable, "-c", RAY_SCRIPT, str(tmp / "paths.txt"), str(tmp / "ray")]))
            run_s, start_s = map(float, outs[0][0].split())
            rows.append(("Ray Data, 2 workers, write_parquet", t))
            rows.append(("  the same without importing and starting Ray", run_s))

        print(f"\n{args.files} files, {audio_s:.0f} s of audio; throughput relative to the baseline ({base:.1f} s)")
        for name, t in rows:
            print(f"  {name:48s} {t:7.1f} s  {audio_s / t:6.0f}x real time  {base / t:5.2f}x")
        npz, npz_disk = size(tmp / "npz")
        print(f"\nsize (bytes in files; on disk): .npz folder {npz / 1e6:.2f} MB; {npz_disk / 1e6:.2f} MB ({args.files} files)")
        for name, folder in [("Parquet table", "pq"), ("Parquet table with --frames", "pqf"), ("Ray's Parquet files", "ray")]:
            if (tmp / folder).exists():
                n, disk = size(tmp / folder)
                print(f"  {name:28s} {n / 1e6:7.2f} MB  {n / npz:5.2f}x;  {disk / 1e6:7.2f} MB  {disk / npz_disk:5.2f}x")
        if (tmp / "ray").exists():
            import pyarrow.parquet as pq

            print("  Ray's embedding column:", pq.read_schema(next((tmp / "ray").glob("*.parquet"))).field("embedding").type)
    print("load average at end:", os.getloadavg(), flush=True)


if __name__ == "__main__":
    main()
