"""Optimizer, learning-rate schedule and loss weighting (reference §6.1–6.2)."""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from mesm_core.config import RunConfig

# Parameter-name prefixes of the text branch (encoder + its classification head), which the paper
# trains at lr × text_lr_factor. Matched on the first dotted component of the parameter name.
TEXT_PREFIXES = ("text",)


def is_text_parameter(name: str) -> bool:
    first = name.split(".", 1)[0]
    return first.startswith(TEXT_PREFIXES)


def build_param_groups(model: nn.Module, cfg: RunConfig) -> list[dict]:
    """Two Adam groups: the text branch at ``lr × text_lr_factor``, everything else at ``lr``.

    Frozen parameters (a non-trainable text encoder) are left out. Group names: "text", "main".
    """
    text, main = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (text if is_text_parameter(name) else main).append(param)
    groups = [{"name": "main", "params": main, "lr": cfg.train.lr}]
    if text:
        groups.append({"name": "text", "params": text, "lr": cfg.train.lr * cfg.model.text_lr_factor})
    return groups


def build_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """Adam (the reference always uses Adam) with the text/main parameter groups.

    Uses the model's own ``param_groups(lr)`` when it has one (FE2E/MESM do), else the name rule.
    """
    if hasattr(model, "param_groups"):
        groups = [g for g in model.param_groups(cfg.train.lr, cfg.train.attention_lr_factor) if g["params"]]
    else:
        groups = build_param_groups(model, cfg)
    return torch.optim.Adam(groups, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: RunConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Cosine annealing stepped per batch over all epochs (reference ``-sc``), or None."""
    if cfg.train.scheduler == "none":
        return None
    if cfg.train.scheduler == "cosine":
        total = max(1, cfg.train.epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    raise ValueError(f"unknown scheduler {cfg.train.scheduler!r} (choose none or cosine)")


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


