"""Epoch callbacks of the trainer (detectron2's hooks, once per epoch): what happens after an epoch is scored.

``Trainer.fit`` trains an epoch, scores it on validation into an :class:`~mesm_core.training.log.EpochRecord`
and advances its counters to the next epoch; then it calls ``on_epoch_end(trainer, record)`` of every
callback, in order. When the run finishes (not when a signal stops it) it calls ``on_fit_end(trainer,
result)``. The defaults (:func:`default_callbacks`), in their order:

    BestCheckpoint   RUN/best when the epoch improved the selection metric (with its validation thresholds)
    RunLog           the record into the history, metrics.jsonl and TensorBoard; one console line
    EarlyStopping    finish after ``train.early_stop`` epochs without improvement
    StopAtLimits     finish at ``train.epochs`` or ``--max-steps`` (unless already finished: its reason wins)
    LastCheckpoint   RUN/last (model + training state), which a resume starts from
    TestOnBest       at the end: RUN/best on the test split with its validation thresholds → test_metrics.json

A callback reads and changes the trainer's public state (``trainer.state``, ``trainer.cfg``, ...), typed
``Any`` here because the trainer imports this module.
"""

from __future__ import annotations

import logging
from typing import Any

from mesm_core.checkpoint import load_weights_into, read_checkpoint_info
from mesm_core.training.log import EpochRecord
from mesm_core.training.run_files import TestMetrics

__all__ = ["EpochCallback", "BestCheckpoint", "RunLog", "EarlyStopping", "StopAtLimits", "LastCheckpoint",
           "TestOnBest", "default_callbacks"]

log = logging.getLogger(__name__)


class EpochCallback:
    """Base: both hooks do nothing."""

    def on_epoch_end(self, trainer: Any, record: EpochRecord) -> None:
        """After epoch ``record.epoch`` was scored (``trainer.state`` already counts the next epoch)."""

    def on_fit_end(self, trainer: Any, result: Any) -> None:
        """After the last epoch of a run that finished (``result``: the ``TrainResult`` being returned)."""


class BestCheckpoint(EpochCallback):
    def on_epoch_end(self, trainer: Any, record: EpochRecord) -> None:
        if record.improved:
            trainer.save_best(trainer.valid_report, record.epoch - 1)


class RunLog(EpochCallback):
    def on_epoch_end(self, trainer: Any, record: EpochRecord) -> None:
        trainer.state.history.append(record.to_dict())  # plain dicts: training_state.pt is loaded weights_only
        trainer.logger.log_epoch(record)
        if trainer.is_main and trainer.options.progress:
            log.info(f"epoch {record.epoch}: train loss {record.train_loss:.4f}, valid {record.select_metric} "
                     f"{record.selected:.4f}{' (best)' if record.improved else ''}")


class EarlyStopping(EpochCallback):
    def on_epoch_end(self, trainer: Any, record: EpochRecord) -> None:
        patience, state = trainer.cfg.train.early_stop, trainer.state
        if patience > 0 and state.epochs_without_improvement >= patience:
            state.finished = True
            state.stop_reason = f"early stop: no {record.select_metric} improvement for {patience} epochs"


class StopAtLimits(EpochCallback):
    def on_epoch_end(self, trainer: Any, record: EpochRecord) -> None:
        state, epochs, max_steps = trainer.state, trainer.cfg.train.epochs, trainer.options.max_steps
        if state.finished:
            return
        if state.epoch >= epochs:
            state.finished, state.stop_reason = True, f"reached {epochs} epochs"
        elif max_steps is not None and state.global_step >= max_steps:  # an epoch cut short stops here too
            state.finished, state.stop_reason = True, f"reached --max-steps {max_steps}"


class LastCheckpoint(EpochCallback):
    def on_epoch_end(self, trainer: Any, record: EpochRecord) -> None:
        trainer.save_last()


class TestOnBest(EpochCallback):
    def on_fit_end(self, trainer: Any, result: Any) -> None:
        best = trainer.run_dir / "best"
        if not (trainer.options.evaluate_test and "test" in trainer.datasets and best.is_dir()):
            return
        load_weights_into(trainer.model, best)
        report, predictions = trainer.evaluate("test", thresholds=read_checkpoint_info(best).thresholds)
        if trainer.is_main:
            TestMetrics(checkpoint=str(best), best_epoch=trainer.state.best_epoch + 1,
                        parameters=sum(p.numel() for p in trainer.model.parameters()),
                        flops_per_utterance=predictions.flops_per_utterance, report=report).write(trainer.run_dir)
            if trainer.options.progress:
                log.info("test split, best checkpoint, validation thresholds:\n" + report.format_table())
        result.test_report = report


def default_callbacks() -> list[EpochCallback]:
    """The trainer's callbacks, in the order they run (the module docstring says why this order)."""
    return [BestCheckpoint(), RunLog(), EarlyStopping(), StopAtLimits(), LastCheckpoint(), TestOnBest()]
