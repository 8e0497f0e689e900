"""The attention studio's callbacks as plain functions (no Gradio import: unit-testable without a server).

Life of a clip:

1. ``Studio.analyze(video, transcript, checkpoint, top_p)`` runs the p-independent stage once
   (``mesm_core.predict.prepare``: decode, MTCNN, mel, text CLS, dense CNN layers), decodes display
   frames for the strip, keeps all of it in an in-process LRU
   (:class:`ClipEntry`, keyed by checkpoint + video content hash + transcript) and returns a small
   JSON-able *state* dict (the key and the user's choices; no tensors) plus the rendered views;
   ``Studio.cost_curve(state)`` then sweeps a small p-grid for the FLOPs-vs-p plot (once per entry).
2. ``Studio.set_top_p(state, p)`` re-runs only the sparse blocks + heads (``predict.run``) from the
   cached entry and redraws the p-dependent views.
3. ``Studio.set_transcript(state, text)`` re-encodes only the text (``predict.retext``) and reruns the
   sparse stage: the counterfactual "what if the words were different" view.
4. ``Studio.select_frame(state, i)`` redraws the face views for another sampled frame.
5. ``Studio.export(state)`` writes the same report as the CLI and zips it.

Every view is drawn by the pure functions of ``mesm_viz`` (overlay, spectrogram, facs, figures).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mesm_core import predict as P
from mesm_core.types import ClipRecord
from mesm_viz import facs as F
from mesm_viz import figures as G
from mesm_viz.overlay import enlarge, layer_grid, normalize_heat, overlay, overlay_kept, mask_outline
from mesm_viz.report import save_png
from mesm_viz.spectrogram import chunk_masks_to_mel, spectrogram_image, to_display

log = logging.getLogger(__name__)

__all__ = [
    "AppSettings",
    "ClipEntry",
    "ClipView",
    "FrameView",
    "PView",
    "Studio",
    "UserInputError",
    "bundled_checkpoints",
    "checkpoint_summary",
    "describe_error",
    "discover_checkpoints",
    "report_artefacts",
    "sample_clips",
    "TOP_P_GRID",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CHECKPOINTS = REPO_ROOT / "assets" / "checkpoints"
SAMPLES_DIR = REPO_ROOT / "assets" / "samples"
TOP_P_GRID: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CROP_SCALE = 4          # 48×48 crop → 192×192 tiles (24/12/6 grids divide it exactly)
FACS_SCALE = 6          # FACS overlay drawn on a 288×288 enlargement
STRIP_HEIGHT = 96       # thumbnails of the frame strip
MEL_MIN_WIDTH = 800     # short clips' spectrograms are stretched in time (integer factor) towards this width
FRAME_HEIGHT = 320      # the selected frame, large
PROTO_COLOR = (0, 255, 120)
REGION_COLOR = (255, 255, 255)
FACE_BOX_COLOR = (0, 200, 80)
FALLBACK_BOX_COLOR = (255, 140, 0)


class UserInputError(ValueError):
    """Input the user can fix (no video, no checkpoint chosen, nothing analysed yet)."""


# --- settings and checkpoints -------------------------------------------------------------------

@dataclass
class AppSettings:
    """What ``app.py`` flags set. Limits are enforced here (DataConfig) and by Gradio's upload limit."""

    checkpoint: str = str(BUNDLED_CHECKPOINTS / "mesm_small")
    checkpoint_dirs: list[str] = field(default_factory=list)
    max_upload_mb: float = 50.0
    max_seconds: float = 30.0
    device: str = "cpu"
    # The pure-torch backend answers a slider move faster on CPU than spconv's Native algorithm
    # (same numbers; benchmarks/app_latency.py). None keeps the checkpoint's choice.
    sparse_backend: str | None = "masked"
    cache_size: int = 6
    top_p_grid: tuple[float, ...] = TOP_P_GRID
    export_dir: str | None = None


def _is_checkpoint(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def discover_checkpoints(*roots: str | os.PathLike) -> list[str]:
    """Checkpoint folders in ``roots``: a root that is a checkpoint, its sub-folders that are, and their
    ``best/`` (training output layout). Sorted, de-duplicated, as strings."""
    found: list[str] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir())
        for folder in candidates:
            if _is_checkpoint(folder):
                found.append(str(folder.resolve()))
            elif _is_checkpoint(folder / "best"):
                found.append(str((folder / "best").resolve()))
    return list(dict.fromkeys(found))


def bundled_checkpoints() -> list[str]:
    return discover_checkpoints(BUNDLED_CHECKPOINTS)


