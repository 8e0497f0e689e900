"""What a fixed dense teacher says about every training clip, computed once before the first epoch.

The teacher (``--distill-from``, e.g. the FE2E a MESM starts from) never changes during a run and the training
clips have no augmentation, so its outputs are a property of each clip: its logits (for distillation) and its
Grad × Input saliency at the inputs of the VGG blocks MESM's sparse stage selects among (for the saliency
target). Computing them once costs one forward + backward pass of the teacher over the training split;
afterwards neither loss costs anything per step, so the saliency target can be taken at every p of every
step (``train.saliency_at=all``) and the distillation adds no forward pass.

The saliency maps are stored per frame/chunk normalised to sum 1 (the target is normalised per frame anyway,
so the power γ applied later is unaffected), in float16: 4 KB per face and per mel chunk at full size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

from mesm_core.training.selection import teacher_saliency
from mesm_core.types import Batch

__all__ = ["TeacherTargets"]


def _normalised(maps: torch.Tensor) -> torch.Tensor:
    """(N, H, W) → each map divided by its sum (all-zero maps stay zero), float16."""
    total = maps.flatten(1).sum(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
    return (maps.float() / total[:, None, None]).to(torch.float16)


@dataclass
class TeacherTargets:
    """Per training clip id: the teacher's logits (C,) and, per modality, its saliency maps [(F, H, W) per block]."""

    logits: dict[str, torch.Tensor] = field(default_factory=dict)
    saliency: dict[str, dict[str, list[torch.Tensor]]] = field(default_factory=dict)

    @classmethod
    def compute(cls, teacher: nn.Module, batches: Iterable[Batch], *, first_block: int, n_blocks: int,
                with_saliency: bool, device: torch.device | str = "cpu") -> "TeacherTargets":
        """Run the teacher (eval mode, its weights untouched) over ``batches`` once.

        ``first_block``/``n_blocks``: the teacher's VGG blocks whose inputs MESM's sparse blocks select among."""
        teacher.eval()
        out = cls()
        for batch in batches:
            batch = batch.to(device)
            if with_saliency:
                maps = teacher_saliency(teacher, batch, first_block, n_blocks, power=1.0)
                with torch.no_grad():
                    logits = teacher(batch).logits.float().cpu()
                out._store_saliency(batch, maps)
            else:
                with torch.no_grad():
                    logits = teacher(batch).logits.float().cpu()
            for clip_id, row in zip(batch.ids, logits):
                out.logits[clip_id] = row
        return out

    def _store_saliency(self, batch: Batch, maps: dict[str, list[torch.Tensor]]) -> None:
        lengths = {"visual": batch.face_lengths.tolist(), "audio": batch.chunk_lengths.tolist()}
        for modality, blocks in maps.items():
            per_block = [torch.split(_normalised(block.detach().cpu()), lengths[modality]) for block in blocks]
            for i, clip_id in enumerate(batch.ids):
                self.saliency.setdefault(clip_id, {})[modality] = [parts[i] for parts in per_block]

    def batch_logits(self, batch: Batch, device: torch.device | str) -> torch.Tensor:
        """(B, C) float32 teacher logits of the batch's clips, in batch order."""
        return torch.stack([self.logits[clip_id] for clip_id in batch.ids]).to(device)

    def batch_saliency(self, batch: Batch, power: float, device: torch.device | str) -> dict[str, list[torch.Tensor]]:
        """modality → [(N, H, W) per block] targets ∝ saliency^γ for the batch's frames/chunks, in batch order."""
        first = self.saliency[batch.ids[0]]
        out: dict[str, list[torch.Tensor]] = {}
        for modality, blocks in first.items():
            out[modality] = []
            for index in range(len(blocks)):
                maps = torch.cat([self.saliency[clip_id][modality][index] for clip_id in batch.ids]).float()
                out[modality].append((maps.pow(power) if power != 1.0 else maps).to(device))
        return out
