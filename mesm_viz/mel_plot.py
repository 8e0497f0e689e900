"""The studio's spectrogram view: the mel spectrogram and each sparse layer's kept cells, on real axes.

A Plotly figure dict (:mod:`mesm_viz.plotly_canvas`) with one row per picture (the spectrogram in dB,
then the kept cells of each audio sparse layer on a grey spectrogram), a shared time axis in seconds
and a frequency axis labelled in Hz at the HTK mel positions the data pipeline uses. The pictures are
layout images stretched to the axes: the two spectrograms are p-independent (the studio serves them by URL,
once), and each layer's kept cells a small transparent PNG laid over the grey one. Clips with known cues get
the true cue region outlined on every row. (The report's ``mel_masks.png``: :mod:`mesm_viz.report_figures`.)
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np

from mesm_core.config import DataConfig
from mesm_core.inference import Prediction
from mesm_viz.plotly_canvas import CUE_COLOR, FONT, axis_ref, base_layout, cell_edges, data_uri
from mesm_viz.spectrogram import chunk_masks_to_mel, mel_bin_of_hz, spectrogram_image, to_display

log = logging.getLogger(__name__)

__all__ = ["FREQUENCY_TICKS_HZ", "ROW_HEIGHT", "mask_overlay_uri", "mel_figure"]

FREQUENCY_TICKS_HZ = (250, 500, 1000, 2000, 4000, 8000)
ROW_HEIGHT = 150   # px per picture row
CUE_NAME = "true cue region (ground truth)"


def _hz_label(hz: float) -> str:
    return f"{hz / 1000:g} kHz" if hz >= 1000 else f"{hz:g} Hz"


KEPT_RGBA = (0, 220, 255, 89)      # = overlay_kept's tint (0.35 of cyan) as an overlay over the grey spectrogram
DROPPED_RGBA = (0, 0, 0, 115)      # = overlay_kept's dimming (× 0.55) of dropped cells


def mask_overlay_uri(mask: np.ndarray) -> str:
    """A bool (H, W) kept mask (display order) as a two-colour transparent PNG data URI: kept cells
    tinted, dropped ones dimmed, to lay over the grey spectrogram. A few KB however long the clip."""
    import base64
    import io

    from PIL import Image

    picture = Image.fromarray(np.where(np.asarray(mask, bool), 0, 1).astype(np.uint8), mode="P")
    picture.putpalette([*KEPT_RGBA[:3], *DROPPED_RGBA[:3]])
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", transparency=bytes([KEPT_RGBA[3], DROPPED_RGBA[3]]), optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _kept_rows(pred: Prediction, n_mels: int, n_frames: int, chunk_s: float) -> list[tuple[np.ndarray, str]]:
    """Per audio sparse layer: its kept mask on the mel axis (display order) and its title."""
    rows = []
    for index, block in enumerate(pred.trace.get("audio", []), start=1):
        try:
            mask = chunk_masks_to_mel(block.kept, n_frames, n_mels=n_mels, chunk_frames=pred.chunk_frames)
        except ValueError as exc:  # chunking disagreement: leave the layer out rather than fail the view
            log.warning("audio mask of layer %d not drawn: %s", index, exc)
            continue
        h, w = block.grid
        rows.append((to_display(mask), f"L{index} kept cells · {h}×{w} per {chunk_s:g} s chunk · {block.kept.mean():.0%}"))
    return rows


def _row_axes(layout: dict, axis: int, rows: int, extent: tuple[float, float], n_mels: int, ticks: list,
              tick_bins: list) -> float:
    """The x/y axes of picture row ``axis`` (1-based); returns the row's top in paper units."""
    gap = 0.045
    top = 1.0 - (axis - 1) / rows
    bottom = top - 1.0 / rows + gap
    name = "" if axis == 1 else str(axis)
    last = axis == rows
    layout[f"xaxis{name}"] = dict(domain=[0, 1], range=list(extent), anchor=f"y{name}", showgrid=False,
                                  zeroline=False, showticklabels=last, ticks="outside" if last else "",
                                  title=dict(text="time (s)") if last else None,
                                  **({} if axis == 1 else {"matches": "x"}))
    layout[f"yaxis{name}"] = dict(domain=[bottom, top - 0.01], range=[0, n_mels], anchor=f"x{name}",
                                  tickvals=tick_bins, ticktext=[_hz_label(hz) for hz in ticks], showgrid=False,
                                  zeroline=False, ticks="outside", fixedrange=True, tickfont=dict(FONT, size=11))
    return top


