"""Decontamination throughput per corpus clip, as ratios against decoding the same clips, in one process.

    python -m training.benchmark_decontaminate CORPUS REFERENCE_DIR... [--clips 600]

Times, in CPU seconds of this process over a seeded sample of the corpus's clips: libsndfile decoding
alone (the baseline), decoding + mono + resampling to 8 kHz (coala_embed's front end), + landmarks,
+ matching against the index of every reference clip: training.decontaminate's work per clip. Two
rounds; the ratios hold on a shared machine, the clips per CPU-second say what a full run costs
(divide by the workers' cores).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from training.corpus import decontaminate as dc
from training.corpus.files import find_audio


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.benchmark_decontaminate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus")
    p.add_argument("references", nargs="+")
    p.add_argument("--clips", type=int, default=600)
    args = p.parse_args(argv)
    lines = (Path(args.corpus) / "manifest.jsonl").read_text().splitlines()
    paths = [Path(args.corpus) / json.loads(line)["path"] for line in lines if line.strip()]
    sample = [paths[i] for i in np.random.default_rng(0).choice(len(paths), min(args.clips, len(paths)), replace=False)]
    refs = [os.path.join(d, rel) for d in args.references for rel in find_audio(d)]
    t0 = time.process_time()
    index = dc.Index([dc.landmarks(dc.signal(r)) for r in refs])
    print(f"index of {len(refs)} reference clips: {len(index.hash)} hashes, {time.process_time() - t0:.1f} CPU s")

    stages = {
        "sf.read": lambda p: len(sf.read(p, dtype="float32")[0]) / sf.info(p).samplerate,
        "decode 8 kHz": lambda p: len(dc.signal(p)) / dc.RATE,
        "+ landmarks": lambda p: len(dc.landmarks(dc.signal(p))[0]),
        "+ match": lambda p: len(index.match(*dc.landmarks(dc.signal(p)))),
    }
    for round in range(2):
        seconds = {}
        for name, stage in stages.items():
            t0 = time.process_time()
            out = [stage(p) for p in sample]
            seconds[name] = time.process_time() - t0
            if name == "sf.read":
                hours = sum(out) / 3600
        base = seconds["sf.read"]
        print(f"round {round}: {len(sample)} clips ({hours:.2f} h): "
              + ", ".join(f"{k} {v:.2f} s ({v / base:.2f}x)" for k, v in seconds.items())
              + f"; {len(sample) / seconds['+ match']:.0f} clips and "
                f"{hours * 3600 / seconds['+ match']:.0f} s of audio per CPU-second")


if __name__ == "__main__":
    main()
