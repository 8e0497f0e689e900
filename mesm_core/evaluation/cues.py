"""Where MESM's attention lands on data with ground-truth cue masks (the synthetic set).

For each sparse block and modality: the share of attention mass and of kept cells inside the cue regions,
against chance (the cue regions' share of the grid) and against the cue share of the block's active cells
(``chance_active``). A grid cell counts as cue when at least half of the pixels (visual) / mel bins × frames
(audio) under it are cue (``majority``, the default, so chance ≈ the regions' area share), or with ``any`` when
at least one is. The cue masks are used for this report only.

Two baselines make the ratios honest:

* **a fixed map** per block: the mean attention over (a part of) the *training* split at the same p, scored on
  the evaluated split in the same units (``fixed_map_ratio``). An attention that only learned where cues tend
  to be, the same for every clip, reaches it; "looks per clip" is the difference.
* **per class** (single-label clips): the ratio, the fixed map's ratio and the ceiling 1 / chance (all mass on
  the cue), since classes with large cue regions cannot reach high ratios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

# The quantities themselves are defined once, in mesm_core.cues (the studio reports the same ones per clip).
from mesm_core.cues import CUE_CELL_RULE, CUE_CELL_RULES, CueRow, CueTally, cue_grid, record_cue_masks, tally_block
from mesm_core.evaluation.collector import split_batches
from mesm_core.families import E2E, has_split
from mesm_core.types import Batch, ClipRecord

__all__ = ["CUE_CELL_RULES", "CUE_CELL_RULE", "CueRow", "CueClassRow", "CueReport", "cue_grid", "cue_attention_report",
           "fixed_attention_maps"]


@dataclass
class CueClassRow:
    """One (modality, block, class) over the single-label items of that class."""

    modality: str
    block: int
    label: str
    row: CueRow

    @property
    def ceiling(self) -> float:
        """The largest possible ratio: all attention on the cue, 1 / chance."""
        return 1.0 / self.row.chance if self.row.chance > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality, "block": self.block, "class": self.label,
                "attention_ratio": self.row.attention_ratio, "fixed_map_ratio": self.row.fixed_map_ratio,
                "chance": self.row.chance, "ceiling": self.ceiling, "items": self.row.items,
                "attention_in_cue": self.row.attention_in_cue, "fixed_in_cue": self.row.fixed_in_cue}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CueClassRow":
        row = CueRow.from_dict({"modality": data["modality"], "block": data["block"], "grid": [0, 0],
                                "attention_in_cue": data.get("attention_in_cue"), "kept_in_cue": None,
                                "chance": data.get("chance"), "chance_active": None, "items": data.get("items", 0),
                                "fixed_in_cue": data.get("fixed_in_cue")})
        return cls(modality=data["modality"], block=int(data["block"]), label=data["class"], row=row)


@dataclass
class CueReport:
    split: str
    top_p: float
    rows: list[CueRow]
    cell_rule: str = CUE_CELL_RULE
    notes: list[str] = field(default_factory=list)
    per_class: list[CueClassRow] = field(default_factory=list)
    fixed_map_source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "top_p": self.top_p, "cell_rule": self.cell_rule,
                "rows": [row.to_dict() for row in self.rows], "notes": list(self.notes),
                "per_class": [row.to_dict() for row in self.per_class], "fixed_map_source": self.fixed_map_source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CueReport":
        return cls(split=data["split"], top_p=float(data["top_p"]), rows=[CueRow.from_dict(r) for r in data["rows"]],
                   cell_rule=data.get("cell_rule", CUE_CELL_RULE), notes=list(data.get("notes", [])),
                   per_class=[CueClassRow.from_dict(r) for r in data.get("per_class", [])],
                   fixed_map_source=data.get("fixed_map_source", ""))

    def row(self, modality: str, block: int) -> CueRow | None:
        return next((r for r in self.rows if r.modality == modality and r.block == block), None)

    def format_table(self) -> str:
        header = (f"{'modality':<8} {'block':>5} {'grid':>7}  {'attn in cue':>11} {'chance':>7} {'chance act.':>11} "
                  f"{'attn/chance':>11} {'fixed map':>9} {'enrich.':>7} {'kept/chance':>11} {'kept share':>10} "
                  f"{'floor':>6} {'items':>6}")
        lines = [header, "-" * len(header)]
        for r in self.rows:
            lines.append(
                f"{r.modality:<8} {r.block:>5} {r.grid[0]:>3}x{r.grid[1]:<3}  {r.attention_in_cue:11.1%} "
                f"{r.chance:7.1%} {r.chance_active:11.1%} {r.attention_ratio:11.2f} {r.fixed_map_ratio:9.2f} "
                f"{r.enrichment_active:7.2f} {r.kept_ratio:11.2f} {r.kept_share:10.1%} {r.floor_decided_share:6.0%} "
                f"{r.items:6d}"
            )
        if self.per_class:
            lines.append("\nper class (single-label items): attention/chance, fixed map/chance, ceiling 1/chance")
            for c in self.per_class:
                lines.append(f"{c.modality:<8} {c.block:>5} {c.label:>10}  {c.row.attention_ratio:6.2f} "
                             f"{c.row.fixed_map_ratio:6.2f} {c.ceiling:6.2f}  ({c.row.items} items)")
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
def fixed_attention_maps(model: nn.Module, data_dir: str | Path, split: str = "train", *, top_p: float | None = None,
                         device: str | torch.device = "cpu", batch_size: int = 16,
                         max_items: int | None = 240) -> dict[tuple[str, int], torch.Tensor]:
    """Per (modality, block): the mean attention map (H, W) over the frames/chunks of ``split`` at ``top_p``
    (0 on a frame's inactive cells, so blocks 2–3 average over what the earlier blocks kept). No labels or cue
    masks are read. ``max_items``: the first utterances of the split only (None: all)."""
    dataset = E2E.dataset(data_dir, split, model.config)
    p = float(model.config.top_p if top_p is None else top_p)
    sums: dict[tuple[str, int], torch.Tensor] = {}
    counts: dict[tuple[str, int], int] = {}
    seen = 0
    for records, batch in split_batches(model, dataset, batch_size):
        if max_items is not None and seen >= max_items:
            break
        seen += len(records)
        out = model(batch.to(device), top_p=p, return_trace=True)
        for modality, blocks in (out.trace or {}).items():
            for index, block in enumerate(blocks, start=1):
                key = (modality, index)
                sums[key] = sums.get(key, 0) + block.attention.sum(dim=0).cpu()
                counts[key] = counts.get(key, 0) + int(block.attention.shape[0])
    return {key: sums[key] / max(1, counts[key]) for key in sums}


def _single_labels(batch: Batch, modality: str) -> torch.Tensor:
    """Per frame/chunk of the batch: the class index of its utterance when it has exactly one label, else −1."""
    lengths = (batch.face_lengths if modality == "visual" else batch.chunk_lengths).cpu()
    if batch.labels is None:
        return torch.full((int(lengths.sum()),), -1, dtype=torch.long)
    labels = batch.labels.cpu()
    index = torch.where(labels.sum(dim=1) == 1, labels.argmax(dim=1), torch.full((len(labels),), -1))
    return torch.repeat_interleave(index.long(), lengths)


@torch.no_grad()
def _fixed_maps(model: nn.Module, data_dir: str | Path, split: str | None, items: int | None, p: float,
                device: str | torch.device, batch_size: int) -> tuple[dict[tuple[str, int], torch.Tensor], str]:
    """The fixed-map baseline of :func:`cue_attention_report` and the sentence naming it ({} and "" without one)."""
    if not split or not has_split(data_dir, split, model.config):
        return {}, ""
    fixed = fixed_attention_maps(model, data_dir, split, top_p=p, device=device, batch_size=batch_size, max_items=items)
    limit = "all" if items is None else f"the first {items}"
    return fixed, f"mean attention over {limit} utterances of the {split} split at p = {p:g}"


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
    fixed_map_split: str | None = "train",
    fixed_map_items: int | None = 240,
) -> CueReport | None:
    """Attention mass / kept cells inside the ground-truth cue regions per sparse block and modality, with the
    fixed-map baseline (the mean attention over the first ``fixed_map_items`` utterances of ``fixed_map_split``;
    None or a missing split: no baseline) and the per-class rows.

    Returns None when the split has no cue masks or the model is not MESM. Items (frames / chunks)
    whose grid has no cue cell are skipped (their chance is 0). ``max_items`` caps utterances.
    """
    if not getattr(model, "supports_top_p", False):
        return None
    dataset = E2E.dataset(data_dir, split, model.config)
    if len(dataset) == 0:
        return None
    first = dataset[0]
    if first.face_cues is None and first.mel_cues is None:
        return None
    p = float(model.config.top_p if top_p is None else top_p)
    notes = []
    fixed, source = _fixed_maps(model, data_dir, fixed_map_split, fixed_map_items, p, device, batch_size)
    tallies: dict[tuple, CueTally] = {}
    grids: dict[tuple[str, int], tuple[int, int]] = {}
    seen = 0
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
            classes = _single_labels(batch, modality)
            for index, block in enumerate(blocks, start=1):
                key = (modality, index)
                grids[key] = tuple(block.grid)
                fixed_map = fixed.get(key)
                tally = tallies.setdefault(key, CueTally())
                tally += tally_block(pixel_mask, block.attention, block.kept, block.active_in, tuple(block.grid),
                                     cell_rule, floor_decided=block.floor_decided, fixed_map=fixed_map)
                for c in classes.unique().tolist():
                    if c < 0:
                        continue
                    pick = classes == c
                    part = tally_block(pixel_mask[pick], block.attention[pick.to(block.attention.device)],
                                       block.kept[pick.to(block.kept.device)], block.active_in[pick.to(block.kept.device)],
                                       tuple(block.grid), cell_rule, fixed_map=fixed_map)
                    tallies.setdefault((modality, index, c), CueTally())
                    tallies[(modality, index, c)] += part
    rows = [CueRow.of(k[0], k[1], grids[k[:2]], t) for k, t in sorted(tallies.items(), key=lambda kv: str(kv[0]))
            if len(k) == 2 and t.items]
    rows.sort(key=lambda r: (r.modality, r.block))
    if not rows:
        return None
    classes = tuple(model.config.classes)
    per_class = [CueClassRow(k[0], k[1], classes[k[2]], CueRow.of(k[0], k[1], grids[k[:2]], t))
                 for k, t in sorted((kv for kv in tallies.items() if len(kv[0]) == 3), key=lambda kv: kv[0]) if t.items]
    rule_text = "at least half of the pixels under it are" if cell_rule == "majority" else "any pixel under it is"
    notes.append(f"a grid cell is cue when {rule_text} cue; frames/chunks without cue cells skipped")
    if source:
        notes.append(f"fixed map: the {source}, scored on each frame's active cells")
    return CueReport(split=split, top_p=p, rows=rows, cell_rule=cell_rule, notes=notes, per_class=per_class,
                     fixed_map_source=source)
