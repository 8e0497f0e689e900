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

Numbers typed out of range (top-p, frame) are clamped, applied, and named in the status line. Clips with
known cues (the sample clips, or a synthetic clip with its ``cues/<id>.npz``) get the true cue region
beside the attention and, per layer, the attention and kept cells inside it against chance
(:func:`mesm_core.cues.clip_cue_rows`, the quantity ``python -m mesm_core.evaluate`` reports).

The views are drawn by :mod:`mesm_viz.views`, :mod:`mesm_viz.face_plots`, :mod:`mesm_viz.mel_plot` and
:mod:`mesm_viz.frames`; error text comes from :mod:`mesm_viz.messages`.
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
from typing import Any, Callable, Sequence

import numpy as np

from mesm_core.checkpoint import read_checkpoint_info, read_training_data
from mesm_core.config import DataConfig
from mesm_core.cues import CueRow, clip_cue_rows
from mesm_core.errors import InputError
from mesm_core.inference import Prediction, Predictor, PreparedClip, SweepPoint
from mesm_core.types import ClipRecord
from mesm_viz import figures as G
from mesm_viz.catalog import (
    BUNDLED_CHECKPOINTS,
    bundled_checkpoints,
    checkpoint_label,
    discover_checkpoints,
    find_cue_file,
    resolve_default_checkpoint,
)
from mesm_viz.face_plots import facs_figure, layer_grid_figure
from mesm_viz.frames import (
    FRAME_HEIGHT,
    STRIP_HEIGHT,
    box_scale,
    decode_display_frames,
    draw_boxes,
    frame_boxes,
    resize,
)
from mesm_viz.mel_plot import mel_figure
from mesm_viz.messages import ErrorText, explain_error, plain_text
from mesm_viz.report import write_full_report
from mesm_viz.views import (
    ClipView,
    FrameView,
    ModelInfo,
    PView,
    best_frame,
    cost_curve_figure,
    cue_summary,
    dense_cost_figure,
    facs_table,
    flops_line,
    frame_regions,
    mark_top_p,
    numbers,
    probabilities_view,
)

Progress = Callable[[float, str], None]

log = logging.getLogger(__name__)

__all__ = ["TOP_P_GRID", "TOP_P_RANGE", "AppSettings", "StudioState", "ClipEntry", "Studio", "UserInputError",
           "describe_error", "clamp_top_p", "clamp_frame"]

TOP_P_GRID: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TOP_P_RANGE: tuple[float, float] = (0.05, 1.0)   # the slider's range; typed values outside are clamped


class UserInputError(InputError, ValueError):
    """Input the user can fix in the studio itself (no video, nothing analysed yet)."""


def describe_error(exc: BaseException) -> str:
    """One line for logs and tests: the advice, then the detail (never a server path)."""
    return str(explain_error(exc))


def clamp_top_p(value: float | None, bounds: tuple[float, float] = TOP_P_RANGE) -> tuple[float | None, str]:
    """A typed top-p brought into ``bounds``, and a note for the status line when it had to be moved.

    None (nothing typed) stays None: the checkpoint's own p is used.
    """
    if value is None:
        return None, ""
    low, high = bounds
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, f"top-p must be a number between {low:g} and {high:g}; the checkpoint's own p is used."
    if not np.isfinite(number):
        return None, f"top-p must be a number between {low:g} and {high:g}; the checkpoint's own p is used."
    clamped = round(min(max(number, low), high), 4)
    if clamped == number:
        return clamped, ""
    return clamped, f"top-p must be between {low:g} and {high:g}: {number:g} was applied as {clamped:g}."


def clamp_frame(value: Any, n_frames: int) -> tuple[int, str]:
    """A typed frame index brought into ``0 … n_frames - 1``, and a note when it had to be moved."""
    try:
        number = int(round(float(value or 0)))
    except (TypeError, ValueError):
        number = 0
    last = max(n_frames - 1, 0)
    clamped = min(max(number, 0), last)
    if clamped == number:
        return clamped, ""
    return clamped, (f"Frame {number} does not exist: this clip has {n_frames} sampled frame"
                     f"{'s' * (n_frames != 1)} (0–{last}); frame {clamped} is shown.")


