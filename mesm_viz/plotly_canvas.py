"""Plotly figures as plain JSON dicts, for the studio's interactive face and spectrogram views.

The views are redrawn on every slider move, so they skip ``plotly.graph_objects`` (its validation and
template cost ~20 ms a figure) and build the dict the browser's plotly.js reads. Pictures travel as
data URIs inside the figure: a 48×48 face crop is a few KB of PNG, and plotly.js draws an image trace
pixelated, so each crop pixel stays a sharp square at any display size. Text (titles, tick labels,
hover values, the legend) is real text, legible at any zoom.

Coordinates: a face panel's axes are crop pixels (x right, y down, ``[0, S]``); a cell ``(i, j)`` of an
``h×w`` grid covers ``[j·S/w, (j+1)·S/w] × [i·S/h, (i+1)·S/h]``.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np

from mesm_viz.overlay import colormap_lut, to_uint8_image

__all__ = ["CUE_COLOR", "KEPT_COLOR", "FONT", "axis_ref", "data_uri", "cell_edges", "heat_colorscale",
           "image_trace", "square_axes", "panel_title", "base_layout"]

CUE_COLOR = "#39ff14"     # the true cue region: a green no attention colormap uses
KEPT_COLOR = "#00dcff"    # kept cells (same cyan as overlay.overlay_kept)
FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=13)


def axis_ref(letter: str, axis: int) -> str:
    """The trace reference of panel ``axis`` (1-based): "x", "x2", ... (plotly has no "x1")."""
    return letter if axis == 1 else f"{letter}{axis}"


def data_uri(image: np.ndarray, kind: str = "png", quality: int = 90) -> str:
    """RGB ``(H, W, 3)`` (uint8 or float in [0, 1]) → a ``data:image/...;base64,`` URI (PNG or JPEG)."""
    from PIL import Image

    buffer = io.BytesIO()
    picture = Image.fromarray(to_uint8_image(image))
    if kind == "jpeg":
        picture.save(buffer, format="JPEG", quality=quality)
    else:
        picture.save(buffer, format="PNG", compress_level=1)
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def cell_edges(mask: np.ndarray, cell: tuple[float, float] = (1.0, 1.0),
               origin: tuple[float, float] = (0.0, 0.0), flip_y: float | None = None) -> tuple[list, list]:
    """The boundary of the True cells of a bool ``(h, w)`` grid as line segments (x list, y list, with
    ``None`` between segments: one scatter trace draws them all).

    ``cell`` = (height, width) of a cell and ``origin`` = (x, y) of the grid's corner in axis units.
    Row i spans ``y0 + i·ch`` to ``y0 + (i+1)·ch``; with ``flip_y`` = H, rows count up from ``H`` instead
    (row 0 at the top of a y axis that points up, as a spectrogram's mel axis does).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    ch, cw = cell
    x0, y0 = origin
    padded = np.pad(mask, 1)
    xs: list = []
    ys: list = []

    def y_of(row: float) -> float:
        return y0 + row * ch if flip_y is None else flip_y - (y0 + row * ch)

    # Horizontal edges: between row i-1 and row i where exactly one side is True; merged along runs.
    horizontal = padded[:-1, 1:-1] != padded[1:, 1:-1]         # (h + 1, w)
    for row in range(horizontal.shape[0]):
        for start, stop in _runs(horizontal[row]):
            xs += [x0 + start * cw, x0 + stop * cw, None]
            ys += [y_of(row), y_of(row), None]
    vertical = padded[1:-1, :-1] != padded[1:-1, 1:]            # (h, w + 1)
    for col in range(vertical.shape[1]):
        for start, stop in _runs(vertical[:, col]):
            xs += [x0 + col * cw, x0 + col * cw, None]
            ys += [y_of(start), y_of(stop), None]
    return xs, ys


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges of the True runs of a 1-D bool array."""
    padded = np.concatenate([[False], np.asarray(flags, bool), [False]]).astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return list(zip(change[::2].tolist(), change[1::2].tolist()))


def heat_colorscale(name: str = "inferno", low_alpha: float = 0.15, high_alpha: float = 0.8,
                    steps: int = 9) -> list:
    """A plotly colorscale of one of ``overlay``'s colormaps whose opacity rises with the value, so cold
    cells let the face show through (as ``overlay(..., alpha_by_heat=True)`` does)."""
    table = colormap_lut(name)
    scale = []
    for t in np.linspace(0.0, 1.0, steps):
        r, g, b = (int(v) for v in table[int(round(t * (len(table) - 1)))])
        scale.append([float(t), f"rgba({r},{g},{b},{low_alpha + (high_alpha - low_alpha) * t:.3f})"])
    return scale


def image_trace(image_uri: str, axis: int, scale: float = 1.0) -> dict[str, Any]:
    """An image trace on panel ``axis`` covering ``[0, W·scale] × [0, H·scale]`` (pixel i spans
    ``[i·scale, (i+1)·scale]``); no hover (the heat map on top carries the values)."""
    return {"type": "image", "source": image_uri, "x0": scale / 2, "y0": scale / 2, "dx": scale, "dy": scale,
            "xaxis": axis_ref("x", axis), "yaxis": axis_ref("y", axis), "hoverinfo": "skip", "name": ""}


def square_axes(axis: int, x_domain: Sequence[float], y_domain: Sequence[float], extent: float,
                y_down: bool = True) -> dict[str, Any]:
    """Layout entries of a square picture panel ``axis`` (1-based) over ``[0, extent]`` on both axes,
    no ticks, y pointing down (image rows) unless ``y_down`` is False."""
    name = "" if axis == 1 else str(axis)
    common = dict(showgrid=False, zeroline=False, showticklabels=False, ticks="", fixedrange=True, showline=False)
    return {
        f"xaxis{name}": dict(common, domain=list(x_domain), range=[0, extent], anchor=f"y{name}",
                             constrain="domain"),
        f"yaxis{name}": dict(common, domain=list(y_domain), range=[extent, 0] if y_down else [0, extent],
                             anchor=f"x{name}", scaleanchor=f"x{name}", scaleratio=1, constrain="domain"),
    }


def panel_title(text: str, x_domain: Sequence[float], y_top: float) -> dict[str, Any]:
    """A title annotation centred above a panel (paper coordinates)."""
    return dict(text=text, x=(x_domain[0] + x_domain[1]) / 2, y=y_top, xref="paper", yref="paper",
                xanchor="center", yanchor="bottom", showarrow=False, font=dict(FONT, size=13))


def base_layout(height: int, **extra: Any) -> dict[str, Any]:
    """The layout every studio view starts from: no template (cheap), transparent paper, our font."""
    layout = dict(height=height, margin=dict(l=8, r=8, t=28, b=8), paper_bgcolor="rgba(0,0,0,0)",
                  plot_bgcolor="rgba(0,0,0,0)", font=FONT, hovermode="closest", dragmode=False)
    layout.update(extra)
    return layout

