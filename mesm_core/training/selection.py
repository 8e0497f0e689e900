"""Training MESM's selection: the keep-rate schedule, the keep-band loss and distillation from a dense teacher.

All three are configured in :class:`~mesm_core.config.TrainConfig` and off by default (docs/training.md,
"Training the selection"). None of them sees a cue mask: they use the task loss, the model's own
attention and, for distillation, a teacher's predictions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mesm_core.config import RunConfig
from mesm_core.models.keep_gate import SaliencyTarget
from mesm_core.types import ModelOutput

__all__ = ["top_p_at", "saliency_at", "step_inputs", "keep_band_penalty", "distillation_loss", "teacher_saliency",
           "saliency_loss", "selection_losses"]


def top_p_at(cfg: RunConfig, step: int, steps_per_epoch: int) -> float:
    """The training p at optimizer step ``step`` (0-based): 1 during the warm-up, then a half-cosine
    from 1 down to ``model.top_p`` over the anneal, then ``model.top_p``; 1 on every
    ``dense_step_every``-th step."""
    target = cfg.model.top_p
    every = cfg.train.dense_step_every
    if every > 0 and (step + 1) % every == 0:
        return 1.0
    warmup = cfg.train.top_p_warmup_epochs * steps_per_epoch
    anneal = cfg.train.top_p_anneal_epochs * steps_per_epoch
    if step < warmup:
        return 1.0
    if anneal <= 0 or step >= warmup + anneal:
        return target
    progress = (step - warmup) / anneal
    return target + (1.0 - target) * 0.5 * (1.0 + math.cos(math.pi * progress))


def saliency_at(cfg: RunConfig, top_p: float | None) -> SaliencyTarget | None:
    """The saliency target to apply on a step trained at ``top_p`` (None: off on this step)."""
    train = cfg.train
    if train.saliency_weight <= 0 or top_p is None:
        return None
    if train.saliency_at == "dense" and top_p < 1.0:
        return None
    return SaliencyTarget(train.saliency_weight, train.saliency_power)


def step_inputs(cfg: RunConfig, step: int, steps_per_epoch: int) -> dict:
    """The keyword arguments of the model's forward on training step ``step``: MESM's scheduled p and saliency
    target; FE2E ``top_p=None, saliency=None``; nothing for a two-phase baseline (it has no selection)."""
    if cfg.is_baseline:
        return {}
    top_p = top_p_at(cfg, step, steps_per_epoch) if cfg.model.arch == "mesm" else None
    self_saliency = saliency_at(cfg, top_p) if cfg.train.saliency_source == "self" else None
    return {"top_p": top_p, "saliency": self_saliency}


def teacher_saliency(teacher: torch.nn.Module, batch, first_block: int, n_blocks: int,
                     power: float) -> dict[str, list[torch.Tensor]]:
    """Per modality and block, the dense teacher's saliency |Σ_c x_jc ∂L/∂x_jc|^γ (Grad × Input, L its BCE on the
    batch's labels) at the inputs of its VGG blocks ``first_block …`` (the cells MESM's sparse blocks select
    among): modality → [(N, H, W) per block], not normalised. The teacher's weights get no gradient."""
    inputs: dict[str, list[torch.Tensor]] = {m: [] for m in teacher.branches}
    handles = []
    for modality, branch in teacher.branches.items():
        for index in range(first_block, first_block + n_blocks):
            def hook(module, args, modality=modality, first=index == first_block):
                x = args[0].detach().requires_grad_() if first else args[0]
                if not first:
                    x.retain_grad()
                inputs[modality].append(x)
                return (x,)
            handles.append(branch.cnn.blocks[index].register_forward_pre_hook(hook))
    try:
        with torch.enable_grad():
            logits = teacher(batch).logits
            F.binary_cross_entropy_with_logits(logits.float(), batch.labels.float()).backward()
    finally:
        for handle in handles:
            handle.remove()
    return {m: [(x.detach() * x.grad).sum(dim=1).abs().pow(power) for x in xs] for m, xs in inputs.items()}


