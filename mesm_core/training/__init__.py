"""Training engine of every model family: the loop (:mod:`.loop`), optimizer and loss weighting
(:mod:`.optim`), resumable state (:mod:`.state`), sampling (:mod:`.sampler`), the run log (:mod:`.log`),
checkpoints (:mod:`.checkpointing`) and MESM's selection training (:mod:`.selection`). Predictions over a
split come from ``mesm_core.evaluation``; the process group from ``mesm_core.distributed``. The CLI is
``mesm_core.train``."""

from __future__ import annotations

from mesm_core.training.loop import (
    EXIT_INTERRUPTED_SIGINT,
    EXIT_INTERRUPTED_SIGTERM,
    NonFiniteLossError,
    NothingToResumeError,
    Trainer,
    TrainOptions,
    TrainResult,
    run_training,
    seed_everything,
)

__all__ = [
    "EXIT_INTERRUPTED_SIGINT",
    "EXIT_INTERRUPTED_SIGTERM",
    "NonFiniteLossError",
    "NothingToResumeError",
    "TrainOptions",
    "TrainResult",
    "Trainer",
    "run_training",
    "seed_everything",
]
