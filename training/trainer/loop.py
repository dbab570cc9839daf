"""Train COALA (AE-C, E-C or the CNN baseline) on prepared patches or the published HDF5 files.

    python -m training.train --data /work/prepared --out runs/aec          # the paper's recipe
    python -m training.train --config training/configs/cpu.json ...       # a recipe: the keys it changes
    python -m training.train ... --set variant=e-c epochs=20 lr=0.001      # change more keys
    python -m training.train ... --set init_from=bundled                   # start from the shipped weights
    torchrun --nproc_per_node 2 -m training.train ...                      # DistributedDataParallel
    python -m training.train ... --hdf5 spec_tags_top_1000 spec_tags_top_1000_val tags.json  # paper data

Resumes from `<out>/ckpt.pt` when it exists. Logs one row per epoch to `<out>/log.csv` and
`<out>/log.jsonl` and to the console; writes `<out>/recon/epoch_NNN.png` (patches vs reconstructions).
The network comes from coala_embed.model, the same definition that inference uses. Every setting, its
default and its meaning: training/trainer/config.py (`TrainConfig`; an unknown key is an error).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from coala_embed.model import COALA
from training.trainer.augment import (audio_view, augment, band_ranges, centre_crops, lead_crops, mel_band_centres,
                                      shifted_crops)
from training.trainer.config import CONFIGS, ConfigError, TrainConfig, load_config
from training.trainer.data import (PREPARATION_KEYS, epoch_order, load_hdf5, load_hdf5_vocabulary, load_prepared,
                                   load_prepared_meta)
from training.trainer.losses import coala_losses
from training.trainer.machine import cpu_model, heap_for_large_blocks
from training.trainer.network import build_net, warm_start
from training.trainer.optim import lr_at, make_optimizer


class Objective(nn.Module):
    """Wraps the net so that DistributedDataParallel sees the whole loss computation as one forward."""

    def __init__(self, net: COALA, cfg: TrainConfig):
        super().__init__()
        self.net, self.cfg = net, cfg

    def forward(self, x, t, x_view=None):
        return coala_losses(self.net, x, t, self.cfg, x_view)


def to_input(x: np.ndarray, t: np.ndarray, device, channels_last: bool):
    return patches_to_input(x, device, channels_last), torch.from_numpy(t).to(device)


def patches_to_input(x: np.ndarray, device, channels_last: bool):
    x = torch.from_numpy(x).unsqueeze(1).to(device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def views_to_input(x: np.ndarray, cfg: TrainConfig | dict, rng, ranges, device, context: int = 0):
    """The second view of each patch (x with its context frames) for the audio-audio term; None (and no
    random draws) when it is off."""
    cfg = TrainConfig.of(cfg)
    if not cfg.lambda_audio_audio:
        return None
    shift = cfg.view_shift_frames
    x = shifted_crops(x, context, shift, rng) if shift else centre_crops(x, context)
    return patches_to_input(audio_view(x, cfg, rng, ranges), device, cfg.channels_last)


def save_recon_png(net: COALA, x: torch.Tensor, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with torch.no_grad():
        x_hat = net.audio_decoder(net.audio_encoder(x)).float().cpu().numpy()
    x = x.float().cpu().numpy()
    n = len(x)
    fig, axes = plt.subplots(2, n, figsize=(2 * n, 4.2))
    for i in range(n):
        for row, img in enumerate((x[i, 0], x_hat[i, 0])):
            axes[row, i].imshow(img, origin="lower", aspect="auto", vmin=0, vmax=1, cmap="magma")
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
    axes[0, 0].set_ylabel("patch")
    axes[1, 0].set_ylabel("reconstruction")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help=f"a recipe: JSON of the TrainConfig keys it changes (e.g. {CONFIGS / 'cpu.json'}); "
                                    "default: TrainConfig's defaults, the paper's recipe (configs/paper.json)")
    p.add_argument("--data", help="folder written by training.prepare")
    p.add_argument("--hdf5", nargs=3, metavar=("TRAIN", "VAL", "VOCAB_JSON"), help="the published COALA HDF5 files")
    p.add_argument("--out", required=True, help="run folder (checkpoint, logs, figures)")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="change config keys (TrainConfig's fields)")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as e:
        p.error(str(e))
    if (args.data is None) == (args.hdf5 is None):
        p.error("give exactly one of --data and --hdf5")
    train(cfg, args.out, data=args.data, hdf5=args.hdf5)


def train(cfg: TrainConfig | dict, out, data=None, hdf5=None) -> dict:
    cfg = TrainConfig.of(cfg)
    out = Path(out)
    # -- distributed setup: torchrun sets these variables; a plain run is world size 1
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device_name = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if world > 1:
        dist.init_process_group("nccl" if device_name == "cuda" else "gloo")
        if device_name == "cuda":
            device_name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    device = torch.device(device_name)
    master = rank == 0
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    if device.type == "cpu":
        heap_for_large_blocks()
    torch.manual_seed(cfg.seed)

    # -- data
    if data is not None:
        train_set, val_set = load_prepared(data, "train"), load_prepared(data, "val")
        meta = load_prepared_meta(data)
        tags, frontend = meta["tags"], meta["frontend"]
        context = meta.get("context_frames", 0)  # frames stored on either side of each patch
        data_info = {"data": str(data), "corpus_manifest_sha256": meta.get("corpus_manifest_sha256"),
                     "preparation": {k: meta.get(k) for k in PREPARATION_KEYS}}
    else:
        train_set, val_set = load_hdf5(hdf5[0]), load_hdf5(hdf5[1])
        tags, frontend, context = load_hdf5_vocabulary(hdf5[2]), None, 0
        data_info = {"hdf5": [str(h) for h in hdf5]}
    batch_size = cfg.batch_size
    if len(train_set) < batch_size * world:
        raise ValueError(f"{len(train_set)} training patches are fewer than one batch of {batch_size} x {world} processes")

    # -- model, optimiser, resume
    net = build_net(cfg, train_set.n_tags).to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    objective = Objective(net, cfg)
    model = nn.parallel.DistributedDataParallel(objective) if world > 1 else objective
    optimizer = make_optimizer(net.parameters(), cfg)
    ckpt_path = out / "ckpt.pt"
    start_epoch, elapsed, history = 0, 0.0, []
    if cfg.init_from and not ckpt_path.exists():
        copied = warm_start(net, cfg.init_from, tags)
        if master:
            print(f"initialised {len(copied)} of {len(net.state_dict())} tensors from {cfg.init_from}")
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, elapsed, history = state["epoch"], state["elapsed"], json.loads(state["history"])
        if master:
            print(f"resumed from {ckpt_path} at epoch {start_epoch}")
    if master:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({**cfg.to_dict(), **data_info, "tags": tags, "frontend": frontend}, indent=1))
        n_params = sum(p.numel() for p in net.parameters())
        print(f"{cfg.variant}: {n_params / 1e6:.2f}M parameters, {len(train_set)} train / {len(val_set)} val patches, "
              f"{world} process(es) on {device}, bf16={cfg.bf16}")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if cfg.bf16 else contextlib.nullcontext

    speech_rows = None
    if cfg.speech_share:
        if "speech" not in tags:
            raise ValueError("speech_share is set but the tag vocabulary has no 'speech'")
        speech_rows = np.asarray(train_set.tags[:, tags.index("speech")]) > 0
        if master:
            print(f"speech: {speech_rows.mean():.1%} of the training patches, at most {cfg.speech_share:.0%} of an epoch")
    band_centres = mel_band_centres(frontend)
    ranges = band_ranges(frontend, train_set.patches.shape[1])
    val_idx = np.arange(len(val_set))
    png_batch = patches_to_input(centre_crops(val_set.batch(val_idx[:6])[0], context), device, cfg.channels_last)
    for epoch in range(start_epoch, cfg.stop_after_epoch or cfg.epochs):
        # -- one epoch: a seeded permutation, each process takes every world-th batch
        t0 = time.time()
        net.train()
        perm = epoch_order(len(train_set), speech_rows, cfg.speech_share, np.random.default_rng(cfg.seed * 1000 + epoch))
        aug_rng = np.random.default_rng([cfg.seed, epoch, rank])  # per epoch, so a resumed run draws the same
        n_batches = len(perm) // (batch_size * world)
        if cfg.max_batches_per_epoch:
            n_batches = min(n_batches, cfg.max_batches_per_epoch)
        sums: dict[str, float] = {}
        for b in range(n_batches):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch + b / n_batches, cfg)
            idx = perm[(b * world + rank) * batch_size:(b * world + rank + 1) * batch_size]
            x, t = augment(*train_set.batch(idx), cfg, aug_rng, band_centres)
            x_view = views_to_input(x, cfg, aug_rng, ranges, device, context)
            lead = cfg.lead_frames
            x = lead_crops(x, context, lead, aug_rng) if lead else centre_crops(x, context)
            x, t = to_input(x, t, device, cfg.channels_last)
            with autocast():
                losses = model(x, t, x_view)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            optimizer.step()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if master and cfg.log_every and (b + 1) % cfg.log_every == 0:
                rate = (b + 1) * batch_size * world / (time.time() - t0)
                print(f"  epoch {epoch + 1} batch {b + 1}/{n_batches} loss {float(losses['total'].detach()):.4g} {rate:.1f} patches/s", flush=True)
        train_seconds = time.time() - t0
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
               "patches_per_s": round(n_batches * batch_size * world / train_seconds, 1)}
        row.update({f"train_{k}": v / n_batches for k, v in sums.items()})

        # -- validation on the master (eval mode: running BN statistics, no dropout)
        if master:
            net.eval()
            vsums, n_val = {}, 0
            view_rng = np.random.default_rng(cfg.seed)  # the same views every epoch
            with torch.no_grad(), autocast():
                for b in range(0, len(val_idx), batch_size):
                    if len(val_idx[b:b + batch_size]) < 2:  # the contrastive loss needs a pair
                        break
                    x, t = val_set.batch(val_idx[b:b + batch_size])
                    x_view = views_to_input(x, cfg, view_rng, ranges, device, context)
                    x, t = to_input(centre_crops(x, context), t, device, cfg.channels_last)
                    for k, v in coala_losses(net, x, t, cfg, x_view).items():
                        vsums[k] = vsums.get(k, 0.0) + float(v)
                    n_val += 1
            row.update({f"val_{k}": v / max(n_val, 1) for k, v in vsums.items()})
            elapsed += time.time() - t0
            row["elapsed_s"] = round(elapsed, 1)
            history.append(row)
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
            _write_logs(out, history)
            if cfg.variant == "ae-c" and cfg.png_every and (epoch + 1) % cfg.png_every == 0:
                save_recon_png(net, png_batch, out / "recon" / f"epoch_{epoch + 1:03d}.png")
            state = {"net": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                     "elapsed": elapsed, "history": json.dumps(history)}
            torch.save(state, out / "ckpt.tmp")
            if cfg.keep_epoch_checkpoints:  # written before ckpt.pt moves on, so a crash never loses one
                shutil.copyfile(out / "ckpt.tmp", out / "ckpt-e.tmp")
                os.replace(out / "ckpt-e.tmp", out / f"ckpt-e{epoch + 1:03d}.pt")
            os.replace(out / "ckpt.tmp", ckpt_path)
        if world > 1:
            dist.barrier()
    if world > 1:
        dist.destroy_process_group()
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    summary = {"epochs": len(history), "elapsed_s": round(elapsed, 1), "final": history[-1] if history else None,
               "hardware": f"{cpu_model()}, {torch.get_num_threads()} threads, {world} x {device}{gpu}"}
    if master:
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _write_logs(out: Path, history: list[dict]):
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    with open(out / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    (out / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))


if __name__ == "__main__":
    main()
