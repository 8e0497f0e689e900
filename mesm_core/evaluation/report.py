"""The evaluation JSON (``python -m mesm_core.evaluate --out FILE``): one checkpoint's metrics, its top-p sweep
and its cue report, written atomically and read back as the same types (``mesm_viz.evaluation_figures``
draws its figures from it)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesm_core.evaluation.bootstrap import BootstrapComparison
from mesm_core.evaluation.cues import CueReport
from mesm_core.evaluation.scoring import EvaluationResult
from mesm_core.evaluation.sweep import SweepResult
from mesm_core.io import write_json

__all__ = ["EvaluationReport", "read_evaluation"]


@dataclass
class EvaluationReport:
    """``{"evaluation": ..., "sweep": ... (a sweep ran), "cues": ... (MESM on data with cue masks),
    "fe2e": ... and "vs_fe2e": ... (an FE2E reference was given: its evaluation and the paired bootstrap of
    macro-F1, this checkpoint minus FE2E)}``."""

    evaluation: EvaluationResult
    sweep: SweepResult | None = None
    cues: CueReport | None = None
    fe2e: EvaluationResult | None = None
    vs_fe2e: BootstrapComparison | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"evaluation": self.evaluation.to_dict()}
        if self.sweep is not None:
            out["sweep"] = self.sweep.to_dict()
        if self.cues is not None:
            out["cues"] = self.cues.to_dict()
        if self.fe2e is not None:
            out["fe2e"] = self.fe2e.to_dict()
        if self.vs_fe2e is not None:
            out["vs_fe2e"] = self.vs_fe2e.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluationReport":
        evaluation = EvaluationResult.from_dict(data["evaluation"])
        sweep = SweepResult.from_dict(data["sweep"], evaluation.report) if data.get("sweep") else None
        cues = CueReport.from_dict(data["cues"]) if data.get("cues") else None
        fe2e = EvaluationResult.from_dict(data["fe2e"]) if data.get("fe2e") else None
        vs = BootstrapComparison.from_dict(data["vs_fe2e"]) if data.get("vs_fe2e") else None
        return cls(evaluation, sweep, cues, fe2e, vs)

    def write(self, path: str | os.PathLike) -> Path:
        """Atomic JSON (NaN → null)."""
        return write_json(path, self.to_dict())


def read_evaluation(path: str | os.PathLike) -> EvaluationReport:
    """An evaluation JSON written by :meth:`EvaluationReport.write` (or ``python -m mesm_core.evaluate --out``)."""
    return EvaluationReport.from_dict(json.loads(Path(path).read_text()))