def mel_figure(pred: Prediction, bases: dict | None = None, cue_mask: np.ndarray | None = None,
               data_config: DataConfig | None = None, *, image: Callable[[np.ndarray], str] | None = None,
               rules: Sequence[str] | None = None) -> dict:
    """Spectrogram rows with axes: time (s) and frequency (Hz ticks on the mel axis).

    Row 1 is the spectrogram in dB; below it, per audio sparse layer, the grey spectrogram with that layer's
    kept cells tinted and the dropped ones dimmed (a small transparent mask over the shared grey picture).
    ``bases``: a dict kept per clip for the two coloured spectrograms (p-independent). ``cue_mask``:
    bool (n_mels, T) true cue cells in natural order (row 0 = lowest mel bin), outlined on each row.
    ``data_config`` gives the hop and sample rate (default: the pipeline's 200 samples at 16 kHz).
    ``image``: picture → source for the two spectrograms (default: JPEG data URIs; the studio serves
    URLs). ``rules``: per layer, which rule set most of its masks ("floor" / "nucleus"), in the titles.
    """
    config = data_config or DataConfig()
    n_mels, n_frames = pred.record.mel.shape
    step = config.hop_length / float(config.sample_rate)        # seconds per mel frame
    bases = {} if bases is None else bases
    if "magma" not in bases:
        bases["magma"] = spectrogram_image(pred.record.mel)
        bases["gray"] = spectrogram_image(pred.record.mel, "gray")
    source = image or (lambda picture: data_uri(picture, "jpeg", quality=92))
    kept_rows = _kept_rows(pred, n_mels, n_frames, pred.chunk_frames * step)
    rows = 1 + len(kept_rows)
    layout = base_layout(rows * ROW_HEIGHT + 70, margin=dict(l=70, r=12, t=24, b=46), showlegend=cue_mask is not None,
                         legend=dict(orientation="h", x=1.0, xanchor="right", y=1.0, yanchor="bottom"))
    images, annotations, traces = [], [], []
    extent = (-step / 2, (n_frames - 0.5) * step)
    ticks = [hz for hz in FREQUENCY_TICKS_HZ if hz < config.sample_rate / 2]
    tick_bins = [mel_bin_of_hz(hz, n_mels, config.sample_rate / 2) + 0.5 for hz in ticks]  # row i spans [i, i+1]
    cue = cue_mask is not None and bool(np.asarray(cue_mask).any())
    pictures = [(source(bases["magma"]), None, "mel spectrogram (dB)")]
    gray = source(bases["gray"]) if kept_rows else None
    for index, (mask, title) in enumerate(kept_rows):
        rule = rules[index] if rules is not None and index < len(rules) else None
        pictures.append((gray, mask_overlay_uri(mask), title + (f" · {rule}" if rule else "")))
    for row, (base, overlay_uri, title) in enumerate(pictures):
        axis = row + 1
        top = _row_axes(layout, axis, rows, extent, n_mels, ticks, tick_bins)
        for picture in (base, overlay_uri):
            if picture is not None:
                images.append(dict(source=picture, xref=axis_ref("x", axis), yref=axis_ref("y", axis), x=extent[0],
                                   y=n_mels, sizex=extent[1] - extent[0], sizey=n_mels, xanchor="left", yanchor="top",
                                   sizing="stretch", layer="below"))
        annotations.append(dict(text=title, x=0, y=top, xref="paper", yref="paper", xanchor="left",
                                yanchor="bottom", showarrow=False, font=dict(FONT, size=12)))
        if cue:
            xs, ys = cell_edges(np.asarray(cue_mask, bool), (1.0, step), origin=(extent[0], 0.0))
            traces.append(dict(type="scatter", mode="lines", x=xs, y=ys, xaxis=axis_ref("x", axis),
                               yaxis=axis_ref("y", axis), line=dict(color=CUE_COLOR, width=2, dash="dot"),
                               hoverinfo="skip", name=CUE_NAME, legendgroup="cue", showlegend=row == 0))
        # An invisible trace per row: plotly draws no axes for a row that has no trace.
        traces.append(dict(type="scatter", mode="markers", x=[extent[0], extent[1]], y=[0, n_mels],
                           xaxis=axis_ref("x", axis), yaxis=axis_ref("y", axis), marker=dict(opacity=0),
                           hoverinfo="skip", showlegend=False))
    layout["images"] = images
    layout["annotations"] = annotations
    return {"data": traces, "layout": layout}
