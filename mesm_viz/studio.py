"""The attention studio's state and callbacks as plain Python (no Gradio import: testable without a server).

Life of a clip:

1. ``Studio.analyze(video, transcript, checkpoint, top_p)`` runs the p-independent stage once
   (:meth:`Predictor.prepare <mesm_core.inference.Predictor.prepare>`), decodes display frames for the
   strip, keeps all of it in an in-process LRU (:class:`ClipEntry`, keyed by checkpoint + video content
   hash + transcript) and returns a small :class:`StudioState` (the key and the user's choices; no
   tensors) plus the views; ``Studio.cost_curve(state)`` then sweeps the p-grid
   (:meth:`Predictor.sweep`) for the FLOPs-vs-p plot, once per entry.
2. ``Studio.set_top_p(state, p)`` re-runs only the sparse blocks + heads (:meth:`Predictor.run`) from
   the cached entry and redraws the p-dependent views.
3. ``Studio.set_transcript(state, text)`` re-encodes only the text (:meth:`Predictor.retext`) and reruns
   the sparse stage: the counterfactual "what if the words were different" view.
4. ``Studio.select_frame(state, i)`` redraws the face views for another sampled frame.
5. ``Studio.export(state)`` writes the full report (:mod:`mesm_viz.report`) and zips it.

The views are drawn by :mod:`mesm_viz.views` and :mod:`mesm_viz.frames`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mesm_core.checkpoint import CheckpointError, read_checkpoint_info
from mesm_core.config import DataConfig
from mesm_core.data.errors import ClipError, EmptyTranscriptError
from mesm_core.errors import InputError, MissingResourceError
from mesm_core.inference import Prediction, Predictor, PreparedClip, SweepPoint
from mesm_core.types import ClipRecord
from mesm_viz import figures as G
from mesm_viz.catalog import (
    BUNDLED_CHECKPOINTS,
    bundled_checkpoints,
    checkpoint_label,
    discover_checkpoints,
    resolve_default_checkpoint,
)
from mesm_viz.frames import (
    FRAME_HEIGHT,
    STRIP_HEIGHT,
    box_scale,
    decode_display_frames,
    draw_boxes,
    frame_boxes,
    resize,
)
from mesm_viz.report import write_full_report
from mesm_viz.views import (
    FACS_SCALE,
    ClipView,
    FrameView,
    PView,
    best_frame,
    cost_curve_figure,
    facs_view,
    flops_line,
    frame_regions,
    layer_grid_image,
    mark_top_p,
    mel_masks_image,
    numbers,
    probabilities_view,
)

log = logging.getLogger(__name__)

__all__ = ["TOP_P_GRID", "AppSettings", "StudioState", "ClipEntry", "Studio", "UserInputError", "describe_error"]

TOP_P_GRID: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class UserInputError(InputError, ValueError):
    """Input the user can fix in the studio itself (no video, nothing analysed yet)."""


def describe_error(exc: BaseException) -> str:
    """One clear sentence for the UI. Input errors already name the file and the reason; anything
    else is reported as an internal error."""
    if isinstance(exc, EmptyTranscriptError):
        return f"Transcript needed: {exc.reason}."
    if isinstance(exc, ClipError):
        kind = type(exc).__name__.replace("Error", "")
        kind = "".join(" " + c.lower() if c.isupper() else c for c in kind).strip()
        return f"Cannot use this video ({kind}): {exc.reason}. [{Path(exc.path).name}]"
    if isinstance(exc, CheckpointError):
        return f"Checkpoint problem: {exc}"
    if isinstance(exc, MissingResourceError):
        return f"Not installed here: {exc}"
    if isinstance(exc, InputError):
        return str(exc)
    return f"Internal error ({type(exc).__name__}): {exc}"


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


@dataclass(frozen=True)
class StudioState:
    """What Gradio keeps per browser session: small and tensor-free. The heavy data lives in the
    studio's LRU under ``key`` and is rebuilt from the other fields when it was evicted."""

    key: str                    # the ClipEntry's LRU key: checkpoint + video content hash + transcript
    video: str
    transcript: str
    checkpoint: str
    top_p: float | None         # None for FE2E
    frame: int                  # the selected sampled frame

    def replace(self, **changes: Any) -> "StudioState":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def clip_key(checkpoint: str, video_sha1: str, transcript: str) -> str:
    text = hashlib.sha1(transcript.encode("utf-8")).hexdigest()[:12]
    ck = hashlib.sha1(str(checkpoint).encode("utf-8")).hexdigest()[:8]
    return f"{ck}-{video_sha1[:16]}-{text}"


