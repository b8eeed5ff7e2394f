"""Optimiser and per-epoch learning rate, as in the reference implementations.

Epochs `0 .. w-1` run at a constant `warmup_lr`; then a cosine over `epochs` starts from
its beginning: `lr(e) = lr * (1 + cos(pi * (e - w) / epochs)) / 2` for `e >= w`. This is
Dassl's `ConstantWarmupScheduler` (dassl/optim/lr_scheduler.py, with its default
`WARMUP_RECOUNT=True`): the cosine successor is built with `T_max = MAX_EPOCH` and is not
stepped during the warm-up, so the first epoch after it runs at the full rate and the last
never reaches zero. The rate is a function of the epoch only, so a resumed run needs no
scheduler state.
"""

from __future__ import annotations

import math

import torch

from .options import TrainConfig


def build_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, eps=cfg.adam_eps)
    if cfg.optimizer == "adam":  # Dassl's "adam" (TaskRes): L2 weight decay added to the gradient
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, eps=cfg.adam_eps)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def lr_at(epoch: int, cfg: TrainConfig) -> float:
    """Learning rate of epoch `epoch` (0-based)."""
    if epoch < cfg.warmup_epochs:
        return cfg.warmup_lr
    if cfg.schedule == "constant":
        return cfg.lr
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / cfg.epochs))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
