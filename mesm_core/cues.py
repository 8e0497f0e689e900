"""Attention against ground-truth cue regions: the one definition of "attention mass and kept cells inside
the cue, against chance".

Clips with known cues (the synthetic dataset, ``mesm_core.data.synthetic``) carry pixel masks:
``record.face_cues`` (F, S, S) on the face crops and ``record.mel_cues`` (n_mels, T) on the mel
spectrogram. Each sparse block of MESM works on a grid of cells (24×24, 12×12, 6×6 on a face; 64×16,
32×8, 16×4 on a mel chunk); a cell counts as cue by :func:`cue_grid` (``majority``: at least half of
the pixels under it are cue, so chance ≈ the regions' area share; ``any``: at least one is).

Per block, over the frames/chunks that hold at least one cue cell (:class:`CueTally`):

* ``attention_in_cue`` = Σ attention on cue cells / Σ attention (each frame's attention sums to 1, so
  this is the mean share per frame),
* ``kept_in_cue`` = kept cue cells / kept cells (pooled),
* ``chance`` = the mean share of cue cells in the grid: what a uniform attention would put there;
* ``chance_active`` = the cue cells' share of the block's *active* input cells: for blocks 2–3, what a uniform
  attention over the cells the earlier blocks kept would put there (``attention_in_cue / chance_active`` is the
  block's own enrichment, not the one it inherits);
* ``fixed_map_ratio`` (when a fixed map is given): the same ratio for one fixed attention map shared by every
  clip (e.g. the mean attention over the training split), restricted to each frame's active cells. "Learned
  where to look, per clip" is ``attention_ratio − fixed_map_ratio``;
* ``floor_decided_share`` = the share of frames/chunks whose mask a keep floor set.

``python -m mesm_core.evaluate`` sums these over a split (:func:`tally_block` per batch) and the
studio over one clip (:func:`clip_cue_rows`, live with the slider), so both report the same quantity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mesm_core.types import ClipRecord

__all__ = ["CUE_CELL_RULES", "CUE_CELL_RULE", "cue_grid", "cue_cells", "CueTally", "tally_block", "CueRow",
           "record_cue_masks", "clip_cue_rows", "has_cues"]

CUE_CELL_RULES = ("majority", "any")
CUE_CELL_RULE = "majority"


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


def cue_cells(mask: np.ndarray, grid: tuple[int, int], rule: str = CUE_CELL_RULE) -> np.ndarray:
    """:func:`cue_grid` for numpy: bool (N, H_in, W_in) or (H_in, W_in) → bool (N, H, W) or (H, W)."""
    mask = np.asarray(mask, dtype=bool)
    single = mask.ndim == 2
    cells = cue_grid(torch.from_numpy(mask[None] if single else mask), tuple(grid), rule).numpy()
    return cells[0] if single else cells


@dataclass
class CueTally:
    """Sums over the frames/chunks of one sparse block of one modality (add tallies of several batches).

    The ``*_in``/``*_total``/``chance_sum``/``active*`` sums and ``items`` count only frames/chunks with
    at least one cue cell (elsewhere chance is 0 and the shares are undefined); ``kept_all`` and
    ``cells_all`` count every item (the kept share of the grid, cue or not).
    """

    attention_in: float = 0.0
    attention_total: float = 0.0
    kept_in: float = 0.0
    kept_total: float = 0.0
    chance_sum: float = 0.0
    active_cue: float = 0.0
    active: float = 0.0
    items: int = 0
    kept_all: float = 0.0
    cells_all: int = 0
    fixed_in: float = 0.0
    fixed_total: float = 0.0
    floor_frames: float = 0.0
    frames_all: int = 0

    def __iadd__(self, other: "CueTally") -> "CueTally":
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def attention_in_cue(self) -> float:
        return self.attention_in / self.attention_total if self.attention_total else math.nan

    @property
    def kept_in_cue(self) -> float:
        return self.kept_in / self.kept_total if self.kept_total else math.nan

    @property
    def chance(self) -> float:
        return self.chance_sum / self.items if self.items else math.nan

    @property
    def chance_active(self) -> float:
        return self.active_cue / self.active if self.active else math.nan

    @property
    def kept_share(self) -> float:
        return self.kept_all / self.cells_all if self.cells_all else math.nan

    @property
    def fixed_in_cue(self) -> float:
        return self.fixed_in / self.fixed_total if self.fixed_total else math.nan

    @property
    def floor_decided_share(self) -> float:
        return self.floor_frames / self.frames_all if self.frames_all else math.nan


def tally_block(pixel_mask: torch.Tensor | np.ndarray, attention: torch.Tensor | np.ndarray,
                kept: torch.Tensor | np.ndarray, active_in: torch.Tensor | np.ndarray, grid: tuple[int, int],
                rule: str = CUE_CELL_RULE, *, floor_decided: torch.Tensor | np.ndarray | None = None,
                fixed_map: torch.Tensor | np.ndarray | None = None) -> CueTally:
    """The sums of one sparse block over N frames/chunks.

    pixel_mask: bool (N, H_in, W_in) cue pixels aligned with the block's items; attention float (N, H, W);
    kept, active_in: bool (N, H, W) (numpy or torch, any device); floor_decided: bool (N,) frames whose mask a
    keep floor set; fixed_map: float (H, W), one attention map for every frame (scored on each frame's active
    cells, renormalised).
    """
    attention = torch.as_tensor(attention)
    device = attention.device
    kept = torch.as_tensor(kept, device=device).bool()
    active = torch.as_tensor(active_in, device=device).bool()
    cells = cue_grid(torch.as_tensor(pixel_mask).bool().cpu(), tuple(grid), rule).to(device)
    tally = CueTally(kept_all=float(kept.float().sum()), cells_all=int(kept.numel()), frames_all=int(kept.shape[0]))
    if floor_decided is not None:
        tally.floor_frames = float(torch.as_tensor(floor_decided).float().sum())
    has_cue = cells.flatten(1).any(dim=1)
    if not bool(has_cue.any()):
        return tally
    cells, attention = cells[has_cue], attention[has_cue].float()
    kept, active = kept[has_cue], active[has_cue]
    if fixed_map is not None:
        fixed = torch.as_tensor(fixed_map, device=device).float()[None] * active.float()
        fixed = fixed / fixed.flatten(1).sum(dim=1).clamp_min(torch.finfo(torch.float32).tiny)[:, None, None]
        tally.fixed_in = float((fixed * cells).sum())
        tally.fixed_total = float(fixed.sum())
    tally.attention_in = float((attention * cells).sum())
    tally.attention_total = float(attention.sum())
    tally.kept_in = float((kept & cells).sum())
    tally.kept_total = float(kept.sum())
    tally.chance_sum = float(cells.float().mean(dim=(1, 2)).sum())
    tally.active_cue = float((active & cells).sum())
    tally.active = float(active.sum())
    tally.items = int(has_cue.sum())
    return tally


@dataclass
class CueRow:
    """One sparse block of one modality: its shares inside the cue against chance."""

    modality: str
    block: int
    grid: tuple[int, int]
    attention_in_cue: float     # share of attention mass on cue cells (mean over items)
    kept_in_cue: float          # share of kept cells that are cue cells (pooled)
    chance: float               # cue cells' share of the grid (mean over items)
    chance_active: float        # cue cells' share of the block's active input cells (pooled)
    items: int
    kept_share: float = math.nan  # kept cells' share of the grid over ALL items (cue or not)
    fixed_in_cue: float = math.nan  # share of a fixed map's mass on cue cells (mean over items), when one was given
    floor_decided_share: float = math.nan  # share of ALL items whose mask a keep floor set

    @classmethod
    def of(cls, modality: str, block: int, grid: tuple[int, int], tally: CueTally) -> "CueRow":
        return cls(modality=modality, block=block, grid=tuple(grid), attention_in_cue=tally.attention_in_cue,
                   kept_in_cue=tally.kept_in_cue, chance=tally.chance, chance_active=tally.chance_active,
                   items=int(tally.items), kept_share=tally.kept_share, fixed_in_cue=tally.fixed_in_cue,
                   floor_decided_share=tally.floor_decided_share)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CueRow":
        """The inverse of :meth:`to_dict` (the ratios are derived again; a missing number is NaN)."""
        def number(key: str) -> float:
            value = data.get(key)
            return math.nan if value is None else float(value)

        return cls(modality=data["modality"], block=int(data["block"]), grid=tuple(data["grid"]),
                   attention_in_cue=number("attention_in_cue"), kept_in_cue=number("kept_in_cue"),
                   chance=number("chance"), chance_active=number("chance_active"), items=int(data["items"]),
                   kept_share=number("kept_share"), fixed_in_cue=number("fixed_in_cue"),
                   floor_decided_share=number("floor_decided_share"))

    @property
    def attention_ratio(self) -> float:
        return self.attention_in_cue / self.chance if self.chance > 0 else math.nan

    @property
    def kept_ratio(self) -> float:
        return self.kept_in_cue / self.chance if self.chance > 0 else math.nan

    @property
    def fixed_map_ratio(self) -> float:
        """A fixed map's cue mass ÷ chance: the same units as :attr:`attention_ratio`."""
        return self.fixed_in_cue / self.chance if self.chance > 0 else math.nan

    @property
    def enrichment_active(self) -> float:
        """Attention on the cue ÷ the cue share of the block's active cells: the block's own enrichment."""
        return self.attention_in_cue / self.chance_active if self.chance_active > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality, "block": self.block, "grid": list(self.grid),
            "attention_in_cue": self.attention_in_cue, "kept_in_cue": self.kept_in_cue,
            "chance": self.chance, "chance_active": self.chance_active,
            "attention_ratio": self.attention_ratio, "kept_ratio": self.kept_ratio, "items": self.items,
            "kept_share": self.kept_share, "enrichment_active": self.enrichment_active,
            "floor_decided_share": self.floor_decided_share,
            # only with a fixed-map baseline (the evaluation has one, a single clip does not)
            **({} if math.isnan(self.fixed_in_cue) else {"fixed_in_cue": self.fixed_in_cue,
                                                          "fixed_map_ratio": self.fixed_map_ratio}),
        }


