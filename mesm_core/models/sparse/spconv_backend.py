"""spconv 2.x sparse backend (SubMConv2d + SparseMaxPool2d), sharing parameters with the masked one.

Gotchas handled here:
  * ``import spconv.pytorch`` takes 6-10 s, so it happens on first use only;
  * indices must be contiguous int32 (``mask.nonzero()`` is not contiguous; garbage otherwise);
  * without a GPU the default implicit-GEMM algorithm fails: use ``ConvAlgo.Native`` on CPU;
  * SubMConv2d weights are [out, kh, kw, in]: our dense [out, in, kh, kw] weight is permuted on the fly,
    so gradients flow into the same parameter.
The conv modules below are stateless holders (their own weights are never used): we call
``_conv_forward`` with our weight, which is private API of spconv 2.3 (pinned <2.4 in pyproject).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any

import torch

from mesm_core.models.sparse.block import SparseVGGBlock, pool_mask

__all__ = ["spconv_block"]

_HOLDERS: dict[tuple, Any] = {}


def _spconv() -> Any:
    import spconv.pytorch as spconv_pytorch

    return spconv_pytorch


@contextlib.contextmanager
def _quiet() -> Any:
    """Hide two harmless warnings spconv 2.3 triggers on recent torch (fx-tracing check, list indexing)."""
    with contextlib.suppress(Exception):
        from torch.fx import _symbolic_trace

        if hasattr(_symbolic_trace, "is_fx_tracing_warning"):
            fx_log = logging.getLogger(_symbolic_trace.__name__)
            previous, fx_log.level = fx_log.level, logging.ERROR
            _symbolic_trace.is_fx_tracing_warning()  # warn-once function: burn its single warning silently
            fx_log.setLevel(previous)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing")
        yield


def _holder(kind: str, device: torch.device, in_channels: int = 0, out_channels: int = 0) -> Any:
    key = (kind, device.type, in_channels, out_channels)
    if key not in _HOLDERS:
        sp = _spconv()
        from spconv.core import ConvAlgo

        algo = ConvAlgo.Native if device.type == "cpu" else None
        with torch.random.fork_rng(devices=[]):  # the holder's own (unused) weight init must not shift the global RNG
            _HOLDERS[key] = _make_holder(sp, kind, in_channels, out_channels, algo)
    return _HOLDERS[key]


def _make_holder(sp: Any, kind: str, in_channels: int, out_channels: int, algo: Any) -> Any:
    if kind == "subm":
        return sp.SubMConv2d(in_channels, out_channels, 3, padding=1, bias=False, indice_key="subm", algo=algo)
    return sp.SparseMaxPool2d(2, 2, algo=algo)


def spconv_block(block: SparseVGGBlock, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``block`` with spconv on the active cells of x (N, C_in, H, W); returns (dense y, output mask)."""
    # spconv has no bfloat16 kernels: run it outside autocast in float32 (or float64) and cast back.
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    with _quiet(), torch.autocast(device_type=x.device.type, enabled=False):
        y, out_mask = _spconv_block(block, x.to(dtype), mask)
    return y.to(x.dtype), out_mask


def _spconv_block(block: SparseVGGBlock, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    sp = _spconv()
    n, _, height, width = x.shape
    indices = mask.nonzero().int().contiguous()          # (n_active, 3): frame, y, x in C order
    features = x.permute(0, 2, 3, 1)[mask].contiguous()  # rows in the same C order as `indices`
    tensor = sp.SparseConvTensor(features, indices, [height, width], n)
    for conv, bn in block.layers():
        holder = _holder("subm", x.device, conv.in_channels, conv.out_channels)
        weight = conv.weight.permute(0, 2, 3, 1).to(x.dtype).contiguous()
        tensor = holder._conv_forward(block.training, tensor, weight, None)
        tensor = tensor.replace_feature(torch.relu(bn(tensor.features)).to(x.dtype))
    if not block.pool:
        return tensor.dense(), mask
    pooled = _holder("pool", x.device)(tensor)
    return pooled.dense(), pool_mask(mask)