@dataclass
class ClipEntry:
    """Everything the views need for one (checkpoint, video, transcript): lives in the LRU, never in gr.State."""

    key: str
    checkpoint: str
    video: str
    prepared: PreparedClip
    frames: list[np.ndarray]                              # display frames (FRAME_HEIGHT rows), no boxes
    sweep: list[SweepPoint] = field(default_factory=list)  # cost curve over the p-grid (MESM only)
    curve: dict | None = None                              # its figure (plotly JSON dict), marker-free
    mel_bases: dict = field(default_factory=dict)          # coloured spectrograms (p-independent)
    drawn: dict = field(default_factory=dict)              # p → p-dependent views already drawn
    predictions: "OrderedDict[float | None, Prediction]" = field(default_factory=OrderedDict)  # LRU, off-grid p
    grid: dict[float | None, Prediction] = field(default_factory=dict)  # p-grid values (and FE2E's None)
    regions: dict[int, tuple[list, list]] = field(default_factory=dict)  # frame → (stat regions, drawing regions)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def record(self) -> ClipRecord:
        return self.prepared.record


class Studio:
    """Predictors and prepared clips of one app process, plus the callbacks.

    Up to two predictors stay loaded (they share one face detector); up to ``cache_size`` clips stay
    prepared in :attr:`entries` (an LRU of :class:`ClipEntry`).
    """

    def __init__(self, settings: AppSettings | None = None) -> None:
        self.settings = settings or AppSettings()
        self.entries: OrderedDict[str, ClipEntry] = OrderedDict()
        self.predictors: OrderedDict[str, Predictor] = OrderedDict()
        self.lock = threading.RLock()
        self._grid = {round(float(p), 4) for p in self.settings.top_p_grid} | {None}
        self._detector = None

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
        return resolve_default_checkpoint(self.settings.checkpoint)

    def predictor(self, checkpoint: str) -> Predictor:
        """The loaded, warmed-up predictor of a checkpoint (the two most recent stay loaded)."""
        with self.lock:
            if checkpoint in self.predictors:
                self.predictors.move_to_end(checkpoint)
                return self.predictors[checkpoint]
            predictor = Predictor.load(checkpoint, self.settings.device, sparse_backend=self.settings.sparse_backend,
                                       detector=self._detector)
            predictor.warm_up()
            self._detector = predictor.detector  # one MTCNN for every checkpoint
            self.predictors[checkpoint] = predictor
            while len(self.predictors) > 2:
                self.predictors.popitem(last=False)
            return predictor

    def warm_up(self) -> None:
        """Load the default checkpoint and build MTCNN now, so the first upload does not pay for it
        (``app.py`` calls this before launching; failures are left for the first request to report)."""
        try:
            self.predictor(self.default_checkpoint())
        except Exception as exc:  # noqa: BLE001 — e.g. the bundled checkpoint is missing
            log.warning("warm-up skipped: %s", describe_error(exc))

    def top_p_control(self, checkpoint: str | None) -> tuple[bool, float | None, str]:
        """(slider interactive?, default p, explanation) for a checkpoint."""
        if not checkpoint:
            return True, None, ""
        try:
            model = read_checkpoint_info(checkpoint).run_config.model
        except Exception as exc:  # noqa: BLE001 — a bad folder: say so, keep the slider usable
            return True, None, describe_error(exc)
        if model.arch != "mesm":
            return False, None, ("FE2E is a dense model: every cell of every layer is computed, so top-p "
                                 "does not apply (the slider is disabled and ignored).")
        return True, float(model.top_p), (f"MESM keeps, in each frame/chunk, the smallest set of cells holding "
                                          f"a share p of the attention (trained with p = {model.top_p:g}).")

    def data_config(self, predictor: Predictor) -> DataConfig:
        return dataclasses.replace(predictor.data_config, max_duration_s=float(self.settings.max_seconds),
                                   max_file_mb=float(self.settings.max_upload_mb))

    # entries --------------------------------------------------------------------------------
    def _store(self, entry: ClipEntry) -> None:
        with self.lock:
            self.entries[entry.key] = entry
            self.entries.move_to_end(entry.key)
            while len(self.entries) > self.settings.cache_size:
                self.entries.popitem(last=False)

    def _build_entry(self, video: str, transcript: str | None, checkpoint: str) -> ClipEntry:
        from mesm_core.io import file_sha1

        predictor = self.predictor(checkpoint)
        start = time.perf_counter()
        text = (transcript or "").strip()
        key = clip_key(checkpoint, file_sha1(video), text)
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        prepared = predictor.prepare(video, text, data_config=self.data_config(predictor))
        record = prepared.record
        t0 = time.perf_counter()
        frames = decode_display_frames(video, record.frame_times, FRAME_HEIGHT, start_s=record.meta.start_s)
        entry = ClipEntry(key=key, checkpoint=checkpoint, video=str(video), prepared=prepared, frames=frames)
        entry.timings["frames_s"] = time.perf_counter() - t0
        entry.timings["prepare_total_s"] = time.perf_counter() - start
        self._store(entry)
        return entry

    def _entry(self, state: StudioState | None) -> ClipEntry:
        if state is None or not state.key:
            raise UserInputError("Analyze a video first (upload a clip, give its transcript, press Analyze).")
        with self.lock:
            entry = self.entries.get(state.key)
            if entry is not None:
                self.entries.move_to_end(state.key)
                return entry
        # Evicted (or another worker): rebuild from what the state remembers.
        return self._build_entry(state.video, state.transcript, state.checkpoint)

    def prediction(self, entry: ClipEntry, top_p: float | None) -> Prediction:
        """The cached prediction at ``top_p`` (grid values are kept for the entry's lifetime, other
        values in a small LRU), else one run of the p-dependent stage."""
        predictor = self.predictor(entry.checkpoint)
        p = None if not predictor.is_sparse else round(float(predictor.config.top_p if top_p is None else top_p), 4)
        on_grid = p in self._grid
        with self.lock:
            cached = entry.grid.get(p) if on_grid else entry.predictions.get(p)
            if cached is not None:
                if not on_grid:
                    entry.predictions.move_to_end(p)
                return cached
        pred = predictor.run(entry.prepared, p)
        with self.lock:
            if on_grid:
                entry.grid[p] = pred
            else:
                entry.predictions[p] = pred
                while len(entry.predictions) > 4:
                    entry.predictions.popitem(last=False)
        return pred

    def _regions(self, entry: ClipEntry, frame: int) -> tuple[list, list]:
        """The frame's FACS regions at crop size (statistics) and at display size (outlines), cached."""
        if frame not in entry.regions:
            entry.regions[frame] = (frame_regions(entry.record, frame), frame_regions(entry.record, frame, FACS_SCALE))
        return entry.regions[frame]

    # views ------------------------------------------------------------------------------------
    def clip_view(self, entry: ClipEntry) -> ClipView:
        record = entry.record
        strip = []
        for i, frame in enumerate(entry.frames):
            thumb = resize(frame, STRIP_HEIGHT)
            thumb = draw_boxes(thumb, frame_boxes(record, i), box_scale(record, thumb), width=2)
            flag = "" if bool(record.face_detected[i]) else " · no face"
            strip.append((thumb, f"{i}: t={float(record.frame_times[i]):.1f}s{flag}"))
        n_faces = int(np.asarray(record.face_detected).sum())
        summary = (f"**Clip** {Path(record.source).name}: {record.meta.duration_s or 0:.1f} s, "
                   f"{record.faces.shape[0]} sampled frames ({n_faces} with a face), "
                   f"{record.mel.shape[1]} mel frames · prepared in "
                   f"{entry.timings.get('prepare_total_s', 0):.2f} s")
        return ClipView(strip=strip, n_frames=int(record.faces.shape[0]), summary=summary)

    def frame_view(self, entry: ClipEntry, pred: Prediction, frame: int, with_frame: bool = True) -> FrameView:
        record = entry.record
        n = int(record.faces.shape[0])
        if n == 0:
            note = pred.face_note or "No face frames."
            return FrameView(None, None, None, ["region"], [], note)
        frame = int(min(max(frame, 0), n - 1))
        image = None
        if with_frame and frame < len(entry.frames):
            big = entry.frames[frame]
            image = draw_boxes(big, frame_boxes(record, frame), box_scale(record, big), width=3)
        grid = layer_grid_image(pred, frame)
        stat, draw = self._regions(entry, frame)
        facs = facs_view(pred, frame, stat, draw)
        return FrameView(image, grid, facs.image, facs.headers, facs.rows, facs.note)

    def p_view(self, entry: ClipEntry, pred: Prediction) -> PView:
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
        return PView(label=label, probabilities_fig=prob_fig, modality_fig=modality_fig, mel_image=mel_image,
                     flops_fig=flops_fig, flops_p_fig=self._marked_curve(entry, pred), flops_text=flops_line(pred),
                     numbers=values)

    @staticmethod
    def _marked_curve(entry: ClipEntry, pred: Prediction) -> dict | None:
        """The cost curve marked at the current p (None before the sweep has run)."""
        return mark_top_p(entry.curve, pred.top_p) if entry.curve else None

    def status(self, entry: ClipEntry, pred: Prediction, action: str, seconds: float) -> str:
        predicted = ", ".join(pred.predicted) or "none above threshold"
        parts = [f"**Done:** {action} in {seconds:.2f} s · predicted: **{predicted}**"]
        if pred.top_p is None:
            parts.append("FE2E: top-p ignored")
        parts += [f"Note: {n}" for n in pred.notes]
        return "  \n".join(parts)

    # callbacks --------------------------------------------------------------------------------
    def analyze(self, video: str | None, transcript: str | None, checkpoint: str | None,
                top_p: float | None) -> tuple[StudioState, ClipView, FrameView, PView, str]:
        """Upload → first result. Raises ClipError / CheckpointError / UserInputError for bad input."""
        if not video:
            raise UserInputError("Upload a video first.")
        checkpoint = checkpoint or self.default_checkpoint()
        start = time.perf_counter()
        entry = self._build_entry(str(video), transcript, checkpoint)
        pred = self.prediction(entry, top_p)
        frame = max(best_frame(entry.record), 0)
        state = StudioState(key=entry.key, video=str(video), transcript=entry.prepared.transcript,
                            checkpoint=checkpoint, top_p=pred.top_p, frame=frame)
        views = (self.clip_view(entry), self.frame_view(entry, pred, frame), self.p_view(entry, pred))
        return (state, *views, self.status(entry, pred, "Analysed", time.perf_counter() - start))

    def set_top_p(self, state: StudioState | None, top_p: float) -> tuple[StudioState, FrameView, PView, str]:
        """Slider moved: rerun only the sparse stage + heads from the cached entry."""
        start = time.perf_counter()
        entry = self._entry(state)
        pred = self.prediction(entry, top_p)
        state = state.replace(key=entry.key, top_p=pred.top_p)
        frame_view = self.frame_view(entry, pred, state.frame, with_frame=False)
        return state, frame_view, self.p_view(entry, pred), self.status(
            entry, pred, f"Top-p {pred.top_p}" if pred.top_p is not None else "Rerun", time.perf_counter() - start)

    def set_transcript(self, state: StudioState | None, transcript: str) -> tuple[StudioState, FrameView, PView, str]:
        """Transcript edited: re-encode the text, reuse the dense visual/audio features."""
        start = time.perf_counter()
        entry = self._entry(state)
        text = (transcript or "").strip()
        key = clip_key(entry.checkpoint, entry.prepared.video_sha1, text)
        with self.lock:
            new = self.entries.get(key)
        if new is None:
            prepared = self.predictor(entry.checkpoint).retext(entry.prepared, text)
            new = ClipEntry(key=key, checkpoint=entry.checkpoint, video=entry.video, prepared=prepared,
                            frames=entry.frames, regions=entry.regions, mel_bases=entry.mel_bases,
                            timings=dict(entry.timings))
            self._store(new)
        pred = self.prediction(new, state.top_p)
        state = state.replace(key=new.key, transcript=text, top_p=pred.top_p)
        frame_view = self.frame_view(new, pred, state.frame, with_frame=False)
        return state, frame_view, self.p_view(new, pred), self.status(
            new, pred, "Transcript re-encoded", time.perf_counter() - start)

    def cost_curve(self, state: StudioState | None) -> tuple[Any, str]:
        """Sweep the p-grid once per clip + transcript (:meth:`Predictor.sweep`) and plot FLOPs and kept
        fraction against p with the current p marked. The sweep's predictions join the entry's cache,
        so later slider moves onto grid values only redraw. Runs right after ``analyze`` /
        ``set_transcript`` (a ``.then`` step), so the first result does not wait for it."""
        entry = self._entry(state)
        pred = self.prediction(entry, state.top_p)
        if not entry.sweep and pred.top_p is not None:
            start = time.perf_counter()
            with self.lock:
                known = dict(entry.grid)
            points = self.predictor(entry.checkpoint).sweep(entry.prepared, self.settings.top_p_grid, known=known)
            with self.lock:
                entry.grid.update({round(point.top_p, 4): point.prediction for point in points})
            entry.sweep = points
            entry.curve = cost_curve_figure(points)
            entry.timings["sweep_s"] = time.perf_counter() - start
        return self._marked_curve(entry, pred), flops_line(pred)

    def select_frame(self, state: StudioState | None, frame: int) -> tuple[StudioState, FrameView]:
        entry = self._entry(state)
        pred = self.prediction(entry, state.top_p)
        n = int(entry.record.faces.shape[0])
        frame = int(min(max(int(frame or 0), 0), max(n - 1, 0)))
        return state.replace(frame=frame), self.frame_view(entry, pred, frame)

    def export(self, state: StudioState | None) -> str:
        """Write the full report (as ``python -m mesm_viz.report`` does) for the current p and frame
        and return a .zip path."""
        entry = self._entry(state)
        pred = self.prediction(entry, state.top_p)
        root = Path(self.settings.export_dir or tempfile.gettempdir()) / "mesm_exports"
        p_tag = "dense" if pred.top_p is None else f"p{pred.top_p:.2f}"
        name = f"mesm_report_{Path(entry.video).stem[:40]}_{p_tag}_{entry.key[-8:]}"
        out = root / name
        write_full_report(pred, out, frame=state.frame)
        zip_path = root / f"{name}.zip"
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(out.iterdir()):
                archive.write(file, arcname=f"{name}/{file.name}")
        return str(zip_path)
