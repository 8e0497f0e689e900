"""Interactive face views of the studio: the per-layer attention/kept grid and the FACS overlay.

Both are Plotly figure dicts (:mod:`mesm_viz.plotly_canvas`): the 48×48 face crop as a pixelated image,
the model's cells as a heat map on top whose hover gives each cell's attention, rank and fate, titles
and legends as text (legible at any size), and, for clips with known cues, the true cue region
outlined beside the attention. The PNG versions for reports stay in :mod:`mesm_viz.views`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from mesm_core.cues import cue_cells
from mesm_core.inference import Prediction
from mesm_viz import facs
from mesm_viz.overlay import normalize_heat
from mesm_viz.plotly_canvas import (
    CUE_COLOR,
    KEPT_COLOR,
    axis_ref,
    base_layout,
    cell_edges,
    data_uri,
    heat_colorscale,
    panel_title,
    square_axes,
)

__all__ = ["CUE_LEGEND", "crop_picture", "layer_grid_figure", "facs_figure"]

CUE_LEGEND = "true cue region (ground truth)"
KEPT_SCALE = [[0.0, "rgba(8,8,8,0.6)"], [0.5, "rgba(8,8,8,0.6)"], [0.5, "rgba(0,220,255,0.25)"],
              [1.0, "rgba(0,220,255,0.25)"]]
PROTO_LINE, REGION_LINE = "#00ff78", "#ffffff"


def _cell_states(kept: np.ndarray, active: np.ndarray, cue: np.ndarray | None, index: int) -> list[list[str]]:
    """Per cell, what became of it: kept, dropped, or not computed (dropped by an earlier layer)."""
    words = np.where(kept, "kept", np.where(active, "dropped", f"not computed (dropped before layer {index})"))
    if cue is not None:
        words = np.where(cue, np.char.add(words.astype(str), " · inside the true cue"), words)
    return words.tolist()


def _cell_data(attention: np.ndarray, active: np.ndarray) -> list:
    """Per cell: (row, column, raw attention, rank among the computed cells) for the hover template."""
    order = np.argsort(-np.where(active, attention, -np.inf), axis=None, kind="stable")
    rank = np.empty(attention.size, np.int64)
    rank[order] = np.arange(1, attention.size + 1)
    rank = np.where(active.reshape(-1), rank, 0).reshape(attention.shape)
    rows, cols = np.indices(attention.shape)
    return np.stack([rows, cols, np.round(attention.astype(np.float64), 5), rank], axis=-1).tolist()


def _z(values: np.ndarray) -> list:
    """Heat-map values rounded for the wire (3 decimals), NaN → None (a transparent cell)."""
    rounded = np.round(values.astype(np.float64), 3)
    return [[None if not np.isfinite(v) else v for v in row] for row in rounded.tolist()]


def _grid_trace(z: np.ndarray, size: int, axis: int, colorscale: list, **extra: Any) -> dict:
    h, w = z.shape
    cell_h, cell_w = size / h, size / w
    return dict(type="heatmap", z=_z(z), x0=cell_w / 2, dx=cell_w, y0=cell_h / 2, dy=cell_h,
                xaxis=axis_ref("x", axis), yaxis=axis_ref("y", axis), colorscale=colorscale, zmin=0.0, zmax=1.0,
                showscale=False, xgap=0, ygap=0, **extra)


def _edge_trace(mask: np.ndarray, size: int, axis: int, color: str, name: str, *, dash: str = "solid",
                width: float = 2.0, show: bool = False, group: str | None = None) -> dict:
    h, w = mask.shape
    xs, ys = cell_edges(mask, (size / h, size / w))
    return dict(type="scatter", mode="lines", x=xs, y=ys, xaxis=axis_ref("x", axis), yaxis=axis_ref("y", axis),
                line=dict(color=color, width=width, dash=dash), hoverinfo="skip", name=name, showlegend=show,
                legendgroup=group or name)


def crop_picture(source: str, size: int, axis: int) -> dict:
    """A layout image covering panel ``axis``'s ``[0, S] × [0, S]`` (y down): the face crop, drawn
    pixelated by the page's CSS. ``source``: a URL or data URI."""
    return dict(source=source, xref=axis_ref("x", axis), yref=axis_ref("y", axis), x=0, y=0, sizex=size,
                sizey=size, xanchor="left", yanchor="top", sizing="stretch", layer="below")