def checkpoint_summary(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``config.json`` only (no weights): arch, preset, classes, default top-p, thresholds present.

    Raises ``CheckpointError`` for a folder that is not a checkpoint.
    """
    import json

    from mesm_core.checkpoint import CheckpointError, resolve_checkpoint_dir

    folder = resolve_checkpoint_dir(path)
    try:
        cfg = json.loads((folder / "config.json").read_text())
        model = cfg["model"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{folder / 'config.json'}: unreadable checkpoint config ({exc})") from exc
    return {
        "path": str(folder),
        "arch": model.get("arch", "fe2e"),
        "preset": cfg.get("preset", ""),
        "classes": list(cfg.get("classes") or model.get("classes") or []),
        "top_p": float(model.get("top_p", 0.7)),
        "has_thresholds": cfg.get("thresholds") is not None,
        "metrics": cfg.get("metrics") or {},
    }


def checkpoint_label(path: str) -> str:
    folder = Path(path)
    name = folder.parent.name if folder.name in ("best", "last") else folder.name
    try:
        bundled = folder.resolve().is_relative_to(BUNDLED_CHECKPOINTS.resolve())
    except OSError:
        bundled = False
    return f"{name} (bundled)" if bundled else f"{name} — {folder}"


def sample_clips(folder: str | os.PathLike = SAMPLES_DIR) -> list[tuple[str, str]]:
    """``(video, transcript)`` for each sample clip; the transcript comes from the ``.txt`` sidecar."""
    folder = Path(folder)
    out = []
    for video in sorted(folder.glob("*.mp4")) if folder.is_dir() else []:
        out.append((str(video), P.resolve_transcript(video, None)))
    return out


def describe_error(exc: BaseException) -> str:
    """One clear sentence for the UI: the data pipeline's and the checkpoint's errors already name the
    file and the reason; anything else is reported as an internal error."""
    from mesm_core.checkpoint import CheckpointError
    from mesm_core.data.errors import ClipError, EmptyTranscriptError

    if isinstance(exc, EmptyTranscriptError):
        return f"Transcript needed: {exc.reason}."
    if isinstance(exc, ClipError):
        kind = type(exc).__name__.replace("Error", "")
        kind = "".join(" " + c.lower() if c.isupper() else c for c in kind).strip()
        return f"Cannot use this video ({kind}): {exc.reason}. [{Path(exc.path).name}]"
    if isinstance(exc, CheckpointError):
        return f"Checkpoint problem: {exc}"
    if isinstance(exc, UserInputError):
        return str(exc)
    return f"Internal error ({type(exc).__name__}): {exc}"


# --- display frames ---------------------------------------------------------------------------

def decode_display_frames(video: str | os.PathLike, times: np.ndarray, height: int) -> list[np.ndarray]:
    """RGB uint8 frames nearest each time (seconds), scaled to ``height`` rows (aspect kept).

    Scaling happens inside PyAV's conversion, so only the chosen frames are converted.
    Frames that cannot be decoded are returned black.
    """
    import av

    times = np.asarray(times, np.float64)
    best: list[tuple[float, np.ndarray | None]] = [(np.inf, None)] * len(times)
    width = None
    if len(times) == 0:
        return []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        last = float(times.max()) + 0.5
        for index, frame in enumerate(container.decode(stream)):
            t = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
            if width is None:
                width = max(2, int(round(frame.width * height / frame.height / 2)) * 2)
            gaps = np.abs(times - t)
            for j in np.flatnonzero(gaps < np.array([b[0] for b in best])):
                best[j] = (float(gaps[j]), frame.reformat(width=width, height=height, format="rgb24").to_ndarray())
            if t > last:
                break
    blank = np.zeros((height, width or height, 3), np.uint8)
    return [img if img is not None else blank.copy() for _, img in best]


def _draw_boxes(image: np.ndarray, boxes: list[tuple[Sequence[float], tuple[int, int, int], str]],
                scale: float, width: int = 2) -> np.ndarray:
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for box, color, label in boxes:
        if box is None or not np.all(np.isfinite(box)):
            continue
        x1, y1, x2, y2 = (float(v) * scale for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        if label:
            draw.text((x1 + 3, max(0, y1 - 12)), label, fill=color)
    return np.asarray(canvas)


def frame_boxes(record: ClipRecord, index: int) -> list[tuple[Sequence[float], tuple[int, int, int], str]]:
    """The face box of sampled frame ``index`` (green), or the centre-crop region used instead (orange)."""
    if bool(record.face_detected[index]):
        return [(record.face_boxes[index], FACE_BOX_COLOR, f"{float(record.face_probs[index]):.2f}")]
    regions = (record.meta or {}).get("face_regions")
    if regions is not None and index < len(regions):
        return [(regions[index], FALLBACK_BOX_COLOR, "no face: centre crop")]
    return []


# --- cached state --------------------------------------------------------------------------------

@dataclass
class ClipEntry:
    """Everything the views need for one (checkpoint, video, transcript): lives in the LRU, never in gr.State."""

    key: str
    checkpoint: str
    video: str
    prepared: P.PreparedClip
    frames: list[np.ndarray]                        # display frames (FRAME_HEIGHT rows), no boxes
    sweep: list[dict] = field(default_factory=list)  # cost curve over the p-grid (MESM only)
    curve: dict | None = None                        # its figure (plotly JSON dict), marker-free
    mel_bases: dict = field(default_factory=dict)    # coloured spectrograms (p-independent)
    drawn: dict = field(default_factory=dict)        # p → p-dependent views already drawn
    predictions: "OrderedDict[float | None, P.Prediction]" = field(default_factory=OrderedDict)  # LRU, off-grid p
    grid: dict[float | None, P.Prediction] = field(default_factory=dict)  # p-grid values (and FE2E's None)
    regions: dict[int, tuple[list, list]] = field(default_factory=dict)  # frame → (stat regions, drawing regions)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def record(self) -> ClipRecord:
        return self.prepared.record


def _clip_key(checkpoint: str, video_sha1: str, transcript: str) -> str:
    text = hashlib.sha1(transcript.encode("utf-8")).hexdigest()[:12]
    ck = hashlib.sha1(str(checkpoint).encode("utf-8")).hexdigest()[:8]
    return f"{ck}-{video_sha1[:16]}-{text}"


# --- views ------------------------------------------------------------------------------------

@dataclass
class ClipView:
    strip: list[tuple[np.ndarray, str]]   # gallery items: (thumbnail with box, caption)
    n_frames: int
    summary: str                          # markdown: clip facts


@dataclass
class FrameView:
    frame_image: np.ndarray | None        # selected frame, large, with its box
    layer_grid: np.ndarray | None         # layer × {attention, kept} on the face crop
    facs_image: np.ndarray | None
    facs_headers: list[str]
    facs_rows: list[list[Any]]
    facs_note: str


@dataclass
class PView:
    label: dict[str, float]
    probabilities_fig: Any
    modality_fig: Any
    mel_image: np.ndarray
    flops_fig: Any
    flops_p_fig: Any
    flops_text: str
    numbers: dict[str, Any]               # machine-readable summary (top_p, FLOPs, kept fractions, predicted)


def _fmt_flops(value: float) -> str:
    return P.format_flops(value)


def _top_class(pred: P.Prediction) -> tuple[str, bool]:
    """The class whose FACS prototype is shown: the most probable predicted class, else the argmax."""
    if pred.predicted:
        return max(pred.predicted, key=lambda c: pred.probabilities[c]), True
    return max(pred.classes, key=lambda c: pred.probabilities[c]), False


def layer_grid_image(pred: P.Prediction, frame: int, scale: int = CROP_SCALE) -> np.ndarray | None:
    """The face crop of one frame per sparse layer: top row attention heat, bottom row kept cells;
    one column per layer (24×24, 12×12, 6×6 grids on the enlarged crop, nearest-neighbour).

    FE2E (no trace) gets the crop alone. None when the clip has no face frames.
    """
    record = pred.record
    if record.faces.shape[0] == 0:
        return None
    crop = enlarge(record.faces[frame], scale)
    blocks = pred.trace.get("visual", [])
    if not blocks:
        return layer_grid([crop], ["face crop (dense model: no sparsity)"])
    heat_row, kept_row, heat_labels, kept_labels = [], [], [], []
    for index, block in enumerate(blocks, start=1):
        kept = block.kept[frame]
        # min-max per frame: the ranking of cells is what the nucleus uses, so show its contrast
        heat = normalize_heat(block.attention[frame], kept=block.active_in[frame], mode="minmax")
        heat_row.append(overlay(crop, heat, alpha=0.55))
        kept_row.append(overlay_kept(crop, kept))
        h, w = block.grid
        heat_labels.append(f"L{index} attention {h}x{w}")
        kept_labels.append(f"L{index} kept {kept.mean():.0%}")
    return layer_grid([heat_row, kept_row], [heat_labels, kept_labels])


def _regions_for(entry: ClipEntry, frame: int) -> tuple[list, list]:
    if frame not in entry.regions:
        record = entry.record
        size = int(record.faces.shape[1])
        marks = record.landmarks[frame] if bool(record.face_detected[frame]) else None
        stat = F.merge_sides(F.facs_regions(marks, size))
        draw = F.merge_sides(F.facs_regions(marks, size, raster_size=size * FACS_SCALE))
        entry.regions[frame] = (stat, draw)
    return entry.regions[frame]


def facs_view(pred: P.Prediction, stat_regions: list, draw_regions: list, frame: int,
              scale: int = FACS_SCALE) -> tuple[np.ndarray, list[str], list[list[Any]], str]:
    """FACS overlay image, table headers, rows and the caption for one frame.

    The image: first-layer attention as heat (cold cells transparent), every region outlined, the
    regions of the shown class's prototype in green. The table: per region its AUs, the attention mass
    inside it and its kept fraction per sparse layer, and the prototype marker.
    """
    record = pred.record
    crop = enlarge(record.faces[frame], scale)
    blocks = pred.trace.get("visual", [])
    shown, above = _top_class(pred)
    proto = F.prototype_for(shown)
    proto_names = {r.name for r in F.prototype_regions(proto, stat_regions)} if proto else set()
    if blocks:
        heat = normalize_heat(blocks[0].attention[frame], mode="minmax")
        base = overlay(crop, heat, alpha=0.6, alpha_by_heat=True)
    else:
        base = crop.copy()
    for region in draw_regions:
        edge = mask_outline(region.mask, thickness=2 if region.name in proto_names else 1)
        base[edge] = PROTO_COLOR if region.name in proto_names else REGION_COLOR

    headers = ["region", "AUs", f"prototype ({shown})"]
    headers += [f"attention L{i}" for i in range(1, len(blocks) + 1)]
    headers += [f"kept L{i}" for i in range(1, len(blocks) + 1)]
    stats = [F.region_stats(stat_regions, b.attention[frame], b.kept[frame]) for b in blocks]
    rows = []
    for r_index, region in enumerate(stat_regions):
        marker = ("★ typical, not ground truth" if region.name in proto_names else "") if proto else "no FACS prototype"
        row = [region.label, " ".join(f"AU{a}" for a in region.aus), marker]
        row += [round(float(s[r_index]["attention_mass"] or 0.0), 3) for s in stats]
        row += [None if s[r_index]["kept_fraction"] is None else round(float(s[r_index]["kept_fraction"]), 2)
                for s in stats]
        rows.append(row)
    which = "predicted" if above else "most probable (below its threshold)"
    if proto:
        note = (f"Green: regions of the {proto.emotion} prototype AU {proto.notation} for the {which} class "
                f"**{shown}** — {proto.note}.")
    else:
        note = f"**{shown}** ({which}): {F.label_mapping(shown).note}."
    if not bool(record.face_detected[frame]):
        note += " No face detected in this frame: regions use the template face on a centre crop."
    if not blocks:
        note += " Dense model (FE2E): no attention to show."
    return base, headers, rows, note


def mel_masks_image(pred: P.Prediction, min_width: int = MEL_MIN_WIDTH, bases: dict | None = None) -> np.ndarray:
    """Mel spectrogram (dB, low frequencies at the bottom) and, per sparse layer, its kept cells.

    Short clips are stretched in time by the integer factor ``min_width // T`` (nearest, so cell
    boundaries stay exact); clips of ``min_width`` mel frames or more are drawn 1 px per frame.
    ``bases``: a dict kept per clip to reuse the two coloured spectrograms (they do not depend on p).
    """
    mel = pred.record.mel
    n_mels, n_frames = mel.shape
    stretch = (1, max(1, min_width // max(n_frames, 1)))
    bases = {} if bases is None else bases
    if "magma" not in bases:
        bases["magma"] = spectrogram_image(mel)          # display order: low frequencies at the bottom
        bases["gray"] = spectrogram_image(mel, "gray")
    rows = [[enlarge(bases["magma"], stretch)]]
    labels = [["mel spectrogram (dB), low frequencies at the bottom"]]
    chunk = pred.record.meta.get("chunk_frames", 32) if pred.record.meta else 32
    for index, block in enumerate(pred.trace.get("audio", []), start=1):
        try:
            mask = chunk_masks_to_mel(block.kept, n_frames, n_mels=n_mels, chunk_frames=int(chunk))
        except ValueError as exc:  # chunking disagreement: show the plain mel rather than fail the view
            log.warning("audio mask of layer %d not drawn: %s", index, exc)
            continue
        # = spectrogram_overlay(mel, mask) on the cached grey spectrogram (mask flipped the same way)
        rows.append([enlarge(overlay_kept(bases["gray"], to_display(mask), outline=False), stretch)])
        h, w = block.grid
        labels.append([f"layer {index}: kept cells ({h}x{w} per 400 ms chunk) {block.kept.mean():.0%}"])
    return layer_grid(rows, labels, label_height=14)


def probabilities_view(pred: P.Prediction) -> tuple[dict[str, float], Any, Any]:
    classes = list(pred.classes)
    prob_fig = G.class_probabilities_figure(classes, [pred.probabilities[c] for c in classes],
                                            [pred.thresholds[c] for c in classes],
                                            title="Class probabilities and thresholds"
                                            + ("" if pred.threshold_source == "checkpoint" else " (default 0.5)"))
    modality_fig = G.modality_contributions_figure(
        classes, {m: [v[c] for c in classes] for m, v in pred.modality_logits.items()}, pred.fusion_weights)
    return dict(pred.probabilities), prob_fig, modality_fig


def numbers(pred: P.Prediction) -> dict[str, Any]:
    return {
        "top_p": pred.top_p,
        "arch": pred.arch,
        "flops_dense": float(pred.flops.dense),
        "flops_actual": float(pred.flops.actual),
        "flops_ratio": float(pred.flops.actual / pred.flops.dense) if pred.flops.dense else 1.0,
        "kept_fraction": {m: [round(k, 4) for k in v] for m, v in pred.kept_fraction.items()},
        "kept_cells": {m: [int(b.kept.sum()) for b in blocks] for m, blocks in pred.trace.items()},
        "predicted": pred.predicted,
        "probabilities": {c: round(v, 4) for c, v in pred.probabilities.items()},
        "transcript": pred.transcript,
    }


def cost_views(pred: P.Prediction, curve: dict | None, bar: bool = True) -> tuple[Any, dict | None, str]:
    """FLOPs-per-layer figure (None unless ``bar``), the cost curve dict marked at the current p (None
    before the sweep), and the FLOPs line of text."""
    flops_fig = G.flops_bar_figure(pred.flops) if bar else None
    flops_p_fig = mark_top_p(curve, pred.top_p) if curve else None
    ratio = pred.flops.actual / pred.flops.dense if pred.flops.dense else 1.0
    text = f"**FLOPs: {_fmt_flops(pred.flops.actual)} of {_fmt_flops(pred.flops.dense)} dense ({ratio:.1%})**"
    if pred.top_p is not None:
        kept = ", ".join(f"{m} " + "/".join(f"{k:.0%}" for k in v) for m, v in pred.kept_fraction.items())
        text += f" at p = {pred.top_p:.2f} · kept cells per layer: {kept}"
    else:
        text += " · dense model (FE2E): top-p does not apply"
    return flops_fig, flops_p_fig, text


def cost_curve_figure(sweep: list[dict]) -> dict:
    """The FLOPs/kept-vs-p figure (``figures.flops_vs_p_figure``) without a marker, as a plotly JSON dict:
    built once per clip, then :func:`mark_top_p` adds the current p in microseconds."""
    rows = [(r["top_p"], r["actual"], r["dense"], _mean_kept(r["kept"])) for r in sweep]
    return G.flops_vs_p_figure(rows, current_p=None).to_plotly_json()


def mark_top_p(figure: dict, top_p: float | None) -> dict:
    """A copy of a cost-curve figure dict with a vertical line and label at ``top_p`` (same marker as
    ``figures.flops_vs_p_figure(current_p=...)``)."""
    layout = dict(figure["layout"])
    if top_p is not None:
        layout["shapes"] = [*layout.get("shapes", ()), dict(type="line", x0=top_p, x1=top_p, y0=0, y1=1, yref="paper",
                                                             line=dict(color=G.MARK_COLOR, width=2))]
        layout["annotations"] = [*layout.get("annotations", ()), dict(
            x=top_p, y=1, yref="paper", text=f"p = {top_p:g}", showarrow=False, yanchor="bottom",
            font=dict(color=G.MARK_COLOR))]
    return {"data": figure["data"], "layout": layout}


def _mean_kept(kept: dict[str, list[float]]) -> float:
    values = [k for blocks in kept.values() for k in blocks]
    return float(np.mean(values)) if values else 1.0


# --- report artefacts (shared by the CLI and the export button) -------------------------------

def best_frame(record: ClipRecord) -> int:
    """The sampled frame with the most confident face (0 when none was detected)."""
    if record.faces.shape[0] == 0:
        return -1
    probs = np.where(record.face_detected, record.face_probs, -1.0)
    return int(np.argmax(probs))


def report_artefacts(pred: P.Prediction, out_dir: Path, frame: int | None = None) -> dict[str, Any]:
    """Write the overlay PNGs (face layer grid, FACS overlay, mel with masks) and return the extra
    report.json entries: file names, the frame shown, FACS region statistics (per layer, for that frame
    and averaged over the frames with a detected face)."""
    out_dir = Path(out_dir)
    files = []
    extra: dict[str, Any] = {}
    record = pred.record
    frame = best_frame(record) if frame is None else int(frame)
    save_png(mel_masks_image(pred), out_dir / "mel_masks.png")
    files.append("mel_masks.png")
    if frame >= 0:
        grid = layer_grid_image(pred, frame)
        if grid is not None:
            save_png(grid, out_dir / "face_layers.png")
            files.append("face_layers.png")
        size = int(record.faces.shape[1])
        marks = record.landmarks[frame] if bool(record.face_detected[frame]) else None
        stat = F.merge_sides(F.facs_regions(marks, size))
        draw = F.merge_sides(F.facs_regions(marks, size, raster_size=size * FACS_SCALE))
        image, headers, rows, note = facs_view(pred, stat, draw, frame)
        save_png(image, out_dir / "facs_overlay.png")
        files.append("facs_overlay.png")
        extra["facs"] = {"frame": frame, "frame_time_s": float(record.frame_times[frame]),
                         "headers": headers, "rows": rows, "note": note,
                         "mean_over_face_frames": facs_mean_stats(pred)}
    else:
        extra["facs"] = {"frame": None, "note": pred.face_note}
    shown, above = _top_class(pred)
    proto = F.prototype_for(shown)
    extra["facs"]["prototype"] = {"class": shown, "predicted": above,
                                  "notation": proto.notation if proto else None,
                                  "note": proto.note if proto else F.label_mapping(shown).note}
    extra["face_note"] = pred.face_note
    extra["files"] = files
    return extra


def facs_mean_stats(pred: P.Prediction) -> list[dict[str, Any]]:
    """Per layer and region: attention mass and kept fraction averaged over frames with a detected face."""
    record = pred.record
    frames = np.flatnonzero(record.face_detected)
    blocks = pred.trace.get("visual", [])
    if not len(frames) or not blocks:
        return []
    size = int(record.faces.shape[1])
    sums: dict[tuple[int, str], list[float]] = {}
    for f in frames:
        regions = F.merge_sides(F.facs_regions(record.landmarks[f], size))
        for layer, block in enumerate(blocks, start=1):
            for row in F.region_stats(regions, block.attention[f], block.kept[f]):
                acc = sums.setdefault((layer, row["label"]), [0.0, 0.0, 0.0, 0])
                acc[0] += row["attention_mass"] or 0.0
                acc[1] += row["kept_fraction"] or 0.0
                acc[2] += row["area_share"]
                acc[3] += 1
    return [{"layer": layer, "region": label, "attention_mass": a / n, "kept_fraction": k / n, "area_share": s / n}
            for (layer, label), (a, k, s, n) in sums.items()]


# --- the studio -----------------------------------------------------------------------------------

class Studio:
    """Models and prepared clips of one app process, plus the callbacks.

    ``state`` (what Gradio keeps per browser session) is a small dict:
    ``{"key", "video", "transcript", "checkpoint", "top_p", "frame"}``; the heavy data lives in
    :attr:`entries` (an LRU of :class:`ClipEntry`), rebuilt from the state if it was evicted.
    """

    def __init__(self, settings: AppSettings | None = None) -> None:
        self.settings = settings or AppSettings()
        self.entries: OrderedDict[str, ClipEntry] = OrderedDict()
        self.models: OrderedDict[str, P.LoadedModel] = OrderedDict()
        self.lock = threading.RLock()
        self._grid = {round(float(p), 4) for p in self.settings.top_p_grid} | {None}

    # checkpoints ------------------------------------------------------------------------------
    def checkpoint_choices(self) -> list[tuple[str, str]]:
        """(label, path) for the picker: bundled demo checkpoints, ``--checkpoint-dir`` ones, and
        ``--checkpoint`` itself."""
        paths = bundled_checkpoints() + discover_checkpoints(*self.settings.checkpoint_dirs)
        default = self.default_checkpoint()
        if default and default not in paths:
            paths.insert(0, default)
        return [(checkpoint_label(p), p) for p in dict.fromkeys(paths)]

    def default_checkpoint(self) -> str:
        path = Path(self.settings.checkpoint)
        if _is_checkpoint(path):
            return str(path.resolve())
        if _is_checkpoint(path / "best"):
            return str((path / "best").resolve())
        return str(path)

    def model(self, checkpoint: str) -> P.LoadedModel:
        with self.lock:
            if checkpoint in self.models:
                self.models.move_to_end(checkpoint)
                return self.models[checkpoint]
            loaded = P.load_model(checkpoint, self.settings.device, sparse_backend=self.settings.sparse_backend)
            _warm_up(loaded)
            self.models[checkpoint] = loaded
            while len(self.models) > 2:
                self.models.popitem(last=False)
            return loaded

    def warm_up(self) -> None:
        """Load the default checkpoint and build MTCNN now, so the first upload does not pay for it
        (``app.py`` calls this before launching; failures are left for the first request to report)."""
        try:
            loaded = self.model(self.default_checkpoint())
            P._detector(self.data_config(loaded), self.settings.device).detect([np.zeros((64, 64, 3), np.uint8)])
        except Exception as exc:  # noqa: BLE001 — e.g. the bundled checkpoint is missing
            log.warning("warm-up skipped: %s", describe_error(exc))

    def top_p_control(self, checkpoint: str | None) -> tuple[bool, float | None, str]:
        """(slider interactive?, default p, explanation) for a checkpoint."""
        if not checkpoint:
            return True, None, ""
        try:
            info = checkpoint_summary(checkpoint)
        except Exception as exc:  # noqa: BLE001 — a bad folder: say so, keep the slider usable
            return True, None, describe_error(exc)
        if info["arch"] != "mesm":
            return False, None, ("FE2E is a dense model: every cell of every layer is computed, so top-p "
                                 "does not apply (the slider is disabled and ignored).")
        return True, info["top_p"], (f"MESM keeps, in each frame/chunk, the smallest set of cells holding "
                                     f"a share p of the attention (trained with p = {info['top_p']:g}).")

    def data_config(self, loaded: P.LoadedModel):
        return dataclasses.replace(loaded.data_config, max_duration_s=float(self.settings.max_seconds),
                                   max_file_mb=float(self.settings.max_upload_mb))

    # entries --------------------------------------------------------------------------------
    def _store(self, entry: ClipEntry) -> None:
        with self.lock:
            self.entries[entry.key] = entry
            self.entries.move_to_end(entry.key)
            while len(self.entries) > self.settings.cache_size:
                self.entries.popitem(last=False)

    def _build_entry(self, video: str, transcript: str | None, checkpoint: str) -> ClipEntry:
        loaded = self.model(checkpoint)
        start = time.perf_counter()
        sha = P.file_sha1(video)
        text = (transcript or "").strip()
        key = _clip_key(checkpoint, sha, text)
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        prepared = P.prepare(loaded, video, text, device=self.settings.device, data_config=self.data_config(loaded))
        record = prepared.record
        t0 = time.perf_counter()
        times = record.frame_times + float((record.meta or {}).get("start_s", 0.0))
        frames = decode_display_frames(video, times, FRAME_HEIGHT) if len(times) else []
        entry = ClipEntry(key=key, checkpoint=checkpoint, video=str(video), prepared=prepared, frames=frames)
        entry.timings["frames_s"] = time.perf_counter() - t0
        entry.timings["prepare_total_s"] = time.perf_counter() - start
        self._store(entry)
        return entry

    def _entry(self, state: dict | None) -> ClipEntry:
        if not state or not state.get("key"):
            raise UserInputError("Analyze a video first (upload a clip, give its transcript, press Analyze).")
        with self.lock:
            entry = self.entries.get(state["key"])
            if entry is not None:
                self.entries.move_to_end(state["key"])
                return entry
        # Evicted (or another worker): rebuild from what the state remembers.
        return self._build_entry(state["video"], state.get("transcript", ""), state["checkpoint"])

    def prediction(self, entry: ClipEntry, top_p: float | None) -> P.Prediction:
        """The cached prediction at ``top_p`` (grid values are kept for the entry's lifetime, other
        values in a small LRU), else one run of the p-dependent stage."""
        loaded = self.model(entry.checkpoint)
        p = None if not loaded.is_sparse else round(float(loaded.config.top_p if top_p is None else top_p), 4)
        on_grid = p in self._grid
        with self.lock:
            cached = entry.grid.get(p) if on_grid else entry.predictions.get(p)
            if cached is not None:
                if not on_grid:
                    entry.predictions.move_to_end(p)
                return cached
        pred = P.run(loaded, entry.prepared, p, device=self.settings.device)
        with self.lock:
            if on_grid:
                entry.grid[p] = pred
            else:
                entry.predictions[p] = pred
                while len(entry.predictions) > 4:
                    entry.predictions.popitem(last=False)
        return pred

    # views ------------------------------------------------------------------------------------
    def clip_view(self, entry: ClipEntry) -> ClipView:
        record = entry.record
        strip = []
        for i, frame in enumerate(entry.frames):
            thumb = _resize(frame, STRIP_HEIGHT)
            thumb = _draw_boxes(thumb, frame_boxes(record, i), _box_scale(record, thumb), width=2)
            flag = "" if bool(record.face_detected[i]) else " · no face"
            strip.append((thumb, f"{i}: t={float(record.frame_times[i]):.1f}s{flag}"))
        meta = record.meta or {}
        n_faces = int(np.asarray(record.face_detected).sum())
        summary = (f"**Clip** {Path(record.source).name}: {meta.get('duration_s', 0):.1f} s, "
                   f"{record.faces.shape[0]} sampled frames ({n_faces} with a face), "
                   f"{record.mel.shape[1]} mel frames · prepared in "
                   f"{entry.timings.get('prepare_total_s', 0):.2f} s")
        return ClipView(strip=strip, n_frames=int(record.faces.shape[0]), summary=summary)

    def frame_view(self, entry: ClipEntry, pred: P.Prediction, frame: int, with_frame: bool = True) -> FrameView:
        record = entry.record
        n = int(record.faces.shape[0])
        if n == 0:
            note = pred.face_note or "No face frames."
            return FrameView(None, None, None, ["region"], [], note)
        frame = int(min(max(frame, 0), n - 1))
        image = None
        if with_frame and frame < len(entry.frames):
            big = entry.frames[frame]
            image = _draw_boxes(big, frame_boxes(record, frame), _box_scale(record, big), width=3)
        grid = layer_grid_image(pred, frame)
        stat, draw = _regions_for(entry, frame)
        facs_image, headers, rows, note = facs_view(pred, stat, draw, frame)
        return FrameView(image, grid, facs_image, headers, rows, note)

    def p_view(self, entry: ClipEntry, pred: P.Prediction) -> PView:
        """The p-dependent views. Drawn once per (clip, p) and kept with the entry (figures are never
        mutated), so moving the slider back to a p already seen only re-marks the cost curve."""
        with self.lock:
            drawn = entry.drawn.get(pred.top_p)
        if drawn is None:
            label, prob_fig, modality_fig = probabilities_view(pred)
            drawn = (label, prob_fig, modality_fig, mel_masks_image(pred, bases=entry.mel_bases),
                     G.flops_bar_figure(pred.flops), numbers(pred))
            with self.lock:
                entry.drawn[pred.top_p] = drawn
                while len(entry.drawn) > len(self.settings.top_p_grid) + 4:
                    entry.drawn.pop(next(iter(entry.drawn)))
        label, prob_fig, modality_fig, mel_image, flops_fig, values = drawn
        _, flops_p_fig, text = cost_views(pred, entry.curve, bar=False)
        return PView(label=label, probabilities_fig=prob_fig, modality_fig=modality_fig, mel_image=mel_image,
                     flops_fig=flops_fig, flops_p_fig=flops_p_fig, flops_text=text, numbers=values)

    def status(self, entry: ClipEntry, pred: P.Prediction, action: str, seconds: float) -> str:
        predicted = ", ".join(pred.predicted) or "none above threshold"
        parts = [f"**Done:** {action} in {seconds:.2f} s · predicted: **{predicted}**"]
        if pred.top_p is None:
            parts.append("FE2E: top-p ignored")
        parts += [f"Note: {n}" for n in pred.notes]
        return "  \n".join(parts)

    # callbacks --------------------------------------------------------------------------------
    def analyze(self, video: str | None, transcript: str | None, checkpoint: str | None,
                top_p: float | None) -> tuple[dict, ClipView, FrameView, PView, str]:
        """Upload → first result. Raises ClipError / CheckpointError / UserInputError for bad input."""
        if not video:
            raise UserInputError("Upload a video first.")
        checkpoint = checkpoint or self.default_checkpoint()
        start = time.perf_counter()
        entry = self._build_entry(str(video), transcript, checkpoint)
        pred = self.prediction(entry, top_p)
        frame = max(best_frame(entry.record), 0)
        state = {"key": entry.key, "video": str(video), "transcript": entry.prepared.transcript,
                 "checkpoint": checkpoint, "top_p": pred.top_p, "frame": frame}
        views = (self.clip_view(entry), self.frame_view(entry, pred, frame), self.p_view(entry, pred))
        return (state, *views, self.status(entry, pred, "Analysed", time.perf_counter() - start))

    def set_top_p(self, state: dict | None, top_p: float) -> tuple[dict, FrameView, PView, str]:
        """Slider moved: rerun only the sparse stage + heads from the cached entry."""
        start = time.perf_counter()
        entry = self._entry(state)
        pred = self.prediction(entry, top_p)
        state = dict(state, key=entry.key, top_p=pred.top_p)
        frame_view = self.frame_view(entry, pred, int(state.get("frame", 0)), with_frame=False)
        return state, frame_view, self.p_view(entry, pred), self.status(
            entry, pred, f"Top-p {pred.top_p}" if pred.top_p is not None else "Rerun", time.perf_counter() - start)

    def set_transcript(self, state: dict | None, transcript: str) -> tuple[dict, FrameView, PView, str]:
        """Transcript edited: re-encode the text, reuse the dense visual/audio features."""
        start = time.perf_counter()
        entry = self._entry(state)
        text = (transcript or "").strip()
        key = _clip_key(entry.checkpoint, entry.prepared.video_sha1, text)
        with self.lock:
            new = self.entries.get(key)
        if new is None:
            loaded = self.model(entry.checkpoint)
            prepared = P.retext(loaded, entry.prepared, text, device=self.settings.device)
            new = ClipEntry(key=key, checkpoint=entry.checkpoint, video=entry.video, prepared=prepared,
                            frames=entry.frames, regions=entry.regions, mel_bases=entry.mel_bases,
                            timings=dict(entry.timings))
            self._store(new)
        pred = self.prediction(new, state.get("top_p"))
        state = dict(state, key=new.key, transcript=text, top_p=pred.top_p)
        frame_view = self.frame_view(new, pred, int(state.get("frame", 0)), with_frame=False)
        return state, frame_view, self.p_view(new, pred), self.status(
            new, pred, "Transcript re-encoded", time.perf_counter() - start)

    def cost_curve(self, state: dict | None) -> tuple[Any, str]:
        """Run the p-grid once per clip + transcript (FLOPs and kept fraction for the cost plot) and
        plot it with the current p marked. The grid's predictions stay in the entry's cache, so later
        slider moves onto grid values only redraw. Runs right after ``analyze`` / ``set_transcript``
        (a ``.then`` step), so the first result does not wait for it."""
        entry = self._entry(state)
        pred = self.prediction(entry, state.get("top_p"))
        if not entry.sweep and pred.top_p is not None:
            start = time.perf_counter()
            sweep = []
            for p in self.settings.top_p_grid:
                grid_pred = self.prediction(entry, p)
                sweep.append({"top_p": float(p), "dense": float(grid_pred.flops.dense),
                              "actual": float(grid_pred.flops.actual), "kept": grid_pred.kept_fraction})
            entry.sweep = sweep
            entry.curve = cost_curve_figure(sweep)
            entry.timings["sweep_s"] = time.perf_counter() - start
        _, flops_p_fig, text = cost_views(pred, entry.curve, bar=False)
        return flops_p_fig, text

    def select_frame(self, state: dict | None, frame: int) -> tuple[dict, FrameView]:
        entry = self._entry(state)
        pred = self.prediction(entry, state.get("top_p"))
        n = int(entry.record.faces.shape[0])
        frame = int(min(max(int(frame or 0), 0), max(n - 1, 0)))
        return dict(state, frame=frame), self.frame_view(entry, pred, frame)

    def export(self, state: dict | None) -> str:
        """Write the report (as the CLI does) for the current p and frame and return a .zip path."""
        entry = self._entry(state)
        pred = self.prediction(entry, state.get("top_p"))
        root = Path(self.settings.export_dir or tempfile.gettempdir()) / "mesm_exports"
        p_tag = "dense" if pred.top_p is None else f"p{pred.top_p:.2f}"
        name = f"mesm_report_{Path(entry.video).stem[:40]}_{p_tag}_{entry.key[-8:]}"
        out = root / name
        frame = int(state.get("frame", 0))
        P.write_report(pred, out, artefacts=lambda p, d: report_artefacts(p, d, frame=frame))
        zip_path = root / f"{name}.zip"
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(out.iterdir()):
                archive.write(file, arcname=f"{name}/{file.name}")
        return str(zip_path)


def _warm_up(loaded: P.LoadedModel) -> None:
    """One tiny forward pass so the first real request does not pay for lazy initialisation."""
    import torch

    from mesm_core import dummy_batch

    batch = dummy_batch(loaded.config, batch_size=1, n_frames=2, n_chunks=2, tokenizer=loaded.model.tokenizer)
    with torch.inference_mode():
        loaded.model(batch.to(loaded.device), return_trace=loaded.is_sparse)


def _resize(image: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    width = max(1, int(round(w * height / h)))
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def _box_scale(record: ClipRecord, image: np.ndarray) -> float:
    """Display pixels per source pixel (boxes are stored in source-frame pixels)."""
    if record.frame_size:
        return image.shape[0] / float(record.frame_size[0])
    return 1.0