def saliency_loss(output: ModelOutput, targets: dict[str, list[torch.Tensor]]) -> torch.Tensor:
    """Mean over blocks and frames of CE(t, a): t the target over the block's active cells (normalised per
    frame; frames whose target is all zero skipped), a the student's attention."""
    terms = []
    for modality, blocks in output.selections.items():
        for state, target in zip(blocks, targets.get(modality, [])):
            active = state.active
            t = torch.where(active, target.to(state.log_probs.dtype), torch.zeros_like(target, dtype=state.log_probs.dtype))
            total = t.flatten(1).sum(dim=1)
            ok = total > 0
            if not bool(ok.any()):
                continue
            t = t[ok] / total[ok][:, None, None]
            log_a = torch.where(active[ok], state.log_probs[ok], torch.zeros_like(state.log_probs[ok]))
            terms.append(-(t * log_a).flatten(1).sum(dim=1).mean())
    if not terms:
        return torch.zeros((), device=output.logits.device)
    return torch.stack(terms).mean()


def _top_mass(probs: torch.Tensor, active: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mass of the ⌈fraction · N_active⌉ most probable cells of each frame: (N, L) → (N,)."""
    sorted_probs, _ = torch.sort(probs, dim=-1, descending=True)
    cumulative = torch.cumsum(sorted_probs, dim=-1)
    k = torch.ceil(active.sum(dim=-1).to(probs.dtype) * fraction).clamp(min=1).long()
    return cumulative.gather(1, (k - 1)[:, None]).squeeze(1)


def keep_band_penalty(output: ModelOutput, top_p: float, min_fraction: float, max_fraction: float) -> torch.Tensor:
    """mean over blocks, frames of relu(mass(top ⌈ρ_min N⌉) − p)² + relu(p − mass(top ⌈ρ_max N⌉))².

    The first term stops the nucleus at ``top_p`` from keeping fewer than ρ_min of a frame's active
    cells as the attention sharpens (a keep floor); the second stops it from keeping more than ρ_max
    (a budget that rewards concentrating the attention). Differentiable in the attention; 0 when both
    sides are off or the model has no selection (FE2E, eval mode).
    """
    terms = []
    for blocks in output.selections.values():
        for state in blocks:
            if state.log_probs.shape[0] == 0:
                continue
            probs = state.log_probs.exp().flatten(1).float()
            active = state.active.flatten(1)
            penalty = probs.new_zeros(probs.shape[0])
            if min_fraction > 0:
                penalty = penalty + F.relu(_top_mass(probs, active, min_fraction) - top_p).pow(2)
            if max_fraction < 1:
                penalty = penalty + F.relu(top_p - _top_mass(probs, active, max_fraction)).pow(2)
            terms.append(penalty.mean())
    if not terms:
        return torch.zeros((), device=output.logits.device)
    return torch.stack(terms).mean()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """BCE of the student's logits against the teacher's probabilities (multi-label), mean over classes."""
    return F.binary_cross_entropy_with_logits(student_logits.float(), torch.sigmoid(teacher_logits.float()))


def selection_losses(cfg: RunConfig, output: ModelOutput, teacher_logits: torch.Tensor | None,
                     saliency_targets: dict[str, list[torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
    """The configured auxiliary losses, already weighted: {"keep_band", "distill", "saliency"} (only those on).

    The keep band is measured at the deployed p (``model.top_p``) whatever p the step trains at."""
    train = cfg.train
    losses: dict[str, torch.Tensor] = {}
    if saliency_targets is not None and output.selections:
        losses["saliency"] = train.saliency_weight * saliency_loss(output, saliency_targets)
    if output.selections and (train.keep_min_fraction > 0 or train.keep_max_fraction < 1) and train.keep_band_weight > 0:
        losses["keep_band"] = train.keep_band_weight * keep_band_penalty(
            output, cfg.model.top_p, train.keep_min_fraction, train.keep_max_fraction
        )
    if teacher_logits is not None and train.distill_weight > 0:
        losses["distill"] = train.distill_weight * distillation_loss(output.logits, teacher_logits)
    return losses