def _layer_panels(block, index: int, column: int, n: int, frame: int, size: int, cue_mask, rule: str | None,
                  traces: list, layout: dict, annotations: list, pictures: list, crop: str, has_cue: bool) -> None:
    """The attention (top) and kept (bottom) panels of one sparse layer."""
    x_domain = (column / n + 0.012, (column + 1) / n - 0.012)
    h, w = block.grid
    attention, kept, active = block.attention[frame], block.kept[frame], block.active_in[frame]
    cue = cue_cells(cue_mask, (h, w)) if has_cue else None
    states = _cell_states(kept, active, cue, index)
    heat = np.where(active, normalize_heat(attention, kept=active, mode="minmax"), np.nan)
    n_active = int(active.sum())
    for row, (bottom, top) in enumerate(((0.53, 0.95), (0.04, 0.46))):
        axis = 1 + column + row * n
        layout.update(square_axes(axis, x_domain, (bottom, top), size))
        pictures.append(crop_picture(crop, size, axis))
        if row == 0:
            traces.append(_grid_trace(heat, size, axis, heat_colorscale(), name=f"L{index} attention",
                                      customdata=_cell_data(attention, active), text=states,
                                      hovertemplate=f"L{index} cell (%{{customdata[0]}}, %{{customdata[1]}})<br>"
                                                    f"attention %{{customdata[2]:.4f}} (rank %{{customdata[3]}} of "
                                                    f"{n_active})<br>%{{text}}<extra></extra>"))
            title = f"L{index} attention · {h}×{w} cells"
        else:
            traces.append(_grid_trace(kept.astype(np.float32), size, axis, KEPT_SCALE, name=f"L{index} kept",
                                      text=states, hovertemplate=f"L{index}: %{{text}}<extra></extra>"))
            if kept.any():
                traces.append(_edge_trace(kept, size, axis, KEPT_COLOR, "kept cells", width=1.5))
            title = f"L{index} kept · {int(kept.sum())} of {h * w} cells ({kept.mean():.0%})"
            title += f"<br>set by the {'keep floor' if rule == 'floor' else 'nucleus (top-p)'}" if rule else ""
        if cue is not None and cue.any():
            traces.append(_edge_trace(cue, size, axis, CUE_COLOR, CUE_LEGEND, dash="dot", width=2.5,
                                      show=column == 0 and row == 0))
        annotations.append(panel_title(title, x_domain, top))


def layer_grid_figure(pred: Prediction, frame: int, cue_mask: np.ndarray | None = None, *,
                      image: Callable[[np.ndarray], str] = data_uri, rules: Sequence[str] | None = None) -> dict | None:
    """One frame's face crop per sparse layer: top row the text-queried attention (min–max per frame,
    hover: raw value and rank), bottom row the kept cells (dropped ones dimmed); one column per layer.

    ``cue_mask``: bool (S, S) true cue pixels of this frame's crop, outlined as the cue cells of each
    layer's grid (majority rule, the cells the faithfulness figures count). ``image``: picture → source
    (a data URI by default; the studio serves URLs). ``rules``: per layer, which rule set this frame's
    mask ("floor" or "nucleus"), added to the kept captions. FE2E (no trace): the crop alone. None when
    the clip has no face frames.
    """
    record = pred.record
    if record.faces.shape[0] == 0:
        return None
    size = int(record.faces.shape[1])
    crop = image(record.faces[frame])
    blocks = pred.trace.get("visual", [])
    if not blocks:
        layout = base_layout(360, showlegend=False, annotations=[panel_title(
            "face crop (dense model: no attention to show)", (0.0, 1.0), 0.95)])
        layout.update(square_axes(1, (0.0, 1.0), (0.0, 0.93), size))
        layout["images"] = [crop_picture(crop, size, 1)]
        return {"data": [_axis_anchor(1, size)], "layout": layout}
    n = len(blocks)
    has_cue = cue_mask is not None and bool(np.asarray(cue_mask).any())
    traces: list[dict] = []
    annotations: list[dict] = []
    pictures: list[dict] = []
    layout = base_layout(640, showlegend=has_cue, margin=dict(l=4, r=4, t=26, b=30 if has_cue else 6),
                         legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.01, yanchor="top"))
    for column, block in enumerate(blocks):
        rule = rules[column] if rules is not None and column < len(rules) else None
        _layer_panels(block, column + 1, column, n, frame, size, cue_mask, rule, traces, layout, annotations,
                      pictures, crop, has_cue)
    layout["annotations"] = annotations
    layout["images"] = pictures
    return {"data": traces, "layout": layout}


