"""Which rule set each sparse layer's mask: the nucleus (top-p, the paper's rule) or the keep floor.

A checkpoint may keep at least a share ρ of every frame's (chunk's) cells in each sparse layer
(``ModelConfig.min_keep_visual`` / ``min_keep_audio``, a floor added in training, not in the paper). Where
the nucleus at p keeps fewer cells than that, the floor decides the mask and moving the slider changes
nothing there. Everything here is read from the checkpoint's config and the prediction's trace (the
``floor_decided`` of a layer when the core records it, else recomputed from the layer's attention), never
assumed: a checkpoint without floors gets no floor text at all.

Also the accuracy cost of the paper's rule (floors off), as a checkpoint records it in
``floors_off.json`` (written by ``python -m mesm_viz.floor_cost``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from mesm_core.inference import Prediction

__all__ = ["FLOORS_OFF_FILE", "MODALITY_WORDS", "LayerRule", "FloorReport", "FloorsOffCost", "checkpoint_floors",
           "floor_decided", "layer_rules", "floor_ranges", "flat_cost_range", "floor_report", "range_text", "read_floors_off"]

FLOORS_OFF_FILE = "floors_off.json"
MODALITY_WORDS = {"visual": ("face", "frames"), "audio": ("audio", "mel chunks")}
_MODALITIES = ("visual", "audio")


def checkpoint_floors(config) -> dict[str, float]:
    """modality → keep floor ρ of a model config (0 where there is none; {} for a dense model such as FE2E)."""
    from mesm_core.models.registry import get_arch

    if not get_arch(config.arch).supports_top_p:
        return {}
    return {m: float(getattr(config, f"min_keep_{m}", 0.0) or 0.0) for m in _MODALITIES}


def floor_decided(layer, top_p: float | None, floor: float) -> np.ndarray:
    """bool (N,): the frames/chunks of one sparse layer whose mask the floor set (it kept more cells than
    the nucleus alone would have at ``top_p``). Read from ``layer.floor_decided`` when the trace has it."""
    recorded = getattr(layer, "floor_decided", None)
    n = int(layer.kept.shape[0])
    if recorded is not None:
        return np.asarray(recorded, dtype=bool).reshape(n)
    if floor <= 0 or top_p is None or top_p >= 1.0 or n == 0:
        return np.zeros(n, dtype=bool)
    import torch

    from mesm_core.models.nucleus import nucleus_mask

    by_p = nucleus_mask(torch.from_numpy(np.ascontiguousarray(layer.attention)), float(top_p),
                        torch.from_numpy(np.ascontiguousarray(layer.active_in)))
    return layer.kept.reshape(n, -1).sum(1) > by_p.numpy().reshape(n, -1).sum(1)


@dataclass(frozen=True)
class LayerRule:
    """Who set one sparse layer's masks at one p: the floor decided ``decided`` of ``items`` frames/chunks."""

    modality: str
    block: int
    decided: int
    items: int
    floor: float

    @property
    def rule(self) -> str:
        """"floor" when the floor set most masks, "nucleus" otherwise."""
        return "floor" if self.items and 2 * self.decided > self.items else "nucleus"


def layer_rules(pred: Prediction, floors: Mapping[str, float]) -> list[LayerRule]:
    """One :class:`LayerRule` per sparse layer and modality at the prediction's p (empty for FE2E)."""
    rules = []
    for modality in _MODALITIES:
        for index, layer in enumerate(pred.trace.get(modality, []), start=1):
            active = layer.active_in.reshape(layer.active_in.shape[0], -1).any(1)
            decided = floor_decided(layer, pred.top_p, floors.get(modality, 0.0)) & active
            rules.append(LayerRule(modality, index, int(decided.sum()), int(active.sum()), floors.get(modality, 0.0)))
    return rules


def floor_ranges(by_p: Mapping[float, Prediction], floors: Mapping[str, float]) -> dict[tuple[str, int], float]:
    """(modality, layer) → the highest p of the sweep up to which the floor decides that layer (for most of
    its frames) at every swept p from the lowest one on. Layers the floor never decides are left out."""
    ranges: dict[tuple[str, int], float] = {}
    open_layers: set[tuple[str, int]] | None = None
    for p in sorted(by_p):
        bound = {(r.modality, r.block) for r in layer_rules(by_p[p], floors) if r.rule == "floor"}
        open_layers = bound if open_layers is None else open_layers & bound
        for key in open_layers:
            ranges[key] = p
    return ranges


def flat_cost_range(points: Sequence[tuple[float, float, float]], tolerance: float = 0.01) -> float | None:
    """The highest p up to which the cost curve stays flat from its lowest p (actual FLOPs within
    ``tolerance`` × dense of the lowest p's), or None when it rises at once.

    points: ``(p, flops_actual, flops_dense)``.
    """
    ordered = sorted(points)
    if len(ordered) < 2:
        return None
    base, dense = ordered[0][1], ordered[0][2] or 1.0
    flat_to = None
    for p, actual, _ in ordered[1:]:
        if abs(actual - base) > tolerance * dense:
            break
        flat_to = p
    return flat_to


def _layers(blocks: Sequence[int]) -> str:
    blocks = sorted(blocks)
    if len(blocks) > 1 and blocks == list(range(blocks[0], blocks[-1] + 1)):
        return f"layers {blocks[0]}–{blocks[-1]}"
    return ("layer " if len(blocks) == 1 else "layers ") + ", ".join(str(b) for b in blocks)


