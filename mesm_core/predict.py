"""The one inference path: video (+ transcript) → :class:`Prediction`.

The CLI, the app, the benchmarks and the tests all go through these functions. Inference is split in
two stages so that the app can move the top-p slider without redoing the expensive work:

* :func:`prepare` (p-independent): decode + MTCNN + mel (``preprocess_clip``), text encoding
  (``model.encode_text``) and the dense low-level CNN layers (``model.encode_dense``) → :class:`PreparedClip`;
* :func:`run` (p-dependent, cheap): sparse blocks + temporal Transformers + heads
  (``model.forward_prepared``) → :class:`Prediction`;
* :func:`retext` re-encodes only the transcript of a prepared clip (dense features are reused);
* :func:`predict` = ``prepare`` + ``run``.

CLI::

    python -m mesm_core.predict VIDEO --transcript "TEXT" [--checkpoint DIR] [--top-p P] [--report OUT]
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from mesm_core.config import DataConfig, ModelConfig
from mesm_core.jsonio import json_default
from mesm_core.types import Batch, ClipRecord, FlopsReport

__all__ = [
    "DEFAULT_CHECKPOINT",
    "DEFAULT_THRESHOLD",
    "LoadedModel",
    "LayerTrace",
    "PreparedClip",
    "Prediction",
    "load_model",
    "prepare",
    "run",
    "retext",
    "predict",
    "sweep_top_p",
    "file_sha1",
    "resolve_transcript",
    "face_view_note",
    "write_report",
    "format_flops",
    "format_prediction",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO_ROOT / "assets" / "checkpoints" / "mesm_small"
DEFAULT_THRESHOLD = 0.5


# --- model loading -------------------------------------------------------------------------------

@dataclass
class LoadedModel:
    """A model in eval mode plus what the checkpoint says about it (classes, thresholds, preprocessing)."""

    model: nn.Module
    checkpoint: str                       # folder, or "<in-memory>" for a bare nn.Module
    classes: tuple[str, ...]
    thresholds: dict[str, float] | None   # per-class decision thresholds stored with the checkpoint
    data_config: DataConfig
    device: str = "cpu"

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def arch(self) -> str:
        return str(self.model.config.arch)

    @property
    def is_sparse(self) -> bool:
        """True for MESM (top-p matters), False for FE2E."""
        return self.arch == "mesm"


def load_model(checkpoint: str | os.PathLike | nn.Module | LoadedModel, device: str = "cpu",
               sparse_backend: str | None = None) -> LoadedModel:
    """Load a checkpoint folder (or wrap an ``nn.Module``) for inference, in eval mode on ``device``.

    A bare module uses its ``checkpoint_info`` when it has one (set by ``load_checkpoint``).
    ``sparse_backend`` ("masked" | "spconv" | "auto") overrides the checkpoint's MESM backend when
    loading a folder (both give the same numbers; on CPU "masked" answers faster, see docs/app.md).
    Raises ``mesm_core.checkpoint.CheckpointError`` when the folder is not a valid checkpoint.
    """
    if isinstance(checkpoint, LoadedModel):
        if checkpoint.device != device:
            checkpoint.model.to(device)
            checkpoint = dataclasses.replace(checkpoint, device=device)
        return checkpoint
    if isinstance(checkpoint, nn.Module):
        model, info, where = checkpoint, getattr(checkpoint, "checkpoint_info", None), "<in-memory>"
        if sparse_backend is not None:
            model.config.sparse_backend = sparse_backend
    else:
        from mesm_core.checkpoint import load_checkpoint

        model, info = load_checkpoint(checkpoint, map_location=device, sparse_backend=sparse_backend)
        where = str(info.path)
    model = model.to(device).eval()
    classes = tuple(info.classes) if info is not None else tuple(model.config.classes)
    thresholds = None
    if info is not None and info.thresholds is not None:
        thresholds = {c: float(t) for c, t in zip(classes, info.thresholds)}
    data_config = info.run_config.data if info is not None else DataConfig()
    if info is not None and where == "<in-memory>":
        where = str(info.path)
    return LoadedModel(model=model, checkpoint=where, classes=classes, thresholds=thresholds,
                       data_config=copy.deepcopy(data_config), device=device)


# --- stage 1: p-independent ----------------------------------------------------------------------

@dataclass
class PreparedClip:
    """Everything that does not depend on top-p, for one clip (batch of one utterance).

    record   the preprocessing result (crops, boxes, landmarks, frame times, mel)
    batch    the model input built from ``record`` (tensors on the model's device)
    text_cls (1, D_text) text CLS vector for ``transcript``
    dense    modality → dense low-level features: "visual" (F, C, H, W), "audio" (N_c, C, H, W)
    """

    record: ClipRecord
    batch: Batch
    text_cls: torch.Tensor
    dense: dict[str, torch.Tensor]
    transcript: str
    checkpoint: str
    video_sha1: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def file_sha1(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """SHA-1 of a file's bytes (the app's cache key for an uploaded video)."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


