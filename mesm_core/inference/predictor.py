"""The one inference path: a loaded checkpoint and its face detector, video (+ transcript) → Prediction.

The CLI, the studio, the benchmarks and the tests all go through :class:`Predictor`. Inference is
split in two stages so that a top-p change does not redo the expensive work:

* :meth:`Predictor.prepare` (p-independent): decode + MTCNN + mel (``preprocess_clip``), the text
  CLS vector (``model.encode_text``) and the dense low-level CNN layers (``model.encode_dense``);
* :meth:`Predictor.run` (p-dependent, cheap): sparse blocks + temporal Transformers + heads
  (``model.forward_prepared``);
* :meth:`Predictor.retext` re-encodes only the transcript of a prepared clip;
* :meth:`Predictor.sweep` runs a list of top-p values (the cost-vs-p curve).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from mesm_core.config import DataConfig, ModelConfig
from mesm_core.inference.results import LayerTrace, Prediction, PreparedClip, SweepPoint, face_view_note
from mesm_core.inference.text import TextCoverage, text_coverage
from mesm_core.io import file_sha1
from mesm_core.metrics import above_threshold
from mesm_core.types import ClipRecord, FlopsReport

if TYPE_CHECKING:
    from mesm_core.data.clip import Progress

__all__ = ["DEFAULT_THRESHOLD", "Predictor", "predict"]

DEFAULT_THRESHOLD = 0.5


class Predictor:
    """A model in eval mode on one device, what its checkpoint says (classes, thresholds,
    preprocessing), and the face detector its clips go through.

    Build it with :meth:`load` (a checkpoint folder) or directly from a module. The detector builds
    MTCNN on first use; pass one ``detector`` to several predictors to share it.
    """

    def __init__(self, model: nn.Module, *, checkpoint: str = "<in-memory>", classes: Sequence[str] | None = None,
                 thresholds: Mapping[str, float] | None = None, data_config: DataConfig | None = None,
                 device: str = "cpu", detector: Any | None = None) -> None:
        info = getattr(model, "checkpoint_info", None)  # set by load_checkpoint
        self.model = model.to(device).eval()
        self.device = device
        self.checkpoint = str(info.path) if info is not None and checkpoint == "<in-memory>" else str(checkpoint)
        self.classes: tuple[str, ...] = tuple(classes or (info.classes if info is not None else model.config.classes))
        # the checkpoint's thresholds per p (CheckpointInfo.thresholds_at), unless thresholds are given
        self._per_p_thresholds = info if thresholds is None and info is not None and info.thresholds_by_top_p else None
        if thresholds is None and info is not None and info.thresholds is not None:
            thresholds = dict(zip(self.classes, info.thresholds))
        self.thresholds: dict[str, float] | None = (
            None if thresholds is None else {c: float(t) for c, t in thresholds.items()})
        config = data_config or (info.run_config.data if info is not None else DataConfig())
        self.data_config: DataConfig = copy.deepcopy(config)
        self._detector = detector

    @classmethod
    def load(cls, checkpoint: str | os.PathLike, device: str = "cpu", *, sparse_backend: str | None = None,
             detector: Any | None = None) -> "Predictor":
        """Load a checkpoint folder (or a training run folder: its ``best/``) for inference.

        ``sparse_backend`` ("auto" | "gather" | "dense" | "masked" | "spconv") overrides the checkpoint's
        MESM sparse path (all give the same numbers; "auto" picks per block from measured crossovers).
        Raises ``mesm_core.checkpoint.CheckpointError`` when the folder is not a valid checkpoint.
        """
        from mesm_core.loading import load_checkpoint

        model, info = load_checkpoint(checkpoint, map_location=device, sparse_backend=sparse_backend)
        return cls(model, checkpoint=str(info.path), device=device, detector=detector)

    # --- what the checkpoint is ----------------------------------------------------------------

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def arch(self) -> str:
        return str(self.model.config.arch)

    @property
    def is_sparse(self) -> bool:
        """True for MESM (top-p matters), False for FE2E."""
        return bool(getattr(self.model, "supports_top_p", False))

    @property
    def detector(self) -> Any:
        """The MTCNN wrapper (``mesm_core.data.faces.FaceDetector``) every clip goes through."""
        if self._detector is None:
            from mesm_core.data.faces import FaceDetector

            self._detector = FaceDetector.from_config(self.data_config, device=self.device)
        return self._detector

    def warm_up(self) -> None:
        """One tiny forward pass and one MTCNN call, so the first real request does not pay for lazy
        initialisation (CUDA/OpenMP setup, the detector's networks)."""
        from mesm_core.factory import dummy_batch

        batch = dummy_batch(self.config, batch_size=1, n_frames=2, n_chunks=2, tokenizer=self.model.tokenizer)
        with torch.inference_mode():
            self.model(batch.to(self.device), return_trace=self.is_sparse)
        self.detector.detect([np.zeros((64, 64, 3), np.uint8)])

    # --- stage 1: p-independent ----------------------------------------------------------------

    def _require_transcript(self, transcript: str | None, source: str) -> str:
        text = (transcript or "").strip()
        if not text and self.is_sparse:
            from mesm_core.data.errors import EmptyTranscriptError

            raise EmptyTranscriptError(
                source, "empty transcript; MESM needs the words of the utterance "
                "(the text is the query of its cross-modal attention)")
        return text

    def text_coverage(self, transcript: str) -> TextCoverage | None:
        """How many of the transcript's tokens the model reads, and which words its limit drops."""
        tokenizer = getattr(self.model, "tokenizer", None)
        return text_coverage(tokenizer, transcript) if tokenizer is not None else None

    def prepare(self, video: str | os.PathLike, transcript: str | None = None, *,
                data_config: DataConfig | None = None, progress: Progress | None = None,
                cue_file: str | os.PathLike | None = None, video_sha1: str | None = None) -> PreparedClip:
        """Run the p-independent stage on one clip.

        ``transcript=None`` reads the ``.txt``/``.srt`` sidecar beside the video when there is one
        (``mesm_core.data.transcript.resolve_transcript``, the pipeline's one rule; whitespace collapsed).
        ``data_config`` overrides the checkpoint's preprocessing (the studio tightens the limits).
        ``progress(fraction, stage)`` hears of decoding, faces, audio and the encoders as they start.
        ``cue_file``: the clip's ground-truth cue file (a synthetic clip's ``cues/<id>.npz``), attached to
        the record (``face_cues`` (F, 48, 48), ``mel_cues`` (n_mels, T)); ``PreparedClip.cue_file`` names it,
        or, when it does not fit this clip, stays None and ``cue_error`` says why (the clip is still prepared).
        ``video_sha1``: the video's SHA-1 when the caller hashed it already (an upload is hashed once).
        Raises the data pipeline's ``ClipError`` subclasses for bad media (naming the file and the
        reason) and ``EmptyTranscriptError`` when a MESM model gets no transcript.
        """
        from mesm_core.data import collate
        from mesm_core.data.clip import preprocess_clip
        from mesm_core.data.transcript import resolve_transcript

        text = self._require_transcript(resolve_transcript(video, transcript).text, str(video))
        config = data_config if data_config is not None else self.data_config
        timings: dict[str, float] = {}

        start = time.perf_counter()
        record = preprocess_clip(video, text, config=config, detector=self.detector, progress=progress)
        timings["preprocess_s"] = time.perf_counter() - start
        attached, cue_error = _attach_cue_file(record, cue_file, config)

        if progress is not None:
            progress(0.85, "Text encoder and dense CNN layers")
        start = time.perf_counter()
        batch = collate([record], self.model.tokenizer, chunk_frames=self.config.chunk_frames).to(self.device)
        with torch.inference_mode():
            text_cls = self.model.encode_text(batch.text) if self.model.text_encoder is not None else None
            dense = self.model.encode_dense(batch)
        timings["encode_s"] = time.perf_counter() - start

        if video_sha1 is None:
            video_sha1 = file_sha1(video) if Path(video).is_file() else ""
        coverage = self.text_coverage(text)
        return PreparedClip(record=record, batch=batch, text_cls=text_cls, dense=dense, transcript=text,
                            checkpoint=self.checkpoint, video_sha1=video_sha1, timings=timings,
                            notes=_record_notes(record, coverage), text_coverage=coverage,
                            cue_file=attached, cue_error=cue_error)

    def retext(self, prepared: PreparedClip, transcript: str | None) -> PreparedClip:
        """Same clip, new transcript: re-encode the text only (the dense visual/audio features are reused)."""
        text_str = self._require_transcript(transcript, prepared.record.source or prepared.record.id)
        start = time.perf_counter()
        text = {k: v.to(self.device) for k, v in self.model.tokenizer([text_str]).items()}
        with torch.inference_mode():
            text_cls = self.model.encode_text(text)
        timings = dict(prepared.timings, retext_s=time.perf_counter() - start)
        batch = dataclasses.replace(prepared.batch, text=text)
        record = dataclasses.replace(prepared.record, transcript=text_str)
        coverage = self.text_coverage(text_str)
        return dataclasses.replace(prepared, record=record, batch=batch, text_cls=text_cls, transcript=text_str,
                                   timings=timings, notes=_record_notes(record, coverage), text_coverage=coverage)

    # --- stage 2: p-dependent ------------------------------------------------------------------

    def run(self, prepared: PreparedClip, top_p: float | None = None, *, return_trace: bool = True,
            keep_floor: bool = True) -> Prediction:
        """Run the p-dependent stage (sparse blocks + heads) on a prepared clip.

        ``top_p`` defaults to the checkpoint's ``config.top_p`` for MESM and is ignored for FE2E.
        ``keep_floor=False`` runs the paper's rule: the nucleus alone, without the checkpoint's keep floors.
        """
        if self.is_sparse:
            top_p = float(self.config.top_p if top_p is None else top_p)
            if not 0.0 < top_p <= 1.0:
                raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        else:
            top_p = None

        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.forward_prepared(prepared.batch, prepared.text_cls, prepared.dense, top_p=top_p,
                                              return_trace=return_trace and self.is_sparse, keep_floor=keep_floor)
        elapsed = time.perf_counter() - start

        classes = self.classes
        logits = out.logits[0].float().cpu().numpy()
        probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        notes = list(prepared.notes)
        per_p, chosen_at = (self._per_p_thresholds.thresholds_at(top_p)
                            if self._per_p_thresholds is not None and top_p is not None else (None, None))
        if chosen_at is not None:
            thresholds = dict(zip(classes, per_p))
            threshold_source = f"checkpoint, chosen on validation at p = {chosen_at:g}"
        elif self.thresholds:
            thresholds = {c: float(self.thresholds.get(c, DEFAULT_THRESHOLD)) for c in classes}
            threshold_source = "checkpoint"
        else:
            thresholds = {c: DEFAULT_THRESHOLD for c in classes}
            threshold_source = f"default {DEFAULT_THRESHOLD} (the checkpoint stores no tuned thresholds)"
            notes.append(f"Predicted labels use the default threshold {DEFAULT_THRESHOLD}: "
                         "the checkpoint stores no per-class thresholds.")
        probabilities = {c: float(p) for c, p in zip(classes, probs)}
        decided = above_threshold(np.array([probabilities[c] for c in classes]), [thresholds[c] for c in classes])
        predicted = [c for c, above in zip(classes, decided) if above]

        modality_logits = {m: {c: float(v) for c, v in zip(classes, t[0].float().cpu().numpy())}
                           for m, t in out.modality_logits.items()}
        weights = out.fusion_weights.detach().float().cpu().reshape(-1).numpy()
        fusion_weights = {m: float(w) for m, w in zip(out.modality_logits.keys(), weights)}

        trace = _to_numpy_trace(out.trace)
        if top_p is not None and keep_floor:
            notes.extend(floor_notes(trace, self.config, top_p))
        kept_fraction = {m: [t.kept_fraction for t in blocks] for m, blocks in trace.items()}
        if not trace and self.is_sparse and return_trace:
            kept_fraction = _kept_from_flops(out.flops)

        return Prediction(
            classes=classes, probabilities=probabilities, logits={c: float(v) for c, v in zip(classes, logits)},
            thresholds=thresholds, threshold_source=threshold_source, predicted=predicted,
            modality_logits=modality_logits, fusion_weights=fusion_weights, trace=trace, flops=out.flops,
            kept_fraction=kept_fraction, top_p=top_p, record=prepared.record, arch=self.arch,
            checkpoint=self.checkpoint, transcript=prepared.transcript, chunk_frames=int(self.config.chunk_frames),
            notes=notes, text_coverage=prepared.text_coverage,
            timings=dict(prepared.timings, run_s=elapsed),
        )

    def sweep(self, prepared: PreparedClip, top_ps: Sequence[float], *,
              known: Mapping[float, Prediction] | None = None, keep_floor: bool = True) -> list[SweepPoint]:
        """FLOPs, kept fractions and probabilities at each p: the data of the cost-vs-p curve.

        ``known`` maps p → a prediction already run on this clip (reused, not run again; it must have been run
        with the same ``keep_floor``). Empty for FE2E, where top-p does not apply.
        """
        if not self.is_sparse:
            return []
        known = known or {}
        points = []
        for p in top_ps:
            prediction = known.get(float(p))
            if prediction is None:
                prediction = self.run(prepared, float(p), keep_floor=keep_floor)
            points.append(SweepPoint.of(prediction))
        return points

    def predict(self, video: str | os.PathLike, transcript: str | None = None, top_p: float | None = None, *,
                data_config: DataConfig | None = None, keep_floor: bool = True) -> Prediction:
        """:meth:`prepare` then :meth:`run`."""
        return self.run(self.prepare(video, transcript, data_config=data_config), top_p, keep_floor=keep_floor)


def predict(checkpoint: str | os.PathLike | nn.Module, video: str | os.PathLike, transcript: str | None = None,
            top_p: float | None = None, *, device: str = "cpu", sparse_backend: str | None = None,
            data_config: DataConfig | None = None) -> Prediction:
    """Classify the emotions of one clip in one call (loads the checkpoint each time; keep a
    :class:`Predictor` to classify several).

    Args:
        checkpoint: a checkpoint folder, or a model.
        video: path of a video file with an audio track.
        transcript: the words spoken (required for MESM; FE2E accepts none). None → the sidecar.
        top_p: MESM nucleus threshold (default: the checkpoint's); ignored for FE2E.
    """
    if isinstance(checkpoint, nn.Module):
        predictor = Predictor(checkpoint, device=device)
    else:
        predictor = Predictor.load(checkpoint, device, sparse_backend=sparse_backend)
    return predictor.predict(video, transcript, top_p, data_config=data_config)


def _attach_cue_file(record: ClipRecord, cue_file: str | os.PathLike | None,
                     config: DataConfig) -> tuple[str | None, str]:
    """Attach a ground-truth cue file to ``record`` in place: (the file attached or None, why it was not)."""
    if not cue_file:
        return None, ""
    from mesm_core.data.synthetic.cues import attach_cue_file

    try:
        attach_cue_file(record, cue_file, config)
    except (ValueError, OSError) as exc:  # another clip's file, or none readable: the clip stands without cues
        record.face_cues = record.mel_cues = None
        return None, str(exc)
    return str(cue_file), ""


def _record_notes(record: ClipRecord, coverage: TextCoverage | None = None) -> list[str]:
    notes = []
    face = face_view_note(record)
    if face:
        notes.append(face)
    if record.meta.audio_silent:
        notes.append("The audio track is silent (all samples zero): the audio view carries no information.")
    if not record.transcript.strip():
        notes.append("No transcript: the text branch saw an empty string.")
    if coverage is not None and coverage.truncated:
        notes.append(f"Transcript cut at the model's limit: {coverage.summary()}")
    return notes


def floor_notes(trace: dict[str, list[LayerTrace]], config: ModelConfig, top_p: float) -> list[str]:
    """Per modality, where a keep floor (``model.min_keep_*``), not p, set the masks: which sparse layers and in how
    many of their frames/chunks (any layer where it decided more than a tenth). There the slider moves nothing."""
    notes = []
    names = {"visual": ("face", "faces"), "audio": ("mel chunk", "mel chunks")}
    for modality, blocks in trace.items():
        floor = float(getattr(config, f"min_keep_{modality}", 0.0) or 0.0)
        if floor <= 0 or not blocks or top_p >= 1.0:
            continue
        one, many = names.get(modality, (modality, modality))
        layers = [(i, b) for i, b in enumerate(blocks, start=1) if b.floor_share > 0.1]
        if not layers:
            continue
        parts = ", ".join(f"layer {i} in {int(b.floor_decided.sum())} of {len(b.floor_decided)} {many}"
                          for i, b in layers)
        notes.append(f"At p = {top_p:g} the keep floor, not p, sets the {one} masks of {parts}: this checkpoint keeps "
                     f"at least {floor:.0%} of each {one}'s active cells (model.min_keep_{modality}), more than the "
                     "nucleus keeps there. Untick the floor to see the paper's rule.")
    return notes


def _to_numpy_trace(trace: dict | None) -> dict[str, list[LayerTrace]]:
    out: dict[str, list[LayerTrace]] = {}
    for modality, blocks in (trace or {}).items():
        out[modality] = [
            LayerTrace(
                attention=b.attention.detach().float().cpu().numpy(),
                kept=b.kept.detach().bool().cpu().numpy(),
                active_in=b.active_in.detach().bool().cpu().numpy(),
                grid=tuple(int(x) for x in b.grid),
                floor_decided=None if b.floor_decided is None else b.floor_decided.detach().bool().cpu().numpy(),
            )
            for b in blocks
        ]
    return out


def _kept_from_flops(flops: FlopsReport) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for row in flops.layers:
        if row.name.startswith("sparse"):
            out.setdefault(row.modality, []).append(float(row.actual / row.dense) if row.dense else 1.0)
    return out
