"""The optimiser and the learning-rate schedule a `TrainConfig` names."""
from __future__ import annotations

import math

import torch

from training.trainer.config import TrainConfig


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)  # TrainConfig allows no other


def lr_at(epoch_progress: float, cfg: TrainConfig) -> float:
    if cfg.lr_schedule == "constant":
        return cfg.lr
    # cosine, to 5% of the peak at the last epoch
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * epoch_progress / cfg.epochs)))
