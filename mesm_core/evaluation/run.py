"""Everything ``python -m mesm_core.evaluate`` computes, as one library call: the metrics of a checkpoint on a
split, the top-p sweep when several p are asked (MESM), and the attention-on-cue report when the data has
cue masks (MESM on the synthetic set)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from mesm_core.evaluation.bootstrap import BootstrapComparison, paired_bootstrap
from mesm_core.evaluation.collector import SplitPredictions
from mesm_core.evaluation.cues import CUE_CELL_RULE, cue_attention_report
from mesm_core.evaluation.report import EvaluationReport
from mesm_core.evaluation.scoring import evaluate_checkpoint
from mesm_core.evaluation.sweep import TopPError, sweep_top_p
from mesm_core.metrics import MetricsReport, above_threshold

__all__ = ["run_evaluation", "format_evaluation"]


def run_evaluation(
    checkpoint: str | Path,
    data_dir: str | Path,
    split: str = "test",
    *,
    thresholds: str = "auto",
    top_ps: Sequence[float] | None = None,
    sweep_thresholds: str = "valid",
    fe2e_checkpoint: str | Path | None = None,
    cues: bool = True,
    cue_rule: str = CUE_CELL_RULE,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    progress: bool = False,
    model: nn.Module | None = None,
    info: Any = None,
) -> EvaluationReport:
    """One value in ``top_ps`` is the p of the evaluation; several make a sweep (MESM only) next to the evaluation
    at the model's own p. ``fe2e_checkpoint``: a dense reference, evaluated on the same split, with a paired
    bootstrap of macro-F1 against it at the evaluated p and at every p of the sweep. ``cues``: add the cue report
    when the model is MESM and the split has cue masks."""
    if model is None:
        from mesm_core.loading import load_checkpoint

        model, info = load_checkpoint(checkpoint, map_location=device)
    sweeping = top_ps is not None and len(top_ps) > 1
    if sweeping and not getattr(model, "supports_top_p", False):
        raise TopPError("--top-p with several values needs a MESM checkpoint")
    single_p = top_ps[0] if top_ps is not None and not sweeping else None
    evaluation = evaluate_checkpoint(checkpoint, data_dir, split, thresholds=thresholds, top_p=single_p, device=device,
                                     batch_size=batch_size, model=model, info=info, progress=progress)
    report = EvaluationReport(evaluation)
    if fe2e_checkpoint is not None:
        report.fe2e = evaluate_checkpoint(fe2e_checkpoint, data_dir, split, thresholds=thresholds, device=device,
                                          batch_size=batch_size)
        report.vs_fe2e = compare_with(evaluation.predictions, evaluation.report, report.fe2e.predictions,
                                      report.fe2e.report)
    if sweeping:
        report.sweep = sweep_top_p(model, info, data_dir, list(top_ps), split=split, thresholds=sweep_thresholds,
                                   device=device, batch_size=batch_size, progress=progress)
        if report.fe2e is not None:
            report.sweep.fe2e = report.fe2e
            for row in report.sweep.rows:
                row.vs_fe2e = compare_with(row.predictions, row.report, report.fe2e.predictions, report.fe2e.report)
    if cues:
        report.cues = cue_attention_report(model, data_dir, split, top_p=single_p, device=device,
                                           batch_size=batch_size, cell_rule=cue_rule)
    return report


def compare_with(predictions: SplitPredictions | None, report: MetricsReport, reference: SplitPredictions | None,
                 reference_report: MetricsReport, resamples: int = 5000) -> BootstrapComparison | None:
    """Paired bootstrap of macro-F1, this model minus the reference, each with its own thresholds (those its
    report used), on the utterances both scored."""
    if predictions is None or reference is None or predictions.labels is None:
        return None
    if list(predictions.ids) != list(reference.ids):
        index = {u: i for i, u in enumerate(reference.ids)}
        order = [index[u] for u in predictions.ids]
        reference_probs = reference.probs[order]
    else:
        reference_probs = reference.probs
    mine = above_threshold(predictions.probs, report.thresholds)
    theirs = above_threshold(reference_probs, reference_report.thresholds)
    return paired_bootstrap(predictions.labels, mine, theirs, resamples=resamples)


def format_evaluation(report: EvaluationReport) -> str:
    """The CLI's text: the metrics table, the FLOPs, the sweep table and the cue table (those present)."""
    result = report.evaluation
    lines = [f"{result.arch} {result.checkpoint} on {result.split} ({result.report.n_samples} utterances); "
             f"thresholds: {result.threshold_source}" + (f"; top-p {result.top_p}" if result.top_p is not None else ""),
             result.report.format_table()]
    if result.dense_flops_per_utterance > 0:  # the baselines compute no feature-extraction FLOPs themselves
        lines.append(f"feature-extraction FLOPs per utterance: {result.flops_per_utterance / 1e9:.4f} G "
                     f"(dense {result.dense_flops_per_utterance / 1e9:.4f} G)")
    if result.blocks:
        lines.append("kept share of each sparse block's grid (share of frames a keep floor decided): " + ", ".join(
            f"{b.modality} {b.block} {b.kept_share:.1%} ({b.floor_decided_share:.0%})" for b in result.blocks))
    if report.vs_fe2e is not None:
        lines.append("against FE2E (paired bootstrap over utterances): " + report.vs_fe2e.describe("this", "FE2E"))
    if report.sweep is not None:
        lines += [f"\ntop-p sweep ({report.sweep.threshold_source}):", report.sweep.format_table()]
        blocks = report.sweep.format_blocks()
        if blocks:
            lines += ["\nkept share of each sparse block's grid per p (share of frames a keep floor decided):", blocks]
    if report.cues is not None:
        lines += [f"\nattention on ground-truth cue regions (p = {report.cues.top_p}):", report.cues.format_table()]
    return "\n".join(lines)
