"""The attention studio's callbacks as plain Python (no Gradio import: testable without a server).

The studio is three parts: a :class:`~mesm_viz.predictor_pool.PredictorPool` (the loaded checkpoints and
one face detector), a :class:`~mesm_viz.clip_cache.ClipCache` (what does not depend on p: the prepared
clips, prepared as soon as a file is given, and their display frames) and :class:`Studio`, the callbacks.

Life of a clip:

1. ``Studio.prefetch(video, checkpoint)`` starts the p- and transcript-independent stage when a file is
   given; ``Studio.analyze(video, transcript, checkpoint, top_p)`` waits for it (or runs it), encodes the
   transcript and returns a small :class:`StudioState` (the key and the user's choices; no tensors) plus the
   views. ``Studio.strip(state)`` returns the frame strip once the display frames are decoded, and
   ``Studio.cost_curve(state)`` sweeps every slider position (:meth:`Predictor.sweep`) for the cost curve,
   after which a slider move only draws.
2. ``Studio.set_top_p(state, p)`` re-runs only the sparse blocks + heads (or reads the sweep) and draws
   the parts asked for (:data:`~mesm_viz.view_models.PARTS`): the header and the tab the user looks at.
3. ``Studio.set_floors(state, keep_floor)`` switches between the checkpoint's rule and the paper's rule
   (keep floors off); ``Studio.set_transcript(state, text)`` re-encodes only the text.
4. ``Studio.select_frame(state, i)``, ``Studio.tab_views(state, tab)`` and ``Studio.export(state)``.

Numbers typed out of range (top-p, frame) are clamped, applied, and named in the status line. Clips with
known cues get the true cue region beside the attention and, per layer, the attention inside it against
chance (:func:`mesm_core.cues.clip_cue_rows`, the quantity ``python -m mesm_core.evaluate`` reports).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mesm_core.checkpoint import read_checkpoint_info, read_training_data
from mesm_core.config import DataConfig
from mesm_core.cues import CueRow, clip_cue_rows
from mesm_core.errors import InputError
from mesm_core.inference import Prediction, Predictor, PreparedClip
from mesm_core.models.registry import get_arch
from mesm_viz import figures
from mesm_viz.catalog import (
    BUNDLED_CHECKPOINTS,
    bundled_checkpoints,
    checkpoint_label,
    discover_checkpoints,
    find_cue_file,
    resolve_default_checkpoint,
    sample_transcript,
)
from mesm_viz.clip_cache import ClipCache, ClipEntry, Progress, clip_key
from mesm_viz.face_plots import facs_figure, layer_grid_figure
from mesm_viz.floors import (
    checkpoint_floors,
    flat_cost_range,
    floor_ranges,
    floor_report,
    layer_rules,
    range_text,
    read_floors_off,
)
from mesm_viz.frames import FRAME_HEIGHT, STRIP_HEIGHT, box_scale, draw_boxes, frame_boxes, resize
from mesm_viz.image_store import image_url
from mesm_viz.mel_plot import mel_figure
from mesm_viz.messages import ErrorText, explain_error, plain_text
from mesm_viz.predictor_pool import MIN_FACE_SHARE, PredictorPool
from mesm_viz.report import write_full_report
from mesm_viz.training_data import data_facts
from mesm_viz.workers import background
from mesm_viz.view_models import PARTS, Analysis, ClipView, FrameView, ModelInfo, PView, Update, parts_for
from mesm_viz.views import (
    best_frame,
    caption_flat,
    caution,
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

log = logging.getLogger(__name__)

__all__ = ["TOP_P_GRID", "TOP_P_RANGE", "AppSettings", "StudioState", "PControl", "Studio", "UserInputError",
           "describe_error", "clamp_top_p", "clamp_frame", "default_concurrency"]

# Every position of the slider (step 0.05): the cost curve runs them all once per clip, so that a slider
# move afterwards only draws.
TOP_P_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 21))
TOP_P_RANGE: tuple[float, float] = (0.05, 1.0)   # the slider's range; typed values outside are clamped


class UserInputError(InputError, ValueError):
    """Input the user can fix in the studio itself (no video, nothing analysed yet)."""


def describe_error(exc: BaseException) -> str:
    """One line for logs and tests: the advice, then the detail (never a server path)."""
    return str(explain_error(exc))


def default_concurrency() -> int:
    """Analyses at once by default: the CPU cores this process may use (each analysis runs one torch thread)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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
    concurrency: int = field(default_factory=default_concurrency)   # analyses (clip preparations) at once
    min_face_share: float = MIN_FACE_SHARE                          # smallest face looked for (frame share)


