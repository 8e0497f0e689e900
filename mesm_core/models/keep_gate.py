"""The hard keep decision with a gradient for every active cell (``attention_mode="straight_through"``).

Forward: the nucleus mask itself, m_j = 1[j kept] ∈ {0, 1}, so the sparse block computes exactly the
paper's masked features (p = 1 is the dense CNN). Backward (training only), with ℓ_j the attention
log-probability of cell j and g_j = ∂L/∂m_j the first-order effect of switching cell j on or off:
the straight-through estimator of m_j ≈ σ((ℓ_j − τ)/T), i.e. ∂m_j/∂ℓ_j := σ'((ℓ_j − τ)/T) / T with τ midway
between the last kept and the first dropped log-probability of the frame. Every active cell gets
∂L/∂ℓ_j = g_j σ'(·)/T, dropped ones included, so a dropped cue cell can be promoted (the ``"trained"`` mode
only reaches kept cells).

The gate tensor itself is kept in the model's ``SelectionState`` so that training can also read g_j = ∂L/∂m_j
for the self-saliency target (``mesm_core.training.selection.self_saliency``: ``torch.autograd.grad`` of the
task loss alone, before any auxiliary term is added). This needs the dense-emulated (``masked``)
computation in training, since the gate must multiply every cell, dropped ones included; inference keeps
the real sparse path.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["keep_gate", "keep_threshold"]


def keep_threshold(log_probs: torch.Tensor, kept: torch.Tensor, active: torch.Tensor, temperature: float) -> torch.Tensor:
    """τ per frame (N, 1): midway between the lowest kept and the highest dropped active log-probability;
    ``temperature`` below the lowest kept one when nothing is dropped. Inputs (N, H, W); no gradient."""
    flat = log_probs.detach().flatten(1)
    kept_f, active_f = kept.flatten(1), active.flatten(1)
    dropped = active_f & ~kept_f
    inf = torch.tensor(float("inf"), dtype=flat.dtype, device=flat.device)
    lowest_kept = torch.where(kept_f, flat, inf).amin(dim=1, keepdim=True)
    highest_dropped = torch.where(dropped, flat, -inf).amax(dim=1, keepdim=True)
    return torch.where(dropped.any(dim=1, keepdim=True), (lowest_kept + highest_dropped) / 2, lowest_kept - temperature)


class _KeepGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, log_probs: torch.Tensor, kept: torch.Tensor, active: torch.Tensor,
                temperature: float) -> torch.Tensor:
        tau = keep_threshold(log_probs, kept, active, temperature)
        ctx.save_for_backward(log_probs.detach(), active, tau)
        ctx.temperature = temperature
        return kept.to(log_probs.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        log_probs, active, tau = ctx.saved_tensors
        t = ctx.temperature
        finite = torch.where(active, log_probs, torch.zeros_like(log_probs))
        sig = torch.sigmoid((finite - tau.view(-1, *([1] * (log_probs.dim() - 1)))) / t)
        surrogate = sig * (1 - sig) / t
        return torch.where(active, grad * surrogate, torch.zeros_like(grad)), None, None, None


def keep_gate(log_probs: torch.Tensor, kept: torch.Tensor, active: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Hard 0/1 gate (N, H, W) equal to ``kept`` whose backward is the surrogate of the module docstring.

    log_probs (N, H, W) attention log-probabilities (-inf or anything on inactive cells), kept and
    active (N, H, W) bool.
    """
    if temperature <= 0:
        raise ValueError(f"keep-gate temperature must be > 0, got {temperature}")
    return _KeepGate.apply(log_probs, kept, active, float(temperature))
