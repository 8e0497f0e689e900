"""Where MESM's attention lands on data with ground-truth cue masks (the synthetic set).

For each sparse block and modality: the share of attention mass and of kept cells inside the cue regions,
against chance (the cue regions' share of the grid). A grid cell counts as cue when at least half of the
pixels (visual) / mel bins × frames (audio) under it are cue (``majority``, the default, so chance ≈ the
regions' area share), or with ``any`` when at least one is. The cue masks are used for this report only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mesm_core.evaluation.collector import split_batches
from mesm_core.families import E2E
from mesm_core.types import Batch, ClipRecord

__all__ = ["CUE_CELL_RULES", "CUE_CELL_RULE", "CueRow", "CueReport", "cue_grid", "cue_attention_report"]

CUE_CELL_RULES = ("majority", "any")
CUE_CELL_RULE = "majority"


@dataclass
class CueRow:
    modality: str
    block: int
    grid: tuple[int, int]
    attention_in_cue: float     # share of attention mass on cue cells (mean over items)
    kept_in_cue: float          # share of kept cells that are cue cells (pooled)
    chance: float               # cue cells' share of the grid (mean over items)
    chance_active: float        # cue cells' share of the block's active input cells (pooled)
    items: int
    kept_share: float = math.nan  # kept cells' share of the grid over ALL items of the split (cue or not)

    @property
    def attention_ratio(self) -> float:
        return self.attention_in_cue / self.chance if self.chance > 0 else math.nan

    @property
    def kept_ratio(self) -> float:
        return self.kept_in_cue / self.chance if self.chance > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality, "block": self.block, "grid": list(self.grid),
            "attention_in_cue": self.attention_in_cue, "kept_in_cue": self.kept_in_cue,
            "chance": self.chance, "chance_active": self.chance_active,
            "attention_ratio": self.attention_ratio, "kept_ratio": self.kept_ratio, "items": self.items,
            "kept_share": self.kept_share,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CueRow":
        """The inverse of :meth:`to_dict` (the ratios are derived again; a missing number is NaN)."""
        def number(key: str) -> float:
            value = data.get(key)
            return math.nan if value is None else float(value)

        return cls(modality=data["modality"], block=int(data["block"]), grid=tuple(data["grid"]),
                   attention_in_cue=number("attention_in_cue"), kept_in_cue=number("kept_in_cue"),
                   chance=number("chance"), chance_active=number("chance_active"), items=int(data["items"]),
                   kept_share=number("kept_share"))


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


def cue_grid(mask: torch.Tensor, grid: tuple[int, int], rule: str = CUE_CELL_RULE) -> torch.Tensor:
    """bool (N, H_in, W_in) pixel mask → bool (N, H, W) cue cells.

    ``majority``: at least half of the pixels under the cell are cue; ``any``: at least one is.
    """
    if rule not in CUE_CELL_RULES:
        raise ValueError(f"unknown cue cell rule {rule!r} (choose {', '.join(CUE_CELL_RULES)})")
    if mask.shape[0] == 0:
        return torch.zeros(0, *grid, dtype=torch.bool)
    if rule == "any":
        return F.adaptive_max_pool2d(mask.float()[:, None], grid)[:, 0] > 0
    return F.adaptive_avg_pool2d(mask.float()[:, None], grid)[:, 0] >= 0.5


def _record_cues(records: list[ClipRecord], batch: Batch, chunk_frames: int) -> dict[str, torch.Tensor | None]:
    """Cue masks aligned with the batch's frames/chunks, or None when a record lacks them."""
    from mesm_core.data.audio import mel_chunks

    faces, chunks = [], []
    for i, record in enumerate(records):
        n_faces = int(batch.face_lengths[i])
        n_chunks = int(batch.chunk_lengths[i])
        if faces is not None:
            if record.face_cues is None or len(record.face_cues) < n_faces:
                faces = None
            else:
                faces.append(torch.as_tensor(np.asarray(record.face_cues[:n_faces], dtype=bool)))
        if chunks is not None:
            if record.mel_cues is None:
                chunks = None
            else:
                cut = mel_chunks(np.asarray(record.mel_cues, dtype=np.float32), chunk_frames)[:, 0] > 0
                if len(cut) < n_chunks:
                    chunks = None
                else:
                    chunks.append(torch.as_tensor(cut[:n_chunks]))
    return {
        "visual": torch.cat(faces) if faces else None,
        "audio": torch.cat(chunks) if chunks else None,
    }


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
    sums: dict[tuple[str, int], dict[str, float]] = {}
    grids: dict[tuple[str, int], tuple[int, int]] = {}
    kept_shares: dict[tuple[str, int], list] = {}
    seen = 0
    notes = []
    for records, batch in split_batches(model, dataset, batch_size):
        if max_items is not None and seen >= max_items:
            break
        seen += len(records)
        cues = _record_cues(records, batch, model.config.chunk_frames)
        out = model(batch.to(device), top_p=p, return_trace=True)
        for modality, blocks in (out.trace or {}).items():
            pixel_mask = cues.get(modality)
            if pixel_mask is None:
                continue
            for index, block in enumerate(blocks, start=1):
                share = kept_shares.setdefault((modality, index), [0.0, 0])
                share[0] += float(block.kept.float().sum())
                share[1] += block.kept.numel()
                cells = cue_grid(pixel_mask, tuple(block.grid), cell_rule).to(block.attention.device)
                has_cue = cells.flatten(1).any(dim=1)
                if not bool(has_cue.any()):
                    continue
                cells, attention = cells[has_cue], block.attention[has_cue].float()
                kept, active = block.kept[has_cue], block.active_in[has_cue]
                key = (modality, index)
                grids[key] = tuple(block.grid)
                slot = sums.setdefault(key, dict(att=0.0, att_total=0.0, kept=0.0, kept_total=0.0,
                                                 chance=0.0, active_cue=0.0, active=0.0, items=0))
                slot["att"] += float((attention * cells).sum())
                slot["att_total"] += float(attention.sum())
                slot["kept"] += float((kept & cells).sum())
                slot["kept_total"] += float(kept.sum())
                slot["chance"] += float(cells.float().mean(dim=(1, 2)).sum())
                slot["active_cue"] += float((active & cells).sum())
                slot["active"] += float(active.sum())
                slot["items"] += int(has_cue.sum())
    if not sums:
        return None
    rows = []
    for (modality, index), s in sorted(sums.items()):
        rows.append(CueRow(
            modality=modality, block=index, grid=grids[(modality, index)],
            attention_in_cue=s["att"] / s["att_total"] if s["att_total"] else math.nan,
            kept_in_cue=s["kept"] / s["kept_total"] if s["kept_total"] else math.nan,
            chance=s["chance"] / s["items"], chance_active=s["active_cue"] / s["active"] if s["active"] else math.nan,
            items=int(s["items"]),
            kept_share=kept_shares[(modality, index)][0] / max(1, kept_shares[(modality, index)][1]),
        ))
    rule_text = "at least half of the pixels under it are" if cell_rule == "majority" else "any pixel under it is"
    notes.append(f"a grid cell is cue when {rule_text} cue; frames/chunks without cue cells skipped")
    return CueReport(split=split, top_p=p, rows=rows, cell_rule=cell_rule, notes=notes)
