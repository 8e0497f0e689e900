"""The ``dense`` path: the masked emulation written for speed, for blocks where most cells are active.

Same values as ``masked.py`` (conv(x·M)·M, BN statistics over the active cells, ReLU, 2×2 max-pool
of the zero-filled map), computed without gathering rows: in eval BN is folded into the conv
(``fold.py``), so a layer is one conv with bias, a ReLU and one multiply by M; in training the
statistics are masked sums over (N, H, W). With every cell active (p = 1) the multiplies are skipped
and the block is a plain dense VGG block (training: ``F.batch_norm``). Its time is that of a dense block at any density.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mesm_core.models.sparse.batchnorm import ActiveBatchNorm
from mesm_core.models.sparse.block import SparseVGGBlock, pool_mask
from mesm_core.models.sparse.fold import folded_conv

__all__ = ["dense_block"]


def _masked_statistics(bn: ActiveBatchNorm, h: torch.Tensor, m: torch.Tensor | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training statistics over the n active cells of h (N, C, H, W) (m (N, 1, H, W) or None: all cells)."""
    x = h.to(torch.promote_types(h.dtype, torch.float32))
    if m is None:
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(0, 2, 3), unbiased=False)
    else:
        mask = m.to(x.dtype)
        mean = (x * mask).sum(dim=(0, 2, 3)) / n
        var = ((x - mean[:, None, None]).square() * mask).sum(dim=(0, 2, 3)) / n
    return bn.batch_statistics(mean, var, n)


def dense_block(block: SparseVGGBlock, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``block`` on the active cells of x (N, C_in, H, W) by dense convolutions; returns (y, output mask)."""
    n_active = int(mask.sum())
    full = n_active == mask.numel()
    m = None if full else mask[:, None].to(x.dtype)
    h = x if m is None else x * m
    in_place = not torch.is_grad_enabled()
    for conv, bn in block.layers():
        if block.training and m is None and n_active > 1 and h.dtype == bn.running_mean.dtype:
            # every cell active: BN over all cells is nn.BatchNorm's fused kernel (same running-average rule)
            h = F.batch_norm(conv(h), bn.running_mean, bn.running_var, bn.weight, bn.bias, True, bn.momentum, bn.eps)
            with torch.no_grad():
                bn.num_batches_tracked += 1
        elif block.training and n_active > 0:
            h = conv(h)
            mean, var = _masked_statistics(bn, h, m, n_active)
            scale, shift = bn.affine(mean, var)
            h = (h.to(scale.dtype) * scale[:, None, None] + shift[:, None, None]).to(h.dtype)
        else:
            weight, bias = folded_conv(conv, bn, h.dtype)
            h = F.conv2d(h, weight, bias, padding=1)
        h = torch.relu_(h) if in_place else torch.relu(h)
        if m is not None:
            h = h.mul_(m) if in_place else h * m
    if not block.pool:
        return h, mask
    # values are ≥ 0 after the ReLU, so the pool of the zero-filled map is already max(0, ·)
    return F.max_pool2d(h, 2), pool_mask(mask)
