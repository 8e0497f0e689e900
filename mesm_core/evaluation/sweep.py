"""The top-p sweep over a split (paper Figure 5): the same MESM weights at every p, metrics against FLOPs.

This is the split-level sweep (a metrics row per p); ``mesm_core.inference.SweepPoint`` is the one-clip
sweep of the studio (probabilities and cost per p), a different thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from mesm_core.errors import InputError
from mesm_core.evaluation.bootstrap import BootstrapComparison
from mesm_core.evaluation.collector import SplitPredictions, predict_split
from mesm_core.evaluation.keep import BlockKeep
from mesm_core.evaluation.scoring import EvaluationResult, UnlabelledSplitError
from mesm_core.evaluation.thresholds import resolve_thresholds
from mesm_core.families import family_of, has_split
from mesm_core.metrics import METRIC_LABELS, MetricsReport, compute_metrics

__all__ = ["TopPError", "parse_top_ps", "SweepRow", "SweepResult", "sweep_top_p"]


class TopPError(InputError, ValueError):
    """A malformed ``--top-p`` list, or a sweep asked of a model without top-p."""


def parse_top_ps(text: str) -> list[float]:
    """``"0.1,0.5,1"`` or the arithmetic form ``"0.1,0.2,...,1.0"`` → sorted values in (0, 1]."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if "..." in items:
        at = items.index("...")
        if at != 2 or len(items) != 4:
            raise TopPError(f"--top-p {text!r}: use 'a,b,...,c' for a range")
        start, second, end = float(items[0]), float(items[1]), float(items[3])
        step = second - start
        if step <= 0:
            raise TopPError(f"--top-p {text!r}: the step must be positive")
        count = int(round((end - start) / step)) + 1
        values = [round(start + i * step, 6) for i in range(count)]
    else:
        try:
            values = [float(item) for item in items]
        except ValueError as exc:
            raise TopPError(f"--top-p {text!r}: not a comma-separated list of numbers") from exc
    if not values:
        raise TopPError("--top-p: no values")
    bad = [v for v in values if not 0.0 < v <= 1.0]
    if bad:
        raise TopPError(f"--top-p: values must be in (0, 1], got {bad}")
    return sorted(set(values))


@dataclass
class SweepRow:
    """One p of a split sweep: the metrics there, the feature-extraction FLOPs per utterance, what each sparse
    block kept (``blocks``) and, with an FE2E reference, the paired-bootstrap comparison of macro-F1 with it."""

    top_p: float
    report: MetricsReport
    flops_per_utterance: float
    dense_flops_per_utterance: float
    blocks: list[BlockKeep] = field(default_factory=list)
    vs_fe2e: BootstrapComparison | None = None
    predictions: SplitPredictions | None = field(default=None, repr=False, compare=False)

    @property
    def flops_fraction(self) -> float:
        return self.flops_per_utterance / self.dense_flops_per_utterance if self.dense_flops_per_utterance else 1.0

    def to_dict(self) -> dict[str, Any]:
        report = self.report.to_dict()
        return {
            "top_p": self.top_p,
            "flops_per_utterance": self.flops_per_utterance,
            "dense_flops_per_utterance": self.dense_flops_per_utterance,
            "flops_fraction": self.flops_fraction,
            "average": report["average"],
            "per_class": report["per_class"],
            "thresholds": self.report.thresholds,
            "blocks": [b.to_dict() for b in self.blocks],
            "vs_fe2e": None if self.vs_fe2e is None else self.vs_fe2e.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], split_report: MetricsReport) -> "SweepRow":
        """The inverse of :meth:`to_dict`. A row stores only what changes with p; the split's classes, sizes and
        dataset come from ``split_report`` (any report of the same split, e.g. the evaluation's)."""
        report = MetricsReport.from_dict({**split_report.to_dict(), "notes": [], "average": data["average"],
                                          "per_class": data["per_class"], "thresholds": data["thresholds"]})
        vs = data.get("vs_fe2e")
        return cls(float(data["top_p"]), report, float(data["flops_per_utterance"]),
                   float(data["dense_flops_per_utterance"]), blocks=[BlockKeep.from_dict(b) for b in data.get("blocks", [])],
                   vs_fe2e=None if not vs else BootstrapComparison.from_dict(vs))


