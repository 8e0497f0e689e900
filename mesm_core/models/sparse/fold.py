"""Eval-mode BatchNorm folded into the preceding conv, with the folded weights cached between calls.

In eval, BN over active cells is the fixed affine map x · scale + shift (running statistics), so
conv → BN equals one conv with weight W · scale (per output channel) and bias ``shift``. The ``dense``
and ``gather`` paths use it to skip the separate normalisation passes. Without autograd the folded
tensors are cached per conv and dtype/device/layout, and recomputed whenever the conv weight or a BN
parameter or buffer changes (tensor versions and storage pointers are part of the key); with autograd
(or parameters created in inference mode, which keep no version) they are recomputed every call.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from mesm_core.models.sparse.batchnorm import ActiveBatchNorm

__all__ = ["folded_conv", "conv_taps"]

_CACHE: "weakref.WeakKeyDictionary[nn.Conv2d, dict]" = weakref.WeakKeyDictionary()


def conv_taps(weight: torch.Tensor) -> torch.Tensor:
    """[out, in, 3, 3] → (9, out, in) contiguous: tap k = 3·(dy + 1) + (dx + 1) multiplies the input at (y + dy, x + dx)."""
    c_out, c_in = weight.shape[:2]
    return weight.permute(2, 3, 0, 1).reshape(9, c_out, c_in).contiguous()


def _stamp(*tensors: torch.Tensor) -> tuple | None:
    """Identity + version of each tensor; None when a tensor keeps no version (an inference tensor)."""
    if any(t.is_inference() for t in tensors):
        return None
    return tuple((t.data_ptr(), t._version) for t in tensors)


def _fold(conv: nn.Conv2d, bn: ActiveBatchNorm, dtype: torch.dtype, taps: bool) -> tuple[torch.Tensor, torch.Tensor]:
    compute = torch.promote_types(dtype, torch.float32)
    scale, shift = bn.affine(bn.running_mean.to(compute), bn.running_var.to(compute))
    weight = conv.weight.to(compute) * scale[:, None, None, None]
    if taps:
        weight = conv_taps(weight)
    return weight.to(dtype), shift.to(dtype)


def folded_conv(conv: nn.Conv2d, bn: ActiveBatchNorm, dtype: torch.dtype, taps: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of conv → eval BN: [out, in, 3, 3] (or (9, out, in) taps) and (out,), in ``dtype``."""
    if torch.is_grad_enabled():
        return _fold(conv, bn, dtype, taps)
    stamp = _stamp(conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var)
    if stamp is None:
        return _fold(conv, bn, dtype, taps)
    key = (dtype, conv.weight.device, taps)
    entries = _CACHE.setdefault(conv, {})
    hit = entries.get(key)
    if hit is None or hit[0] != stamp:
        hit = (stamp, *_fold(conv, bn, dtype, taps))
        entries[key] = hit
    return hit[1], hit[2]
