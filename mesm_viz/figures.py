"""Plotly figures for the app: FLOPs per layer, FLOPs/kept fraction against p, class probabilities,
modality contributions and a mel-spectrogram heatmap.

Every function takes plain numbers / numpy arrays (torch CPU tensors work too via ``np.asarray``) and
returns a ``plotly.graph_objects.Figure``. They build a handful of traces and no subplots machinery, so
they are cheap enough to rebuild on every slider move.
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
    "class_probabilities_figure",
    "cue_figure",
    "flat_cost_figure",
    "flops_bar_figure",
    "flops_vs_p_figure",
    "mel_figure",
    "modality_contributions_figure",
]

_LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=40, b=40), height=320)
DENSE_COLOR, ACTUAL_COLOR, KEPT_COLOR, MARK_COLOR = "#9aa5b1", "#e4572e", "#17becf", "#2d3142"
MODALITY_COLORS = {"text": "#4c78a8", "audio": "#f58518", "visual": "#54a24b"}


def _giga(x: float) -> float:
    return float(x) / 1e9


def flops_bar_figure(report: FlopsReport, *, title: str = "Feature-extraction FLOPs per layer") -> go.Figure:
    """Grouped bars, dense vs actual GFLOPs for every layer of ``report.layers``, grouped by modality.

    The x axis is two-level (modality, layer name); the title shows the total and the saving.
    """
    if not report.layers:
        raise ValueError("FlopsReport has no per-layer rows to plot")
    x = [[row.modality for row in report.layers], [row.name for row in report.layers]]
    kept = [(row.actual / row.dense) if row.dense > 0 else 1.0 for row in report.layers]
    fig = go.Figure()
    fig.add_bar(x=x, y=[_giga(r.dense) for r in report.layers], name="dense", marker_color=DENSE_COLOR,
                hovertemplate="%{x}<br>dense %{y:.3f} GFLOPs<extra></extra>")
    fig.add_bar(x=x, y=[_giga(r.actual) for r in report.layers], name="actual", marker_color=ACTUAL_COLOR,
                customdata=np.array(kept)[:, None],
                hovertemplate="%{x}<br>actual %{y:.3f} GFLOPs (%{customdata[0]:.0%} of dense)<extra></extra>")
    saving = 1.0 - report.actual / report.dense if report.dense > 0 else 0.0
    fig.update_layout(
        barmode="group", yaxis_title="GFLOPs", legend=dict(orientation="h", y=1.12, x=1, xanchor="right"),
        title=dict(text=f"{title}<br><sup>total {_giga(report.actual):.3f} of {_giga(report.dense):.3f} GFLOPs "
                        f"({saving:.0%} saved)</sup>", font=dict(size=14)),
        **_LAYOUT,
    )
    return fig


def flops_vs_p_figure(
    rows: Sequence[tuple[float, float, float, float]],
    current_p: float | None = None,
    *,
    title: str = "Cost against the nucleus threshold p",
) -> go.Figure:
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
    fig = go.Figure()
    fig.add_scatter(x=p, y=actual / 1e9, mode="lines+markers", name="actual GFLOPs", line_color=ACTUAL_COLOR)
    fig.add_scatter(x=p, y=dense / 1e9, mode="lines", name="dense GFLOPs", line=dict(color=DENSE_COLOR, dash="dash"))
    fig.add_scatter(x=p, y=kept, mode="lines+markers", name="kept fraction", yaxis="y2",
                    line=dict(color=KEPT_COLOR, dash="dot"))
    if current_p is not None:
        fig.add_shape(type="line", x0=current_p, x1=current_p, y0=0, y1=1, yref="paper",
                      line=dict(color=MARK_COLOR, width=2))
        fig.add_annotation(x=current_p, y=1, yref="paper", text=f"p = {current_p:g}", showarrow=False,
                           yanchor="bottom", font=dict(color=MARK_COLOR))
    fig.update_layout(
        title=dict(text=title, font=dict(size=14)), xaxis_title="top-p",
        yaxis=dict(title="GFLOPs", rangemode="tozero"),
        yaxis2=dict(title="kept fraction", overlaying="y", side="right", range=[0, 1.05], tickformat=".0%",
                    showgrid=False),
        legend=dict(orientation="h", y=-0.25), **_LAYOUT,
    )
    return fig


def class_probabilities_figure(
    classes: Sequence[str],
    probabilities: Sequence[float] | np.ndarray,
    thresholds: Sequence[float] | np.ndarray | float | None = None,
    *,
    labels: Sequence[str] | None = None,
    title: str = "Class probabilities",
) -> go.Figure:
    """Bars of per-class probabilities (sigmoid outputs, multi-label) with decision thresholds marked.

    thresholds: one per class, a single number for all, or ``None``. Bars above their threshold
    (strictly, ``mesm_core.metrics.above_threshold``) are highlighted. ``labels``: optional ground-truth
    class names, marked with a star.
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
    fig = go.Figure()
    fig.add_bar(x=names, y=probs, name="probability", marker_color=colours,
                hovertemplate="%{x}: %{y:.3f}<extra></extra>")
    if thr is not None:
        fig.add_scatter(x=names, y=thr, mode="markers", name="threshold",
                        marker=dict(symbol="line-ew-open", size=28, line=dict(width=3, color=MARK_COLOR)),
                        hovertemplate="%{x} threshold %{y:.2f}<extra></extra>")
    fig.update_layout(title=dict(text=title, font=dict(size=14)), yaxis=dict(range=[0, 1.02], title="probability"),
                      showlegend=thr is not None, legend=dict(orientation="h", y=1.12, x=1, xanchor="right"),
                      **_LAYOUT)
    return fig