def has_cues(record: ClipRecord) -> bool:
    """True when the record carries ground-truth cue masks (face or mel)."""
    return record.face_cues is not None or record.mel_cues is not None


def record_cue_masks(record: ClipRecord, n_faces: int, n_chunks: int,
                     chunk_frames: int) -> dict[str, torch.Tensor | None]:
    """The record's cue masks aligned with the model's items: ``"visual"`` bool (n_faces, S, S),
    ``"audio"`` bool (n_chunks, n_mels, chunk_frames) (the mel cut like ``mel_chunks`` cuts the mel);
    None for a modality the record has no (or too short a) mask for."""
    from mesm_core.data.audio import mel_chunks

    faces = chunks = None
    if record.face_cues is not None and len(record.face_cues) >= n_faces:
        faces = torch.as_tensor(np.asarray(record.face_cues[:n_faces], dtype=bool))
    if record.mel_cues is not None:
        cut = mel_chunks(np.asarray(record.mel_cues, dtype=np.float32), chunk_frames)[:, 0] > 0
        if len(cut) >= n_chunks:
            chunks = torch.as_tensor(cut[:n_chunks])
    return {"visual": faces, "audio": chunks}


def clip_cue_rows(record: ClipRecord, trace: Mapping[str, Sequence[Any]], chunk_frames: int,
                  rule: str = CUE_CELL_RULE) -> list[CueRow]:
    """Per sparse block of one clip: attention and kept cells inside the cue against chance.

    ``trace``: modality → blocks with ``attention``, ``kept``, ``active_in`` (N, H, W) and ``grid``
    (``mesm_core.inference.LayerTrace`` or the model's own trace). Empty without cue masks or trace;
    a block whose frames/chunks hold no cue cell has no row.
    """
    if not has_cues(record) or not trace:
        return []
    n_faces = len(trace["visual"][0].kept) if trace.get("visual") else 0
    n_chunks = len(trace["audio"][0].kept) if trace.get("audio") else 0
    masks = record_cue_masks(record, n_faces, n_chunks, chunk_frames)
    rows = []
    for modality, blocks in trace.items():
        mask = masks.get(modality)
        if mask is None:
            continue
        for index, block in enumerate(blocks, start=1):
            tally = tally_block(mask, block.attention, block.kept, block.active_in, tuple(block.grid), rule,
                                floor_decided=getattr(block, "floor_decided", None))
            if tally.items:
                rows.append(CueRow.of(modality, index, tuple(block.grid), tally))
    return rows
