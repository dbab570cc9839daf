"""Training throughput: patches/s of whole training steps (batch gather, augmentation, forward, loss,
backward, optimiser step) for AE-C, E-C and the CNN baseline, fp32 and bf16 autocast + channels-last,
with the audio decoder computed as today (sub-pixel convolutions) and as the transposed convolutions
it replaces, all in one process so that the ratios hold on a shared machine.

    python -m training.benchmark_train                      # ~2-3 min on 2 cores
    python -m training.benchmark_train --profile ae-c       # + torch.profiler table of one bf16 step
    python -m training.benchmark_train --set mix_p=0.25 lambda_audio_audio=1   # with the audio-audio term

Synthetic patches (uniform in [0, 1]) and tags (~1 % of 1000 set, the paper's vocabulary size); the
steps are timed in interleaved rounds (settings with glibc's allocator first, then those with the kept
heap, training/trainer/machine.py) and the fastest round of each setting is reported.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time

import numpy as np
import torch
from torch import nn

from coala_embed.model import SubPixelConvTranspose2d
from training.trainer.augment import augment, band_ranges, mel_band_centres
from training.trainer.config import CONFIGS, TrainConfig, load_config
from training.trainer.data import PatchSet
from training.trainer.losses import coala_losses
from training.trainer.loop import to_input, views_to_input
from training.trainer.machine import heap_for_large_blocks
from training.trainer.network import build_net
from training.trainer.optim import make_optimizer


def transposed_decoder(net):
    """The same net, its decoder run by nn.ConvTranspose2d: the subclass only overrides forward."""
    for m in net.modules():
        if isinstance(m, SubPixelConvTranspose2d):
            m.__class__ = nn.ConvTranspose2d
    return net


class Setting:
    def __init__(self, cfg: TrainConfig, data: PatchSet, decoder: str, heap: bool):
        self.cfg, self.data, self.heap = cfg, data, heap
        torch.manual_seed(0)
        self.net = build_net(cfg, data.n_tags)
        if decoder == "transposed":
            transposed_decoder(self.net)
        if cfg.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.net.train()
        self.optimizer = make_optimizer(self.net.parameters(), cfg)
        self.rng = np.random.default_rng(0)
        self.centres, self.ranges = mel_band_centres(None), band_ranges(None, 96)
        self.autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if cfg.bf16 else contextlib.nullcontext

    def step(self):
        idx = self.rng.choice(len(self.data), self.cfg.batch_size, replace=False)
        x, t = augment(*self.data.batch(idx), self.cfg, self.rng, self.centres)
        x_view = views_to_input(x, self.cfg, self.rng, self.ranges, "cpu")
        x, t = to_input(x, t, "cpu", self.cfg.channels_last)
        with self.autocast():
            losses = coala_losses(self.net, x, t, self.cfg, x_view)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        self.optimizer.step()

    def time(self, steps: int) -> tuple[float, float]:
        """(patches per second, patches per CPU-second of this process) over `steps` steps."""
        heap_for_large_blocks(self.heap)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            self.step()
        n = self.cfg.batch_size * steps
        return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def synthetic_patches(n: int, n_tags: int, seed: int = 0) -> PatchSet:
    rng = np.random.default_rng(seed)
    return PatchSet(rng.random((n, 96, 96), dtype=np.float32), (rng.random((n, n_tags)) < 0.01).astype(np.uint8))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.benchmark_train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(CONFIGS / "cpu.json"))
    p.add_argument("--variants", nargs="*", default=["ae-c", "e-c", "cnn"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2, help="timed steps per setting and round")
    p.add_argument("--set", nargs="*", default=["mix_p=0.25"], metavar="KEY=VALUE", help="override config keys")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--profile", choices=["ae-c", "e-c", "cnn"], help="also profile one bf16 step of this variant")
    args = p.parse_args(argv)
    base = load_config(args.config, args.set)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = synthetic_patches(1024, 1000)
    settings = {}
    for variant in args.variants:
        for precision in ("fp32", "bf16+cl"):
            bf16 = precision == "bf16+cl"
            cfg = base.replace(variant=variant, bf16=bf16, channels_last=bf16)
            # before (as the trainer was), then one change at a time
            changes = [("transposed", False), ("sub-pixel", False), ("sub-pixel", True)] if variant == "ae-c" \
                else [("-", False), ("-", True)]
            for decoder, heap in changes:
                settings[(variant, precision, decoder, heap)] = Setting(cfg, data, decoder, heap)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {base.batch_size}; uptime: {os.popen('uptime').read().strip()}")
    best = {k: (0.0, 0.0) for k in settings}
    # glibc's settings first: once the heap has kept freed blocks, later steps reuse them whatever the setting
    for heap in (False, True):
        phase = {k: s for k, s in settings.items() if s.heap == heap}
        for s in phase.values():  # warm-up: oneDNN builds its kernels on the first calls
            s.time(1)
        for _ in range(args.rounds):
            for k, s in phase.items():
                best[k] = tuple(map(max, best[k], s.time(args.steps)))
    # CPU time is what a step costs the machine; wall time is what it costs when the cores are not shared
    # heap: training.train.heap_for_large_blocks; ratios against the first row of each variant and precision
    print(f"{'variant':8} {'precision':9} {'decoder':10} {'heap':5} {'patches/s':>9} {'ratio':>6} {'per CPU-s':>9} {'ratio':>6}")
    refs = {}
    for (variant, precision, decoder, heap), (rate, cpu_rate) in best.items():
        ref, cpu_ref = refs.setdefault((variant, precision), (rate, cpu_rate))
        print(f"{variant:8} {precision:9} {decoder:10} {str(heap):5} {rate:9.1f} {rate / ref:5.2f}x {cpu_rate:9.1f} {cpu_rate / cpu_ref:5.2f}x")
    print(f"uptime after: {os.popen('uptime').read().strip()}")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        decoder = "sub-pixel" if args.profile == "ae-c" else "-"
        s = settings[(args.profile, "bf16+cl", decoder, True)]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            s.time(2)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
