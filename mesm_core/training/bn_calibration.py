"""Re-estimate the sparse blocks' BatchNorm statistics of every top-p regime (US-Nets' BN calibration).

A MESM with ``model.bn_top_p`` keeps one set of BN running statistics per p regime
(``mesm_core.models.sparse.batchnorm``). During training each step updates only the regime nearest its own
p, with a running average of weights that keep changing. Before a checkpoint is scored (and saved), this
module recomputes each regime exactly: the model runs in eval mode, except the sparse blocks, whose BN takes
batch statistics at the regime's p over a fixed set of training batches; the regime's statistics become
their plain average (momentum 1/(i + 1) on batch i). No labels and no gradient are involved.

Yu & Huang, "Universally Slimmable Networks and Improved Training Techniques", ICCV 2019, §3.4.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from mesm_core.models.sparse import RegimeBatchNorm, SparseVGGBlock
from mesm_core.types import Batch

__all__ = ["regime_top_ps", "calibrate_batchnorm"]


def regime_top_ps(model: nn.Module) -> tuple[float, ...]:
    """The p regimes of the model's sparse BatchNorms (empty when it has none)."""
    for module in model.modules():
        if isinstance(module, RegimeBatchNorm):
            return module.top_ps
    return ()


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, batches: Sequence[Batch] | Iterable[Batch],
                        device: torch.device | str = "cpu", top_ps: Sequence[float] | None = None) -> int:
    """Recompute every regime's BN statistics of ``model`` (a MESM) on ``batches``; returns the batches used per regime.

    ``top_ps``: the regimes to recompute (default: all of them). The model's train/eval state is restored."""
    regimes = tuple(top_ps) if top_ps is not None else regime_top_ps(model)
    if not regimes:
        return 0
    batches = list(batches)
    blocks = [m for m in model.modules() if isinstance(m, SparseVGGBlock)]
    norms = [m for m in model.modules() if isinstance(m, RegimeBatchNorm)]
    was_training = model.training
    momenta = [bn.momentum for bn in norms]
    model.eval()
    for block in blocks:
        block.train()   # batch statistics in the sparse blocks only: dropout and the rest stay in eval
    try:
        for p in regimes:
            for i, batch in enumerate(batches):
                for bn in norms:
                    bn.momentum = 1.0 / (i + 1)   # the running value becomes the mean over batches 0..i
                model(batch.to(device), top_p=p)
    finally:
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
        model.train(was_training)
    return len(batches)
