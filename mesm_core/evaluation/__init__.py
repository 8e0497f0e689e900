"""Evaluation of a model over a split: one prediction collector, the threshold policy, the metrics of a
checkpoint, the top-p sweep (paper Figure 5), the attention-on-cue analysis and the evaluation JSON.

    from mesm_core.evaluation import evaluate_checkpoint, sweep_top_p, cue_attention_report

Modules: ``collector`` (run a model over a split: :func:`collect_top_ps`, :func:`predict_split`),
``thresholds`` (never tuned on the tested split), ``scoring`` (:func:`evaluate_checkpoint`), ``sweep``,
``cues``, ``report`` (:class:`EvaluationReport`, the JSON), ``run`` (all of it, as the CLI runs it). Every model family is served (``mesm_core.families``);
the sweep and the cue report need MESM. The CLI is ``python -m mesm_core.evaluate``; the figures are drawn by
``mesm_viz.evaluation_figures``.
"""

from mesm_core.evaluation.collector import (
    SplitPredictions,
    autocast_context,
    collect_predictions,
    collect_top_ps,
    predict_split,
    split_batches,
)
from mesm_core.evaluation.cues import CUE_CELL_RULE, CUE_CELL_RULES, CueReport, CueRow, cue_attention_report, cue_grid
from mesm_core.evaluation.report import EvaluationReport, read_evaluation
from mesm_core.evaluation.run import format_evaluation, run_evaluation
from mesm_core.evaluation.scoring import EvaluationResult, UnlabelledSplitError, evaluate_checkpoint
from mesm_core.evaluation.sweep import SweepResult, SweepRow, TopPError, parse_top_ps, sweep_top_p
from mesm_core.evaluation.thresholds import THRESHOLD_MODES, ThresholdError, resolve_thresholds

__all__ = [
    "SplitPredictions", "autocast_context", "collect_predictions", "collect_top_ps", "predict_split", "split_batches",
    "CUE_CELL_RULE", "CUE_CELL_RULES", "CueReport", "CueRow", "cue_attention_report", "cue_grid",
    "EvaluationReport", "read_evaluation", "format_evaluation", "run_evaluation",
    "EvaluationResult", "UnlabelledSplitError", "evaluate_checkpoint",
    "SweepResult", "SweepRow", "TopPError", "parse_top_ps", "sweep_top_p",
    "THRESHOLD_MODES", "ThresholdError", "resolve_thresholds",
]