@dataclass
class AppSettings:
    """What ``app.py`` flags set. Limits are enforced here (DataConfig) and by Gradio's upload limit."""

    checkpoint: str = str(BUNDLED_CHECKPOINTS / "mesm_small")
    checkpoint_dirs: list[str] = field(default_factory=list)
    max_upload_mb: float = 50.0
    max_seconds: float = 30.0
    device: str = "cpu"
    # "auto" runs each sparse block on the path measured fastest at its density (gather-GEMM at low p,
    # the BN-folded dense emulation at high p; mesm_core/models/sparse/auto.py); every path gives the same
    # numbers. None keeps the checkpoint's choice.
    sparse_backend: str | None = "auto"
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
    cue_file: str | None = None  # a cue file the user gave (samples' and on-disk clips' are found again)

    def replace(self, **changes: Any) -> "StudioState":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def clip_key(checkpoint: str, video_sha1: str, transcript: str, cue_file: str | None = None) -> str:
    text = hashlib.sha1(transcript.encode("utf-8")).hexdigest()[:12]
    ck = hashlib.sha1(str(checkpoint).encode("utf-8")).hexdigest()[:8]
    key = f"{ck}-{video_sha1[:16]}-{text}"
    return key + (f"-{hashlib.sha1(cue_file.encode('utf-8')).hexdigest()[:8]}" if cue_file else "")


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
    regions: dict[int, list] = field(default_factory=dict)  # frame → FACS regions at crop size
    timings: dict[str, float] = field(default_factory=dict)
    cue_file: str | None = None                            # the true cue regions attached to the record
    cue_note: str = ""                                     # why a cue file given was not used

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
            return True, None, self.explain(exc).headline
        if model.arch != "mesm":
            return False, None, ("FE2E is a dense model: every cell of every layer is computed, so top-p "
                                 "does not apply (the slider is disabled and ignored).")
        return True, float(model.top_p), (f"MESM keeps, in each frame/chunk, the smallest set of cells holding "
                                          f"a share p of the attention (trained with p = {model.top_p:g}).")

    def model_info(self, checkpoint: str | None) -> ModelInfo | None:
        """What the checkpoint says about itself (data, classes, card), for the page; None when the
        folder is not a readable checkpoint (loading it reports why)."""
        checkpoint = checkpoint or self.default_checkpoint()
        try:
            info = read_checkpoint_info(checkpoint)
            training = read_training_data(checkpoint)
        except Exception:  # noqa: BLE001 — the analysis will name the problem
            return None
        model = info.run_config.model
        f1 = info.metrics.get("valid_f1")
        return ModelInfo(
            name=info.preset or Path(checkpoint).name, arch=str(model.arch), classes=tuple(info.classes),
            trained_on=training.description, source=training.source, synthetic=training.synthetic,
            card=None if training.card is None else str(training.card),
            top_p=float(model.top_p) if model.arch == "mesm" else None,
            thresholds="tuned on validation" if info.thresholds else "default 0.5 (none stored)",
            valid_f1=float(f1) if isinstance(f1, (int, float)) else None)

    def explain(self, exc: BaseException) -> ErrorText:
        """The page's text for an error, with this studio's limits in the advice."""
        return explain_error(exc, max_seconds=self.settings.max_seconds, max_upload_mb=self.settings.max_upload_mb)

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

    def _attach_cues(self, prepared: PreparedClip, path: str | None, cue_file: str | None) -> tuple[str | None, str]:
        """What became of the clip's true cue regions (the cue file the user gave, else a sample's or the
        synthetic layout's, :func:`mesm_viz.catalog.find_cue_file`; :meth:`Predictor.prepare` attached it).
        Returns (the file used or None, a note when a given file could not be used)."""
        if not prepared.cue_error:
            return prepared.cue_file, ""
        if cue_file:
            return None, (f"The cue file “{Path(cue_file).name}” does not fit this clip, so no ground truth "
                          f"is shown ({plain_text(prepared.cue_error)}).")
        log.warning("cue file %s not used: %s", path, prepared.cue_error)
        return None, ""

    def _build_entry(self, video: str, transcript: str | None, checkpoint: str, cue_file: str | None = None,
                     progress: Progress | None = None) -> ClipEntry:
        from mesm_core.io import file_sha1

        predictor = self.predictor(checkpoint)
        start = time.perf_counter()
        text = (transcript or "").strip()
        sha1 = file_sha1(video) if Path(video).is_file() else ""
        key = clip_key(checkpoint, sha1, text, cue_file)
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        config = self.data_config(predictor)
        path = cue_file or find_cue_file(video, sha1)
        prepared = predictor.prepare(video, text, data_config=config, progress=progress, cue_file=path, video_sha1=sha1)
        record = prepared.record
        used, cue_note = self._attach_cues(prepared, path, cue_file)
        if progress is not None:
            progress(0.92, "Frames for display")
        t0 = time.perf_counter()
        frames = decode_display_frames(video, record.frame_times, FRAME_HEIGHT, start_s=record.meta.start_s)
        entry = ClipEntry(key=key, checkpoint=checkpoint, video=str(video), prepared=prepared, frames=frames,
                          cue_file=used, cue_note=cue_note)
        entry.timings["frames_s"] = time.perf_counter() - t0
        entry.timings["prepare_total_s"] = time.perf_counter() - start
        self._store(entry)
        return entry

    def _entry(self, state: StudioState | None) -> ClipEntry:
        if state is None or not state.key:
            raise UserInputError("Analyze a video first: upload a clip, give its transcript, press Analyze.")
        with self.lock:
            entry = self.entries.get(state.key)
            if entry is not None:
                self.entries.move_to_end(state.key)
                return entry
        # Evicted (or another worker): rebuild from what the state remembers.
        return self._build_entry(state.video, state.transcript, state.checkpoint, state.cue_file)

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

    def _regions(self, entry: ClipEntry, frame: int) -> list:
        """The frame's FACS regions at crop size (statistics and outlines alike), cached."""
        if frame not in entry.regions:
            entry.regions[frame] = frame_regions(entry.record, frame)
        return entry.regions[frame]

    def cue_rows(self, entry: ClipEntry, pred: Prediction) -> list[CueRow]:
        """Per layer: attention and kept cells inside the true cue vs chance (empty without cues)."""
        return clip_cue_rows(entry.record, pred.trace, pred.chunk_frames) if entry.cue_file else []

    # views ------------------------------------------------------------------------------------
    def clip_view(self, entry: ClipEntry, frame: int = 0) -> ClipView:
        record = entry.record
        strip = []
        for i, image in enumerate(entry.frames):
            thumb = resize(image, STRIP_HEIGHT)
            thumb = draw_boxes(thumb, frame_boxes(record, i), box_scale(record, thumb), width=2)
            flag = "" if bool(record.face_detected[i]) else " · no face"
            strip.append((thumb, f"{i}: t={float(record.frame_times[i]):.1f}s{flag}"))
        n_faces = int(np.asarray(record.face_detected).sum())
        summary = (f"**Clip** {Path(record.source).name}: {record.meta.duration_s or 0:.1f} s, "
                   f"{record.faces.shape[0]} sampled frames ({n_faces} with a face), "
                   f"{record.mel.shape[1]} mel frames · prepared in "
                   f"{entry.timings.get('prepare_total_s', 0):.2f} s")
        if entry.cue_file:
            summary += " · true cue regions known (dotted green outlines; Ground truth tab)"
        return ClipView(strip=strip, n_frames=int(record.faces.shape[0]), summary=summary, frame=frame)

    def frame_view(self, entry: ClipEntry, pred: Prediction, frame: int, with_frame: bool = True) -> FrameView:
        record = entry.record
        n = int(record.faces.shape[0])
        if n == 0:
            note = pred.face_note or "No face frames."
            return FrameView(None, None, None, ["region"], [], note, 0)
        frame = int(min(max(frame, 0), n - 1))
        image = None
        if with_frame and frame < len(entry.frames):
            big = entry.frames[frame]
            image = draw_boxes(big, frame_boxes(record, frame), box_scale(record, big), width=3)
        cue = record.face_cues[frame] if entry.cue_file and record.face_cues is not None else None
        regions = self._regions(entry, frame)
        table = facs_table(pred, frame, regions)
        return FrameView(image, layer_grid_figure(pred, frame, cue),
                         facs_figure(pred, frame, regions, table.proto_names, table.rows, table.headers, cue),
                         table.headers, table.rows, table.note, frame)

    def p_view(self, entry: ClipEntry, pred: Prediction) -> PView:
        """The p-dependent views. Drawn once per (clip, p) and kept with the entry (figures are never
        mutated), so moving the slider back to a p already seen only re-marks the cost curve."""
        with self.lock:
            drawn = entry.drawn.get(pred.top_p)
        if drawn is None:
            label, prob_fig, modality_fig = probabilities_view(pred)
            rows = self.cue_rows(entry, pred)
            cue_fig, cue_text = cue_summary(rows, pred.top_p)
            mel_cue = entry.record.mel_cues if entry.cue_file else None
            drawn = (label, prob_fig, modality_fig,
                     mel_figure(pred, bases=entry.mel_bases, cue_mask=mel_cue,
                                data_config=self.predictor(entry.checkpoint).data_config),
                     G.flops_bar_figure(pred.flops), numbers(pred, rows), cue_fig, cue_text)
            with self.lock:
                entry.drawn[pred.top_p] = drawn
                while len(entry.drawn) > len(self.settings.top_p_grid) + 4:
                    entry.drawn.pop(next(iter(entry.drawn)))
        label, prob_fig, modality_fig, mel_fig, flops_fig, values, cue_fig, cue_text = drawn
        return PView(label=label, probabilities_fig=prob_fig, modality_fig=modality_fig, mel_fig=mel_fig,
                     flops_fig=flops_fig, flops_p_fig=self._marked_curve(entry, pred), flops_text=flops_line(pred),
                     numbers=values, cue_fig=cue_fig, cue_text=cue_text)

    @staticmethod
    def _marked_curve(entry: ClipEntry, pred: Prediction) -> dict | None:
        """The cost curve marked at the current p (None before the sweep has run)."""
        return mark_top_p(entry.curve, pred.top_p) if entry.curve else None

    def text_note(self, state: StudioState) -> str:
        """How much of the state's transcript the model read (tokens used, words its limit dropped)."""
        coverage = self._entry(state).prepared.text_coverage
        if coverage is None:
            return ""
        return ("⚠️ " if coverage.truncated else "") + "**Transcript:** " + coverage.summary()

    def status(self, entry: ClipEntry, pred: Prediction, action: str, seconds: float, notes: Sequence[str] = ()) -> str:
        predicted = ", ".join(pred.predicted) or "none above threshold"
        parts = [f"**Done:** {action} in {seconds:.2f} s · predicted: **{predicted}**"]
        if pred.top_p is None:
            parts.append("FE2E: top-p ignored")
        parts += [f"Note: {n}" for n in (*notes, *pred.notes, *([entry.cue_note] if entry.cue_note else [])) if n]
        return "  \n".join(parts)

    # callbacks --------------------------------------------------------------------------------
    def analyze(self, video: str | None, transcript: str | None, checkpoint: str | None, top_p: float | None,
                cue_file: str | None = None, progress: Progress | None = None
                ) -> tuple[StudioState, ClipView, FrameView, PView, str]:
        """Upload → first result. Raises ClipError / CheckpointError / UserInputError for bad input.

        ``cue_file``: a synthetic clip's ``cues/<id>.npz`` (the sample clips' are found by themselves).
        ``progress(fraction, stage)`` hears of each stage (decode, faces, audio, encoders, views).
        """
        if not video:
            raise UserInputError("Upload a video first.")
        checkpoint = checkpoint or self.default_checkpoint()
        p, p_note = clamp_top_p(top_p)
        start = time.perf_counter()
        entry = self._build_entry(str(video), transcript, checkpoint, cue_file or None, progress)
        if progress is not None:
            progress(0.96, "Sparse layers, heads and views")
        pred = self.prediction(entry, p)
        record = entry.record
        # A clip with known cues opens on a frame that shows one (the cue outlines need something to outline).
        showing_cue = record.face_cues.reshape(len(record.face_cues), -1).any(axis=1) \
            if entry.cue_file and record.face_cues is not None else None
        frame = max(best_frame(record, showing_cue), 0)
        state = StudioState(key=entry.key, video=str(video), transcript=entry.prepared.transcript,
                            checkpoint=checkpoint, top_p=pred.top_p, frame=frame, cue_file=cue_file or None)
        views = (self.clip_view(entry, frame), self.frame_view(entry, pred, frame), self.p_view(entry, pred))
        return (state, *views, self.status(entry, pred, "Analysed", time.perf_counter() - start, [p_note]))

    def set_top_p(self, state: StudioState | None, top_p: float | None) -> tuple[StudioState, FrameView, PView, str]:
        """Slider moved: rerun only the sparse stage + heads from the cached entry. A value typed out
        of range is clamped, applied and named in the status line."""
        start = time.perf_counter()
        entry = self._entry(state)
        p, note = clamp_top_p(top_p)
        pred = self.prediction(entry, p if p is not None else state.top_p)
        state = state.replace(key=entry.key, top_p=pred.top_p)
        frame_view = self.frame_view(entry, pred, state.frame, with_frame=False)
        action = f"Top-p {pred.top_p}" if pred.top_p is not None else "Rerun"
        return state, frame_view, self.p_view(entry, pred), self.status(
            entry, pred, action, time.perf_counter() - start, [note])

    def set_transcript(self, state: StudioState | None, transcript: str) -> tuple[StudioState, FrameView, PView, str]:
        """Transcript edited: re-encode the text, reuse the dense visual/audio features."""
        start = time.perf_counter()
        entry = self._entry(state)
        text = (transcript or "").strip()
        key = clip_key(entry.checkpoint, entry.prepared.video_sha1, text, state.cue_file)
        with self.lock:
            new = self.entries.get(key)
        if new is None:
            prepared = self.predictor(entry.checkpoint).retext(entry.prepared, text)
            new = ClipEntry(key=key, checkpoint=entry.checkpoint, video=entry.video, prepared=prepared,
                            frames=entry.frames, regions=entry.regions, mel_bases=entry.mel_bases,
                            timings=dict(entry.timings), cue_file=entry.cue_file, cue_note=entry.cue_note)
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
        ``set_transcript`` (a ``.then`` step), so the first result does not wait for it. A dense
        checkpoint (FE2E) gets a flat line and a caption saying why."""
        entry = self._entry(state)
        pred = self.prediction(entry, state.top_p)
        if pred.top_p is None:
            return dense_cost_figure(pred), flops_line(pred)
        if not entry.sweep:
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

    def select_frame(self, state: StudioState | None, frame: Any) -> tuple[StudioState, FrameView, str]:
        """Another sampled frame: its face views. A frame number out of range is clamped; the note
        (else "") says so."""
        entry = self._entry(state)
        pred = self.prediction(entry, state.top_p)
        index, note = clamp_frame(frame, int(entry.record.faces.shape[0]))
        return state.replace(frame=index), self.frame_view(entry, pred, index), note

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
