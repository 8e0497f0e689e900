"""The hard keep decision with a gradient for every active cell (``attention_mode="straight_through"``).

Forward: the nucleus mask itself, m_j = 1[j kept] ∈ {0, 1}, so the sparse block computes exactly the
paper's masked features (p = 1 is the dense CNN). Backward (training only), with ℓ_j the attention
log-probability of cell j and g_j = ∂L/∂m_j the first-order effect of switching cell j on or off:

  * surrogate keep gradient: ∂m_j/∂ℓ_j := σ'((ℓ_j − τ)/T) / T, the straight-through estimator of
    m_j ≈ σ((ℓ_j − τ)/T) with τ midway between the last kept and the first dropped log-probability of
    the frame. Every active cell gets ∂L/∂ℓ_j = g_j σ'(·)/T, dropped ones included, so a dropped
    cue cell can be promoted (the ``"trained"`` mode only reaches kept cells).
  * saliency target (``saliency_weight`` λ > 0): the attention is also pulled towards
    t_j ∝ |g_j|^γ over the frame's active cells, the cells whose switching on or off would change the
    loss most, by adding the gradient of λ · CE(t, a) (t held fixed; mean over frames with a target).
    It is self-distillation of the model's own first-order saliency (Grad × Input at the block input
    and at both conv outputs), computed in the same backward pass from the task loss alone; no cue
    mask is involved. γ > 1 sharpens the target towards the strongest evidence.

Both need the dense-emulated (``masked``) computation in training, since the gate must multiply
every cell, dropped ones included; inference keeps the real sparse path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["SaliencyTarget", "keep_gate", "keep_threshold"]


@dataclass(frozen=True)
class SaliencyTarget:
    """Weight λ and power γ of the self-distilled saliency target (training only)."""

    weight: float
    power: float = 2.0


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
                temperature: float, saliency_weight: float, saliency_power: float) -> torch.Tensor:
        tau = keep_threshold(log_probs, kept, active, temperature)
        ctx.save_for_backward(log_probs.detach(), active, tau)
        ctx.temperature, ctx.saliency_weight, ctx.saliency_power = temperature, saliency_weight, saliency_power
        return kept.to(log_probs.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        log_probs, active, tau = ctx.saved_tensors
        n = log_probs.shape[0]
        t = ctx.temperature
        finite = torch.where(active, log_probs, torch.zeros_like(log_probs)).flatten(1)
        sig = torch.sigmoid((finite - tau) / t)
        surrogate = sig * (1 - sig) / t
        grad_flat = grad.flatten(1)
        active_f = active.flatten(1)
        out = torch.where(active_f, grad_flat * surrogate, torch.zeros_like(grad_flat))
        if ctx.saliency_weight > 0:
            useful = torch.where(active_f, grad_flat.abs(), torch.zeros_like(grad_flat))
            if ctx.saliency_power != 1.0:
                useful = useful.pow(ctx.saliency_power)
            total = useful.sum(dim=1, keepdim=True)
            has_target = total > 0
            target = torch.where(has_target, useful / total.clamp_min(torch.finfo(total.dtype).tiny), torch.zeros_like(useful))
            frames = has_target.sum().clamp_min(1).to(grad_flat.dtype)
            out = out - ctx.saliency_weight * target / frames   # ∂(λ·mean CE(t, softmax))/∂ℓ = −λ t / #frames
        return out.view_as(log_probs), None, None, None, None, None


def keep_gate(
    log_probs: torch.Tensor,
    kept: torch.Tensor,
    active: torch.Tensor,
    temperature: float = 1.0,
    saliency_weight: float = 0.0,
    saliency_power: float = 2.0,
) -> torch.Tensor:
    """Hard 0/1 gate (N, H, W) equal to ``kept`` whose backward is described in the module docstring.

    log_probs (N, H, W) attention log-probabilities (-inf or anything on inactive cells), kept and
    active (N, H, W) bool.
    """
    if temperature <= 0:
        raise ValueError(f"keep-gate temperature must be > 0, got {temperature}")
    return _KeepGate.apply(log_probs, kept, active, float(temperature), float(saliency_weight), float(saliency_power))
