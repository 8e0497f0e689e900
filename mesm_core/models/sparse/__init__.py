"""Submanifold sparse VGG blocks behind one interface, with interchangeable backends.

A sparse block sees a dense map ``x`` (N, C, H, W) that is zero outside a boolean ``mask`` (N, H, W)
of active cells and computes, at active cells only:
    2×[conv3×3 (no bias; only active neighbours contribute) → BN over active cells → ReLU],
then optionally a 2×2 sparse max-pool (an output cell is active iff any cell of its window is;
value = max(0, max over active inputs), which equals the dense max-pool of the zero-filled map).

Backends (``ModelConfig.sparse_backend``):
  * ``masked``  pure torch dense emulation: conv(x·M)·M (docs/models.md, "MESM"). Exact, runs anywhere,
                costs as much as a dense block: the test reference, and the one training with the
                straight-through keep gate uses (``masked_block(..., gate=...)``).
  * ``dense``   the same emulation written for speed (BN folded into the conv in eval, statistics by
                masked sums, no row gathers): about the time of a plain dense block (``dense.py``).
  * ``gather``  gather-GEMM submanifold convolution in plain torch: a rulebook of neighbour pairs per
                kernel offset over the active cells, one GEMM per offset (oneDNN on CPU), so the time
                follows the active-neighbour pairs, i.e. the counted FLOPs (``gather.py``).
  * ``spconv``  spconv 2.x SubMConv2d / SparseMaxPool2d (imported lazily; ConvAlgo.Native on CPU).
  * ``auto``    per call, the path with the least *measured* time at this block's FLOPs share, from
                the crossover table ``crossovers.json`` written by ``benchmarks/sparse_blocks.py
                --calibrate`` (``auto.py``); ``dense`` on a device the table has not measured.
All use the same parameters (dense layout conv weights [out, in, 3, 3]; spconv permutes them to
[out, kh, kw, in] on the fly) and the same BatchNorm-over-active-cells module, so a checkpoint runs
on any backend and they agree to float precision (tests/test_sparse_backends.py).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from mesm_core.models.sparse.batchnorm import ActiveBatchNorm, RegimeBatchNorm, make_batchnorm, statistics_at

__all__ = [
    "ActiveBatchNorm",
    "RegimeBatchNorm",
    "statistics_at",
    "SparseVGGBlock",
    "SparseBackend",
    "BACKENDS",
    "PATHS",
    "get_backend",
    "resolve_backend_name",
    "spconv_available",
]

BACKENDS = ("masked", "dense", "gather", "spconv")
PATHS = ("dense", "gather", "spconv")  # what "auto" chooses from


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


@functools.lru_cache(maxsize=1)
def spconv_available() -> bool:
    """Whether spconv is installed (looked up once: ``auto`` asks on every call)."""
    return importlib.util.find_spec("spconv") is not None


def resolve_backend_name(name: str) -> str:
    """Validates a backend name ("auto" stays "auto": it chooses per call)."""
    if name == "auto":
        return name
    if name not in BACKENDS:
        raise ValueError(f"unknown sparse backend {name!r}; choose one of auto, {', '.join(BACKENDS)}")
    if name == "spconv" and not spconv_available():
        raise ImportError("sparse_backend='spconv' needs spconv (pip install spconv-cu118 or spconv-cu126); or use 'masked'")
    return name


def get_backend(name: str) -> SparseBackend:
    """The backend callable for ``name`` (auto / masked / dense / gather / spconv)."""
    resolved = resolve_backend_name(name)
    if resolved == "masked":
        from mesm_core.models.sparse.masked import masked_block

        return masked_block
    if resolved == "dense":
        from mesm_core.models.sparse.dense import dense_block

        return dense_block
    if resolved == "gather":
        from mesm_core.models.sparse.gather import gather_block

        return gather_block
    if resolved == "auto":
        from mesm_core.models.sparse.auto import auto_block

        return auto_block
    from mesm_core.models.sparse.spconv_backend import spconv_block

    return spconv_block
