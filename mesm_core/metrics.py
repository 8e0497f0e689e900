"""Per-class multi-label metrics and validation-tuned thresholds (paper §5.1; docs/deviations.md,
"Training and metrics").

Every emotion is scored as a one-vs-rest binary task on sigmoid probabilities:

* ``accuracy``           (TP + TN) / (P + N)
* ``weighted_accuracy``  (TP·N/P + TN) / (2N) = ½(TPR + TNR)  (balanced accuracy, the paper's "WAcc")
* ``precision``, ``recall``, ``f1`` of the positive class (0 when undefined, like scikit-learn's
  ``zero_division=0``)
* ``auc``                ROC-AUC on the probabilities; NaN when the class has only one label value,
  and then left out of the average (the report's ``notes`` say so)

"Average" is the unweighted mean over classes (macro), as in the paper's tables.

Thresholds are chosen per class on the VALIDATION split from 0.05, 0.10, …, 0.95 to maximise F1;
ties go to the LOWEST threshold (the reference loops upward and keeps the first strict maximum).
A class without positives in validation has F1 = 0 everywhere; it gets 0.5 instead of 0.05, with a note.
They are then applied unchanged to test: :func:`compute_metrics` never tunes anything.

Which numbers a dataset reports (:func:`report_metrics_for`): IEMOCAP accuracy and F1 (Table 3),
MOSEI weighted accuracy and F1 (Table 4), anything else (synthetic) all three.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mesm_core.config import IEMOCAP_CLASSES, MOSEI_CLASSES, MetricName

THRESHOLD_GRID: np.ndarray = np.round(np.arange(1, 20) * 0.05, 2)  # 0.05 … 0.95
FALLBACK_THRESHOLD = 0.5
METRIC_NAMES: tuple[str, ...] = typing.get_args(MetricName)  # accuracy, weighted_accuracy, precision, recall, f1, auc
METRIC_LABELS = {
    "accuracy": "Acc",
    "weighted_accuracy": "WAcc",
    "precision": "P",
    "recall": "R",
    "f1": "F1",
    "auc": "AUC",
}


# --- which dataset, which metrics -------------------------------------------------------------

def dataset_for_classes(classes: Sequence[str], dataset: str | None = None) -> str:
    """``"iemocap"``, ``"mosei"`` or ``"other"``: from ``dataset`` (a cache's ``cache.json`` name, e.g.
    "iemocap-processed", "synthetic") when given, else from the class names of a model/preset."""
    if dataset is not None:
        name = dataset.lower()
        return "iemocap" if name.startswith("iemocap") else "mosei" if name.startswith("mosei") else "other"
    classes = tuple(classes)
    if classes == IEMOCAP_CLASSES:
        return "iemocap"
    if classes == MOSEI_CLASSES:
        return "mosei"
    return "other"


def report_metrics_for(classes: Sequence[str], dataset: str | None = None) -> tuple[str, ...]:
    """The metrics the paper reports for this dataset (IEMOCAP: Acc+F1, MOSEI: WAcc+F1; others all three).

    The synthetic set uses MOSEI's class names; pass ``dataset="synthetic"`` to get all three."""
    dataset = dataset_for_classes(classes, dataset)
    if dataset == "iemocap":
        return ("accuracy", "f1")
    if dataset == "mosei":
        return ("weighted_accuracy", "f1")
    return ("accuracy", "weighted_accuracy", "f1")


# --- binary metrics ----------------------------------------------------------------------------

def _check_binary(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true).astype(bool).ravel()
    y_pred = np.asarray(y_pred).astype(bool).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"labels {y_true.shape} and predictions {y_pred.shape} differ in length")
    return y_true, y_pred


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[int, int, int, int]:
    """(TP, FP, TN, FN) of boolean/0-1 vectors of the same length."""
    y_true, y_pred = _check_binary(y_true, y_pred)
    tp = int(np.sum(y_true & y_pred))
    fp = int(np.sum(~y_true & y_pred))
    tn = int(np.sum(~y_true & ~y_pred))
    fn = int(np.sum(y_true & ~y_pred))
    return tp, fp, tn, fn


def binary_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    tp, fp, tn, fn = confusion_counts(y_true, y_pred)
    total = tp + fp + tn + fn
    return (tp + tn) / total if total else math.nan


def weighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """(TP·N/P + TN)/(2N) = ½(TPR + TNR). With only one label value present it is the rate on that
    value (scikit-learn's ``balanced_accuracy_score`` convention)."""
    tp, fp, tn, fn = confusion_counts(y_true, y_pred)
    positives, negatives = tp + fn, tn + fp
    rates = []
    if positives:
        rates.append(tp / positives)
    if negatives:
        rates.append(tn / negatives)
    return float(np.mean(rates)) if rates else math.nan


def precision_recall_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float]:
    """Positive-class precision, recall and F1; an undefined ratio counts as 0."""
    tp, fp, tn, fn = confusion_counts(y_true, y_pred)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return precision, recall, f1


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC via the rank statistic (ties get average ranks); NaN when only one label value."""
    y_true = np.asarray(y_true).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    # Average rank within runs of tied scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [scores.size]])
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0  # 1-based mean of start+1 … end
    rank_sum = ranks[y_true].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# --- thresholds ----------------------------------------------------------------------------------

def _check_matrix(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or labels.shape != probs.shape:
        raise ValueError(f"probs {probs.shape} and labels {labels.shape} must both be (N, C)")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probabilities contain NaN or inf")
    return probs, labels.astype(bool)


def above_threshold(probs: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    """The decision rule: class c is predicted when ``prob > threshold`` (strictly, as the reference's
    ``preds = (probs > t)``). probs (..., C), thresholds (C,) → bool (..., C)."""
    return np.asarray(probs) > np.asarray(thresholds, dtype=np.float64)


def choose_thresholds(
    probs: np.ndarray, labels: np.ndarray, grid: Sequence[float] = THRESHOLD_GRID
) -> np.ndarray:
    """Per-class threshold from ``grid`` maximising binary F1 of ``probs > t`` (ties → lowest).

    probs, labels: (N, C). Use the VALIDATION split; returns float64 (C,).
    A class with no positive label gets :data:`FALLBACK_THRESHOLD`.
    """
    probs, labels = _check_matrix(probs, labels)
    grid = np.asarray(grid, dtype=np.float64)
    thresholds = np.full(probs.shape[1], FALLBACK_THRESHOLD)
    for c in range(probs.shape[1]):
        if not labels[:, c].any():
            continue
        scores = [precision_recall_f1(labels[:, c], above_threshold(probs[:, c], t))[2] for t in grid]
        thresholds[c] = grid[int(np.argmax(scores))]  # argmax returns the first (lowest) maximum
    return thresholds


# --- the report ---------------------------------------------------------------------------------

@dataclass
class MetricsReport:
    """Per-class and macro-averaged metrics of one split at fixed thresholds.

    per_class[metric] is a list over ``classes``; average[metric] the unweighted mean (NaN entries,
    i.e. an undefined AUC, are left out; ``notes`` names them).
    """

    classes: tuple[str, ...]
    thresholds: list[float]
    per_class: dict[str, list[float]]
    average: dict[str, float]
    n_samples: int
    positives: list[int]
    dataset: str = "other"
    report_metrics: tuple[str, ...] = ("accuracy", "weighted_accuracy", "f1")
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-safe dict (NaN becomes None)."""

        def clean(value: float) -> float | None:
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)

        return {
            "dataset": self.dataset,
            "report_metrics": list(self.report_metrics),
            "classes": list(self.classes),
            "thresholds": [float(t) for t in self.thresholds],
            "n_samples": self.n_samples,
            "positives": list(self.positives),
            "per_class": {m: [clean(v) for v in vals] for m, vals in self.per_class.items()},
            "average": {m: clean(v) for m, v in self.average.items()},
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "MetricsReport":
        def unclean(value: float | None) -> float:
            return math.nan if value is None else float(value)

        return cls(
            classes=tuple(data["classes"]),
            thresholds=[float(t) for t in data["thresholds"]],
            per_class={m: [unclean(v) for v in vals] for m, vals in data["per_class"].items()},
            average={m: unclean(v) for m, v in data["average"].items()},
            n_samples=int(data["n_samples"]),
            positives=[int(p) for p in data["positives"]],
            dataset=data.get("dataset", "other"),
            report_metrics=tuple(data.get("report_metrics", ("accuracy", "f1"))),
            notes=list(data.get("notes", [])),
        )

    def format_table(self, metrics: Sequence[str] | None = None, percent: bool = True) -> str:
        """Plain-text table: one row per class plus ``average``; columns = ``metrics`` (default: the
        dataset's reported metrics, then AUC) and the threshold."""
        metrics = tuple(metrics) if metrics is not None else tuple(self.report_metrics) + ("auc",)
        scale = 100.0 if percent else 1.0
        name_width = max([len(c) for c in self.classes] + [len("average")])
        header = f"{'class':<{name_width}}  " + "  ".join(f"{METRIC_LABELS.get(m, m):>6}" for m in metrics)
        header += f"  {'thr':>5}  {'pos':>5}"
        lines = [header, "-" * len(header)]

        def fmt(value: float) -> str:
            return f"{'n/a':>6}" if math.isnan(value) else f"{value * scale:6.1f}"

        for i, name in enumerate(self.classes):
            cells = "  ".join(fmt(self.per_class[m][i]) for m in metrics)
            lines.append(f"{name:<{name_width}}  {cells}  {self.thresholds[i]:5.2f}  {self.positives[i]:5d}")
        cells = "  ".join(fmt(self.average[m]) for m in metrics)
        lines.append(f"{'average':<{name_width}}  {cells}  {'':>5}  {self.n_samples:5d}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def compute_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
    classes: Sequence[str] | None = None,
    dataset: str | None = None,
) -> MetricsReport:
    """Metrics of probabilities (N, C) against multi-hot labels (N, C) at fixed per-class thresholds.

    A class is predicted when ``prob > threshold`` (:func:`above_threshold`). Nothing is tuned here. ``dataset`` (e.g. a cache's
    dataset name) decides the reported metrics; by default the class names do.
    """
    probs, labels = _check_matrix(probs, labels)
    n_classes = probs.shape[1]
    classes = tuple(classes) if classes is not None else tuple(f"class{i}" for i in range(n_classes))
    thresholds = np.asarray(thresholds, dtype=np.float64).ravel()
    if len(classes) != n_classes or thresholds.size != n_classes:
        raise ValueError(
            f"{n_classes} probability columns but {len(classes)} classes and {thresholds.size} thresholds"
        )
    per_class: dict[str, list[float]] = {m: [] for m in METRIC_NAMES}
    notes: list[str] = []
    for c in range(n_classes):
        truth, predicted = labels[:, c], above_threshold(probs[:, c], thresholds[c])
        precision, recall, f1 = precision_recall_f1(truth, predicted)
        per_class["accuracy"].append(binary_accuracy(truth, predicted))
        per_class["weighted_accuracy"].append(weighted_accuracy(truth, predicted))
        per_class["precision"].append(precision)
        per_class["recall"].append(recall)
        per_class["f1"].append(f1)
        per_class["auc"].append(roc_auc(truth, probs[:, c]))
    undefined_auc = [classes[c] for c in range(n_classes) if math.isnan(per_class["auc"][c])]
    if undefined_auc:
        notes.append(
            f"AUC undefined (only one label value) for {', '.join(undefined_auc)}; left out of the average"
        )
    no_positive = [classes[c] for c in range(n_classes) if not labels[:, c].any()]
    if no_positive:
        notes.append(f"no positive sample for {', '.join(no_positive)} (F1, precision and recall are 0)")
    average = {}
    for metric, values in per_class.items():
        finite = [v for v in values if not math.isnan(v)]
        average[metric] = float(np.mean(finite)) if finite else math.nan
    return MetricsReport(
        classes=classes,
        thresholds=[float(t) for t in thresholds],
        per_class=per_class,
        average=average,
        n_samples=int(probs.shape[0]),
        positives=[int(p) for p in labels.sum(axis=0)],
        dataset=dataset_for_classes(classes, dataset),
        report_metrics=report_metrics_for(classes, dataset),
        notes=notes,
    )


def evaluate_with_validation_thresholds(
    valid_probs: np.ndarray,
    valid_labels: np.ndarray,
    test_probs: np.ndarray,
    test_labels: np.ndarray,
    classes: Sequence[str] | None = None,
) -> tuple[MetricsReport, MetricsReport]:
    """Tune thresholds on validation, apply them to test. Returns (valid report, test report)."""
    thresholds = choose_thresholds(valid_probs, valid_labels)
    return (
        compute_metrics(valid_probs, valid_labels, thresholds, classes),
        compute_metrics(test_probs, test_labels, thresholds, classes),
    )
