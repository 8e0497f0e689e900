"""The files of a run directory besides its checkpoints and ``metrics.jsonl``, each a record with its writer:

* ``RUN/config.json``: the resolved :class:`~mesm_core.config.RunConfig` (written once, at the start);
* ``RUN/run.json``: :class:`RunInfo`, where the run's data is and where and how each start (or resume) ran;
* ``RUN/test_metrics.json``: :class:`TestMetrics`, the best checkpoint on the test split with the thresholds
  chosen on validation (read back by ``mesm_core.compare``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mesm_core.config import RunConfig, to_dict
from mesm_core.distributed import DistInfo
from mesm_core.errors import FileInputError
from mesm_core.io import write_json
from mesm_core.metrics import MetricsReport

__all__ = ["RunStart", "RunInfo", "TestMetrics", "prepare_run_dir", "read_run_info", "read_test_metrics",
           "RUN_INFO", "TEST_METRICS"]

RUN_INFO = "run.json"
TEST_METRICS = "test_metrics.json"


def _read_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileInputError(path, f"unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise FileInputError(path, f"expected a JSON object, got {type(data).__name__}")
    return data


@dataclass
class RunStart:
    """One start of a run (the first, or a resume)."""

    cache_dir: str
    world_size: int
    device: str
    torch: str
    started: str          # local time, ISO 8601 without zone
    resumed: bool


@dataclass
class RunInfo:
    """``RUN/run.json``: the run's data directory and every start of it, oldest first."""

    cache_dir: str
    runs: list[RunStart] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"cache_dir": self.cache_dir, "runs": [asdict(run) for run in self.runs]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunInfo":
        return cls(cache_dir=data["cache_dir"], runs=[RunStart(**run) for run in data.get("runs", [])])


def read_run_info(run_dir: str | Path) -> RunInfo | None:
    """``RUN/run.json``, or None when the run has none. Raises :class:`FileInputError` naming the file."""
    path = Path(run_dir) / RUN_INFO
    if not path.is_file():
        return None
    try:
        return RunInfo.from_dict(_read_object(path))
    except (KeyError, TypeError) as exc:
        raise FileInputError(path, f"not a run record ({type(exc).__name__}: {exc})") from exc


def prepare_run_dir(run_dir: Path, cfg: RunConfig, cache_dir: Path, dist_info: DistInfo, resume: bool) -> None:
    """Write RUN/config.json (the resolved RunConfig) and append this start to RUN/run.json, on rank 0."""
    if not dist_info.is_main:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_json(run_dir / "config.json", to_dict(cfg))
    start = RunStart(cache_dir=str(Path(cache_dir).resolve()), world_size=dist_info.world_size,
                     device=str(dist_info.device), torch=torch.__version__,
                     started=time.strftime("%Y-%m-%dT%H:%M:%S"), resumed=resume)
    previous = read_run_info(run_dir)
    info = RunInfo(cache_dir=start.cache_dir, runs=[*(previous.runs if previous else []), start])
    write_json(run_dir / RUN_INFO, info.to_dict())


@dataclass
class TestMetrics:
    """``RUN/test_metrics.json``: the ``best`` checkpoint on the test split, thresholds from validation.

    The file is the report's own keys (``MetricsReport.to_dict``) beside these fields, flat.
    """

    checkpoint: str
    best_epoch: int                   # 1-based
    parameters: int
    flops_per_utterance: float
    report: MetricsReport
    split: str = "test"
    thresholds_from: str = "validation (best epoch)"

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "checkpoint": self.checkpoint, "thresholds_from": self.thresholds_from,
                "best_epoch": self.best_epoch, "parameters": self.parameters,
                "flops_per_utterance": self.flops_per_utterance, **self.report.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TestMetrics":
        own = ("split", "checkpoint", "thresholds_from", "best_epoch", "parameters", "flops_per_utterance")
        return cls(**{k: data[k] for k in own},
                   report=MetricsReport.from_dict({k: v for k, v in data.items() if k not in own}))

    def write(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / TEST_METRICS
        write_json(path, self.to_dict())
        return path


def read_test_metrics(run_dir: str | Path) -> TestMetrics:
    """``RUN/test_metrics.json``. Raises :class:`FileInputError` naming the file when it is missing or malformed."""
    path = Path(run_dir) / TEST_METRICS
    if not path.is_file():
        raise FileInputError(path, "missing (the run has not evaluated its best checkpoint on a test split)")
    try:
        return TestMetrics.from_dict(_read_object(path))
    except (KeyError, TypeError, ValueError) as exc:
        raise FileInputError(path, f"not a test-metrics record ({type(exc).__name__}: {exc})") from exc
