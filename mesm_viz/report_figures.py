"""The report's PNGs, made to be pasted into a paper: matplotlib figures with titles, axes, legends, colour bars.

* :func:`face_layers_figure`: one frame's 48×48 face crop per sparse layer, the text-queried attention above
  (with its colour bar) and the kept cells below, each panel titled with its grid and kept count;
* :func:`facs_figure`: the FACS regions over the layer-1 attention, the shown class's prototype regions
  labelled, a legend of every region, a colour bar;
* :func:`mel_masks_figure`: the mel spectrogram (dB, colour bar) and each audio sparse layer's kept cells, on
  a shared time axis in seconds and a frequency axis in Hz at the mel positions the pipeline uses.

The text is set in DejaVu Sans (bundled with matplotlib, so "×", "·", "–" and "≤" always have glyphs), at
200 dpi. The figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state: safe from the
studio's threads).
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from mesm_core.config import DataConfig
from mesm_core.inference import Prediction
from mesm_viz import facs
from mesm_viz.overlay import normalize_heat
from mesm_viz.spectrogram import chunk_masks_to_mel, mel_bin_of_hz, mel_to_db

__all__ = ["DPI", "STYLE", "face_layers_figure", "facs_figure", "mel_masks_figure", "png"]

DPI = 200
STYLE = {"font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
         "legend.fontsize": 7, "xtick.labelsize": 7, "ytick.labelsize": 7}
KEPT_RGBA = (0.0, 0.86, 1.0, 0.35)      # kept cells tinted (the studio's cyan)
DROPPED_RGBA = (0.0, 0.0, 0.0, 0.45)    # dropped cells dimmed
PROTO_COLOR, REGION_COLOR = "#00c060", "white"
FREQUENCY_TICKS_HZ = (250, 500, 1000, 2000, 4000, 8000)


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def png(figure) -> bytes:
    """A matplotlib figure as PNG bytes (Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _mask_rgba(kept: np.ndarray) -> np.ndarray:
    """(h, w) kept → RGBA overlay: kept cells tinted, dropped ones dimmed."""
    out = np.empty((*kept.shape, 4), np.float32)
    out[kept], out[~kept] = KEPT_RGBA, DROPPED_RGBA
    return out


def _clip_title(pred: Prediction, frame: int | None = None) -> str:
    from pathlib import Path

    where = "" if frame is None else f", frame {frame} (t = {float(pred.record.frame_times[frame]):.1f} s)"
    rule = "dense model" if pred.top_p is None else f"top-p = {pred.top_p:g}"
    return f"{Path(pred.record.source or pred.record.id).name}{where} · {pred.arch.upper()}, {rule}"


def face_layers_figure(pred: Prediction, frame: int):
    """The face crop of one frame per sparse layer: attention (top row), kept cells (bottom row). None
    without face frames; a dense model (FE2E) gets the crop alone."""
    import matplotlib as mpl

    record = pred.record
    if record.faces.shape[0] == 0:
        return None
    crop = record.faces[frame]
    size = crop.shape[0]
    blocks = pred.trace.get("visual", [])
    with mpl.rc_context(STYLE):
        if not blocks:
            fig = _figure(2.4, 2.6)
            ax = fig.add_subplot()
            ax.imshow(crop, interpolation="nearest")
            ax.set_title("face crop (dense model: no attention)")
            ax.set_axis_off()
            fig.suptitle(_clip_title(pred, frame))
            return fig
        fig = _figure(2.1 * len(blocks) + 0.9, 4.6)
        axes = fig.subplots(2, len(blocks), squeeze=False)
        heat_image = None
        for col, block in enumerate(blocks):
            h, w = block.grid
            heat = np.where(block.active_in[frame], normalize_heat(block.attention[frame], kept=block.active_in[frame],
                                                                   mode="minmax"), np.nan)
            top, bottom = axes[0, col], axes[1, col]
            for ax in (top, bottom):
                ax.imshow(crop, interpolation="nearest", extent=(0, size, size, 0))
                ax.set_xticks([]), ax.set_yticks([])
            heat_image = top.imshow(heat, cmap="inferno", alpha=0.6, vmin=0, vmax=1, interpolation="nearest",
                                    extent=(0, size, size, 0))
            top.set_title(f"L{col + 1} attention · {h}×{w} cells")
            kept = block.kept[frame]
            bottom.imshow(_mask_rgba(kept), interpolation="nearest", extent=(0, size, size, 0))
            bottom.set_title(f"L{col + 1} kept · {int(kept.sum())} of {h * w} ({kept.mean():.0%})")
        axes[0, 0].set_ylabel("attention")
        axes[1, 0].set_ylabel("kept cells")
        bar = fig.colorbar(heat_image, ax=axes[0, :].tolist(), shrink=0.85, pad=0.02)
        bar.set_label("attention, min–max per frame")
        fig.suptitle(_clip_title(pred, frame) + " · kept cells tinted, dropped ones dimmed")
        return fig


def facs_figure(pred: Prediction, frame: int, regions: Sequence[facs.Region], proto_names: set[str], shown: str,
                note: str = ""):
    """The FACS regions (crop-size polygons) over the layer-1 attention of one frame; the prototype's regions
    of the shown class in green and labelled, every region in the legend."""
    import matplotlib as mpl
    from matplotlib.lines import Line2D

    crop = pred.record.faces[frame]
    size = crop.shape[0]
    blocks = pred.trace.get("visual", [])
    with mpl.rc_context(STYLE):
        fig = _figure(7.4, 4.6)
        ax, legend_ax = fig.subplots(1, 2, width_ratios=[1.0, 1.0])
        legend_ax.set_axis_off()
        ax.imshow(crop, interpolation="nearest", extent=(0, size, size, 0))
        heat_image = None
        if blocks:
            heat = normalize_heat(blocks[0].attention[frame], mode="minmax")
            heat_image = ax.imshow(heat, cmap="inferno", alpha=0.55, vmin=0, vmax=1, interpolation="nearest",
                                   extent=(0, size, size, 0))
        handles = []
        for region in regions:
            proto = region.name in proto_names
            colour = PROTO_COLOR if proto else REGION_COLOR
            for polygon in region.polygons:
                points = np.asarray(polygon, np.float64).reshape(-1, 2)
                closed = np.vstack([points, points[:1]])
                ax.plot(closed[:, 0], closed[:, 1], color=colour, lw=1.6 if proto else 0.7, alpha=1.0 if proto else 0.8)
            if proto and region.polygons:
                points = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in region.polygons])
                ax.annotate(region.label, points.mean(0), color="white", fontsize=6, ha="center", va="center",
                            bbox=dict(boxstyle="round,pad=0.15", fc=PROTO_COLOR, ec="none", alpha=0.8))
            handles.append(Line2D([], [], color=PROTO_COLOR if proto else "#7a7a7a", lw=2 if proto else 1,
                                  label=f"{region.label} ({' '.join(f'AU{a}' for a in region.aus)})"
                                        + (" ★" if proto else "")))
        ax.set_xlim(0, size), ax.set_ylim(size, 0)
        ax.set_xlabel("crop x (px)"), ax.set_ylabel("crop y (px)")
        legend_ax.legend(handles=handles, loc="center left", frameon=False,
                         title=f"FACS regions (★ {shown} prototype:\ntypical, not ground truth)", title_fontsize=7)
        if heat_image is not None:
            fig.colorbar(heat_image, ax=ax, location="bottom", shrink=0.8, pad=0.02).set_label(
                "layer-1 attention, min–max per frame")
        fig.suptitle(_clip_title(pred, frame))
        if note:
            fig.text(0.01, 0.005, note, fontsize=6, wrap=True)
        return fig