_DETECTORS: dict[tuple, Any] = {}


def _detector(config: DataConfig, device: str) -> Any:
    """One MTCNN wrapper per (device, crop geometry), reused across clips (it builds its nets lazily once)."""
    from mesm_core.data.faces import FaceDetector

    key = (device, config.face_size, config.face_margin)
    if key not in _DETECTORS:
        _DETECTORS[key] = FaceDetector.from_config(config, device=device)
    return _DETECTORS[key]


def _collate(record: ClipRecord, loaded: LoadedModel) -> Batch:
    from mesm_core.data import collate

    return collate([record], loaded.model.tokenizer, chunk_frames=loaded.config.chunk_frames)


def resolve_transcript(video: str | os.PathLike, transcript: str | None) -> str:
    """The given transcript, else the ``.txt``/``.srt`` sidecar beside the video, else ""."""
    if transcript is not None:
        return transcript.strip()
    from mesm_core.data.clip import find_transcript, read_transcript_file

    sidecar = find_transcript(Path(video))
    return read_transcript_file(sidecar).strip() if sidecar is not None else ""


def _require_transcript(loaded: LoadedModel, transcript: str | None, source: str) -> str:
    text = (transcript or "").strip()
    if not text and loaded.is_sparse:
        from mesm_core.data.errors import EmptyTranscriptError

        raise EmptyTranscriptError(
            source, "empty transcript; MESM needs the words of the utterance "
            "(the text is the query of its cross-modal attention)")
    return text


