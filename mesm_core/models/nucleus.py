"""Nucleus (top-p) cell selection per frame (paper Eq. 3; docs/models.md, "MESM";
docs/deviations.md, "Nucleus selection").

For each frame, sort its cell probabilities in descending order and keep the shortest prefix whose
mass reaches p: a cell is kept iff the mass of the cells ranked before it is < p. So ≥1 cell is
always kept. Ties are broken by cell index (stable sort), so the mask is deterministic. p ≥ 1 keeps
every active cell, without relying on a float cumulative sum reaching exactly 1.

``min_fraction`` ρ (not in the paper; ``ModelConfig.min_keep_audio`` / ``min_keep_visual``, 0 by default) also keeps the
⌈ρ · N_active⌉ most probable cells of every frame, so a sharp attention cannot shrink the set the
sparse CNN computes on below ρ (a keep floor in the selection rule; its cost is counted like any kept cell).
:func:`nucleus_select` also says, per frame, whether that floor decided the mask (kept more cells than the
nucleus alone): where it does, p does not move the mask, and the studio and ``evaluate`` report it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["NucleusSelection", "nucleus_select", "nucleus_mask", "check_top_p"]


class NucleusSelection(NamedTuple):
    """kept: bool (N, H, W) (or (N, L)) the mask; floor_decided: bool (N,) frames where the keep floor kept
    more cells than the nucleus alone would (all False without a floor, or at p ≥ 1)."""

    kept: torch.Tensor
    floor_decided: torch.Tensor


def check_top_p(p: float) -> float:
    p = float(p)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    return p


def nucleus_mask(
    probs: torch.Tensor, p: float, active: torch.Tensor | None = None, min_fraction: float = 0.0
) -> torch.Tensor:
    """Boolean mask of the cells kept by top-p selection, computed independently per frame.

    probs (N, H, W) (or (N, L)): per-frame distributions (0 on inactive cells); active: same shape,
    bool, or None (all cells active); min_fraction: keep floor ρ in [0, 1]. The selection is not
    differentiable (a hard mask).
    """
    return nucleus_select(probs, p, active, min_fraction).kept


def nucleus_select(
    probs: torch.Tensor, p: float, active: torch.Tensor | None = None, min_fraction: float = 0.0
) -> NucleusSelection:
    """:func:`nucleus_mask` plus, per frame, whether the keep floor decided it (see :class:`NucleusSelection`)."""
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction}")
    p = check_top_p(p)
    shape = probs.shape
    flat = probs.detach().flatten(1)
    active_flat = None if active is None else active.flatten(1)
    no_floor = torch.zeros(shape[0], dtype=torch.bool, device=probs.device)
    if p >= 1.0:
        keep = torch.ones_like(flat, dtype=torch.bool) if active_flat is None else active_flat.clone()
        return NucleusSelection(keep.reshape(shape), no_floor)
    if active_flat is not None:
        flat = flat.masked_fill(~active_flat, -1.0)  # inactive cells sort last and never count
    sorted_probs, order = torch.sort(flat, dim=-1, descending=True, stable=True)
    cumulative = torch.cumsum(sorted_probs.clamp_min(0), dim=-1)
    mass_before = torch.cat([torch.zeros_like(cumulative[:, :1]), cumulative[:, :-1]], dim=-1)
    keep_sorted = mass_before < p
    keep_sorted[:, 0] = True
    floor_decided = no_floor
    if min_fraction > 0:
        rank = torch.arange(flat.shape[1], device=flat.device)[None, :]
        if active_flat is None:
            n_active = torch.full((flat.shape[0], 1), flat.shape[1], device=flat.device)
        else:
            n_active = active_flat.sum(dim=1, keepdim=True)
        floor = torch.ceil(n_active.double() * min_fraction)
        by_nucleus = (keep_sorted & (rank < n_active)).sum(dim=1, keepdim=True)  # sorted: active cells first
        floor_decided = (floor > by_nucleus).squeeze(1)
        keep_sorted |= rank < floor
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    if active_flat is not None:
        keep &= active_flat
    return NucleusSelection(keep.reshape(shape), floor_decided)