def _axis_anchor(axis: int, size: int) -> dict:
    """An invisible trace on panel ``axis``: plotly draws no axes (and no layout image) for a panel
    without a trace."""
    return dict(type="scatter", mode="markers", x=[0, size], y=[0, size], xaxis=axis_ref("x", axis),
                yaxis=axis_ref("y", axis), marker=dict(opacity=0), hoverinfo="skip", showlegend=False)


def _centroid(polygons: Sequence[np.ndarray]) -> tuple[float, float]:
    points = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in polygons])
    return float(points[:, 0].mean()), float(points[:, 1].mean())


def facs_figure(pred: Prediction, frame: int, regions: Sequence[facs.Region], proto_names: set[str],
                rows: Sequence[Sequence[Any]], headers: Sequence[str], cue_mask: np.ndarray | None = None, *,
                image: Callable[[np.ndarray], str] = data_uri) -> dict:
    """FACS regions over the layer-1 attention of one frame.

    The regions of the shown class's prototype (``proto_names``) are drawn and labelled; the others are
    in the legend, off until clicked. Hovering a region gives its AUs and the table's numbers for it
    (``rows``/``headers``, one row per region, as :func:`mesm_viz.views.facs_table` builds them).
    ``regions`` are at crop size (their polygons in crop pixels). ``cue_mask``: bool (S, S) true cue
    pixels, outlined. ``image``: picture → source (data URI by default; the studio serves URLs).
    """
    record = pred.record
    size = int(record.faces.shape[1])
    traces: list[dict] = [_axis_anchor(1, size)]
    blocks = pred.trace.get("visual", [])
    if blocks:
        block = blocks[0]
        heat = normalize_heat(block.attention[frame], mode="minmax")
        h, w = block.grid
        rows_, cols_ = np.indices((h, w))
        data = np.stack([rows_, cols_, np.round(block.attention[frame].astype(np.float64), 5)], axis=-1).tolist()
        traces.append(_grid_trace(heat, size, 1, heat_colorscale(low_alpha=0.0, high_alpha=0.7),
                                  name="L1 attention", showlegend=False, customdata=data,
                                  hovertemplate="L1 cell (%{customdata[0]}, %{customdata[1]}): attention "
                                                "%{customdata[2]:.4f}<extra></extra>"))
    for region, row in zip(regions, rows):
        if not region.polygons:
            continue
        proto = region.name in proto_names
        xs: list = []
        ys: list = []
        for polygon in region.polygons:
            polygon = np.asarray(polygon, np.float64).reshape(-1, 2)
            xs += polygon[:, 0].tolist() + [float(polygon[0, 0]), None]
            ys += polygon[:, 1].tolist() + [float(polygon[0, 1]), None]
        numbers = " · ".join(f"{name} {value}" for name, value in zip(headers[3:], row[3:]) if value is not None)
        hover = f"<b>{region.label}</b> ({' '.join(f'AU{a}' for a in region.aus)})<br>{numbers}"
        visible: Any = True if proto else "legendonly"
        name = f"{region.label}{' ★' if proto else ''}"
        colour = PROTO_LINE if proto else REGION_LINE
        traces.append(dict(type="scatter", mode="lines", x=xs, y=ys, fill="toself",
                           fillcolor="rgba(0,255,120,0.10)" if proto else "rgba(255,255,255,0.06)",
                           line=dict(color=colour, width=2.5 if proto else 1.5), name=name, legendgroup=region.name,
                           visible=visible, hoveron="fills", text=hover, hoverinfo="text"))
        cx, cy = _centroid(region.polygons)
        traces.append(dict(type="scatter", mode="text", x=[cx], y=[cy], text=[region.label], legendgroup=region.name,
                           showlegend=False, visible=visible, hoverinfo="skip", textposition="middle center",
                           textfont=dict(color="#ffffff", size=12, shadow="0px 0px 3px #000000")))
    if cue_mask is not None and np.asarray(cue_mask).any():
        xs, ys = cell_edges(np.asarray(cue_mask, bool))
        traces.append(dict(type="scatter", mode="lines", x=xs, y=ys, line=dict(color=CUE_COLOR, width=2.5, dash="dot"),
                           hoverinfo="skip", name=CUE_LEGEND, legendgroup="cue"))
    layout = base_layout(470, showlegend=True, margin=dict(l=4, r=4, t=8, b=8),
                         legend=dict(title=dict(text="FACS regions (click to show or hide)"), x=0.64, xanchor="left",
                                     y=1.0, font=dict(size=12), itemclick="toggle"))
    layout.update(square_axes(1, (0.0, 0.62), (0.0, 1.0), size))
    layout["images"] = [crop_picture(image(record.faces[frame]), size, 1)]
    return {"data": traces, "layout": layout}
