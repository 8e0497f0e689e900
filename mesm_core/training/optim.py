"""Optimizer, learning-rate schedule and loss weighting for every model family (docs/training.md, "Paper presets";
docs/deviations.md, "Learning rates" and "pos_weight")."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mesm_core.config import RunConfig


def build_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """Adam (the reference always uses Adam; so do the baselines' recipes).

    FE2E/MESM bring their own groups (``model.param_groups``: the text branch at ``lr × text_lr_factor``,
    MESM's attention at ``lr × attention_lr_factor``); any other model trains every trainable parameter at
    ``lr`` in one group named "main". Frozen parameters are left out.
    """
    if hasattr(model, "param_groups"):
        groups = [g for g in model.param_groups(cfg.train.lr, cfg.train.attention_lr_factor) if g["params"]]
    else:
        groups = [{"name": "main", "params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.train.lr}]
    return torch.optim.Adam(groups, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: RunConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """``cosine``: annealing over all epochs, stepped per batch (reference ``-sc``); ``plateau``: ReduceLROnPlateau
    on the validation loss, stepped once an epoch (EmoEmbs, MulT); ``none``: None."""
    train = cfg.train
    if train.scheduler == "none":
        return None
    if train.scheduler == "cosine":
        total = max(1, train.epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if train.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=train.plateau_factor,
                                                          patience=train.plateau_patience)
    raise ValueError(f"unknown scheduler {train.scheduler!r} (choose none, cosine or plateau)")


def pos_weight_from_labels(labels: np.ndarray) -> torch.Tensor:
    """BCE pos_weight = negatives / positives per class from the TRAINING labels (N, C), float32.

    A class with no positive in training gets weight 1 (the ratio is undefined).
    """
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise ValueError(f"training labels must be a non-empty (N, C) array, got shape {labels.shape}")
    positives = labels.sum(axis=0)
    negatives = labels.shape[0] - positives
    weights = np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def current_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    return {group.get("name", str(i)): float(group["lr"]) for i, group in enumerate(optimizer.param_groups)}
