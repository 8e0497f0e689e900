"""Pure-torch sparse backend: dense emulation of submanifold convolution with masks
(docs/models.md, "MESM"; docs/deviations.md, "Sparse convolution library").

conv(x·M)·M equals a submanifold conv (only active neighbours contribute; outputs only at active
cells); BN uses statistics over active cells (rows gathered by the mask); the 2×2 max-pool of the
zero-filled map, clamped at 0, equals spconv's zero-initialised sparse max-pool.

With a ``gate`` (the straight-through keep gate of ``models/keep_gate.py``: values equal to the mask,
but a gradient for every cell) the gate replaces M as the multiplier at the block input and after each
conv + BN + ReLU, so the forward values are unchanged and every cell's keep decision gets ∂L/∂m.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mesm_core.models.sparse.batchnorm import ActiveBatchNorm
from mesm_core.models.sparse.block import SparseVGGBlock, pool_mask

__all__ = ["masked_block"]


def _bn_relu_active(bn: ActiveBatchNorm, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BN over active cells + ReLU; (N, C, H, W) → (N, C, H, W), zero off-mask."""
    cells = h.permute(0, 2, 3, 1)
    out = cells.new_zeros(cells.shape)
    out[mask] = torch.relu(bn(cells[mask]))
    return out.permute(0, 3, 1, 2)


def _bn_relu_gated(bn: ActiveBatchNorm, h: torch.Tensor, mask: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """BN with statistics over active cells, applied to every cell, ReLU, times the gate (N, 1, H, W)."""
    cells = h.permute(0, 2, 3, 1)
    mean, var = bn.statistics(cells[mask])
    return torch.relu(bn.normalize(cells, mean, var)).permute(0, 3, 1, 2) * gate


def masked_block(
    block: SparseVGGBlock, x: torch.Tensor, mask: torch.Tensor, gate: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``block`` on the active cells of x (N, C_in, H, W); returns (y, output mask).

    ``gate`` (N, H, W) float, equal to ``mask`` in value, optionally carries the keep decision's gradient.
    """
    if gate is None:
        h = x * mask[:, None].to(x.dtype)
        for conv, bn in block.layers():
            h = _bn_relu_active(bn, conv(h), mask)
    else:
        g = gate[:, None].to(x.dtype)
        h = x * g
        for conv, bn in block.layers():
            h = _bn_relu_gated(bn, conv(h), mask, g)
    if not block.pool:
        return h, mask
    return F.max_pool2d(h, 2).clamp_min(0), pool_mask(mask)