def modality_contributions_figure(
    classes: Sequence[str],
    modality_logits: Mapping[str, Sequence[float] | np.ndarray],
    fusion_weights: Sequence[float] | np.ndarray | Mapping[str, float],
    *,
    title: str = "Modality contributions to the fused logits",
) -> go.Figure:
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
    fig = go.Figure()
    total = np.zeros(len(classes))
    for weight, name in zip(weights, names):
        logits = np.asarray(modality_logits[name], dtype=np.float64).reshape(-1)
        if len(logits) != len(classes):
            raise ValueError(f"modality {name!r}: {len(logits)} logits for {len(classes)} classes")
        part = weight * logits
        total += part
        fig.add_bar(x=list(classes), y=part, name=f"{name} (w={weight:.2f})",
                    marker_color=MODALITY_COLORS.get(name),
                    hovertemplate=f"{name}: %{{y:.3f}}<extra></extra>")
    fig.add_scatter(x=list(classes), y=total, mode="markers", name="fused logit",
                    marker=dict(symbol="diamond", size=10, color=MARK_COLOR))
    fig.update_layout(barmode="relative", title=dict(text=title, font=dict(size=14)), yaxis_title="logit",
                      legend=dict(orientation="h", y=-0.2), **_LAYOUT)
    return fig


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


def flat_cost_figure(flops_dense: float, *, title: str = "Cost against the nucleus threshold p") -> go.Figure:
    """The cost curve of a dense model (FE2E): the same GFLOPs at every p, with a caption saying why."""
    p = np.round(np.arange(1, 11) / 10, 1)
    fig = go.Figure()
    fig.add_scatter(x=p, y=np.full(len(p), flops_dense / 1e9), mode="lines", name="dense GFLOPs",
                    line=dict(color=DENSE_COLOR, dash="dash"))
    fig.add_annotation(x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, align="center",
                       text=f"FE2E is dense: it computes every cell of every layer,<br>so its cost does not depend "
                            f"on p ({_giga(flops_dense):.3f} GFLOPs per clip).<br>Pick a MESM checkpoint to see "
                            "the cost fall with p.", bgcolor="rgba(255,255,255,0.85)")
    fig.update_layout(title=dict(text=title, font=dict(size=14)), xaxis_title="top-p",
                      yaxis=dict(title="GFLOPs", rangemode="tozero"), showlegend=False, **_LAYOUT)
    return fig


def cue_figure(rows: Sequence[CueRow], top_p: float | None) -> go.Figure:
    """Per sparse layer and modality: the share of attention mass and of kept cells inside the true cue
    region, against chance (the cue cells' share of the grid) — the quantity ``python -m
    mesm_core.evaluate`` reports over a split (``mesm_core.cues``), here for one clip."""
    labels = [f"{r.modality} L{r.block}<br>{r.grid[0]}×{r.grid[1]}" for r in rows]
    fig = go.Figure()
    for name, values, colour in (
        ("attention in cue", [r.attention_in_cue for r in rows], "#d62728"),
        ("kept cells in cue", [r.kept_in_cue for r in rows], KEPT_COLOR),
        ("chance (cue share of the grid)", [r.chance for r in rows], DENSE_COLOR),
    ):
        ratios = [v / r.chance if r.chance > 0 else float("nan") for v, r in zip(values, rows)]
        fig.add_bar(x=labels, y=[100 * v for v in values], name=name, marker_color=colour,
                    customdata=np.array([ratios, [r.items for r in rows]]).T,
                    hovertemplate="%{x}<br>" + name + ": %{y:.1f}% (×%{customdata[0]:.2f} chance)"
                                  "<br>over %{customdata[1]} frames/chunks with a cue<extra></extra>")
    where = "" if top_p is None else f" at p = {top_p:.2f}"
    fig.update_layout(barmode="group", yaxis=dict(title="% inside the true cue", rangemode="tozero"),
                      title=dict(text=f"Attention on the true cue region vs chance{where}", font=dict(size=14)),
                      legend=dict(orientation="h", y=-0.28), **dict(_LAYOUT, height=360))
    return fig
