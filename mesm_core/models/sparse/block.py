"""The interface every sparse backend implements: the block's parameters, the backend protocol, the pooled mask.

A sparse block sees a dense map ``x`` (N, C, H, W) that is zero outside a boolean ``mask`` (N, H, W)
of active cells and computes, at active cells only:
    2×[conv3×3 (no bias; only active neighbours contribute) → BN over active cells → ReLU],
then optionally a 2×2 sparse max-pool (an output cell is active iff any cell of its window is;
value = max(0, max over active inputs), which equals the dense max-pool of the zero-filled map).

The backends (``masked.py``, ``dense.py``, ``gather.py``, ``spconv_backend.py``, ``auto.py``) import this
module, never the package ``__init__`` (which picks among them).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from mesm_core.models.sparse.batchnorm import ActiveBatchNorm, make_batchnorm

__all__ = ["SparseVGGBlock", "SparseBackend", "pool_mask"]


class SparseVGGBlock(nn.Module):
    """Parameters of one submanifold sparse VGG block (the computation lives in the backends).

    conv weights use the dense layout [out, in, 3, 3] with no bias (BN follows, as in SparseConvNet's
    SparseVggNet); initialised N(0, 2 / (9·C_in)) like SparseConvNet. ``bn_top_ps``: the p regimes of the
    BN running statistics (``batchnorm.py``; empty: one set).
    """

    def __init__(self, in_channels: int, out_channels: int, pool: bool, bn_top_ps: tuple[float, ...] = ()) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.pool = in_channels, out_channels, pool
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = make_batchnorm(out_channels, bn_top_ps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = make_batchnorm(out_channels, bn_top_ps)
        for conv in (self.conv1, self.conv2):
            nn.init.normal_(conv.weight, std=math.sqrt(2.0 / (9 * conv.in_channels)))

    def layers(self) -> tuple[tuple[nn.Conv2d, ActiveBatchNorm], ...]:
        return ((self.conv1, self.bn1), (self.conv2, self.bn2))


class SparseBackend(Protocol):
    name: str

    def __call__(self, block: SparseVGGBlock, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C_in, H, W) zero off-mask, mask (N, H, W) bool → (y (N, C_out, H', W') zero off-mask, mask')."""
        ...


def pool_mask(mask: torch.Tensor) -> torch.Tensor:
    """Active set after a 2×2 sparse max-pool: (N, H, W) bool → (N, H/2, W/2) bool."""
    return F.max_pool2d(mask[:, None].float(), 2)[:, 0] > 0
