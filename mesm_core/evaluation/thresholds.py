"""Where the per-class decision thresholds of an evaluation come from: never the split being tested.

The thresholds are chosen on the validation split (``mesm_core.metrics.choose_thresholds``): during training
for the best epoch (stored in the checkpoint), or here, on the data directory's ``valid`` split. Tuning on
the evaluated split happens only when that split *is* ``valid``.
"""

from __future__ import annotations

from typing import Literal

from mesm_core.checkpoint import CheckpointInfo
from mesm_core.errors import InputError
from mesm_core.evaluation.collector import SplitPredictions
from mesm_core.metrics import choose_thresholds

__all__ = ["ThresholdMode", "THRESHOLD_MODES", "ThresholdError", "resolve_thresholds"]

ThresholdMode = Literal["auto", "checkpoint", "valid"]
THRESHOLD_MODES: tuple[str, ...] = ("auto", "checkpoint", "valid")
FROM_CHECKPOINT = "checkpoint (chosen on validation during training)"
FROM_VALID = "tuned on the valid split"


class ThresholdError(InputError, ValueError):
    """No admissible thresholds: the checkpoint has none and there is no labelled validation split to tune on."""


def resolve_thresholds(
    info: CheckpointInfo | None,
    split: str,
    *,
    mode: str = "auto",
    valid_predictions: SplitPredictions | None = None,
    top_p: float | None = None,
) -> tuple[list[float], str]:
    """Per-class thresholds and where they came from.

    mode ``checkpoint``: the checkpoint's (``info.thresholds_at(top_p)``: those chosen on validation at the nearest
    p when the checkpoint stores a table per p, else its single set; error if absent); ``valid``: tuned on the
    validation predictions; ``auto``: checkpoint if present, else validation. ``info`` None: a model without a
    checkpoint (no saved thresholds).
    """
    if mode not in THRESHOLD_MODES:
        raise ThresholdError(f"unknown threshold mode {mode!r} (auto, checkpoint or valid)")
    saved, chosen_at = info.thresholds_at(top_p) if info is not None else (None, None)
    if mode in ("auto", "checkpoint") and saved is not None:
        source = FROM_CHECKPOINT if chosen_at is None else \
            f"checkpoint (chosen on validation at p = {chosen_at:g} during training)"
        return [float(t) for t in saved], source
    if mode == "checkpoint":
        raise ThresholdError(f"{info.path if info is not None else 'checkpoint'}: has no thresholds; use --thresholds valid")
    if valid_predictions is None or valid_predictions.labels is None:
        raise ThresholdError(
            "no thresholds in the checkpoint and no labelled validation split in the cache: refusing to tune "
            f"thresholds on {split!r}"
        )
    return list(choose_thresholds(valid_predictions.probs, valid_predictions.labels)), FROM_VALID
