"""Everything ``python -m mesm_core.evaluate`` computes, as one library call: the metrics of a checkpoint on a
split, the top-p sweep when several p are asked (MESM), and the attention-on-cue report when the data has
cue masks (MESM on the synthetic set)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from mesm_core.evaluation.cues import CUE_CELL_RULE, cue_attention_report
from mesm_core.evaluation.report import EvaluationReport
from mesm_core.evaluation.scoring import evaluate_checkpoint
from mesm_core.evaluation.sweep import TopPError, sweep_top_p

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
    at the model's own p, with ``fe2e_checkpoint`` as its dense reference. ``cues``: add the cue report when the
    model is MESM and the split has cue masks."""
    if model is None:
        from mesm_core.checkpoint import load_checkpoint

        model, info = load_checkpoint(checkpoint, map_location=device)
    sweeping = top_ps is not None and len(top_ps) > 1
    if sweeping and model.config.arch != "mesm":
        raise TopPError("--top-p with several values needs a MESM checkpoint")
    single_p = top_ps[0] if top_ps is not None and not sweeping else None
    evaluation = evaluate_checkpoint(checkpoint, data_dir, split, thresholds=thresholds, top_p=single_p, device=device,
                                     batch_size=batch_size, model=model, info=info, progress=progress)
    report = EvaluationReport(evaluation)
    if sweeping:
        report.sweep = sweep_top_p(model, info, data_dir, list(top_ps), split=split, thresholds=sweep_thresholds,
                                   device=device, batch_size=batch_size, progress=progress)
        if fe2e_checkpoint is not None:
            report.sweep.fe2e = evaluate_checkpoint(fe2e_checkpoint, data_dir, split, thresholds=thresholds, device=device,
                                                    batch_size=batch_size)
    if cues:
        report.cues = cue_attention_report(model, data_dir, split, top_p=single_p, device=device,
                                           batch_size=batch_size, cell_rule=cue_rule)
    return report


def format_evaluation(report: EvaluationReport) -> str:
    """The CLI's text: the metrics table, the FLOPs, the sweep table and the cue table (those present)."""
    result = report.evaluation
    lines = [f"{result.arch} {result.checkpoint} on {result.split} ({result.report.n_samples} utterances); "
             f"thresholds: {result.threshold_source}" + (f"; top-p {result.top_p}" if result.top_p is not None else ""),
             result.report.format_table()]
    if result.dense_flops_per_utterance > 0:  # the baselines compute no feature-extraction FLOPs themselves
        lines.append(f"feature-extraction FLOPs per utterance: {result.flops_per_utterance / 1e9:.4f} G "
                     f"(dense {result.dense_flops_per_utterance / 1e9:.4f} G)")
    if report.sweep is not None:
        lines += [f"\ntop-p sweep ({report.sweep.threshold_source}):", report.sweep.format_table()]
    if report.cues is not None:
        lines += [f"\nattention on ground-truth cue regions (p = {report.cues.top_p}):", report.cues.format_table()]
    return "\n".join(lines)
