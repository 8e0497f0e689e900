"""Per-epoch run log: ``RUN/metrics.jsonl`` (one :class:`EpochRecord` as a JSON object per epoch) and
TensorBoard if installed."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesm_core.errors import FileInputError
from mesm_core.io import to_jsonable

__all__ = ["EpochRecord", "RunLogger", "read_metrics_log"]

LOG_FILE = "metrics.jsonl"


@dataclass
class EpochRecord:
    """One line of ``metrics.jsonl``: what an epoch trained and how it scored on validation.

    The trainer fills every field but the optional ones: ``train_top_p`` (MESM: the p of the epoch's last
    step), ``valid_select_top_p`` / ``select_value`` (selection across ``train.select_top_p``: the metric at
    each p and their mean), ``train_task_loss`` and ``aux_losses`` (the task loss and each weighted selection
    loss, means over the epoch's steps). A field that is None is not written, and a line may lack any field but
    ``epoch`` (logs of older versions lack ``valid_loss``; hand-made logs more); keys this version does not
    know are kept in ``extra`` and written back. So every line round-trips unchanged.
    """

    epoch: int                                       # 1-based
    step: int | None = None                          # optimizer steps so far
    train_loss: float | None = None
    valid_loss: float | None = None
    grad_norm_mean: float | None = None              # before clipping (after unscaling with fp16 AMP), per epoch
    grad_norm_max: float | None = None
    valid: dict[str, float] | None = None            # the validation averages, per metric
    valid_thresholds: list[float] | None = None      # per class, tuned on validation
    select_metric: str | None = None
    improved: bool | None = None                     # a new best: RUN/best was written
    lr: dict[str, float] | None = None               # per parameter group
    seconds: float | None = None
    flops_per_utterance: float | None = None
    dense_flops_per_utterance: float | None = None
    kept_flops_fraction: float | None = None
    train_top_p: float | None = None
    valid_select_top_p: dict[str, float] | None = None
    select_value: float | None = None
    train_task_loss: float | None = None
    aux_losses: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def selected(self) -> float:
        """The value the epoch was selected on: the mean over ``train.select_top_p``, else the validation metric."""
        return self.select_value if self.select_value is not None else self.valid[self.select_metric]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**{k: v for k, v in out.items() if v is not None}, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EpochRecord":
        """Raises KeyError for a record without ``epoch``, TypeError for one that is not a JSON object."""
        if "epoch" not in data:
            raise KeyError("epoch")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in names},
                   extra={k: v for k, v in data.items() if k not in names})


class RunLogger:
    """Appends epoch records to ``metrics.jsonl``; mirrors scalar values to TensorBoard
    (``RUN/tensorboard``) when the ``tensorboard`` package can be imported. Rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / LOG_FILE
        self.enabled = enabled
        self._writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self._writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def log_epoch(self, record: EpochRecord) -> None:
        if not self.enabled:
            return
        data = record.to_dict()
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(to_jsonable(data), sort_keys=True) + "\n")
        if self._writer is not None:
            for key, value in _flatten(data).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self._writer.add_scalar(key, value, record.epoch)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def read_metrics_log(run_dir: Path) -> list[EpochRecord]:
    """The records of ``RUN/metrics.jsonl`` in order (empty when there is none). Raises
    :class:`~mesm_core.errors.FileInputError` naming the file and line for a line that is not a record."""
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(EpochRecord.from_dict(json.loads(line)))
        except (ValueError, TypeError, KeyError) as exc:
            raise FileInputError(path, f"line {number} is not an epoch record ({type(exc).__name__}: {exc})") from exc
    return records
