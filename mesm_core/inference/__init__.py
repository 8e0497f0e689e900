"""Inference on one clip: video (+ transcript) → :class:`Prediction`, through one :class:`Predictor`.

    from mesm_core.inference import Predictor

    predictor = Predictor.load("assets/checkpoints/mesm_small", sparse_backend="masked")
    prepared = predictor.prepare("clip.mp4", "what was said")     # p-independent, once
    for p in (0.3, 0.5, 0.9):
        pred = predictor.run(prepared, p)                          # cheap
    curve = predictor.sweep(prepared, [0.1, 0.5, 1.0])             # list[SweepPoint]

Modules: ``predictor`` (the Predictor and the one-call :func:`predict`), ``results`` (the typed
results), ``text`` (how much of a transcript the model reads), ``report`` (report.json / flops.csv and the CLI's text). The CLI is ``python -m
mesm_core.predict``; images of a prediction are drawn by ``mesm_viz`` (docs/app.md).
"""

from mesm_core.inference.predictor import DEFAULT_THRESHOLD, Predictor, predict
from mesm_core.inference.report import format_flops, format_prediction, report_body, write_report
from mesm_core.inference.results import LayerTrace, Prediction, PreparedClip, SweepPoint, face_view_note
from mesm_core.inference.text import TextCoverage, text_coverage

__all__ = [
    "DEFAULT_THRESHOLD", "Predictor", "predict",
    "PreparedClip", "Prediction", "LayerTrace", "SweepPoint", "face_view_note", "TextCoverage", "text_coverage",
    "report_body", "write_report", "format_flops", "format_prediction",
]