@dataclass(frozen=True)
class StudioState:
    """What Gradio keeps per browser session: small and tensor-free. The heavy data lives in the
    studio's cache under ``key`` and is rebuilt from the other fields when it was evicted."""

    key: str                    # the ClipEntry's key: checkpoint + video content hash + transcript
    video: str
    transcript: str
    checkpoint: str
    top_p: float | None         # None for FE2E
    frame: int                  # the selected sampled frame
    cue_file: str | None = None  # a cue file the user gave (samples' and on-disk clips' are found again)
    keep_floor: bool = True     # False: the paper's rule (the checkpoint's keep floors switched off)
    shown: str = ""             # the tab part the last update drew ("" = every part)

    def replace(self, **changes: Any) -> "StudioState":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PControl:
    """How the page's top-p controls look for a checkpoint."""

    interactive: bool           # the slider acts (MESM) or not (FE2E)
    default_p: float | None     # the checkpoint's trained p
    note: str                   # what the slider does for this checkpoint
    floors: dict[str, float]    # modality → keep floor (the paper's-rule switch shows when one is > 0)
    floors_off_note: str = ""   # the paper's rule's accuracy cost, as the checkpoint records it


class Studio:
    """The callbacks of one app process over a :class:`PredictorPool` and a :class:`ClipCache`."""

    def __init__(self, settings: AppSettings | None = None) -> None:
        self.settings = settings or AppSettings()
        self.pool = PredictorPool(self.settings.device, self.settings.sparse_backend,
                                  min_face_share=self.settings.min_face_share)
        self.clips = ClipCache(self.pool, self.data_config, workers=self.settings.concurrency,
                               size=self.settings.cache_size)
        self._grid = {round(float(p), 4) for p in self.settings.top_p_grid}

    # checkpoints ------------------------------------------------------------------------------
    @property
    def entries(self):
        """The cached clip entries (key → :class:`ClipEntry`)."""
        return self.clips.entries

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
        return self.pool.get(checkpoint)

    def warm_up(self) -> None:
        """Load the default checkpoint, build MTCNN and compile the audio path now, so the first upload does
        not pay for it (``app.py`` calls this before launching; failures are left for the first request)."""
        self.pool.warm_up(self.default_checkpoint())

    def top_p_control(self, checkpoint: str | None) -> PControl:
        """The slider's state, its note and the checkpoint's floors, for a checkpoint."""
        if not checkpoint:
            return PControl(True, None, "", {})
        try:
            model = read_checkpoint_info(checkpoint).run_config.model
        except Exception as exc:  # noqa: BLE001 — a bad folder: say so, keep the slider usable
            return PControl(True, None, self.explain(exc).headline, {})
        if not get_arch(model.arch).supports_top_p:
            return PControl(False, None, "FE2E is a dense model: every cell of every layer is computed, so top-p "
                                         "does not apply (the slider is disabled and ignored).", {})
        floors = checkpoint_floors(model)
        cost = read_floors_off(resolve_default_checkpoint(checkpoint))
        note = cost.sentence(float(model.top_p)) if cost else (
            "Its accuracy cost is not recorded for this checkpoint (measure it with `python -m "
            "mesm_viz.floor_cost`)." if any(v > 0 for v in floors.values()) else "")
        return PControl(True, float(model.top_p), (f"MESM keeps, in each frame/chunk, the smallest set of cells "
                                                   f"holding a share p of the attention (trained with p = "
                                                   f"{model.top_p:g})."), floors, note)

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
        facts = data_facts(info.metadata)
        synthetic = training.synthetic or "synthetic" in facts.lower()
        return ModelInfo(
            name=info.preset or Path(checkpoint).name, arch=str(model.arch), classes=tuple(info.classes),
            trained_on=training.description, source=training.source, synthetic=synthetic,
            card=None if training.card is None else str(training.card),
            top_p=float(model.top_p) if get_arch(model.arch).supports_top_p else None,
            thresholds="tuned on validation" if info.thresholds else "default 0.5 (none stored)",
            valid_f1=float(f1) if isinstance(f1, (int, float)) else None, data_facts=facts)

    def explain(self, exc: BaseException) -> ErrorText:
        """The page's text for an error, with this studio's limits in the advice."""
        return explain_error(exc, max_seconds=self.settings.max_seconds, max_upload_mb=self.settings.max_upload_mb)

    def data_config(self, predictor: Predictor) -> DataConfig:
        return dataclasses.replace(predictor.data_config, max_duration_s=float(self.settings.max_seconds),
                                   max_file_mb=float(self.settings.max_upload_mb))

    # a new file -----------------------------------------------------------------------------------
    def prefetch(self, video: str | None, checkpoint: str | None) -> None:
        """Start preparing a clip the moment it is given (Analyze then finds it ready or under way)."""
        if video:
            self.clips.prefetch(str(video), checkpoint or self.default_checkpoint(), self._cue_path(str(video), None))

    def transcript_for(self, video: str | None) -> tuple[str | None, str]:
        """The transcript a new file comes with, and where from: its ``.txt``/``.srt`` beside it, or the
        sample clip it is a copy of (by content). (None, "") when it comes with none."""
        if not video:
            return None, ""
        from mesm_core.data.transcript import find_transcript, read_transcript_file

        sidecar = find_transcript(Path(video))
        if sidecar is not None:
            return read_transcript_file(sidecar).strip(), f"“{sidecar.name}” beside it"
        found = sample_transcript(self.clips.sha1(str(video)))
        return (found[0], f"the sample clip “{found[1]}”") if found else (None, "")

    # entries --------------------------------------------------------------------------------------
    def _cue_path(self, video: str, cue_file: str | None) -> str | None:
        """The clip's true cue file: the one given, else a sample's or the synthetic layout's
        (:func:`mesm_viz.catalog.find_cue_file`); None for clips without known cues."""
        return cue_file or find_cue_file(video, self.clips.sha1(video))

    @staticmethod
    def _cue_outcome(prepared: PreparedClip, path: str | None, cue_file: str | None) -> tuple[str | None, str]:
        """What became of the clip's true cue regions (:meth:`Predictor.prepare` attached them): (the file used
        or None, a note when a given file could not be used)."""
        if not prepared.cue_error:
            return prepared.cue_file, ""
        if cue_file:
            return None, (f"The cue file “{Path(cue_file).name}” does not fit this clip, so no ground truth "
                          f"is shown ({plain_text(prepared.cue_error)}).")
        log.warning("cue file %s not used: %s", path, prepared.cue_error)
        return None, ""

    def _build_entry(self, video: str, transcript: str | None, checkpoint: str, cue_file: str | None = None,
                     progress: Progress | None = None) -> ClipEntry:
        text = (transcript or "").strip()
        path = self._cue_path(str(video), cue_file)
        return self.clips.entry(str(video), text, checkpoint, cue_file, path,
                                lambda prepared: self._cue_outcome(prepared, path, cue_file), progress)

    def _entry(self, state: StudioState | None) -> ClipEntry:
        if state is None or not state.key:
            raise UserInputError("Analyze a video first: upload a clip, give its transcript, press Analyze.")
        entry = self.clips.get(state.key)
        if entry is not None:
            return entry
        # Evicted (or another worker): rebuild from what the state remembers.
        return self._build_entry(state.video, state.transcript, state.checkpoint, state.cue_file)

    def prediction(self, entry: ClipEntry, top_p: float | None, keep_floor: bool = True) -> Prediction:
        """The cached prediction at ``top_p`` (slider positions are kept for the entry's lifetime, other
        values in a small LRU), else one run of the p-dependent stage."""
        predictor = self.pool.get(entry.checkpoint)
        p = None if not predictor.is_sparse else round(float(predictor.config.top_p if top_p is None else top_p), 4)
        key = (p, bool(keep_floor) or p is None)
        with entry.lock:
            cached = entry.predictions.get(key)
            if cached is not None:
                entry.predictions.move_to_end(key)
                return cached
        pred = self.pool.run(entry.checkpoint, entry.prepared, p, keep_floor=key[1])
        self._remember(entry, key, pred)
        return pred

    def _remember(self, entry: ClipEntry, key: tuple, pred: Prediction) -> None:
        with entry.lock:
            entry.predictions[key] = pred
            off_grid = [k for k in entry.predictions if k[0] not in self._grid]
            for stale in off_grid[:max(0, len(off_grid) - 8)]:
                entry.predictions.pop(stale, None)

    def cue_rows(self, entry: ClipEntry, pred: Prediction) -> list[CueRow]:
        """Per layer: attention and kept cells inside the true cue vs chance (empty without cues)."""
        return clip_cue_rows(entry.record, pred.trace, pred.chunk_frames) if entry.cue_file else []

    # views --------------------------------------------------------------------------------------------
    def clip_view(self, entry: ClipEntry, frame: int = 0) -> ClipView:
        """The clip's facts and, once its display frames are decoded, its frame strip."""
        record = entry.record
        strip = None
        if entry.frames is not None:
            strip = []
            for i, image in enumerate(entry.frames):
                thumb = resize(image, STRIP_HEIGHT)
                thumb = draw_boxes(thumb, frame_boxes(record, i), box_scale(record, thumb), width=2)
                flag = "" if bool(record.face_detected[i]) else " · no face"
                strip.append((thumb, f"{i}: t={float(record.frame_times[i]):.1f}s{flag}"))
        n_faces = int(np.asarray(record.face_detected).sum())
        summary = (f"**Clip** {Path(record.source).name}: {record.meta.duration_s or 0:.2f} s, "
                   f"{record.faces.shape[0]} sampled frames ({n_faces} with a face), "
                   f"{record.mel.shape[1]} mel frames · prepared in "
                   f"{entry.timings.get('prepare_total_s', 0):.2f} s")
        if entry.cue_file:
            summary += " · true cue regions known (dotted green outlines; Ground truth tab)"
        if "sweep_s" in entry.timings:
            summary += f" · every slider position run in {entry.timings['sweep_s']:.2f} s (a move now only draws)"
        return ClipView(strip=strip, n_frames=int(record.faces.shape[0]), summary=summary, frame=frame)

    def _rules(self, entry: ClipEntry, pred: Prediction, keep_floor: bool):
        """Per sparse layer, which rule set its masks at this p (empty without a floor or under the paper's
        rule); computed once per (clip, p)."""
        floors = self.pool.floors(entry.checkpoint)
        if not keep_floor or not any(v > 0 for v in floors.values()):
            return []
        return self._drawn(entry, ("rules", pred.top_p), lambda: layer_rules(pred, floors))

    def _frame_rules(self, entry: ClipEntry, pred: Prediction, frame: int, keep_floor: bool) -> list[str] | None:
        """Per face layer: the rule that set this frame's mask ("floor"/"nucleus"), when there is a floor."""
        if not self._rules(entry, pred, keep_floor):
            return None
        from mesm_viz.floors import floor_decided

        floor = self.pool.floors(entry.checkpoint).get("visual", 0.0)
        decided = self._drawn(entry, ("decided", pred.top_p), lambda: [
            floor_decided(layer, pred.top_p, floor) for layer in pred.trace.get("visual", [])])
        return ["floor" if d[frame] else "nucleus" for d in decided]

    def frame_view(self, entry: ClipEntry, pred: Prediction, frame: int, with_frame: bool = True,
                   keep_floor: bool = True) -> FrameView:
        """The Face tab for one frame (``with_frame``: with the large frame, when the frames are decoded)."""
        record = entry.record
        n = int(record.faces.shape[0])
        if n == 0:
            return FrameView(None, None, None, ["region"], [], pred.face_note or "No face frames.", 0)
        frame = int(min(max(frame, 0), n - 1))
        image = None
        if with_frame and entry.frames is not None and frame < len(entry.frames):
            big = entry.frames[frame]
            image = draw_boxes(big, frame_boxes(record, frame), box_scale(record, big), width=3)
        view = self._drawn(entry, ("face", pred.top_p, keep_floor, frame),
                           lambda: self._draw_frame(entry, pred, frame, keep_floor))
        return dataclasses.replace(view, frame_image=image)

    def _draw_frame(self, entry: ClipEntry, pred: Prediction, frame: int, keep_floor: bool) -> FrameView:
        """The Face tab's figures and table for one frame (cached by the caller, without the large frame)."""
        record = entry.record
        cue = record.face_cues[frame] if entry.cue_file and record.face_cues is not None else None
        if frame not in entry.regions:
            entry.regions[frame] = frame_regions(record, frame)
        regions = entry.regions[frame]
        table = facs_table(pred, frame, regions)
        layer_fig = layer_grid_figure(pred, frame, cue, image=image_url,
                                      rules=self._frame_rules(entry, pred, frame, keep_floor))
        facs_fig = facs_figure(pred, frame, regions, table.proto_names, table.rows, table.headers, cue, image=image_url)
        return FrameView(None, layer_fig, facs_fig, table.headers, table.rows, table.note, frame)

    def _keep_drawn(self, entry: ClipEntry, key: tuple, value: Any) -> None:
        with entry.lock:
            entry.drawn[key] = value
            while len(entry.drawn) > 160:
                entry.drawn.popitem(last=False)

    def _drawn(self, entry: ClipEntry, key: tuple, draw) -> Any:
        with entry.lock:
            value = entry.drawn.get(key)
        if value is None:
            value = draw()
            self._keep_drawn(entry, key, value)
        return value

    def p_view(self, entry: ClipEntry, pred: Prediction, parts: frozenset[str] | None = None,
               keep_floor: bool = True) -> PView:
        """The p-dependent views of ``parts`` (default: all). Each part is drawn once per (clip, p, rule)
        and kept with the entry (figures are never mutated); the cost curve's marker is added per call."""
        parts = frozenset(PARTS) if parts is None else frozenset(parts)
        values: dict[str, Any] = {}
        for part in sorted(parts & {"header", "audio", "cue", "cost"}):
            view = self._drawn(entry, (part, pred.top_p, keep_floor), lambda: self._draw_part(entry, pred, part,
                                                                                             keep_floor))
            values.update({f.name: getattr(view, f.name) for f in dataclasses.fields(view)
                           if f.name != "parts" and getattr(view, f.name) is not None})
        if "header" in parts:
            values["floor_text"] = self.floor_text(entry, pred, keep_floor)
        if "cost" in parts:
            values["flops_p_fig"] = self.marked_curve(entry, pred, keep_floor)   # its marker moves with p
        return PView(parts=parts, **values)

    def _draw_part(self, entry: ClipEntry, pred: Prediction, part: str, keep_floor: bool) -> PView:
        """One part of the p views (cached by the caller; figures are never mutated)."""
        if part == "header":
            label, prob_svg, modality_svg = probabilities_view(pred)
            return PView(parts=frozenset({part}), label=label, probabilities_fig=prob_svg, modality_fig=modality_svg,
                         flops_text=flops_line(pred))
        if part == "audio":
            return PView(parts=frozenset({part}), mel_fig=self._mel(entry, pred, keep_floor))
        rows = self.cue_rows(entry, pred)
        if part == "cue":
            cue_fig, cue_text = cue_summary(rows, pred.top_p)
            return PView(parts=frozenset({part}), cue_fig=cue_fig, cue_text=cue_text)
        return PView(parts=frozenset({part}), flops_fig=figures.flops_bar_dict(pred.flops),
                     numbers=numbers(pred, rows, self._rules(entry, pred, keep_floor), keep_floor))

    def _mel(self, entry: ClipEntry, pred: Prediction, keep_floor: bool) -> dict:
        rules = self._rules(entry, pred, keep_floor)
        audio = [f"{r.rule} decided {r.decided} of {r.items} chunks" if r.rule == "floor" else "nucleus"
                 for r in rules if r.modality == "audio"] or None
        return mel_figure(pred, bases=entry.mel_bases, cue_mask=entry.record.mel_cues if entry.cue_file else None,
                          data_config=self.pool.get(entry.checkpoint).data_config, image=image_url, rules=audio)

    def floor_text(self, entry: ClipEntry, pred: Prediction, keep_floor: bool) -> str:
        """The floor note at this p (which layers the floor set, which rule per layer): "" without a floor."""
        report = floor_report(pred, self.pool.floors(entry.checkpoint), keep_floor)
        if report is None:
            return ""
        table = report.table()
        return report.text + (f"\n\n{table}" if table and report.binding else "")

    def floor_range_text(self, state: StudioState | None) -> str:
        """Which p range the floor fixes which layers in, from the cost curve's sweep ("" before it has run,
        without a floor, or under the paper's rule)."""
        if state is None or not state.keep_floor:
            return ""
        entry = self._entry(state)
        return range_text(entry.floor_ranges, entry.flat_to) if entry.floor_ranges else ""

    def marked_curve(self, entry: ClipEntry, pred: Prediction, keep_floor: bool = True) -> dict | None:
        """The cost curve (of the rule in use) marked at the current p; None before its sweep has run."""
        curve = entry.curves.get(keep_floor)
        return mark_top_p(curve, pred.top_p) if curve else None

    def clip_summary(self, state: StudioState | None) -> str:
        """The clip's facts line (after the cost curve's sweep, how long running every slider position took)."""
        return self.clip_view(self._entry(state), state.frame).summary if state is not None else ""

    def has_cues(self, state: StudioState | None) -> bool:
        """Whether the state's clip has its true cue regions (the Ground truth tab shows)."""
        return bool(state is not None and self._entry(state).cue_file)

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
        coverage = pred.text_coverage
        # The dropped words are listed once, under the transcript; here only that there are some.
        model_notes = [n for n in pred.notes if not n.startswith("Transcript cut at the model's limit")]
        if coverage is not None and coverage.truncated:
            model_notes.append(f"Transcript cut at the model's limit: {len(coverage.dropped_words)} words had no "
                               "effect (listed under the transcript).")
        if any(n.startswith("At p = ") and "keep floor" in n for n in model_notes):
            model_notes = [n for n in model_notes if not (n.startswith("At p = ") and "keep floor" in n)]
            model_notes.append("The keep floor, not p, set some masks: see the note under the slider.")
        parts += [f"Note: {n}" for n in (*notes, *model_notes, caution(pred),
                                         *([entry.cue_note] if entry.cue_note else [])) if n]
        return "  \n".join(parts)

    # callbacks --------------------------------------------------------------------------------
    def analyze(self, video: str | None, transcript: str | None, checkpoint: str | None, top_p: float | None,
                cue_file: str | None = None, progress: Progress | None = None, *, keep_floor: bool = True,
                parts: frozenset[str] | None = None, frames: bool = True) -> Analysis:
        """Upload → first result. Raises ClipError / CheckpointError / UserInputError for bad input.

        ``cue_file``: a synthetic clip's ``cues/<id>.npz`` (the sample clips' are found by themselves).
        ``progress(fraction, stage)`` hears of each stage (decode, faces, audio, encoders, views).
        ``parts``: the p views to draw (default all); ``frames=False`` does not wait for the display
        frames (the strip comes from :meth:`strip`).
        """
        if not video:
            raise UserInputError("Upload a video first.")
        checkpoint = checkpoint or self.default_checkpoint()
        p, p_note = clamp_top_p(top_p)
        start = time.perf_counter()
        entry = self._build_entry(str(video), transcript, checkpoint, cue_file or None, progress)
        if progress is not None:
            progress(0.96, "Sparse layers, heads and views")
        pred = self.prediction(entry, p, keep_floor)
        record = entry.record
        # A clip with known cues opens on a frame that shows one (the cue outlines need something to outline).
        showing_cue = record.face_cues.reshape(len(record.face_cues), -1).any(axis=1) \
            if entry.cue_file and record.face_cues is not None else None
        frame = max(best_frame(record, showing_cue), 0)
        if frames:
            self._wait_frames(entry)
        state = StudioState(key=entry.key, video=str(video), transcript=entry.prepared.transcript,
                            checkpoint=checkpoint, top_p=pred.top_p, frame=frame, cue_file=cue_file or None,
                            keep_floor=keep_floor, shown=_shown(parts))
        views = (self.clip_view(entry, frame), self.frame_view(entry, pred, frame, keep_floor=keep_floor),
                 self.p_view(entry, pred, parts, keep_floor))
        return Analysis(state, *views, self.status(entry, pred, "Analysed", time.perf_counter() - start, [p_note]))

    def _wait_frames(self, entry: ClipEntry) -> None:
        if entry.frames is None:
            future = self.clips.frames(entry.video, entry.record, entry.prepared.video_sha1, FRAME_HEIGHT)
            entry.frames = future.result()

    def strip(self, state: StudioState | None) -> tuple[ClipView, FrameView]:
        """The frame strip and the large selected frame, once the display frames are decoded."""
        entry = self._entry(state)
        self._wait_frames(entry)
        pred = self.prediction(entry, state.top_p, state.keep_floor)
        return self.clip_view(entry, state.frame), self.frame_view(entry, pred, state.frame,
                                                                   keep_floor=state.keep_floor)

    def _update(self, state: StudioState, entry: ClipEntry, pred: Prediction, action: str, start: float,
                parts: frozenset[str] | None, notes: Sequence[str] = ()) -> Update:
        state = state.replace(key=entry.key, top_p=pred.top_p, shown=_shown(parts))
        frame = self.frame_view(entry, pred, state.frame, with_frame=False, keep_floor=state.keep_floor) \
            if parts is None or "face" in parts else None
        return Update(state, frame, self.p_view(entry, pred, parts, state.keep_floor),
                      self.status(entry, pred, action, time.perf_counter() - start, notes))

    def set_top_p(self, state: StudioState | None, top_p: float | None,
                  parts: frozenset[str] | None = None) -> Update:
        """Slider moved: the cached prediction at that p, or one run of the sparse stage + heads. A value
        typed out of range is clamped, applied and named in the status line."""
        start = time.perf_counter()
        entry = self._entry(state)
        p, note = clamp_top_p(top_p)
        pred = self.prediction(entry, p if p is not None else state.top_p, state.keep_floor)
        action = f"Top-p {pred.top_p}" if pred.top_p is not None else "Rerun"
        return self._update(state, entry, pred, action, start, parts, [note])

    def set_floors(self, state: StudioState | None, keep_floor: bool, parts: frozenset[str] | None = None) -> Update:
        """The checkpoint's rule (``keep_floor=True``) or the paper's rule (the keep floors off)."""
        start = time.perf_counter()
        entry = self._entry(state)
        state = state.replace(keep_floor=bool(keep_floor))
        pred = self.prediction(entry, state.top_p, state.keep_floor)
        action = "Checkpoint's rule (keep floors on)" if keep_floor else "Paper's rule (keep floors off)"
        return self._update(state, entry, pred, action, start, parts)

    def set_transcript(self, state: StudioState | None, transcript: str,
                       parts: frozenset[str] | None = None) -> Update:
        """Transcript edited: re-encode the text, reuse the dense visual/audio features."""
        start = time.perf_counter()
        entry = self._entry(state)
        text = (transcript or "").strip()
        new = self.clips.retexted(entry, text, state.cue_file)
        pred = self.prediction(new, state.top_p, state.keep_floor)
        return self._update(state.replace(transcript=text), new, pred, "Transcript re-encoded", start, parts)

    def cost_curve(self, state: StudioState | None) -> tuple[Any, str]:
        """Sweep every slider position once per clip, transcript and rule (:meth:`Predictor.sweep`) and plot
        FLOPs and kept fraction against p with the current p marked; the flat part of the curve, where the
        keep floors set the masks, is shaded and captioned. The sweep's predictions join the entry's cache,
        so later slider moves only draw. A dense checkpoint (FE2E) gets a flat line and a caption saying why."""
        entry = self._entry(state)
        pred = self.prediction(entry, state.top_p, state.keep_floor)
        if pred.top_p is None:
            return dense_cost_figure(pred), flops_line(pred)
        if state.keep_floor not in entry.curves:   # at a low priority: slider moves go first (mesm_viz.workers)
            background().submit(self._sweep, entry, state.keep_floor).result()
        return self.marked_curve(entry, pred, state.keep_floor), flops_line(pred)

    def _sweep(self, entry: ClipEntry, keep_floor: bool) -> None:
        start = time.perf_counter()
        with entry.lock:
            known = {k[0]: pred for k, pred in entry.predictions.items() if k[1] == keep_floor}
        sweep = self.pool.sweep(entry.checkpoint, entry.prepared, self.settings.top_p_grid, known, keep_floor)
        for point in sweep:
            self._remember(entry, (round(point.top_p, 4), keep_floor), point.prediction)
        figure = cost_curve_figure(sweep)
        floors = checkpoint_floors(self.pool.get(entry.checkpoint).config)
        if keep_floor and any(v > 0 for v in floors.values()):
            entry.floor_ranges = floor_ranges({pt.top_p: pt.prediction for pt in sweep}, floors)
            flat_to = flat_cost_range([(pt.top_p, pt.flops_actual, pt.flops_dense) for pt in sweep])
            entry.flat_to = flat_to if entry.floor_ranges else None
            if flat_to is not None and entry.floor_ranges:
                figure = caption_flat(figure, flat_to, sweep[0].top_p,
                                      f"flat up to p = {flat_to:g}:<br>the keep floors, not p,<br>set the masks here")
        with entry.lock:
            entry.sweeps[keep_floor] = sweep
            entry.curves[keep_floor] = figure
        entry.timings["sweep_s"] = time.perf_counter() - start

    def select_frame(self, state: StudioState | None, frame: Any) -> tuple[StudioState, FrameView, str]:
        """Another sampled frame: its face views. A frame number out of range is clamped; the note
        (else "") says so."""
        entry = self._entry(state)
        pred = self.prediction(entry, state.top_p, state.keep_floor)
        index, note = clamp_frame(frame, int(entry.record.faces.shape[0]))
        return state.replace(frame=index), self.frame_view(entry, pred, index, keep_floor=state.keep_floor), note

    def tab_views(self, state: StudioState | None, tab: str) -> tuple[FrameView | None, PView]:
        """The views of one tab for the state's p (drawn when the tab is opened)."""
        entry = self._entry(state)
        pred = self.prediction(entry, state.top_p, state.keep_floor)
        parts = parts_for(tab) - {"header"}
        frame = self.frame_view(entry, pred, state.frame, with_frame=False, keep_floor=state.keep_floor) \
            if "face" in parts else None
        return frame, self.p_view(entry, pred, frozenset(parts), state.keep_floor)

    def export(self, state: StudioState | None) -> str:
        """Write the full report (as ``python -m mesm_viz.report`` does) for the current p and frame
        and return a .zip path."""
        entry = self._entry(state)
        pred = self.prediction(entry, state.top_p, state.keep_floor)
        root = Path(self.settings.export_dir or tempfile.gettempdir()) / "mesm_exports"
        p_tag = "dense" if pred.top_p is None else f"p{pred.top_p:.2f}" + ("" if state.keep_floor else "_paper")
        name = f"mesm_report_{Path(entry.video).stem[:40]}_{p_tag}_{entry.key[-8:]}"
        out = root / name
        write_full_report(pred, out, frame=state.frame)
        zip_path = root / f"{name}.zip"
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(out.iterdir()):
                archive.write(file, arcname=f"{name}/{file.name}")
        return str(zip_path)


def _shown(parts: frozenset[str] | None) -> str:
    """The tab part an update drew ("" when it drew every part)."""
    if parts is None or set(PARTS) <= set(parts):
        return ""
    return next(iter(sorted(set(parts) - {"header"})), "header")


__all__ += ["clip_key", "ClipEntry"]
