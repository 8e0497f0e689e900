"""A prediction as data: ``report.json`` + ``flops.csv`` (written atomically), and as text for a terminal.

The overlay PNGs and the FACS region statistics of a full report are drawn by ``mesm_viz.report``,
which passes them to :func:`write_report` as ``extra``: core writes data only (docs/app.md).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mesm_core.inference.results import Prediction
from mesm_core.io import atomic_write, write_json

__all__ = ["REPORT_FILE", "FLOPS_FILE", "flops_rows", "report_body", "write_report", "format_flops",
           "format_prediction"]

REPORT_FILE = "report.json"
FLOPS_FILE = "flops.csv"
_FLOPS_COLUMNS = ("modality", "layer", "dense", "actual", "ratio")


def flops_rows(prediction: Prediction) -> list[dict[str, Any]]:
    """One row per counted layer: modality, layer name, dense and actual FLOPs, their ratio."""
    return [{"modality": r.modality, "layer": r.name, "dense": float(r.dense), "actual": float(r.actual),
             "ratio": float(r.actual / r.dense) if r.dense else 1.0} for r in prediction.flops.layers]


def report_body(prediction: Prediction) -> dict[str, Any]:
    """The JSON-safe body of ``report.json`` (before any ``extra`` entries and the file list)."""
    record = prediction.record
    flops = prediction.flops
    return {
        "checkpoint": prediction.checkpoint,
        "arch": prediction.arch,
        "classes": list(prediction.classes),
        "probabilities": prediction.probabilities,
        "logits": prediction.logits,
        "thresholds": prediction.thresholds,
        "threshold_source": prediction.threshold_source,
        "predicted": prediction.predicted,
        "modality_logits": prediction.modality_logits,
        "fusion_weights": prediction.fusion_weights,
        "top_p": prediction.top_p,
        "flops": {
            "dense": float(flops.dense),
            "actual": float(flops.actual),
            "ratio": prediction.flops_ratio,
            "by_modality": {m: {"dense": d, "actual": a} for m, (d, a) in flops.by_modality().items()},
            "layers": flops_rows(prediction),
        },
        "kept_fraction": prediction.kept_fraction,
        "grids": {m: [list(t.grid) for t in blocks] for m, blocks in prediction.trace.items()},
        "clip": {
            "id": record.id,
            "source": record.source,
            "transcript": prediction.transcript,
            "n_frames": int(record.faces.shape[0]),
            "n_faces_detected": int(np.asarray(record.face_detected).sum()),
            "frame_times": [round(float(t), 3) for t in record.frame_times],
            "duration_s": float(record.meta.duration_s or 0.0),
            "n_mel_frames": int(record.mel.shape[1]) if record.mel.ndim == 2 else 0,
            "frame_size": list(record.frame_size) if record.frame_size else None,
        },
        "text": prediction.text_coverage.to_dict() if prediction.text_coverage is not None else None,
        "face_note": prediction.face_note,
        "notes": prediction.notes,
        "timings": prediction.timings,
    }


def _flops_csv(prediction: Prediction) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(_FLOPS_COLUMNS))
    writer.writeheader()
    writer.writerows(flops_rows(prediction))
    writer.writerow({"modality": "total", "layer": "all", "dense": float(prediction.flops.dense),
                     "actual": float(prediction.flops.actual), "ratio": prediction.flops_ratio})
    return buffer.getvalue()


def write_report(prediction: Prediction, out_dir: str | os.PathLike, *,
                 extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``out_dir/flops.csv`` (the per-layer table plus a total row) and then ``out_dir/report.json``.

    ``extra`` entries are merged into report.json; its ``"files"`` (names of files the caller has
    already written into ``out_dir``) extend the report's file list. report.json is written last, so
    its presence means the folder is complete. Returns the path of report.json.
    """
    out = Path(out_dir)
    atomic_write(out / FLOPS_FILE, _flops_csv(prediction))
    body = report_body(prediction)
    extra = dict(extra or {})
    files = [REPORT_FILE, FLOPS_FILE, *extra.pop("files", [])]
    body.update(extra)
    body["files"] = files
    return write_json(out / REPORT_FILE, body)


def format_flops(value: float) -> str:
    """``1.23 GFLOPs`` / ``45.60 MFLOPs`` / ... for a FLOP count."""
    for unit, scale in (("GFLOPs", 1e9), ("MFLOPs", 1e6), ("kFLOPs", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} FLOPs"


def format_prediction(prediction: Prediction) -> str:
    """The human-readable summary the CLI prints."""
    lines = [f"checkpoint: {prediction.checkpoint} ({prediction.arch})"]
    if prediction.top_p is not None:
        lines.append(f"top_p: {prediction.top_p:.2f}")
    lines.append(f"{'class':<12} {'prob':>6} {'thr':>6}")
    for c in prediction.classes:
        mark = "  *" if c in prediction.predicted else ""
        lines.append(f"{c:<12} {prediction.probabilities[c]:6.3f} {prediction.thresholds[c]:6.2f}{mark}")
    lines.append(f"predicted: {', '.join(prediction.predicted) or '(none above threshold)'} "
                 f"[thresholds: {prediction.threshold_source}]")
    lines.append(f"FLOPs: dense {format_flops(prediction.flops.dense)}, actual "
                 f"{format_flops(prediction.flops.actual)} ({100 * prediction.flops_ratio:.1f}% of dense)")
    for modality, kept in prediction.kept_fraction.items():
        lines.append(f"kept fraction {modality}: " + ", ".join(f"{k:.2f}" for k in kept))
    lines += [f"note: {n}" for n in prediction.notes]
    return "\n".join(lines)
