"""Plotly figures for the app: FLOPs per layer, FLOPs/kept fraction against p, class probabilities,
modality contributions, the cue figure and a mel-spectrogram heatmap.

Every figure is built as a plain plotly JSON dict (``*_dict``: what the page's plotly.js reads, built in
microseconds and sent small) and offered as a ``plotly.graph_objects.Figure`` too (``*_figure``: the same
dict, validated, for notebooks and tests). Inputs are plain numbers / numpy arrays (torch CPU tensors work
via ``np.asarray``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from mesm_core.cues import CueRow
from mesm_core.metrics import above_threshold
from mesm_core.types import FlopsReport
from mesm_viz.spectrogram import frame_times, mel_to_db

__all__ = [
    "LIGHT_TEMPLATE",
    "class_probabilities_dict",
    "class_probabilities_figure",
    "cue_dict",
    "cue_figure",
    "flat_cost_dict",
    "flat_cost_figure",
    "flops_bar_dict",
    "flops_bar_figure",
    "flops_vs_p_dict",
    "flops_vs_p_figure",
    "mel_figure",
    "modality_contributions_dict",
    "modality_contributions_figure",
]

# The look of plotly's "plotly_white", spelled out: a named template would be copied whole (about 7 KB)
# into every figure sent to the page.
_AXIS = dict(gridcolor="#EBF0F8", zerolinecolor="#EBF0F8", linecolor="#EBF0F8", automargin=True)
LIGHT_TEMPLATE = dict(layout=dict(paper_bgcolor="white", plot_bgcolor="white", font=dict(color="#2a3f5f"),
                                  xaxis=_AXIS, yaxis=_AXIS, hoverlabel=dict(align="left")))
_LAYOUT = dict(template=LIGHT_TEMPLATE, margin=dict(l=50, r=20, t=40, b=40), height=320)
DENSE_COLOR, ACTUAL_COLOR, KEPT_COLOR, MARK_COLOR = "#9aa5b1", "#e4572e", "#17becf", "#2d3142"
MODALITY_COLORS = {"text": "#4c78a8", "audio": "#f58518", "visual": "#54a24b"}


def _giga(x: float) -> float:
    return float(x) / 1e9


def _list(values, digits: int = 6) -> list:
    """Numbers for the wire: a plain list, rounded."""
    return [round(float(v), digits) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _title(text: str) -> dict:
    return dict(text=text, font=dict(size=14))


def flops_bar_dict(report: FlopsReport, *, title: str = "Feature-extraction FLOPs per layer") -> dict:
    """Grouped bars, dense vs actual GFLOPs for every layer of ``report.layers``, grouped by modality.

    The x axis is two-level (modality, layer name); the title shows the total and the saving.
    """
    if not report.layers:
        raise ValueError("FlopsReport has no per-layer rows to plot")
    x = [[row.modality for row in report.layers], [row.name for row in report.layers]]
    kept = [(row.actual / row.dense) if row.dense > 0 else 1.0 for row in report.layers]
    saving = 1.0 - report.actual / report.dense if report.dense > 0 else 0.0
    data = [
        dict(type="bar", x=x, y=_list([_giga(r.dense) for r in report.layers]), name="dense", marker=dict(color=DENSE_COLOR),
             hovertemplate="%{x}<br>dense %{y:.3f} GFLOPs<extra></extra>"),
        dict(type="bar", x=x, y=_list([_giga(r.actual) for r in report.layers]), name="actual",
             marker=dict(color=ACTUAL_COLOR), customdata=[[round(k, 4)] for k in kept],
             hovertemplate="%{x}<br>actual %{y:.3f} GFLOPs (%{customdata[0]:.0%} of dense)<extra></extra>"),
    ]
    layout = dict(barmode="group", yaxis=dict(title=dict(text="GFLOPs")),
                  legend=dict(orientation="h", y=1.12, x=1, xanchor="right"),
                  title=_title(f"{title}<br><sup>total {_giga(report.actual):.3f} of {_giga(report.dense):.3f} GFLOPs "
                               f"({saving:.0%} saved)</sup>"), **_LAYOUT)
    return {"data": data, "layout": layout}


def flops_vs_p_dict(
    rows: Sequence[tuple[float, float, float, float]],
    current_p: float | None = None,
    *,
    title: str = "Cost against the nucleus threshold p",
) -> dict:
    """Actual (and dense) GFLOPs and the kept fraction against top-p, with the current p marked.

    rows: ``(p, flops_actual, flops_dense, kept_fraction)`` per sampled p (any order; sorted here).
    The kept fraction (0..1) uses the right-hand axis. ``current_p`` draws a vertical line.
    """
    data = np.asarray(rows, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != 4 or len(data) == 0:
        raise ValueError(
            f"rows must be a non-empty list of (p, flops_actual, flops_dense, kept_fraction), got shape {data.shape}"
        )
    data = data[np.argsort(data[:, 0])]
    p, actual, dense, kept = data.T
    traces = [
        dict(type="scatter", x=_list(p), y=_list(actual / 1e9), mode="lines+markers", name="actual GFLOPs",
             line=dict(color=ACTUAL_COLOR)),
        dict(type="scatter", x=_list(p), y=_list(dense / 1e9), mode="lines", name="dense GFLOPs",
             line=dict(color=DENSE_COLOR, dash="dash")),
        dict(type="scatter", x=_list(p), y=_list(kept), mode="lines+markers", name="kept fraction", yaxis="y2",
             line=dict(color=KEPT_COLOR, dash="dot")),
    ]
    layout = dict(title=_title(title), xaxis=dict(title=dict(text="top-p")),
                  yaxis=dict(title=dict(text="GFLOPs"), rangemode="tozero"),
                  yaxis2=dict(title=dict(text="kept fraction"), overlaying="y", side="right", range=[0, 1.05],
                              tickformat=".0%", showgrid=False),
                  legend=dict(orientation="h", y=-0.25), shapes=[], annotations=[], **_LAYOUT)
    if current_p is not None:
        layout["shapes"].append(dict(type="line", x0=current_p, x1=current_p, y0=0, y1=1, yref="paper",
                                     line=dict(color=MARK_COLOR, width=2)))
        layout["annotations"].append(dict(x=current_p, y=1, yref="paper", text=f"p = {current_p:g}", showarrow=False,
                                          yanchor="bottom", font=dict(color=MARK_COLOR)))
    return {"data": traces, "layout": layout}


def class_probabilities_dict(
    classes: Sequence[str],
    probabilities: Sequence[float] | np.ndarray,
    thresholds: Sequence[float] | np.ndarray | float | None = None,
    *,
    labels: Sequence[str] | None = None,
    title: str = "Class probabilities",
) -> dict:
    """Bars of per-class probabilities (sigmoid outputs, multi-label) with decision thresholds marked.

    thresholds: one per class, a single number for all, or ``None``. Bars above their threshold
    (strictly, ``mesm_core.metrics.above_threshold``) are highlighted. ``labels``: optional ground-truth
    class names, marked with a star. Each threshold is a dark line on a white halo, visible on a grey
    bar, a predicted (orange) bar and the background alike.
    """
    probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if len(classes) != len(probs):
        raise ValueError(f"{len(classes)} classes but {len(probs)} probabilities")
    if thresholds is not None:
        thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), probs.shape)
        colours = [ACTUAL_COLOR if above else DENSE_COLOR for above in above_threshold(probs, thr)]
    else:
        thr, colours = None, [ACTUAL_COLOR] * len(probs)
    names = [f"{c} ★" if labels and c in labels else str(c) for c in classes]
    data = [dict(type="bar", x=names, y=_list(probs), name="probability", marker=dict(color=colours),
                 hovertemplate="%{x}: %{y:.3f}<extra></extra>")]
    if thr is not None:
        data.append(dict(type="scatter", x=names, y=_list(thr), mode="markers", name="threshold halo",
                         showlegend=False, hoverinfo="skip",
                         marker=dict(symbol="line-ew-open", size=34, color="white", line=dict(width=7, color="white"))))
        data.append(dict(type="scatter", x=names, y=_list(thr), mode="markers", name="threshold",
                         marker=dict(symbol="line-ew-open", size=30, color=MARK_COLOR, line=dict(width=3, color=MARK_COLOR)),
                         hovertemplate="%{x} threshold %{y:.2f}<extra></extra>"))
    layout = dict(title=_title(title), yaxis=dict(range=[0, 1.02], title=dict(text="probability")),
                  showlegend=thr is not None, legend=dict(orientation="h", y=1.12, x=1, xanchor="right"), **_LAYOUT)
    return {"data": data, "layout": layout}


def modality_contributions_dict(
    classes: Sequence[str],
    modality_logits: Mapping[str, Sequence[float] | np.ndarray],
    fusion_weights: Sequence[float] | np.ndarray | Mapping[str, float],
    *,
    title: str = "Modality contributions to the fused logits",
) -> dict:
    """Per class, stacked bars of ``fusion_weight[m] × logit[m]`` for each modality m, plus the fused sum.

    modality_logits: ``{modality: (C,)}`` for ONE utterance (in the model's fusion order).
    fusion_weights:  ``(M,)`` in the order of ``modality_logits`` or ``{modality: weight}``. Weights are
    unconstrained (may be negative; docs/models.md, "FE2E"), so bars stack relative to zero.
    """
    names = list(modality_logits)
    if isinstance(fusion_weights, Mapping):
        weights = np.array([float(fusion_weights[m]) for m in names])
    else:
        weights = np.asarray(fusion_weights, dtype=np.float64).reshape(-1)
    if len(weights) != len(names):
        raise ValueError(f"{len(weights)} fusion weights for {len(names)} modalities {names}")
    data = []
    total = np.zeros(len(classes))
    for weight, name in zip(weights, names):
        logits = np.asarray(modality_logits[name], dtype=np.float64).reshape(-1)
        if len(logits) != len(classes):
            raise ValueError(f"modality {name!r}: {len(logits)} logits for {len(classes)} classes")
        part = weight * logits
        total += part
        data.append(dict(type="bar", x=list(classes), y=_list(part), name=f"{name} (w={weight:.2f})",
                         marker=dict(color=MODALITY_COLORS.get(name)), hovertemplate=f"{name}: %{{y:.3f}}<extra></extra>"))
    data.append(dict(type="scatter", x=list(classes), y=_list(total), mode="markers", name="fused logit",
                     marker=dict(symbol="diamond", size=10, color=MARK_COLOR)))
    layout = dict(barmode="relative", title=_title(title), yaxis=dict(title=dict(text="logit")),
                  legend=dict(orientation="h", y=-0.2), **_LAYOUT)
    return {"data": data, "layout": layout}


def flat_cost_dict(flops_dense: float, *, title: str = "Cost against the nucleus threshold p") -> dict:
    """The cost curve of a dense model (FE2E): the same GFLOPs at every p, with a caption saying why."""
    p = np.round(np.arange(1, 11) / 10, 1)
    data = [dict(type="scatter", x=_list(p), y=[round(flops_dense / 1e9, 6)] * len(p), mode="lines",
                 name="dense GFLOPs", line=dict(color=DENSE_COLOR, dash="dash"))]
    note = dict(x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, align="center",
                text=f"FE2E is dense: it computes every cell of every layer,<br>so its cost does not depend "
                     f"on p ({_giga(flops_dense):.3f} GFLOPs per clip).<br>Pick a MESM checkpoint to see "
                     "the cost fall with p.", bgcolor="rgba(255,255,255,0.85)")
    layout = dict(title=_title(title), xaxis=dict(title=dict(text="top-p")),
                  yaxis=dict(title=dict(text="GFLOPs"), rangemode="tozero"), showlegend=False, annotations=[note],
                  **_LAYOUT)
    return {"data": data, "layout": layout}


def cue_dict(rows: Sequence[CueRow], top_p: float | None) -> dict:
    """Per sparse layer and modality: the share of attention mass and of kept cells inside the true cue
    region, against chance (the cue cells' share of the grid) — the quantity ``python -m
    mesm_core.evaluate`` reports over a split (``mesm_core.cues``), here for one clip."""
    labels = [f"{r.modality} L{r.block}<br>{r.grid[0]}×{r.grid[1]}" for r in rows]
    data = []
    for name, values, colour in (
        ("attention in cue", [r.attention_in_cue for r in rows], "#d62728"),
        ("kept cells in cue", [r.kept_in_cue for r in rows], KEPT_COLOR),
        ("chance (cue share of the grid)", [r.chance for r in rows], DENSE_COLOR),
    ):
        ratios = [v / r.chance if r.chance > 0 else None for v, r in zip(values, rows)]
        data.append(dict(type="bar", x=labels, y=_list([100 * v for v in values], 4), name=name, marker=dict(color=colour),
                         customdata=[[None if q is None else round(q, 4), r.items] for q, r in zip(ratios, rows)],
                         hovertemplate="%{x}<br>" + name + ": %{y:.1f}% (×%{customdata[0]:.2f} chance)"
                                       "<br>over %{customdata[1]} frames/chunks with a cue<extra></extra>"))
    where = "" if top_p is None else f" at p = {top_p:.2f}"
    layout = dict(barmode="group", yaxis=dict(title=dict(text="% inside the true cue"), rangemode="tozero"),
                  title=_title(f"Attention on the true cue region vs chance{where}"),
                  legend=dict(orientation="h", y=-0.28), **dict(_LAYOUT, height=360))
    return {"data": data, "layout": layout}


def flops_bar_figure(report: FlopsReport, **kwargs) -> go.Figure:
    """:func:`flops_bar_dict` as a ``go.Figure``."""
    return go.Figure(flops_bar_dict(report, **kwargs))


def flops_vs_p_figure(rows: Sequence[tuple[float, float, float, float]], current_p: float | None = None,
                      **kwargs) -> go.Figure:
    """:func:`flops_vs_p_dict` as a ``go.Figure``."""
    return go.Figure(flops_vs_p_dict(rows, current_p, **kwargs))


def class_probabilities_figure(classes: Sequence[str], probabilities, thresholds=None, **kwargs) -> go.Figure:
    """:func:`class_probabilities_dict` as a ``go.Figure``."""
    return go.Figure(class_probabilities_dict(classes, probabilities, thresholds, **kwargs))


def modality_contributions_figure(classes: Sequence[str], modality_logits, fusion_weights, **kwargs) -> go.Figure:
    """:func:`modality_contributions_dict` as a ``go.Figure``."""
    return go.Figure(modality_contributions_dict(classes, modality_logits, fusion_weights, **kwargs))


def flat_cost_figure(flops_dense: float, **kwargs) -> go.Figure:
    """:func:`flat_cost_dict` as a ``go.Figure``."""
    return go.Figure(flat_cost_dict(flops_dense, **kwargs))


def cue_figure(rows: Sequence[CueRow], top_p: float | None) -> go.Figure:
    """:func:`cue_dict` as a ``go.Figure``."""
    return go.Figure(cue_dict(rows, top_p))


def mel_figure(
    mel: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    sample_rate: int = 16000,
    hop_length: int = 200,
    top_db: float = 80.0,
    is_db: bool = False,
    title: str = "Mel spectrogram",
) -> go.Figure:
    """Heatmap of a mel spectrogram in dB (low mel bins at the bottom, time in seconds).

    mel:  ``(n_mels, T)`` natural order (row 0 = lowest mel bin); power unless ``is_db``.
    mask: optional ``(n_mels, T)`` bool (e.g. from ``chunk_masks_to_mel``) drawn as a contour line
          around the kept cells.
    """
    db = np.asarray(mel, dtype=np.float32) if is_db else mel_to_db(mel, top_db=top_db)
    if db.ndim != 2:
        raise ValueError(f"mel must have shape (n_mels, T), got {db.shape}")
    times = frame_times(db.shape[1], hop_length, sample_rate)
    bins = np.arange(db.shape[0])
    fig = go.Figure()
    fig.add_heatmap(z=db, x=times, y=bins, colorscale="Magma", colorbar=dict(title="dB", thickness=12),
                    hovertemplate="t=%{x:.2f}s mel=%{y}<br>%{z:.1f} dB<extra></extra>")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != db.shape or mask.dtype != np.bool_:
            raise ValueError(f"mask must be bool with the mel's shape {db.shape}, got {mask.dtype} {mask.shape}")
        fig.add_contour(z=mask.astype(np.float32), x=times, y=bins, showscale=False, name="kept",
                        contours=dict(start=0.5, end=0.5, size=1, coloring="lines"),
                        line=dict(color=KEPT_COLOR, width=2), hoverinfo="skip")
    fig.update_layout(title=dict(text=title, font=dict(size=14)), xaxis_title="time (s)", yaxis_title="mel bin",
                      **_LAYOUT)
    return fig
