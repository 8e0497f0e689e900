"""The metrics of a checkpoint on one split of a data directory (any model family)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mesm_core.errors import InputError
from mesm_core.evaluation.collector import SplitPredictions, predict_split
from mesm_core.evaluation.keep import BlockKeep
from mesm_core.evaluation.thresholds import resolve_thresholds
from mesm_core.families import family_of, has_split
from mesm_core.metrics import MetricsReport, compute_metrics

__all__ = ["EvaluationResult", "UnlabelledSplitError", "evaluate_checkpoint"]

_META_KEYS = ("checkpoint", "split", "arch", "top_p", "threshold_source", "flops_per_utterance",
              "dense_flops_per_utterance", "blocks")


class UnlabelledSplitError(InputError, ValueError):
    """The evaluated split has no labels to score against."""


@dataclass
class EvaluationResult:
    """One checkpoint on one split: the metrics, the thresholds' source, the feature-extraction FLOPs per
    utterance (0 for the two-phase baselines), the p it ran at (MESM; None otherwise) and what each sparse block
    kept there (MESM). ``predictions`` (not serialised) keeps the per-utterance probabilities for comparisons."""

    checkpoint: str
    split: str
    report: MetricsReport
    threshold_source: str
    flops_per_utterance: float
    dense_flops_per_utterance: float
    top_p: float | None
    arch: str
    blocks: list[BlockKeep] = field(default_factory=list)
    predictions: SplitPredictions | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "split": self.split,
            "arch": self.arch,
            "top_p": self.top_p,
            "threshold_source": self.threshold_source,
            "flops_per_utterance": self.flops_per_utterance,
            "dense_flops_per_utterance": self.dense_flops_per_utterance,
            **({"blocks": [b.to_dict() for b in self.blocks]} if self.blocks else {}),
            **self.report.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluationResult":
        """The inverse of :meth:`to_dict` (an ``evaluation.json`` section)."""
        report = MetricsReport.from_dict({k: v for k, v in data.items() if k not in _META_KEYS})
        return cls(checkpoint=data["checkpoint"], split=data["split"], report=report,
                   threshold_source=data["threshold_source"], flops_per_utterance=float(data["flops_per_utterance"]),
                   dense_flops_per_utterance=float(data["dense_flops_per_utterance"]), top_p=data.get("top_p"),
                   arch=data["arch"], blocks=[BlockKeep.from_dict(b) for b in data.get("blocks", [])])


def evaluate_checkpoint(
    checkpoint: str | Path,
    data_dir: str | Path,
    split: str = "test",
    *,
    thresholds: str = "auto",
    top_p: float | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    model: nn.Module | None = None,
    info: Any = None,
    progress: bool = False,
) -> EvaluationResult:
    """Metrics of a checkpoint (or of ``model`` + ``info`` already loaded from it) on ``split`` of ``data_dir``,
    the model family's kind of data directory; thresholds per :func:`resolve_thresholds`. ``top_p`` applies
    to MESM only (the other models have no nucleus)."""
    if model is None:
        from mesm_core.loading import load_checkpoint

        model, info = load_checkpoint(checkpoint, map_location=device)
    sparse = getattr(model, "supports_top_p", False)
    p = top_p if sparse else None
    predictions = predict_split(model, data_dir, split, [p], device=device, batch_size=batch_size, progress=progress,
                                keep_stats=sparse)[p]
    if predictions.labels is None:
        raise UnlabelledSplitError(f"{data_dir}: the {split} split has no labels to evaluate against")
    need_valid = thresholds == "valid" or (thresholds == "auto" and getattr(info, "thresholds", None) is None)
    valid_predictions = None
    if need_valid:
        if split == "valid":
            valid_predictions = predictions
        elif has_split(data_dir, "valid", model.config):
            valid_predictions = predict_split(model, data_dir, "valid", [p], device=device, batch_size=batch_size)[p]
    deployed = (top_p if top_p is not None else model.config.top_p) if sparse else None
    chosen, source = resolve_thresholds(info, split, mode=thresholds, valid_predictions=valid_predictions,
                                        top_p=deployed)
    report = compute_metrics(predictions.probs, predictions.labels, chosen, model.config.classes,
                             dataset=family_of(model).dataset_name(data_dir))
    return EvaluationResult(
        checkpoint=str(getattr(info, "path", checkpoint)), split=split, report=report, threshold_source=source,
        flops_per_utterance=predictions.flops_per_utterance,
        dense_flops_per_utterance=predictions.dense_flops_per_utterance,
        top_p=deployed,
        arch=model.config.arch, blocks=predictions.blocks, predictions=predictions,
    )
