"""Train several configurations side by side on one lent GPU, within a time budget, and export each.

    python -m training.device_train --packed /tmp/parts --work /tmp/dev --budget-s 400 --stop-s 470 \
        --run ec "variant=e-c mix_p=0.25 lambda_audio_audio=1" \
        --run aec "variant=ae-c mix_p=0.25 lambda_audio_audio=1"

Steps: unpack the packed prepared folder (training/scripts/pack.py); probe: every run trains --probe-batches
batches, all at once as they will run later, and logs its patches/s; from that rate, the epochs of
each run that fit in --budget-s (its cosine schedule planned over those epochs); the runs, side by side,
each a `training.train` process; each run exported (training/trainer/export.py) to `<work>/export/<name>/`
and packed with its logs as `<work>/export/<name>.tar`.

Why side by side: this network is small (1M parameters in the audio encoder), so one training
process, which batches and augments in NumPy on one CPU core, leaves an H200 mostly idle; several
processes share the GPU's time instead of queuing for a device budget of minutes. A run still going
at --stop-s (default 1.25 x the budget plus a minute to start) is stopped and its last epoch's
checkpoint exported; `plan.json` says which. `--epochs N` trains every run N epochs instead, with no
probe: to repeat a recipe (other seeds of a run whose epochs are fixed).
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from training.scripts import pack
from training.trainer.config import CONFIGS
from training.trainer.export import export_run

TRAIN_SHARE = 0.9  # of the budget: the rest goes to each epoch's validation pass and checkpoint
STARTUP_S = 60  # a process's imports and CUDA start, not part of the budget


def train_command(config: str, data: Path, out: Path, settings: str, extra: dict) -> list[str]:
    sets = settings.split() + [f"{k}={json.dumps(v)}" for k, v in extra.items()]
    return [sys.executable, "-m", "training.train", "--config", config, "--data", str(data), "--out", str(out),
            "--set", *sets]


def run_side_by_side(commands: dict[str, list[str]], logs: Path, timeout_s: float) -> dict[str, int | None]:
    """Start every command at once; returns each one's exit status (None: stopped at the timeout)."""
    logs.mkdir(parents=True, exist_ok=True)
    files = {name: open(logs / f"{name}.log", "w") for name in commands}
    procs = {name: subprocess.Popen(cmd, stdout=files[name], stderr=subprocess.STDOUT) for name, cmd in commands.items()}
    deadline = time.time() + timeout_s
    status = {}
    for name, proc in procs.items():
        try:
            status[name] = proc.wait(max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            status[name] = None
        files[name].close()
    return status


def last_row(run: Path) -> dict:
    rows = (run / "log.jsonl").read_text().splitlines() if (run / "log.jsonl").exists() else []
    return json.loads(rows[-1]) if rows else {}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.device_train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--packed", required=True, help="folder written by `training.pack pack` (all its part folders)")
    p.add_argument("--work", required=True, help="folder for the unpacked data, the runs and the exports")
    p.add_argument("--config", default=str(CONFIGS / "cpu.json"))
    p.add_argument("--budget-s", type=float, required=True, help="seconds of training for every run together")
    p.add_argument("--stop-s", type=float, help="stop runs still going after this many seconds "
                   "(default: 1.25 x the budget plus a minute to start)")
    p.add_argument("--epochs", type=int, help="train every run this many epochs (no probe, no plan from the budget): "
                   "to repeat a recipe, e.g. with other seeds")
    p.add_argument("--probe-batches", type=int, default=120)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads per run")
    p.add_argument("--run", nargs=2, action="append", required=True, metavar=("NAME", "SETTINGS"),
                   help='a run: its name and its config overrides, e.g. "variant=e-c lr=0.001"')
    args = p.parse_args(argv)
    work = Path(args.work)
    t0 = time.time()
    data = work / "prepared"
    if not (data / "meta.json").exists():
        print(json.dumps(pack.unpack(args.packed, data, workers=16)), flush=True)
    n_train = json.loads((data / "meta.json").read_text())["train_patches"]
    common = {"num_threads": args.threads, "png_every": 0, "log_every": 0}
    print(f"unpacked in {time.time() - t0:.0f} s: {n_train} training patches", flush=True)

    if args.epochs:
        plan = {name: {"epochs": args.epochs} for name, _ in args.run}
    else:
        probes = {name: train_command(args.config, data, work / "probe" / name, settings,
                                      {**common, "epochs": 1, "max_batches_per_epoch": args.probe_batches})
                  for name, settings in args.run}
        t1 = time.time()
        run_side_by_side(probes, work / "logs" / "probe", timeout_s=300)
        rates = {name: last_row(work / "probe" / name).get("patches_per_s") for name in probes}
        print(f"probe ({time.time() - t1:.0f} s), patches/s side by side: {rates}", flush=True)
        plan = {name: {"patches_per_s_probe": rate,
                       "epochs": max(1, math.floor(args.budget_s * TRAIN_SHARE * rate / n_train)) if rate else None}
                for name, rate in rates.items()}
    runs = {name: train_command(args.config, data, work / "runs" / name, settings,
                                {**common, "epochs": plan[name]["epochs"]})
            for name, settings in args.run if plan[name]["epochs"]}
    print(f"plan: {json.dumps(plan)}", flush=True)
    t2 = time.time()
    status = run_side_by_side(runs, work / "logs" / "runs", timeout_s=args.stop_s or 1.25 * args.budget_s + STARTUP_S)
    print(f"trained side by side in {time.time() - t2:.0f} s: exit {status}", flush=True)

    (work / "export").mkdir(parents=True, exist_ok=True)
    for name in runs:
        run = work / "runs" / name
        plan[name].update(exit=status[name], final=last_row(run))
        if not (run / "ckpt.pt").exists():
            continue
        folder = export_run(run, work / "export" / name)
        with tarfile.open(work / "export" / f"{name}.tar", "w") as tar:
            for path in [*folder.iterdir(), run / "log.jsonl", run / "summary.json", work / "logs" / "runs" / f"{name}.log"]:
                if path.exists():
                    tar.add(path, arcname=f"{name}/{path.name}")
    (work / "export" / "plan.json").write_text(json.dumps(plan, indent=1))
    print(json.dumps(plan, indent=1))
    print(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
