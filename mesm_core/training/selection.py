"""Training MESM's selection: which p a step runs at, whether it carries the keep gate, and the auxiliary
losses on the attention (saliency target, keep ratio across p, keep band, distillation from a dense teacher).

All are configured in :class:`~mesm_core.config.TrainConfig` and off by default (docs/training.md,
"Training the selection"). None of them sees a cue mask: they use the task loss, the model's own
attention and, for the teacher options, a dense teacher's gradients and predictions on the batch's labels.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mesm_core.config import RunConfig
from mesm_core.models.registry import get_arch
from mesm_core.types import ModelOutput

__all__ = ["StepPlan", "top_p_at", "saliency_on", "plan_step", "keep_band_penalty", "keep_ratio_penalty",
           "attention_pool_loss", "distillation_loss", "teacher_saliency", "self_saliency", "saliency_loss",
           "selection_losses"]


def top_p_at(cfg: RunConfig, step: int, steps_per_epoch: int) -> float:
    """The training p at optimizer step ``step`` (0-based).

    1 on every ``dense_step_every``-th step and during the warm-up. Then, with ``top_p_sampling="fixed"``, a
    half-cosine from 1 down to ``model.top_p`` over the anneal and ``model.top_p`` after it; with
    ``"uniform"``, a p drawn uniformly from ``top_p_range`` (seeded by the run's seed and the step, so a resumed
    run draws the same p), which trains one checkpoint for the whole slider (SparseViT-style sampling)."""
    train = cfg.train
    target = cfg.model.top_p
    every = train.dense_step_every
    if every > 0 and (step + 1) % every == 0:
        return 1.0
    warmup = train.top_p_warmup_epochs * steps_per_epoch
    anneal = train.top_p_anneal_epochs * steps_per_epoch
    if step < warmup:
        return 1.0
    if train.top_p_sampling == "uniform":
        low, high = train.top_p_range
        return random.Random(train.seed * 1_000_003 + step).uniform(low, high)
    if anneal <= 0 or step >= warmup + anneal:
        return target
    progress = (step - warmup) / anneal
    return target + (1.0 - target) * 0.5 * (1.0 + math.cos(math.pi * progress))


def saliency_on(cfg: RunConfig, top_p: float | None) -> bool:
    """Whether a step trained at ``top_p`` gets the saliency loss (``saliency_at="dense"``: only at p = 1)."""
    train = cfg.train
    if train.saliency_weight <= 0 or top_p is None:
        return False
    return train.saliency_at == "all" or top_p >= 1.0


@dataclass(frozen=True)
class StepPlan:
    """What one training step does: the forward's keyword arguments and whether the self-saliency target is taken.

    ``inputs``: ``{"top_p", "straight_through"}`` for FE2E/MESM (FE2E ignores them), ``{}`` for a two-phase
    baseline. ``self_saliency``: read ∂L_task/∂gate after the forward (needs the gate on this step)."""

    inputs: dict
    self_saliency: bool = False
    teacher_saliency: bool = False

    @property
    def top_p(self) -> float | None:
        return self.inputs.get("top_p")


def plan_step(cfg: RunConfig, step: int, steps_per_epoch: int) -> StepPlan:
    """The :class:`StepPlan` of training step ``step``.

    The keep gate (``straight_through``) runs on every ``gate_every``-th step and on every step that takes the
    self-saliency target; the other steps run on ``model.sparse_backend`` (the fast paths) and the attention
    learns there only from the selection losses."""
    arch = get_arch(cfg.model.arch)
    if arch.family != "e2e":
        return StepPlan(inputs={})
    if not arch.supports_top_p:
        return StepPlan(inputs={"top_p": None})
    train = cfg.train
    top_p = top_p_at(cfg, step, steps_per_epoch)
    saliency = saliency_on(cfg, top_p)
    self_saliency = saliency and train.saliency_from == "self"
    gate = self_saliency or (train.gate_every > 0 and step % train.gate_every == 0)
    return StepPlan(inputs={"top_p": top_p, "straight_through": gate}, self_saliency=self_saliency,
                    teacher_saliency=saliency and train.saliency_from == "teacher")


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


def self_saliency(task_loss: torch.Tensor, output: ModelOutput, power: float) -> dict[str, list[torch.Tensor]]:
    """The model's own first-order keep effect from the task loss alone: |∂L_task/∂m_j|^γ per modality and block
    (modality → [(N, H, W)]), read with ``torch.autograd.grad`` before any auxiliary term joins the loss, so a
    deeper block's saliency loss cannot leak into a shallower block's target. Needs the keep gate on the step
    (``SelectionState.gate``); blocks without one are skipped."""
    pairs = [(m, i, state.gate) for m, blocks in output.selections.items() for i, state in enumerate(blocks)
             if state.gate is not None and state.gate.requires_grad]
    if not pairs:
        return {}
    grads = torch.autograd.grad(task_loss, [gate for _, _, gate in pairs], retain_graph=True, allow_unused=True)
    targets: dict[str, list[torch.Tensor]] = {m: [] for m, _, _ in pairs}
    for (m, _, gate), grad in zip(pairs, grads):
        g = torch.zeros_like(gate) if grad is None else grad.detach()
        targets[m].append(g.abs().pow(power) if power != 1.0 else g.abs())
    return targets


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


def keep_ratio_penalty(output: ModelOutput, ratios: dict[str, float], top_ps: tuple[float, ...],
                       power: float = 1.0, deep_power: float | None = None) -> torch.Tensor:
    """mean over modalities, blocks and p ∈ ``top_ps`` of (mean over frames of mass(top ⌈ρ_m · p^κ · N⌉) − p)².

    A budget the attention must earn at every p of the slider (a DynamicViT-style keep-ratio loss, made
    p-dependent): on average over a batch's frames, the nucleus at p should keep about ρ_m · p^κ (κ = ``power``)
    of a frame's active cells (κ = ``deep_power`` for the blocks after the first, which choose among cells the
    earlier blocks kept). It is an average over frames, so a frame with concentrated evidence may keep fewer cells and
    one with diffuse evidence more; the mask itself is still the paper's nucleus. ``ratios``: modality → ρ_m
    (modalities without one are free). Differentiable in the attention; 0 without selections (eval, FE2E)."""
    terms = []
    for modality, blocks in output.selections.items():
        rho = ratios.get(modality, 0.0)
        if rho <= 0:
            continue
        for index, state in enumerate(blocks):
            if state.log_probs.shape[0] == 0:
                continue
            probs = state.log_probs.exp().flatten(1).float()
            active = state.active.flatten(1)
            kappa = power if index == 0 or not deep_power else deep_power
            for p in top_ps:
                fraction = min(1.0, rho * p ** kappa)
                terms.append((_top_mass(probs, active, fraction).mean() - p).pow(2))
    if not terms:
        return torch.zeros((), device=output.logits.device)
    return torch.stack(terms).mean()


def attention_pool_loss(output: ModelOutput, labels: torch.Tensor, lengths: dict[str, torch.Tensor]) -> torch.Tensor:
    """mean over modalities and blocks of BCE(mean over an utterance's frames of the block's attention-pooled logits,
    labels): the attention is rewarded for putting its mass on the cells that tell the classes apart (attention-based
    MIL pooling, Ilse et al. 2018). ``lengths``: modality → frames/chunks per utterance (B,)."""
    terms = []
    for modality, blocks in output.selections.items():
        count = lengths[modality].to(labels.device)
        utterance = torch.repeat_interleave(torch.arange(len(count), device=labels.device), count)
        have = count > 0
        for state in blocks:
            if state.pooled_logits is None or state.pooled_logits.shape[0] == 0:
                continue
            logits = state.pooled_logits.float()
            summed = logits.new_zeros(len(count), logits.shape[1]).index_add_(0, utterance, logits)
            mean = summed[have] / count[have, None].to(logits.dtype)
            terms.append(F.binary_cross_entropy_with_logits(mean, labels[have].float()))
    if not terms:
        return torch.zeros((), device=labels.device)
    return torch.stack(terms).mean()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """BCE of the student's logits against the teacher's probabilities (multi-label), mean over classes."""
    return F.binary_cross_entropy_with_logits(student_logits.float(), torch.sigmoid(teacher_logits.float()))


def selection_losses(cfg: RunConfig, output: ModelOutput, teacher_logits: torch.Tensor | None,
                     saliency_targets: dict[str, list[torch.Tensor]] | None = None, batch=None) -> dict[str, torch.Tensor]:
    """The configured auxiliary losses, already weighted: {"saliency", "keep_ratio", "keep_band", "distill"} (only
    those on). λ of the saliency loss means the same for either source: λ · mean over blocks of the CE.

    The keep band is measured at the deployed p (``model.top_p``) whatever p the step trains at; the keep
    ratio at every p of ``train.keep_ratio_top_p``."""
    train = cfg.train
    losses: dict[str, torch.Tensor] = {}
    if saliency_targets and output.selections:
        losses["saliency"] = train.saliency_weight * saliency_loss(output, saliency_targets)
    ratios = {"audio": train.keep_ratio_audio, "visual": train.keep_ratio_visual}
    if output.selections and train.keep_ratio_weight > 0 and any(r > 0 for r in ratios.values()):
        losses["keep_ratio"] = train.keep_ratio_weight * keep_ratio_penalty(
            output, ratios, tuple(train.keep_ratio_top_p), train.keep_ratio_power, train.keep_ratio_deep_power)
    if output.selections and (train.keep_min_fraction > 0 or train.keep_max_fraction < 1) and train.keep_band_weight > 0:
        losses["keep_band"] = train.keep_band_weight * keep_band_penalty(
            output, cfg.model.top_p, train.keep_min_fraction, train.keep_max_fraction
        )
    if batch is not None and output.selections and train.attention_pool_weight > 0:
        lengths = {"visual": batch.face_lengths, "audio": batch.chunk_lengths}
        losses["attention_pool"] = train.attention_pool_weight * attention_pool_loss(output, batch.labels, lengths)
    if teacher_logits is not None and train.distill_weight > 0:
        losses["distill"] = train.distill_weight * distillation_loss(output.logits, teacher_logits)
    return losses