def mel_masks_figure(pred: Prediction, data_config: DataConfig | None = None):
    """The mel spectrogram (dB) and each audio sparse layer's kept cells on time (s) and frequency (Hz) axes."""
    import matplotlib as mpl

    config = data_config or DataConfig()
    mel = pred.record.mel
    n_mels, n_frames = mel.shape
    step = config.hop_length / float(config.sample_rate)
    extent = (-step / 2, (n_frames - 0.5) * step, 0, n_mels)
    db = mel_to_db(mel)
    layers = pred.trace.get("audio", [])
    ticks = [hz for hz in FREQUENCY_TICKS_HZ if hz < config.sample_rate / 2]
    with mpl.rc_context(STYLE):
        fig = _figure(7.2, 1.45 * (1 + len(layers)) + 0.6)
        axes = fig.subplots(1 + len(layers), 1, sharex=True, squeeze=False)[:, 0]
        image = axes[0].imshow(db, origin="lower", aspect="auto", cmap="magma", extent=extent, interpolation="nearest")
        fig.colorbar(image, ax=axes[0], pad=0.01).set_label("dB")
        axes[0].set_title("mel spectrogram")
        for index, (ax, block) in enumerate(zip(axes[1:], layers), start=1):
            mask = chunk_masks_to_mel(block.kept, n_frames, n_mels=n_mels, chunk_frames=pred.chunk_frames)
            ax.imshow(db, origin="lower", aspect="auto", cmap="gray", extent=extent, interpolation="nearest")
            ax.imshow(_mask_rgba(mask), origin="lower", aspect="auto", extent=extent, interpolation="nearest")
            h, w = block.grid
            ax.set_title(f"L{index} kept cells · {h}×{w} per {pred.chunk_frames * step:g} s chunk · "
                         f"{block.kept.mean():.0%} kept (tinted; dropped dimmed)")
        for ax in axes:
            ax.set_yticks([mel_bin_of_hz(hz, n_mels, config.sample_rate / 2) + 0.5 for hz in ticks])
            ax.set_yticklabels([f"{hz / 1000:g} kHz" if hz >= 1000 else f"{hz} Hz" for hz in ticks])
            ax.set_ylabel("frequency")
        axes[-1].set_xlabel("time (s)")
        fig.suptitle(_clip_title(pred))
        return fig
