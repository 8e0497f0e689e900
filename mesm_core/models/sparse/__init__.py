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

Layout: ``block.py`` holds the interface (block parameters, backend protocol, ``pool_mask``), ``batchnorm.py``
the BatchNorms, ``backends.py`` the concrete paths by name; this ``__init__`` re-exports them and adds
``get_backend`` (``auto`` included). The backends import ``block.py``, never this file.
"""

from __future__ import annotations

from mesm_core.models.sparse.backends import BACKENDS, PATHS, path_backend, resolve_backend_name, spconv_available
from mesm_core.models.sparse.batchnorm import ActiveBatchNorm, RegimeBatchNorm, statistics_at
from mesm_core.models.sparse.block import SparseBackend, SparseVGGBlock, pool_mask

__all__ = [
    "ActiveBatchNorm",
    "RegimeBatchNorm",
    "statistics_at",
    "SparseVGGBlock",
    "SparseBackend",
    "pool_mask",
    "BACKENDS",
    "PATHS",
    "get_backend",
    "resolve_backend_name",
    "spconv_available",
]


def get_backend(name: str) -> SparseBackend:
    """The backend callable for ``name`` (auto / masked / dense / gather / spconv)."""
    if resolve_backend_name(name) == "auto":
        from mesm_core.models.sparse.auto import auto_block

        return auto_block
    return path_backend(name)