@dataclass(frozen=True)
class FloorReport:
    """The floor in the user's words: a headline for the status area and a per-layer table."""

    text: str                 # markdown: which layers, which p range, what to do
    rules: tuple[LayerRule, ...]
    binding: bool             # the floor sets most masks of at least one layer at this p

    def table(self) -> str:
        """Per layer and modality: which rule decided, and in how many frames/chunks."""
        if not self.rules:
            return ""
        blocks = sorted({r.block for r in self.rules})
        by = {(r.modality, r.block): r for r in self.rules}
        mods = [m for m in _MODALITIES if any(r.modality == m for r in self.rules)]
        head = "| layer | " + " | ".join(f"{MODALITY_WORDS[m][0]}: rule (where the floor decided)" for m in mods) + " |"
        lines = [head, "|---|" + "---|" * len(mods)]
        for b in blocks:
            cells = []
            for m in mods:
                r = by.get((m, b))
                cells.append("—" if r is None else f"{'**floor**' if r.rule == 'floor' else 'nucleus'} "
                                                  f"({r.decided} of {r.items} {MODALITY_WORDS[m][1]})")
            lines.append(f"| L{b} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def floor_report(pred: Prediction, floors: Mapping[str, float], keep_floor: bool = True) -> FloorReport | None:
    """The floor explained for one prediction: None when the checkpoint has no floor (or FE2E).

    ``keep_floor=False``: the paper's rule is on (the floors were switched off).
    """
    if pred.top_p is None or not any(v > 0 for v in floors.values()):
        return None
    shares = " and ".join(f"{floors[m]:.0%} of each {MODALITY_WORDS[m][0]} {'frame' if m == 'visual' else 'chunk'}'s "
                          "cells" for m in _MODALITIES if floors.get(m, 0) > 0)
    if not keep_floor:
        return FloorReport(f"**Paper's rule:** the nucleus alone sets every mask (this checkpoint's keep floors, "
                           f"{shares}, are switched off).", (), False)
    rules = tuple(layer_rules(pred, floors))
    bound = [r for r in rules if r.rule == "floor"]
    parts = [f"**Keep floor.** This checkpoint keeps at least {shares} in every sparse layer, a floor added in "
             "training (not in the paper)."]
    if bound:
        now = "; ".join(f"{MODALITY_WORDS[m][0]} {_layers([r.block for r in bound if r.modality == m])}"
                        for m in _MODALITIES if any(r.modality == m for r in bound))
        parts.append(f"At p = {pred.top_p:g} the floor, not p, set the masks of {now}: moving p there changes "
                     "nothing until it passes the floor. Tick **Paper's rule (floors off)** to see the nucleus alone.")
    else:
        parts.append(f"At p = {pred.top_p:g} the nucleus set every mask (the floor keeps fewer cells).")
    return FloorReport(" ".join(parts), rules, bool(bound))


def range_text(ranges: Mapping[tuple[str, int], float], flat_to: float | None = None) -> str:
    """Which layers the floor fixes over which p range (from a sweep, :func:`floor_ranges`), in words; and
    where the cost curve is flat because of it. "" when the floor fixes nothing."""
    spans = []
    for m in _MODALITIES:
        by_limit: dict[float, list[int]] = {}
        for (modality, block), limit in ranges.items():
            if modality == m:
                by_limit.setdefault(limit, []).append(block)
        for limit, blocks in sorted(by_limit.items(), reverse=True):
            spans.append(f"{MODALITY_WORDS[m][0]} {_layers(blocks)} for p ≤ {limit:g}")
    if not spans:
        return ""
    text = "**Over the slider** (every position, run once for this clip) the keep floor fixes " + ", ".join(spans)
    text += ": moving p inside those ranges changes nothing in those layers."
    if flat_to is not None:
        text += f" The cost curve is flat up to p = {flat_to:g} for the same reason (Cost tab)."
    return text


@dataclass(frozen=True)
class FloorsOffCost:
    """What switching the floors off costs in accuracy, as measured over a split (``floors_off.json``)."""

    split: str
    dataset: str
    rows: tuple[tuple[float, float, float], ...]   # (p, macro-F1 with floors, macro-F1 floors off)

    def at(self, top_p: float) -> tuple[float, float, float] | None:
        """The row at the swept p nearest ``top_p``."""
        return min(self.rows, key=lambda r: abs(r[0] - top_p)) if self.rows else None

    def sentence(self, top_p: float | None) -> str:
        row = self.at(top_p if top_p is not None else 0.5)
        if row is None:
            return ""
        p, with_floor, without = row
        return (f"Accuracy cost on the {self.dataset} {self.split} split at p = {p:g}: macro-F1 "
                f"{100 * without:.1f} with the paper's rule against {100 * with_floor:.1f} with the floors "
                f"({100 * (without - with_floor):+.1f} points; `{FLOORS_OFF_FILE}`).")


def read_floors_off(checkpoint: str | os.PathLike | None) -> FloorsOffCost | None:
    """The checkpoint's ``floors_off.json`` (None when it has none, it is unreadable, or it was measured on
    other weights than the checkpoint's own: its ``weights_sha1`` is checked)."""
    if not checkpoint:
        return None
    path = Path(checkpoint) / FLOORS_OFF_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = tuple((float(r["top_p"]), float(r["f1_floors"]), float(r["f1_floors_off"])) for r in data["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    from mesm_core.io import file_sha1

    weights = Path(checkpoint) / "model.safetensors"
    if not weights.is_file() or data.get("weights_sha1") != file_sha1(weights):
        return None   # measured on other weights (the checkpoint was retrained since): not this one's cost
    return FloorsOffCost(split=str(data.get("split", "test")), dataset=str(data.get("dataset", "")), rows=rows)
