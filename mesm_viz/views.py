"""The studio's views of a prediction: FACS regions and table, the charts, the cost curve, numbers and lines.

Pure drawing: a :class:`~mesm_core.inference.Prediction` (and a frame index) in, Plotly dicts, SVG markup
and plain values out (the face and spectrogram figures are :mod:`mesm_viz.face_plots` and
:mod:`mesm_viz.mel_plot`; the report's PNGs :mod:`mesm_viz.report_figures`). The studio
(:mod:`mesm_viz.studio`) caches what these return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from mesm_core.cues import CueRow
from mesm_core.inference import Prediction, SweepPoint, format_flops
from mesm_core.types import ClipRecord
from mesm_viz import facs, figures
from mesm_viz.view_models import ClipView, Figure, FrameView, ModelInfo, PView

__all__ = ["BORDER_CELLS_NOTE", "ModelInfo", "ClipView", "FrameView", "PView", "FacsTable", "best_frame",
           "shown_class", "frame_regions", "facs_table", "probabilities_view", "caution", "numbers", "flops_line",
           "cost_curve_figure", "dense_cost_figure", "caption_flat", "mark_top_p", "cue_summary"]

# Why MESM's FLOPs stay below the dense count even when every cell is kept (docs/deviations.md, "Border cells").
BORDER_CELLS_NOTE = ("A submanifold 3×3 conv counts only active neighbours, so a border cell (fewer than 9 "
                     "neighbours inside the grid) costs less than the dense count, which charges all 9 padding "
                     "included: with every cell kept, MESM's feature extractor counts about 0.91 of dense.")


@dataclass
class FacsTable:
    """The FACS table of one frame and what the overlay needs to mark the prototype."""

    headers: list[str]
    rows: list[list[Any]]                 # per region: label, AUs, prototype marker, mass and kept per layer
    note: str                             # caption: which prototype is shown and why
    shown: str                            # the class whose prototype is marked
    proto_names: set[str]                 # names of the regions of that prototype


def best_frame(record: ClipRecord, among: np.ndarray | None = None) -> int:
    """The sampled frame with the most confident face (0 when none was detected, -1 when no frames).

    ``among``: bool (F,) frames to prefer (e.g. those showing a true cue); ignored when none qualifies.
    """
    if record.faces.shape[0] == 0:
        return -1
    probs = np.where(record.face_detected, record.face_probs, -1.0)
    if among is not None and np.asarray(among, bool).any():
        probs = np.where(np.asarray(among, bool), probs + 2.0, probs)
    return int(np.argmax(probs))


def shown_class(pred: Prediction) -> tuple[str, bool]:
    """The class whose FACS prototype is shown, and whether it is predicted: the most probable
    predicted class, else the most probable class."""
    if pred.predicted:
        return max(pred.predicted, key=lambda c: pred.probabilities[c]), True
    return max(pred.classes, key=lambda c: pred.probabilities[c]), False


def frame_regions(record: ClipRecord, frame: int, scale: int = 1) -> list[facs.Region]:
    """The FACS regions of one sampled frame's face crop, left/right merged, rasterised at
    ``scale`` × the crop size. The frame's landmarks place them; a frame without a detected face
    gets the template face. The one place regions are built from a record (views and report alike)."""
    size = int(record.faces.shape[1])
    marks = record.landmarks[frame] if bool(record.face_detected[frame]) else None
    return facs.merge_sides(facs.facs_regions(marks, size, raster_size=size * scale))


def facs_table(pred: Prediction, frame: int, stat_regions: Sequence[facs.Region] | None = None, *,
               legend_hint: bool = True) -> FacsTable:
    """Per region of one frame: its AUs, the prototype marker, and per sparse layer the attention mass
    inside it and its kept fraction; the caption says which prototype is marked and why (and, with
    ``legend_hint``, that the interactive overlay's legend shows the other regions)."""
    record = pred.record
    stat_regions = frame_regions(record, frame) if stat_regions is None else stat_regions
    blocks = pred.trace.get("visual", [])
    shown, above = shown_class(pred)
    proto = facs.prototype_for(shown)
    proto_names = {r.name for r in facs.prototype_regions(proto, stat_regions)} if proto else set()
    headers = ["region", "AUs", f"prototype ({shown})"]
    headers += [f"attention L{i}" for i in range(1, len(blocks) + 1)]
    headers += [f"kept L{i}" for i in range(1, len(blocks) + 1)]
    stats = [facs.region_stats(stat_regions, b.attention[frame], b.kept[frame]) for b in blocks]
    rows = []
    for r_index, region in enumerate(stat_regions):
        marker = "no FACS prototype" if not proto else ("★ typical, not ground truth" if region.name in proto_names else "")
        row = [region.label, " ".join(f"AU{a}" for a in region.aus), marker]
        row += [round(float(s[r_index]["attention_mass"] or 0.0), 3) for s in stats]
        row += [None if s[r_index]["kept_fraction"] is None else round(float(s[r_index]["kept_fraction"]), 2)
                for s in stats]
        rows.append(row)
    which = "predicted" if above else "most probable (below its threshold)"
    if proto:
        note = (f"Green: regions of the {proto.emotion} prototype AU {proto.notation} for the {which} class "
                f"**{shown}** — {proto.note}.")
        hint = " The other regions are in the legend: click one to show it."
    else:
        note = f"**{shown}** ({which}): {facs.label_mapping(shown).note}."
        hint = " The regions are in the legend: click one to show it."
    note += hint if legend_hint else ""
    if not bool(record.face_detected[frame]):
        note += " No face detected in this frame: regions use the template face on a centre crop."
    if not blocks:
        note += " Dense model (FE2E): no attention to show."
    return FacsTable(headers, rows, note, shown, proto_names)


def probabilities_view(pred: Prediction) -> tuple[dict[str, float], str, str]:
    """The label values, and the probabilities-and-thresholds and modality-contributions charts as SVG
    markup (:mod:`mesm_viz.svg_charts`: they change on every slider move, and SVG draws fast)."""
    from mesm_viz.svg_charts import contribution_bars, probability_bars

    classes = list(pred.classes)
    prob_svg = probability_bars(classes, [pred.probabilities[c] for c in classes],
                                [pred.thresholds[c] for c in classes],
                                title="Class probabilities and thresholds"
                                + ("" if pred.threshold_source == "checkpoint" else " (default 0.5)"))
    modality_svg = contribution_bars(classes, {m: [v[c] for c in classes] for m, v in pred.modality_logits.items()},
                                     pred.fusion_weights)
    return dict(pred.probabilities), prob_svg, modality_svg


def caution(pred: Prediction, min_seconds: float = 1.0) -> str:
    """A caution when the model saw very little of the clip (shorter than ``min_seconds``), else ""."""
    record = pred.record
    seconds = float(record.meta.duration_s or 0.0)
    if seconds >= min_seconds:
        return ""
    frames = int(record.faces.shape[0])
    chunks = -(-int(record.mel.shape[1]) // max(pred.chunk_frames, 1))
    return (f"Caution: the clip is {seconds * 1000:.0f} ms long, so the model saw {frames} face frame"
            f"{'s' * (frames != 1)} and {chunks} mel chunk{'s' * (chunks != 1)} (of 0.4 s, mostly padding). "
            "A prediction from this little is a guess, however confident it looks.")


def numbers(pred: Prediction, cue_rows: Sequence[CueRow] = (), rules: Sequence[Any] = (),
            keep_floor: bool = True) -> dict[str, Any]:
    """The machine-readable summary the API returns (``/analyze``, ``/set_top_p``); ``cues`` holds the
    per-layer rows of :func:`mesm_core.cues.clip_cue_rows` (empty for clips without known cues), ``rules``
    which rule set each sparse layer's masks (:class:`mesm_viz.floors.LayerRule`, empty without a floor)."""
    return {
        "top_p": pred.top_p,
        "arch": pred.arch,
        "flops_dense": float(pred.flops.dense),
        "flops_actual": float(pred.flops.actual),
        "flops_ratio": pred.flops_ratio,
        "kept_fraction": {m: [round(k, 4) for k in v] for m, v in pred.kept_fraction.items()},
        "kept_cells": {m: [int(b.kept.sum()) for b in blocks] for m, blocks in pred.trace.items()},
        "predicted": pred.predicted,
        "probabilities": {c: round(v, 4) for c, v in pred.probabilities.items()},
        "transcript": pred.transcript,
        "text_tokens": pred.text_coverage.to_dict() if pred.text_coverage is not None else None,
        "cues": [row.to_dict() for row in cue_rows],
        "keep_floor": keep_floor,
        "rules": [{"modality": r.modality, "layer": r.block, "rule": r.rule, "floor_decided": r.decided,
                   "items": r.items} for r in rules],
    }


def flops_line(pred: Prediction) -> str:
    """The FLOPs line of text: actual of dense at the current p, and the kept fraction per layer."""
    text = (f"**FLOPs: {format_flops(pred.flops.actual)} of {format_flops(pred.flops.dense)} dense "
            f"({pred.flops_ratio:.1%})**")
    if pred.top_p is not None:
        kept = ", ".join(f"{m} " + "/".join(f"{k:.0%}" for k in v) for m, v in pred.kept_fraction.items())
        text += (f" at p = {pred.top_p:.2f} · kept cells per layer: {kept} · even with every cell kept the sparse "
                 "layers count below dense: border cells, see the Cost tab")
    else:
        text += " · dense model (FE2E): top-p does not apply"
    return text


def cost_curve_figure(points: Sequence[SweepPoint]) -> dict:
    """The FLOPs/kept-vs-p figure (``figures.flops_vs_p_figure``) without a marker, as a plotly JSON dict:
    built once per clip, then :func:`mark_top_p` adds the current p in microseconds."""
    rows = [(p.top_p, p.flops_actual, p.flops_dense, p.mean_kept) for p in points]
    return figures.flops_vs_p_dict(rows, current_p=None)


def dense_cost_figure(pred: Prediction) -> Figure:
    """The Cost tab's p-curve panel for a dense model: a flat line and a caption saying why."""
    return figures.flat_cost_dict(float(pred.flops.dense))


def caption_flat(figure: Figure, flat_to: float | None, low: float, why: str) -> Figure:
    """A copy of a cost-curve figure with its flat part (p from ``low`` to ``flat_to``) shaded and captioned
    with ``why``; unchanged when nothing is flat."""
    if flat_to is None:
        return figure
    layout = dict(figure["layout"])
    layout["shapes"] = [*layout.get("shapes", ()), dict(type="rect", x0=low, x1=flat_to, y0=0, y1=1, yref="paper",
                                                         fillcolor="rgba(154,165,177,0.18)", line=dict(width=0),
                                                         layer="below")]
    layout["annotations"] = [*layout.get("annotations", ()), dict(
        x=(low + flat_to) / 2, y=0.5, yref="paper", text=why, showarrow=False, align="center",
        font=dict(size=11, color="#2d3142"), bgcolor="rgba(255,255,255,0.8)")]
    return {"data": figure["data"], "layout": layout}


def cue_summary(rows: Sequence[CueRow], top_p: float | None) -> tuple[Figure | None, str]:
    """The faithfulness figure (attention and kept cells inside the true cue against chance, per layer)
    and a one-line summary for people. (None, "") without rows."""
    if not rows:
        return None, ""
    best = max(rows, key=lambda r: r.attention_ratio if r.attention_ratio == r.attention_ratio else -1)
    line = (f"At p = {top_p:.2f}, the layer whose attention is most concentrated on the true cue is "
            f"{best.modality} L{best.block}: {best.attention_in_cue:.0%} of its attention against "
            f"{best.chance:.0%} by chance (×{best.attention_ratio:.1f}).") if top_p is not None else ""
    return figures.cue_dict(rows, top_p), line


def mark_top_p(figure: dict, top_p: float | None) -> dict:
    """A copy of a cost-curve figure dict with a vertical line and label at ``top_p`` (same marker as
    ``figures.flops_vs_p_figure(current_p=...)``)."""
    layout = dict(figure["layout"])
    if top_p is not None:
        layout["shapes"] = [*layout.get("shapes", ()), dict(type="line", x0=top_p, x1=top_p, y0=0, y1=1, yref="paper",
                                                             line=dict(color=figures.MARK_COLOR, width=2))]
        layout["annotations"] = [*layout.get("annotations", ()), dict(
            x=top_p, y=1, yref="paper", text=f"p = {top_p:g}", showarrow=False, yanchor="bottom",
            font=dict(color=figures.MARK_COLOR))]
    return {"data": figure["data"], "layout": layout}