def _encode_text(loaded: LoadedModel, transcript: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    text = loaded.model.tokenizer([transcript])
    text = {k: v.to(loaded.device) for k, v in text.items()}
    with torch.inference_mode():
        text_cls = loaded.model.encode_text(text)
    return text, text_cls


def prepare(
    model_or_checkpoint: str | os.PathLike | nn.Module | LoadedModel,
    video: str | os.PathLike,
    transcript: str | None = None,
    *,
    device: str = "cpu",
    data_config: DataConfig | None = None,
) -> PreparedClip:
    """Run the p-independent stage on one clip.

    ``transcript=None`` reads the ``.txt``/``.srt`` sidecar beside the video when there is one.
    Raises the data pipeline's ``ClipError`` subclasses for bad media (naming the file and the
    reason) and ``EmptyTranscriptError`` when a MESM model gets no transcript.
    """
    from mesm_core.data.clip import preprocess_clip

    loaded = load_model(model_or_checkpoint, device)
    text = _require_transcript(loaded, resolve_transcript(video, transcript), str(video))
    config = data_config if data_config is not None else loaded.data_config
    timings: dict[str, float] = {}

    start = time.perf_counter()
    record = preprocess_clip(video, text, config=config, detector=_detector(config, device))
    timings["preprocess_s"] = time.perf_counter() - start

    start = time.perf_counter()
    batch = _collate(record, loaded).to(device)
    with torch.inference_mode():
        text_cls = loaded.model.encode_text(batch.text) if loaded.model.text_encoder is not None else None
        dense = loaded.model.encode_dense(batch)
    timings["encode_s"] = time.perf_counter() - start

    sha = file_sha1(video) if Path(video).is_file() else ""
    return PreparedClip(record=record, batch=batch, text_cls=text_cls, dense=dense, transcript=text,
                        checkpoint=loaded.checkpoint, video_sha1=sha, timings=timings,
                        notes=_record_notes(record))


def retext(
    model_or_checkpoint: str | os.PathLike | nn.Module | LoadedModel,
    prepared: PreparedClip,
    transcript: str | None,
    *,
    device: str = "cpu",
) -> PreparedClip:
    """Same clip, new transcript: re-encode the text only (the dense visual/audio features are reused)."""
    loaded = load_model(model_or_checkpoint, device)
    text_str = _require_transcript(loaded, transcript, prepared.record.source or prepared.record.id)
    start = time.perf_counter()
    text, text_cls = _encode_text(loaded, text_str)
    timings = dict(prepared.timings, retext_s=time.perf_counter() - start)
    batch = dataclasses.replace(prepared.batch, text=text)
    record = dataclasses.replace(prepared.record, transcript=text_str)
    return dataclasses.replace(prepared, record=record, batch=batch, text_cls=text_cls,
                               transcript=text_str, timings=timings)


def face_view_note(record: ClipRecord) -> str | None:
    """Why the face view is empty or partial (None when every sampled frame has a detected face)."""
    n_frames = int(record.faces.shape[0])
    detected = int(np.asarray(record.face_detected).sum()) if n_frames else 0
    if n_frames == 0:
        return ("No face frames: no sampled frame had a face and the no-face policy is 'skip', so the "
                "visual branch sees only its CLS token; the face view is empty.")
    if detected == 0:
        return (f"No face detected in any of the {n_frames} sampled frames: the visual branch used centre "
                "crops of the frames (no-face policy 'center'), so the face view shows no face and the "
                "FACS regions are drawn on the template face.")
    if detected < n_frames:
        return f"Face detected in {detected} of {n_frames} sampled frames; the others are centre crops."
    return None


def _record_notes(record: ClipRecord) -> list[str]:
    notes = []
    face = face_view_note(record)
    if face:
        notes.append(face)
    meta = record.meta or {}
    if meta.get("audio_silent"):
        notes.append("The audio track is silent (all samples zero): the audio view carries no information.")
    if not record.transcript.strip():
        notes.append("No transcript: the text branch saw an empty string.")
    return notes


# --- stage 2: p-dependent ------------------------------------------------------------------------

@dataclass
class LayerTrace:
    """One sparse block of one modality, as numpy (see ``mesm_core.types.SparseBlockTrace``).

    attention float32 (N, H, W), kept bool (N, H, W), active_in bool (N, H, W), grid (H, W).
    """

    attention: np.ndarray
    kept: np.ndarray
    active_in: np.ndarray
    grid: tuple[int, int]

    @property
    def kept_fraction(self) -> float:
        """Kept cells / all grid cells (1.0 = dense)."""
        return float(self.kept.mean()) if self.kept.size else 0.0


@dataclass
class Prediction:
    """Result of one clip at one top-p: probabilities, decisions, attention trace, FLOPs, inputs."""

    classes: tuple[str, ...]
    probabilities: dict[str, float]         # sigmoid of the fused logits
    logits: dict[str, float]
    thresholds: dict[str, float]
    threshold_source: str                   # "checkpoint" or an explanation of the 0.5 fallback
    predicted: list[str]                    # classes with probability ≥ threshold
    modality_logits: dict[str, dict[str, float]]
    fusion_weights: dict[str, float]        # modality → learned fusion scalar
    trace: dict[str, list[LayerTrace]]      # modality → sparse blocks (empty for FE2E)
    flops: FlopsReport
    kept_fraction: dict[str, list[float]]   # modality → per sparse block
    top_p: float | None                     # None for FE2E (no sparsity)
    record: ClipRecord
    arch: str
    checkpoint: str
    transcript: str
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def face_note(self) -> str | None:
        return face_view_note(self.record)

    def flops_table(self) -> list[dict[str, Any]]:
        return [{"modality": r.modality, "layer": r.name, "dense": float(r.dense), "actual": float(r.actual),
                 "ratio": float(r.actual / r.dense) if r.dense else 1.0} for r in self.flops.layers]

    def summary(self) -> dict[str, Any]:
        """JSON-safe summary (the body of report.json, without the viz extras)."""
        record = self.record
        return {
            "checkpoint": self.checkpoint,
            "arch": self.arch,
            "classes": list(self.classes),
            "probabilities": self.probabilities,
            "logits": self.logits,
            "thresholds": self.thresholds,
            "threshold_source": self.threshold_source,
            "predicted": self.predicted,
            "modality_logits": self.modality_logits,
            "fusion_weights": self.fusion_weights,
            "top_p": self.top_p,
            "flops": {
                "dense": float(self.flops.dense),
                "actual": float(self.flops.actual),
                "ratio": float(self.flops.actual / self.flops.dense) if self.flops.dense else 1.0,
                "by_modality": {m: {"dense": d, "actual": a} for m, (d, a) in self.flops.by_modality().items()},
                "layers": self.flops_table(),
            },
            "kept_fraction": self.kept_fraction,
            "grids": {m: [list(t.grid) for t in blocks] for m, blocks in self.trace.items()},
            "clip": {
                "id": record.id,
                "source": record.source,
                "transcript": self.transcript,
                "n_frames": int(record.faces.shape[0]),
                "n_faces_detected": int(np.asarray(record.face_detected).sum()),
                "frame_times": [round(float(t), 3) for t in record.frame_times],
                "duration_s": float(record.meta.get("duration_s", 0.0)) if record.meta else None,
                "n_mel_frames": int(record.mel.shape[1]) if record.mel.ndim == 2 else 0,
                "frame_size": list(record.frame_size) if record.frame_size else None,
            },
            "notes": self.notes,
            "timings": self.timings,
        }


def _to_numpy_trace(trace: dict | None) -> dict[str, list[LayerTrace]]:
    out: dict[str, list[LayerTrace]] = {}
    for modality, blocks in (trace or {}).items():
        out[modality] = [
            LayerTrace(
                attention=b.attention.detach().float().cpu().numpy(),
                kept=b.kept.detach().bool().cpu().numpy(),
                active_in=b.active_in.detach().bool().cpu().numpy(),
                grid=tuple(int(x) for x in b.grid),
            )
            for b in blocks
        ]
    return out


def run(
    model_or_checkpoint: str | os.PathLike | nn.Module | LoadedModel,
    prepared: PreparedClip,
    top_p: float | None = None,
    *,
    device: str = "cpu",
    return_trace: bool = True,
) -> Prediction:
    """Run the p-dependent stage (sparse blocks + heads) on a prepared clip.

    ``top_p`` defaults to the checkpoint's ``config.top_p`` for MESM and is ignored for FE2E.
    """
    loaded = load_model(model_or_checkpoint, device)
    model = loaded.model
    if loaded.is_sparse:
        top_p = float(model.config.top_p if top_p is None else top_p)
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    else:
        top_p = None

    start = time.perf_counter()
    with torch.inference_mode():
        out = model.forward_prepared(prepared.batch, prepared.text_cls, prepared.dense, top_p=top_p,
                                     return_trace=return_trace and loaded.is_sparse)
    elapsed = time.perf_counter() - start

    classes = loaded.classes
    logits = out.logits[0].float().cpu().numpy()
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    notes = list(prepared.notes)
    if loaded.thresholds:
        thresholds = {c: float(loaded.thresholds.get(c, DEFAULT_THRESHOLD)) for c in classes}
        threshold_source = "checkpoint"
    else:
        thresholds = {c: DEFAULT_THRESHOLD for c in classes}
        threshold_source = f"default {DEFAULT_THRESHOLD} (the checkpoint stores no tuned thresholds)"
        notes.append(f"Predicted labels use the default threshold {DEFAULT_THRESHOLD}: "
                     "the checkpoint stores no per-class thresholds.")
    probabilities = {c: float(p) for c, p in zip(classes, probs)}
    predicted = [c for c in classes if probabilities[c] >= thresholds[c]]

    modality_logits = {m: {c: float(v) for c, v in zip(classes, t[0].float().cpu().numpy())}
                       for m, t in out.modality_logits.items()}
    weights = out.fusion_weights.detach().float().cpu().reshape(-1).numpy()
    fusion_weights = {m: float(w) for m, w in zip(out.modality_logits.keys(), weights)}

    trace = _to_numpy_trace(out.trace)
    kept_fraction = {m: [t.kept_fraction for t in blocks] for m, blocks in trace.items()}
    if not trace and loaded.is_sparse and return_trace:
        kept_fraction = _kept_from_flops(out.flops)

    return Prediction(
        classes=classes, probabilities=probabilities, logits={c: float(v) for c, v in zip(classes, logits)},
        thresholds=thresholds, threshold_source=threshold_source, predicted=predicted,
        modality_logits=modality_logits, fusion_weights=fusion_weights, trace=trace, flops=out.flops,
        kept_fraction=kept_fraction, top_p=top_p, record=prepared.record, arch=loaded.arch,
        checkpoint=loaded.checkpoint, transcript=prepared.transcript, notes=notes,
        timings=dict(prepared.timings, run_s=elapsed),
    )


def _kept_from_flops(flops: FlopsReport) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for row in flops.layers:
        if row.name.startswith("sparse"):
            out.setdefault(row.modality, []).append(float(row.actual / row.dense) if row.dense else 1.0)
    return out


def predict(
    model_or_checkpoint: str | os.PathLike | nn.Module | LoadedModel,
    video: str | os.PathLike,
    transcript: str | None = None,
    top_p: float | None = None,
    *,
    device: str = "cpu",
    data_config: DataConfig | None = None,
) -> Prediction:
    """Classify the emotions of one clip: :func:`prepare` then :func:`run`.

    Args:
        model_or_checkpoint: a checkpoint folder, a loaded model, or a :class:`LoadedModel`.
        video: path of a video file with an audio track.
        transcript: the words spoken (required for MESM; FE2E accepts none).
        top_p: MESM nucleus threshold (default: the checkpoint's); ignored for FE2E.
    """
    loaded = load_model(model_or_checkpoint, device)
    prepared = prepare(loaded, video, transcript, device=device, data_config=data_config)
    return run(loaded, prepared, top_p, device=device)


def sweep_top_p(
    model_or_checkpoint: str | os.PathLike | nn.Module | LoadedModel,
    prepared: PreparedClip,
    top_ps: Sequence[float],
    *,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """FLOPs and kept fractions at each p (no trace kept): the data of the "cost vs p" plot.

    Returns one dict per p: ``{"top_p", "dense", "actual", "kept": {modality: [per block]}}``.
    Empty for FE2E.
    """
    loaded = load_model(model_or_checkpoint, device)
    if not loaded.is_sparse:
        return []
    rows = []
    for p in top_ps:
        pred = run(loaded, prepared, float(p), device=device)
        rows.append({"top_p": float(p), "dense": float(pred.flops.dense), "actual": float(pred.flops.actual),
                     "kept": pred.kept_fraction,
                     "probabilities": pred.probabilities})
    return rows


# --- report --------------------------------------------------------------------------------------



def write_report(
    prediction: Prediction,
    out_dir: str | os.PathLike,
    *,
    artefacts: Callable[[Prediction, Path], dict[str, Any]] | None = None,
) -> Path:
    """Write ``out_dir/report.json`` and ``out_dir/flops.csv`` (the per-layer table).

    ``artefacts(prediction, out_dir)`` may write more files (the app and the CLI pass
    ``mesm_viz.logic.report_artefacts``: overlay PNGs and FACS region stats) and returns extra JSON
    entries merged into report.json. Returns the path of report.json.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    body = prediction.summary()
    with open(out / "flops.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["modality", "layer", "dense", "actual", "ratio"])
        writer.writeheader()
        writer.writerows(prediction.flops_table())
        writer.writerow({"modality": "total", "layer": "all", "dense": body["flops"]["dense"],
                         "actual": body["flops"]["actual"], "ratio": body["flops"]["ratio"]})
    files = ["report.json", "flops.csv"]
    if artefacts is not None:
        extra = artefacts(prediction, out) or {}
        files += list(extra.pop("files", []))
        body.update(extra)
    body["files"] = files
    path = out / "report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, default=json_default))
    tmp.replace(path)
    return path


# --- CLI -----------------------------------------------------------------------------------------

def format_flops(value: float) -> str:
    for unit, scale in (("GFLOPs", 1e9), ("MFLOPs", 1e6), ("kFLOPs", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} FLOPs"


def format_prediction(prediction: Prediction) -> str:
    """Human-readable summary printed by the CLI."""
    lines = [f"checkpoint: {prediction.checkpoint} ({prediction.arch})"]
    if prediction.top_p is not None:
        lines.append(f"top_p: {prediction.top_p:.2f}")
    lines.append(f"{'class':<12} {'prob':>6} {'thr':>6}")
    for c in prediction.classes:
        mark = "  *" if c in prediction.predicted else ""
        lines.append(f"{c:<12} {prediction.probabilities[c]:6.3f} {prediction.thresholds[c]:6.2f}{mark}")
    lines.append(f"predicted: {', '.join(prediction.predicted) or '(none above threshold)'} "
                 f"[thresholds: {prediction.threshold_source}]")
    ratio = prediction.flops.actual / prediction.flops.dense if prediction.flops.dense else 1.0
    lines.append(f"FLOPs: dense {format_flops(prediction.flops.dense)}, actual "
                 f"{format_flops(prediction.flops.actual)} ({100 * ratio:.1f}% of dense)")
    for modality, kept in prediction.kept_fraction.items():
        lines.append(f"kept fraction {modality}: " + ", ".join(f"{k:.2f}" for k in kept))
    lines += [f"note: {n}" for n in prediction.notes]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mesm_core.predict", description=__doc__.split("\n")[0])
    parser.add_argument("video", help="video file with an audio track")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--transcript", help="the words spoken in the clip (MESM needs them)")
    text.add_argument("--transcript-file", help="a text file holding the transcript")
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="checkpoint folder (default: %(default)s)")
    parser.add_argument("--top-p", type=float, default=None, help="MESM nucleus threshold (default: the checkpoint's)")
    parser.add_argument("--report", default=None, help="write report.json, flops.csv and overlay PNGs to this folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 is often faster on shared cores)")
    parser.add_argument("--sparse-backend", choices=("auto", "masked", "spconv"), default=None,
                        help="MESM sparse backend (same results either way); default: 'masked' on CPU, where "
                             "spconv's first calls are slow, else the checkpoint's")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from mesm_core.checkpoint import CheckpointError
    from mesm_core.data.errors import ClipError

    transcript = args.transcript  # None → the .txt/.srt sidecar beside the video, if any
    if args.transcript_file:
        transcript = Path(args.transcript_file).read_text(encoding="utf-8").strip()
    try:
        backend = args.sparse_backend or ("masked" if args.device == "cpu" else None)
        loaded = load_model(args.checkpoint, args.device, sparse_backend=backend)
        prediction = predict(loaded, args.video, transcript, args.top_p, device=args.device)
    except (ClipError, CheckpointError) as exc:  # both name the file and the reason
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_prediction(prediction))
    if args.report:
        artefacts = None
        try:  # the overlay PNGs and FACS statistics are drawn by mesm_viz (optional: core never needs it)
            from mesm_viz.logic import report_artefacts as artefacts
        except ImportError as exc:
            print(f"note: mesm_viz unavailable ({exc}); writing report.json and flops.csv only", file=sys.stderr)
        path = write_report(prediction, args.report, artefacts=artefacts)
        print(f"report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
