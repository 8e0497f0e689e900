"""Metrics against hand-computed cases and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from mesm_core.config import IEMOCAP_CLASSES, MOSEI_CLASSES
from mesm_core.metrics import (
    THRESHOLD_GRID,
    MetricsReport,
    binary_accuracy,
    choose_thresholds,
    compute_metrics,
    confusion_counts,
    evaluate_with_validation_thresholds,
    precision_recall_f1,
    report_metrics_for,
    roc_auc,
    weighted_accuracy,
)


def test_hand_computed_binary_case():
    # TP=2, FN=1, FP=1, TN=4  → P=3, N=5
    y_true = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    y_pred = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    assert confusion_counts(y_true, y_pred) == (2, 1, 4, 1)
    assert binary_accuracy(y_true, y_pred) == pytest.approx(6 / 8)
    # Paper formula (TP·N/P + TN)/(2N) = (2·5/3 + 4)/10
    assert weighted_accuracy(y_true, y_pred) == pytest.approx((2 * 5 / 3 + 4) / 10)
    precision, recall, f1 = precision_recall_f1(y_true, y_pred)
    assert (precision, recall, f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_auc_hand_computed_with_ties():
    # positives 0.8, 0.4; negatives 0.4, 0.1 → pairs: (0.8>0.4)1 (0.8>0.1)1 (0.4=0.4)0.5 (0.4>0.1)1 → 3.5/4
    assert roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(3.5 / 4)
    assert math.isnan(roc_auc([1, 1, 1], [0.2, 0.3, 0.4]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("positive_rate", [0.05, 0.3, 0.7])
def test_binary_metrics_match_sklearn(seed, positive_rate):
    rng = np.random.default_rng(seed)
    n = 97
    y_true = rng.random(n) < positive_rate
    scores = np.round(np.clip(y_true * 0.3 + rng.random(n) * 0.8, 0, 1), 2)  # rounded → ties
    y_pred = scores >= 0.5
    assert binary_accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert weighted_accuracy(y_true, y_pred) == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    p, r, f = precision_recall_f1(y_true, y_pred)
    assert p == pytest.approx(skm.precision_score(y_true, y_pred, zero_division=0))
    assert r == pytest.approx(skm.recall_score(y_true, y_pred, zero_division=0))
    assert f == pytest.approx(skm.f1_score(y_true, y_pred, zero_division=0))
    if 0 < y_true.sum() < n:
        assert roc_auc(y_true, scores) == pytest.approx(skm.roc_auc_score(y_true, scores))


def test_degenerate_predictions_follow_sklearn_zero_division():
    y_true = np.array([0, 0, 1, 1])
    nothing = np.zeros(4, bool)
    assert precision_recall_f1(y_true, nothing) == (0.0, 0.0, 0.0)
    assert skm.f1_score(y_true, nothing, zero_division=0) == 0.0
    # Only negatives present: weighted accuracy is the TNR, like balanced_accuracy_score.
    with pytest.warns(UserWarning):
        expected = skm.balanced_accuracy_score([0, 0, 0, 0], [0, 1, 0, 0])
    assert weighted_accuracy(np.zeros(4), np.array([0, 1, 0, 0])) == pytest.approx(expected) == 0.75


def test_thresholds_maximise_f1_and_ties_go_to_lowest():
    labels = np.array([[1], [1], [0], [0]])
    probs = np.array([[0.62], [0.61], [0.2], [0.1]])
    # A class is predicted when prob > t: F1 is 1.0 for every t in [0.2, 0.61): 0.20 … 0.60 → the lowest, 0.20, wins.
    assert choose_thresholds(probs, labels)[0] == pytest.approx(0.20)


def test_thresholds_brute_force_against_sklearn():
    rng = np.random.default_rng(5)
    labels = rng.random((60, 4)) < 0.3
    probs = np.clip(labels * 0.25 + rng.random((60, 4)) * 0.75, 0, 1)
    chosen = choose_thresholds(probs, labels)
    for c in range(4):
        best = max(skm.f1_score(labels[:, c], probs[:, c] > t, zero_division=0) for t in THRESHOLD_GRID)
        assert skm.f1_score(labels[:, c], probs[:, c] >= chosen[c]) == pytest.approx(best)
        first_best = next(
            t for t in THRESHOLD_GRID if skm.f1_score(labels[:, c], probs[:, c] > t, zero_division=0) == best
        )
        assert chosen[c] == pytest.approx(first_best)


def test_class_without_positives_gets_fallback_threshold_and_nan_auc_excluded():
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    probs = np.array([[0.9, 0.3], [0.2, 0.6], [0.7, 0.1], [0.4, 0.2]])
    thresholds = choose_thresholds(probs, labels)
    assert thresholds[1] == 0.5
    report = compute_metrics(probs, labels, thresholds, classes=("a", "b"))
    assert math.isnan(report.per_class["auc"][1])
    assert report.average["auc"] == pytest.approx(1.0)  # only class a counts
    assert any("AUC undefined" in note and "b" in note for note in report.notes)
    assert report.to_dict()["per_class"]["auc"][1] is None
    round_trip = MetricsReport.from_dict(report.to_dict())
    assert math.isnan(round_trip.per_class["auc"][1])
    assert round_trip.average == pytest.approx(report.average)


def test_compute_metrics_macro_average_matches_sklearn():
    rng = np.random.default_rng(11)
    labels = rng.random((80, 6)) < 0.25
    probs = np.clip(labels * 0.3 + rng.random((80, 6)) * 0.7, 0, 1)
    thresholds = np.full(6, 0.5)
    report = compute_metrics(probs, labels, thresholds, classes=IEMOCAP_CLASSES)
    predictions = probs >= 0.5
    assert report.average["f1"] == pytest.approx(
        skm.f1_score(labels, predictions, average="macro", zero_division=0)
    )
    assert report.average["auc"] == pytest.approx(skm.roc_auc_score(labels, probs, average="macro"))
    assert report.average["accuracy"] == pytest.approx(
        np.mean([skm.accuracy_score(labels[:, c], predictions[:, c]) for c in range(6)])
    )
    assert report.dataset == "iemocap" and report.report_metrics == ("accuracy", "f1")
    table = report.format_table()
    assert "average" in table and "Acc" in table and "WAcc" not in table


def test_report_metrics_per_dataset():
    assert report_metrics_for(IEMOCAP_CLASSES) == ("accuracy", "f1")
    assert report_metrics_for(MOSEI_CLASSES) == ("weighted_accuracy", "f1")
    assert "f1" in report_metrics_for(("x", "y"))
    # The synthetic set borrows MOSEI's class names but is not MOSEI.
    assert report_metrics_for(MOSEI_CLASSES, dataset="synthetic") == ("accuracy", "weighted_accuracy", "f1")
    assert report_metrics_for(("a",), dataset="iemocap-processed") == ("accuracy", "f1")


def test_test_report_uses_validation_thresholds_only():
    rng = np.random.default_rng(3)
    valid_labels = rng.random((50, 3)) < 0.4
    valid_probs = np.clip(valid_labels * 0.3 + rng.random((50, 3)) * 0.7, 0, 1)
    test_labels = rng.random((40, 3)) < 0.4
    test_probs = rng.random((40, 3))
    valid_report, test_report = evaluate_with_validation_thresholds(
        valid_probs, valid_labels, test_probs, test_labels
    )
    assert test_report.thresholds == valid_report.thresholds
    assert test_report.thresholds == list(choose_thresholds(valid_probs, valid_labels))


@pytest.mark.parametrize(
    "probs, labels",
    [(np.zeros((3, 2)), np.zeros((3, 3))), (np.full((2, 2), np.nan), np.zeros((2, 2)))],
)
def test_bad_inputs_raise(probs, labels):
    with pytest.raises(ValueError):
        compute_metrics(probs, labels, [0.5] * probs.shape[1])