@dataclass
class SweepResult:
    """Every p of a split sweep, the thresholds' source and, optionally, the FE2E level for reference."""

    split: str
    checkpoint: str
    threshold_source: str
    metrics: tuple[str, ...]
    rows: list[SweepRow]
    fe2e: EvaluationResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "checkpoint": self.checkpoint,
            "threshold_source": self.threshold_source,
            "metrics": list(self.metrics),
            "rows": [row.to_dict() for row in self.rows],
            "fe2e": None if self.fe2e is None else self.fe2e.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], split_report: MetricsReport) -> "SweepResult":
        """The inverse of :meth:`to_dict`; ``split_report`` as in :meth:`SweepRow.from_dict`."""
        return cls(split=data["split"], checkpoint=data["checkpoint"], threshold_source=data["threshold_source"],
                   metrics=tuple(data["metrics"]), rows=[SweepRow.from_dict(r, split_report) for r in data["rows"]],
                   fe2e=None if data.get("fe2e") is None else EvaluationResult.from_dict(data["fe2e"]))

    def format_table(self) -> str:
        names = [METRIC_LABELS.get(m, m) for m in self.metrics]
        compare = any(row.vs_fe2e is not None for row in self.rows)
        header = (f"{'top-p':>6}  " + "  ".join(f"{n:>6}" for n in names) + f"  {'GFLOPs/utt':>10}  {'vs dense':>8}"
                  + (f"  {'ΔF1 vs FE2E, 95% CI':>24}" if compare else ""))
        lines = [header, "-" * len(header)]
        for row in self.rows:
            cells = "  ".join(f"{row.report.average[m] * 100:6.1f}" for m in self.metrics)
            line = f"{row.top_p:6.2f}  {cells}  {row.flops_per_utterance / 1e9:10.4f}  {row.flops_fraction:8.1%}"
            if row.vs_fe2e is not None:
                v = row.vs_fe2e
                line += f"  {v.difference * 100:+6.1f} [{v.low * 100:+5.1f}, {v.high * 100:+5.1f}]{' tie' if v.tie else ''}"
            lines.append(line)
        if self.fe2e is not None:
            cells = "  ".join(f"{self.fe2e.report.average[m] * 100:6.1f}" for m in self.metrics)
            lines.append(f"{'FE2E':>6}  {cells}  {self.fe2e.flops_per_utterance / 1e9:10.4f}  {'':>8}")
        return "\n".join(lines)

    def format_blocks(self) -> str:
        """Kept share of each sparse block's grid per p, and (in parentheses) the share of frames a floor decided."""
        keys = sorted({(b.modality, b.block) for row in self.rows for b in row.blocks})
        if not keys:
            return ""
        header = f"{'top-p':>6}  " + "  ".join(f"{m} {i}".rjust(13) for m, i in keys)
        lines = [header, "-" * len(header)]
        for row in self.rows:
            found = {(b.modality, b.block): b for b in row.blocks}
            cells = []
            for key in keys:
                b = found.get(key)
                cells.append("".rjust(13) if b is None else f"{b.kept_share:6.1%} ({b.floor_decided_share:4.0%})".rjust(13))
            lines.append(f"{row.top_p:6.2f}  " + "  ".join(cells))
        return "\n".join(lines)


def sweep_top_p(
    model: nn.Module,
    info: Any,
    data_dir: str | Path,
    top_ps: Sequence[float],
    *,
    split: str = "test",
    thresholds: str = "valid",
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    progress: bool = False,
) -> SweepResult:
    """Evaluate the same MESM weights at each p. ``thresholds="valid"`` re-tunes the per-class
    thresholds on validation at every p (falls back to the checkpoint's when the data has no
    valid split); ``"checkpoint"`` keeps the checkpoint's."""
    if not getattr(model, "supports_top_p", False):
        raise TopPError("a top-p sweep needs a MESM checkpoint (FE2E and the baselines have no top-p)")
    top_ps = list(top_ps)
    test = predict_split(model, data_dir, split, top_ps, device=device, batch_size=batch_size, progress=progress,
                         keep_stats=True)
    valid = None
    if thresholds == "valid" and split == "valid":
        valid = test
    elif thresholds == "valid" and has_split(data_dir, "valid", model.config):
        valid = predict_split(model, data_dir, "valid", top_ps, device=device, batch_size=batch_size, progress=progress)
    rows = []
    source = ""
    for p in top_ps:
        mode = "valid" if valid is not None else "checkpoint"
        chosen, source = resolve_thresholds(info, split, mode=mode, valid_predictions=None if valid is None else valid[p],
                                            top_p=p)
        if test[p].labels is None:
            raise UnlabelledSplitError(f"{data_dir}: the {split} split has no labels")
        report = compute_metrics(test[p].probs, test[p].labels, chosen, model.config.classes,
                                 dataset=family_of(model).dataset_name(data_dir))
        rows.append(SweepRow(p, report, test[p].flops_per_utterance, test[p].dense_flops_per_utterance,
                             blocks=test[p].blocks, predictions=test[p]))
    metrics = tuple(rows[0].report.report_metrics)
    if valid is not None:
        source = "tuned on the valid split at each p"
    elif getattr(info, "thresholds_by_top_p", None):
        source = "checkpoint (chosen on validation at each p during training)"
    return SweepResult(split=split, checkpoint=str(getattr(info, "path", "")), threshold_source=source,
                       metrics=metrics, rows=rows)
