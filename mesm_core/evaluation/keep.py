"""What MESM's selection kept, per sparse block, over a split: the numbers behind "the slider moves the masks".

Per modality and block, summed over every frame/chunk of a split at one p (no labels and no cue masks):

* ``kept_share``: kept cells / cells of the block's grid (the share of the grid the block computes),
* ``kept_of_active``: kept cells / the block's active input cells (what this block's own nucleus chose),
* ``floor_decided_share``: the share of frames/chunks whose mask a keep floor set (it kept more cells than the
  nucleus alone would; ``mesm_core.models.nucleus.nucleus_select``). Where it is high, p does not move the mask.

``python -m mesm_core.evaluate`` reports them at the evaluated p and at every p of a sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["KeepTally", "BlockKeep", "tally_trace", "keep_rows", "merge_tallies"]


@dataclass
class KeepTally:
    """Sums over the frames/chunks of one sparse block of one modality (add tallies of several batches)."""

    kept: float = 0.0
    cells: float = 0.0
    active: float = 0.0
    floor_frames: float = 0.0
    frames: int = 0

    def __iadd__(self, other: "KeepTally") -> "KeepTally":
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


@dataclass(frozen=True)
class BlockKeep:
    """One sparse block of one modality over a split: see the module docstring."""

    modality: str
    block: int
    kept_share: float
    kept_of_active: float
    floor_decided_share: float
    frames: int

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality, "block": self.block, "kept_share": self.kept_share,
                "kept_of_active": self.kept_of_active, "floor_decided_share": self.floor_decided_share,
                "frames": self.frames}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BlockKeep":
        def number(key: str) -> float:
            value = data.get(key)
            return math.nan if value is None else float(value)

        return cls(modality=data["modality"], block=int(data["block"]), kept_share=number("kept_share"),
                   kept_of_active=number("kept_of_active"), floor_decided_share=number("floor_decided_share"),
                   frames=int(data.get("frames", 0)))


def tally_trace(trace: Mapping[str, Sequence[Any]] | None) -> dict[tuple[str, int], KeepTally]:
    """Tallies of one batch's trace (modality → per-block ``SparseBlockTrace``), keyed (modality, block 1…)."""
    out: dict[tuple[str, int], KeepTally] = {}
    for modality, blocks in (trace or {}).items():
        for index, block in enumerate(blocks, start=1):
            floor = block.floor_decided
            out[(modality, index)] = KeepTally(
                kept=float(block.kept.sum()), cells=float(block.kept.numel()), active=float(block.active_in.sum()),
                floor_frames=0.0 if floor is None else float(floor.sum()), frames=int(block.kept.shape[0]))
    return out


def merge_tallies(parts: Iterable[Mapping[tuple[str, int], KeepTally]]) -> dict[tuple[str, int], KeepTally]:
    """Sum several tallies (batches, DDP ranks) key by key."""
    total: dict[tuple[str, int], KeepTally] = {}
    for part in parts:
        for key, tally in part.items():
            total.setdefault(key, KeepTally())
            total[key] += tally
    return total


def keep_rows(tallies: Mapping[tuple[str, int], KeepTally]) -> list[BlockKeep]:
    """One :class:`BlockKeep` per (modality, block), sorted (audio before visual, block 1 first)."""
    rows = []
    for (modality, block), t in sorted(tallies.items()):
        rows.append(BlockKeep(
            modality=modality, block=block, kept_share=t.kept / t.cells if t.cells else math.nan,
            kept_of_active=t.kept / t.active if t.active else math.nan,
            floor_decided_share=t.floor_frames / t.frames if t.frames else math.nan, frames=t.frames))
    return rows
