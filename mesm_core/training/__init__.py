"""Training engine: the loop (:mod:`.loop`), optimizer and loss weighting (:mod:`.optim`), resumable
state (:mod:`.state`), sampling (:mod:`.sampler`), distributed helpers (:mod:`.distributed`), the run
log (:mod:`.log`) and split evaluation (:mod:`.predictions`). The CLI is ``mesm_core.train``."""

from __future__ import annotations

from mesm_core.training.loop import (
    EXIT_INTERRUPTED_SIGINT,
    EXIT_INTERRUPTED_SIGTERM,
    NonFiniteLossError,
    Trainer,
    TrainOptions,
    TrainResult,
    run_training,
)
from mesm_core.training.predictions import SplitPredictions, collect_predictions

__all__ = [
    "EXIT_INTERRUPTED_SIGINT",
    "EXIT_INTERRUPTED_SIGTERM",
    "NonFiniteLossError",
    "SplitPredictions",
    "TrainOptions",
    "TrainResult",
    "Trainer",
    "collect_predictions",
    "run_training",
]
