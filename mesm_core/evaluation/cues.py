"""Where MESM's attention lands on data with ground-truth cue masks (the synthetic set).

For each sparse block and modality: the share of attention mass and of kept cells inside the cue regions,
against chance (the cue regions' share of the grid). A grid cell counts as cue when at least half of the
pixels (visual) / mel bins × frames (audio) under it are cue (``majority``, the default, so chance ≈ the
regions' area share), or with ``any`` when at least one is. The cue masks are used for this report only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

# The quantities themselves are defined once, in mesm_core.cues (the studio reports the same ones per clip).
from mesm_core.cues import CUE_CELL_RULE, CUE_CELL_RULES, CueRow, CueTally, cue_grid, record_cue_masks, tally_block
from mesm_core.evaluation.collector import split_batches
from mesm_core.families import E2E
from mesm_core.types import Batch, ClipRecord

__all__ = ["CUE_CELL_RULES", "CUE_CELL_RULE", "CueRow", "CueReport", "cue_grid", "cue_attention_report"]


@dataclass
class CueReport:
    split: str
    top_p: float
    rows: list[CueRow]
    cell_rule: str = CUE_CELL_RULE
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "top_p": self.top_p, "cell_rule": self.cell_rule,
                "rows": [row.to_dict() for row in self.rows], "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CueReport":
        return cls(split=data["split"], top_p=float(data["top_p"]), rows=[CueRow.from_dict(r) for r in data["rows"]],
                   cell_rule=data.get("cell_rule", CUE_CELL_RULE), notes=list(data.get("notes", [])))

    def format_table(self) -> str:
        header = (f"{'modality':<8} {'block':>5} {'grid':>7}  {'attn in cue':>11} {'kept in cue':>11} "
                  f"{'chance':>7} {'attn/chance':>11} {'kept/chance':>11} {'kept share':>10} {'items':>6}")
        lines = [header, "-" * len(header)]
        for r in self.rows:
            lines.append(
                f"{r.modality:<8} {r.block:>5} {r.grid[0]:>3}x{r.grid[1]:<3}  {r.attention_in_cue:11.1%} "
                f"{r.kept_in_cue:11.1%} {r.chance:7.1%} {r.attention_ratio:11.2f} {r.kept_ratio:11.2f} "
                f"{r.kept_share:10.1%} {r.items:6d}"
            )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _batch_cues(records: list[ClipRecord], batch: Batch, chunk_frames: int) -> dict[str, torch.Tensor | None]:
    """Cue masks aligned with the batch's frames/chunks; None for a modality some record lacks a mask for."""
    per_record = [record_cue_masks(record, int(batch.face_lengths[i]), int(batch.chunk_lengths[i]), chunk_frames)
                  for i, record in enumerate(records)]
    out: dict[str, torch.Tensor | None] = {}
    for modality in ("visual", "audio"):
        masks = [m[modality] for m in per_record]
        out[modality] = None if not masks or any(m is None for m in masks) else torch.cat(masks)
    return out


@torch.no_grad()
def cue_attention_report(
    model: nn.Module,
    data_dir: str | Path,
    split: str = "test",
    *,
    top_p: float | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    max_items: int | None = None,
    cell_rule: str = CUE_CELL_RULE,
) -> CueReport | None:
    """Attention mass / kept cells inside the ground-truth cue regions per sparse block and modality.

    Returns None when the split has no cue masks or the model is not MESM. Items (frames / chunks)
    whose grid has no cue cell are skipped (their chance is 0). ``max_items`` caps utterances.
    """
    if model.config.arch != "mesm":
        return None
    dataset = E2E.dataset(data_dir, split, model.config)
    if len(dataset) == 0:
        return None
    first = dataset[0]
    if first.face_cues is None and first.mel_cues is None:
        return None
    p = float(model.config.top_p if top_p is None else top_p)
    tallies: dict[tuple[str, int], CueTally] = {}
    grids: dict[tuple[str, int], tuple[int, int]] = {}
    seen = 0
    notes = []
    for records, batch in split_batches(model, dataset, batch_size):
        if max_items is not None and seen >= max_items:
            break
        seen += len(records)
        cues = _batch_cues(records, batch, model.config.chunk_frames)
        out = model(batch.to(device), top_p=p, return_trace=True)
        for modality, blocks in (out.trace or {}).items():
            pixel_mask = cues.get(modality)
            if pixel_mask is None:
                continue
            for index, block in enumerate(blocks, start=1):
                key = (modality, index)
                grids[key] = tuple(block.grid)
                tally = tallies.setdefault(key, CueTally())
                tally += tally_block(pixel_mask, block.attention, block.kept, block.active_in, tuple(block.grid),
                                     cell_rule)
    rows = [CueRow.of(m, i, grids[(m, i)], t) for (m, i), t in sorted(tallies.items()) if t.items]
    if not rows:
        return None
    rule_text = "at least half of the pixels under it are" if cell_rule == "majority" else "any pixel under it is"
    notes.append(f"a grid cell is cue when {rule_text} cue; frames/chunks without cue cells skipped")
    return CueReport(split=split, top_p=p, rows=rows, cell_rule=cell_rule, notes=notes)
