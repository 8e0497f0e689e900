"""The training loop of every model family: epochs, validation with tuned thresholds, resume, signals, DDP.
``mesm_core.train`` is the CLI over :func:`run_training`.

What differs between FE2E/MESM and the two-phase baselines (the data directory, the batch, the model
builder) comes from the run's :class:`~mesm_core.families.ModelFamily`; the forward inputs of a training
step (MESM's p, keep gate and saliency target) from :func:`~mesm_core.training.selection.plan_step`.
What happens after each scored epoch (best/last checkpoints, the run log, early stopping, the limits,
test-on-best) is a list of epoch callbacks (:mod:`mesm_core.training.callbacks`). Everything else (seeding,
pos_weight, thresholds, resume) is one implementation.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from mesm_core.checkpoint import load_weights_into
from mesm_core.config import RunConfig
from mesm_core.distributed import (
    DistInfo,
    all_gather_objects,
    barrier,
    cleanup_distributed,
    init_distributed,
    may_leave_parameters_unused,
)
from mesm_core.errors import InputError
from mesm_core.evaluation.collector import SplitPredictions, autocast_context, collect_predictions, collect_top_ps
from mesm_core.families import DataDirError, family_of
from mesm_core.metrics import MetricsReport, choose_thresholds, compute_metrics
from mesm_core.training import checkpointing
from mesm_core.training.callbacks import EpochCallback, default_callbacks
from mesm_core.training.log import EpochRecord, RunLogger
from mesm_core.training.bn_calibration import calibrate_batchnorm, regime_top_ps
from mesm_core.training.optim import build_optimizer, build_scheduler, current_lrs, pos_weight_from_labels
from mesm_core.training.run_files import prepare_run_dir
from mesm_core.training.sampler import EpochSampler
from mesm_core.training.selection import plan_step, selection_losses, self_saliency
from mesm_core.training.teacher import TeacherTargets
from mesm_core.training.state import (
    LoopState,
    atomic_directory,
    capture_rng_state,
    find_resumable,
    load_training_state,
    restore_rng_state,
    save_training_state,
)

log = logging.getLogger(__name__)

EXIT_INTERRUPTED_SIGINT = 130  # 128 + SIGINT, the shell convention
EXIT_INTERRUPTED_SIGTERM = 143  # 128 + SIGTERM


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN/inf; no checkpoint was written for the failing epoch."""


class NothingToResumeError(InputError, FileNotFoundError):
    """``resume`` was asked of a run directory without ``last/training_state.pt``."""


@dataclass
class TrainOptions:
    """Everything about a run that is not part of the RunConfig (where, on what, how long)."""

    run_dir: Path
    cache_dir: Path  # the data directory: a preprocessed clip cache (FE2E/MESM) or a feature cache (baselines)
    device: str = "auto"
    resume: bool = False
    max_steps: int | None = None  # total optimizer steps for this run (smoke tests); cuts the epoch short
    num_workers: int | None = None  # None: cfg.data.num_workers
    text_pretrained: bool = True  # False: random text weights / no GloVe label vectors (offline tests)
    progress: bool = True
    tensorboard: bool = True
    evaluate_test: bool = True  # evaluate `best` on the test split (if the cache has one) at the end
    # Called after every optimizer step with (trainer, loop_state); tests use it to request a stop.
    step_callback: Callable[["Trainer", LoopState], None] | None = None


@dataclass
class TrainResult:
    run_dir: Path
    state: LoopState
    best_dir: Path | None
    interrupted: bool = False
    signal_name: str = ""
    test_report: MetricsReport | None = None
    valid_report: MetricsReport | None = None
    exit_code: int = 0
    history: list[EpochRecord] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True  # the reference's settings
    torch.backends.cudnn.benchmark = False


def _split_labels(dataset: Any) -> np.ndarray:
    """(N, C) training labels, from the dataset's label table when it has one (no array loading)."""
    labels = getattr(dataset, "labels", None)
    if callable(labels):
        labels = labels()
    if labels is None:
        rows = [dataset[i].labels for i in range(len(dataset))]
        if any(row is None for row in rows):
            raise ValueError("the training split has utterances without labels")
        labels = np.stack(rows)
    return np.asarray(labels, dtype=np.float32)


def _split_ids(dataset: Any) -> list[str]:
    ids = getattr(dataset, "ids", None)
    if callable(ids):
        ids = ids()
    if ids is None:
        ids = [dataset[i].id for i in range(len(dataset))]
    return list(ids)


class Trainer:
    """One training run. Build with :func:`run_training`; tests may drive it directly."""

    def __init__(self, cfg: RunConfig, options: TrainOptions, dist_info: DistInfo) -> None:
        self.cfg = cfg
        self.family = family_of(cfg)
        self.options = options
        self.dist = dist_info
        self.device = dist_info.device
        self.run_dir = Path(options.run_dir)
        self.stop_requested = False
        self.stop_signal = ""
        self.is_main = dist_info.is_main
        self.valid_report: MetricsReport | None = None  # the last epoch's
        # The order below is the order the global RNG is drawn from: the model's init, then the teacher's.
        self._build_model()
        self._build_data()
        self._prepare_teacher(self.train_loader.collate_fn)
        self.bn_regimes = regime_top_ps(self.model)
        self._calibration_batches: list | None = None
        self._build_optimisation()
        self.state = LoopState()
        self.logger = RunLogger(self.run_dir, enabled=self.is_main, tensorboard=options.tensorboard)
        self.callbacks: list[EpochCallback] = default_callbacks()

    def _build_model(self) -> None:
        """The family's model (seeded), warm-started from ``train.init_from`` unless resuming, on the device."""
        cfg, options = self.cfg, self.options
        seed_everything(cfg.train.seed)
        self.model = self.family.build_model(cfg.model, pretrained=options.text_pretrained)
        if cfg.train.init_from and not options.resume:
            from mesm_core.training.warm_start import warm_start

            report = warm_start(self.model, cfg.train.init_from)
            if self.is_main and options.progress:
                log.info(report.summary())
        self.model = self.model.to(self.device)
        self.teacher_targets: TeacherTargets | None = None
        if self.dist.enabled:
            # Same initial weights everywhere (DDP also broadcasts them), different dropout per rank.
            torch.manual_seed(cfg.train.seed + 1000 * self.dist.rank)
        self.classes = tuple(cfg.model.classes)

    def _build_data(self) -> None:
        """The splits (test when present), the class balance (pos_weight, the loss) and the loaders."""
        cfg, cache = self.cfg, Path(self.options.cache_dir)
        self.datasets = {split: self.family.dataset(cache, split, cfg.model) for split in ("train", "valid")}
        try:
            self.datasets["test"] = self.family.dataset(cache, "test", cfg.model)
        except (InputError, FileNotFoundError):  # no test split
            pass
        for split in ("train", "valid"):
            if len(self.datasets[split]) == 0:
                raise DataDirError(f"{cache}: the {split} split is empty")
        self.valid_ids = _split_ids(self.datasets["valid"])
        self.dataset_name = self.family.dataset_name(cache)
        self.training_data = checkpointing.training_data_record(cache, self.datasets, self.dataset_name, cfg.train.seed)
        train_labels = _split_labels(self.datasets["train"])
        if train_labels.shape[1] != len(self.classes):
            raise DataDirError(
                f"{cache}: labels have {train_labels.shape[1]} classes but the model has {len(self.classes)} "
                f"({', '.join(self.classes)})"
            )
        self.pos_weight = pos_weight_from_labels(train_labels).to(self.device)
        self.criterion = nn.BCEWithLogitsLoss(pos_weight=self.pos_weight)
        self._build_loaders()

    def _build_loaders(self) -> None:
        cfg, rank, world_size = self.cfg, self.dist.rank, self.dist.world_size
        workers = cfg.data.num_workers if self.options.num_workers is None else self.options.num_workers
        collate_fn = self.family.collate_fn(self.model, self.datasets["train"])
        self.train_sampler = EpochSampler(
            len(self.datasets["train"]), shuffle=True, seed=cfg.train.seed, rank=rank,
            world_size=world_size, pad=True, batch_size=cfg.train.batch_size,
        )
        self.train_loader = DataLoader(
            self.datasets["train"], batch_size=cfg.train.batch_size, sampler=self.train_sampler,
            collate_fn=collate_fn, num_workers=workers, drop_last=False,
            # A private generator: creating an iterator must not draw from the global RNG, or a run
            # resumed mid-epoch would see different dropout masks than an uninterrupted one.
            generator=torch.Generator().manual_seed(cfg.train.seed),
        )
        self.eval_loaders = {
            split: DataLoader(
                dataset, batch_size=cfg.train.batch_size, collate_fn=collate_fn, num_workers=workers,
                generator=torch.Generator().manual_seed(cfg.train.seed),
                sampler=EpochSampler(len(dataset), shuffle=False, rank=rank, world_size=world_size, pad=False),
            )
            for split, dataset in self.datasets.items() if split != "train"
        }
        self.steps_per_epoch = self.train_sampler.batches_per_epoch()

    def _build_optimisation(self) -> None:
        """DDP around the model (several processes), the optimizer, the LR schedule and mixed precision."""
        cfg = self.cfg
        self.train_model: nn.Module = self.model
        if self.dist.enabled:
            # Only where parameters can go unused (MESM's "reference" attention, clips without frames or
            # chunks): the search costs an extra autograd traversal per step.
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=may_leave_parameters_unused(cfg.model, self.datasets["train"]),
            )
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        # cosine is stepped after every optimizer step; ReduceLROnPlateau once an epoch, on the validation loss
        self.scheduler_per_step = cfg.train.scheduler == "cosine"
        self.use_amp = bool(cfg.train.amp and self.device.type == "cuda")
        if cfg.train.amp and not self.use_amp and self.is_main:
            log.info("note: train.amp is ignored on the CPU (autocast is used on CUDA only)")
        self.amp_dtype = cfg.train.amp_dtype
        self.scaler = (
            torch.amp.GradScaler("cuda") if self.use_amp and self.amp_dtype in ("float16", "fp16") else None
        )

    def _prepare_teacher(self, collate_fn) -> None:
        """Load the dense teacher and record what it says about every training clip (``training/teacher.py``)."""
        train = self.cfg.train
        saliency = train.saliency_from == "teacher" and train.saliency_weight > 0
        if not train.distill_from or not (train.distill_weight > 0 or saliency):
            return
        from mesm_core.loading import load_checkpoint

        teacher, _ = load_checkpoint(train.distill_from, map_location=self.device)
        teacher.requires_grad_(False)
        loader = DataLoader(self.datasets["train"], batch_size=train.batch_size, collate_fn=collate_fn, shuffle=False)
        n_sparse = self.cfg.model.n_sparse_blocks
        started = time.time()
        self.teacher_targets = TeacherTargets.compute(
            teacher, loader, first_block=len(self.cfg.model.block_channels) - n_sparse, n_blocks=n_sparse,
            with_saliency=saliency, device=self.device)
        if self.is_main and self.options.progress:
            log.info(f"teacher {train.distill_from}: logits{' and saliency' if saliency else ''} of "
                     f"{len(self.teacher_targets.logits)} training clips in {time.time() - started:.0f} s")

    def calibrate_batchnorm(self) -> None:
        """Re-estimate the BN statistics of every p regime on the first ``train.bn_calibration_batches`` training
        batches (fixed order, no labels, no gradient) before the model is scored."""
        count = self.cfg.train.bn_calibration_batches
        if not self.bn_regimes or count <= 0:
            return
        if self._calibration_batches is None:
            loader = DataLoader(self.datasets["train"], batch_size=self.cfg.train.batch_size, shuffle=False,
                                collate_fn=self.train_loader.collate_fn)
            self._calibration_batches = []
            for batch in loader:
                if len(self._calibration_batches) >= count:
                    break
                self._calibration_batches.append(batch)
        calibrate_batchnorm(self.model, self._calibration_batches, self.device)

    # --- persistence ------------------------------------------------------------------------------

    def resume_from(self, directory: Path) -> None:
        load_weights_into(self.model, directory)
        payload = load_training_state(directory, map_location=self.device)
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None and payload["scheduler"] is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        if self.scaler is not None and payload["scaler"] is not None:
            self.scaler.load_state_dict(payload["scaler"])
        self.state = payload["loop"]
        per_rank = payload["rng"]["per_rank"]
        if len(per_rank) == self.dist.world_size:
            restore_rng_state(per_rank[self.dist.rank])
        elif self.is_main:
            log.info(f"note: resuming on {self.dist.world_size} processes from a {len(per_rank)}-process run; "
                     "data order is exact, dropout RNG streams are not")

    def save_last(self) -> None:
        """Write RUN/last atomically (rank 0), RNG states included."""
        rng_per_rank = all_gather_objects(self.dist, capture_rng_state())
        if self.is_main:
            with atomic_directory(self.run_dir / "last") as tmp:
                checkpointing.save_model(self.model, tmp, self.cfg, training_data=self.training_data)
                save_training_state(
                    tmp, loop=self.state, optimizer=self.optimizer, scheduler=self.scheduler,
                    scaler=self.scaler, rng={"per_rank": rng_per_rank},
                )
        barrier(self.dist)

    def save_best(self, report: MetricsReport, epoch: int) -> None:
        table = self.threshold_table()
        if self.is_main:
            with atomic_directory(self.run_dir / "best") as tmp:
                checkpointing.save_model(
                    self.model, tmp, self.cfg, thresholds=report.thresholds,
                    metrics={"split": "valid", "epoch": epoch + 1, **report.to_dict()}, thresholds_by_top_p=table,
                    training_data=self.training_data,
                )
        barrier(self.dist)

    def threshold_table(self) -> dict[float, list[float]]:
        """Per-class thresholds chosen on validation at each p of ``train.threshold_top_p`` (one pass; MESM), so a
        checkpoint used across the slider decides at every p with thresholds chosen at that p. Empty without."""
        top_ps = [float(p) for p in self.cfg.train.threshold_top_p]
        if not top_ps or not self.model.supports_top_p:
            return {}
        results = collect_top_ps(self.model, self.eval_loaders["valid"], self.device, top_ps, amp=self.use_amp,
                                 amp_dtype=self.amp_dtype, dist_info=self.dist, order=self.valid_ids)
        return {p: [float(t) for t in choose_thresholds(r.probs, r.labels)] for p, r in results.items()}

    # --- steps --------------------------------------------------------------------------------------

    def _train_step(self, batch) -> float:
        batch = batch.to(self.device)
        if batch.labels is None:
            raise ValueError("a training batch has no labels")
        plan = plan_step(self.cfg, self.state.global_step, self.steps_per_epoch)
        train = self.cfg.train
        with autocast_context(self.device, self.use_amp, self.amp_dtype):
            output = self.train_model(batch, **plan.inputs)
        task_loss = self.criterion(output.logits.float(), batch.labels.float())
        targets = None
        if plan.self_saliency:
            targets = self_saliency(task_loss, output, train.saliency_power)   # before any auxiliary term
        elif plan.teacher_saliency and self.teacher_targets is not None:
            targets = self.teacher_targets.batch_saliency(batch, train.saliency_power, self.device)
        teacher_logits = None
        if self.teacher_targets is not None and train.distill_weight > 0:
            teacher_logits = self.teacher_targets.batch_logits(batch, self.device)
        aux = selection_losses(self.cfg, output, teacher_logits, targets, batch)
        loss = task_loss + sum(aux.values()) if aux else task_loss
        for name, value in {"task": task_loss, **aux}.items():
            self.state.epoch_aux_sums[name] = self.state.epoch_aux_sums.get(name, 0.0) + float(value.detach())
        self.state.epoch_top_p = plan.top_p
        bad = not bool(torch.isfinite(loss.detach()))
        if _any_rank_flag(self.dist, bad):
            raise NonFiniteLossError(
                f"training loss is {loss.item() if bad else 'non-finite on another rank'} at step "
                f"{self.state.global_step + 1} (epoch {self.state.epoch + 1}, batch {self.state.batch_in_epoch + 1}); "
                f"stopping without writing a checkpoint for this epoch (the last good state is in {self.run_dir / 'last'}). "
                "Try a lower train.lr or train.clip_grad_norm > 0."
            )
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        trainable = [p for p in self.model.parameters() if p.requires_grad and p.grad is not None]
        if self.cfg.train.clip_grad_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, self.cfg.train.clip_grad_norm)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in trainable])
        self.state.epoch_grad_norm_sum += float(grad_norm)
        self.state.epoch_grad_norm_max = max(self.state.epoch_grad_norm_max, float(grad_norm))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None and self.scheduler_per_step:
            self.scheduler.step()
        return float(loss.detach())

    def train_epoch(self) -> bool:
        """Train the rest of the current epoch. Returns False when stopped early (signal/max_steps)."""
        state = self.state
        self.train_sampler.set_epoch(state.epoch, start_batch=state.batch_in_epoch)
        self.train_model.train()
        bar = _progress(
            total=self.steps_per_epoch, initial=state.batch_in_epoch, enabled=self.options.progress and self.is_main,
            desc=f"epoch {state.epoch + 1}/{self.cfg.train.epochs}",
        )
        try:
            for batch in self.train_loader:
                n = batch.batch_size
                loss = self._train_step(batch)
                state.global_step += 1
                state.batch_in_epoch += 1
                state.epoch_loss_sum += loss * n
                state.epoch_samples += n
                bar.update(1)
                bar.set_postfix(loss=f"{state.epoch_loss_sum / max(1, state.epoch_samples):.4f}")
                if self.options.step_callback is not None:
                    self.options.step_callback(self, state)
                if _any_rank_flag(self.dist, self.stop_requested):
                    self.stop_requested = True
                    return False
                if self.options.max_steps is not None and state.global_step >= self.options.max_steps:
                    return state.batch_in_epoch >= self.steps_per_epoch
        finally:
            bar.close()
        return True

    def evaluate(self, split: str, thresholds: list[float] | None = None) -> tuple[MetricsReport, SplitPredictions]:
        """Metrics of ``split``; thresholds tuned on it only when ``split == "valid"`` and none given."""
        order = self.valid_ids if split == "valid" else _split_ids(self.datasets[split])
        predictions = collect_predictions(
            self.model, self.eval_loaders[split], self.device, amp=self.use_amp, amp_dtype=self.amp_dtype,
            dist_info=self.dist, order=order, criterion=self.criterion,
        )
        if thresholds is None:
            if split != "valid":
                raise ValueError("thresholds for a non-validation split must come from validation")
            thresholds = list(choose_thresholds(predictions.probs, predictions.labels))
        report = compute_metrics(predictions.probs, predictions.labels, thresholds, self.classes,
                                 dataset=self.dataset_name)
        return report, predictions

    def slider_metrics(self) -> dict[float, float]:
        """The validation selection metric at each p of ``train.select_top_p`` (thresholds tuned at each p), in one
        pass; empty without them."""
        top_ps = [float(p) for p in self.cfg.train.select_top_p]
        if not top_ps or not self.model.supports_top_p:
            return {}
        results = collect_top_ps(self.model, self.eval_loaders["valid"], self.device, top_ps, amp=self.use_amp,
                                 amp_dtype=self.amp_dtype, dist_info=self.dist, order=self.valid_ids)
        out = {}
        for p, predictions in results.items():
            thresholds = list(choose_thresholds(predictions.probs, predictions.labels))
            report = compute_metrics(predictions.probs, predictions.labels, thresholds, self.classes,
                                     dataset=self.dataset_name)
            out[p] = float(report.average[self.cfg.train.select_metric])
        return out

    # --- the run --------------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train epoch by epoch until a callback finishes the run (limits, early stopping) or a signal stops it;
        after each scored epoch every callback's ``on_epoch_end`` runs, at the end every ``on_fit_end``."""
        state = self.state
        while not state.finished:
            if state.epoch >= self.cfg.train.epochs:  # e.g. resumed after its last epoch
                state.finished, state.stop_reason = True, f"reached {self.cfg.train.epochs} epochs"
                break
            started = time.time()
            if not self.train_epoch() and self.stop_requested:
                self.save_last()
                return self._result(interrupted=True)
            record = self.end_epoch(started)
            for callback in self.callbacks:
                callback.on_epoch_end(self, record)
            if self.stop_requested:
                return self._result(interrupted=True)
        result = self._result(interrupted=False)
        result.valid_report = self.valid_report
        for callback in self.callbacks:
            callback.on_fit_end(self, result)
        return result

    def end_epoch(self, started: float) -> EpochRecord:
        """Score the epoch just trained: BN calibrated, validation (and the slider's p values) scored, the best-so-far
        bookkeeping and a plateau scheduler updated; then the counters move to the next epoch. Its record."""
        cfg, state = self.cfg, self.state
        train_loss = state.epoch_loss_sum / max(1, state.epoch_samples)
        self.calibrate_batchnorm()
        self.valid_report, predictions = self.evaluate("valid")
        slider = self.slider_metrics()
        metric = sum(slider.values()) / len(slider) if slider else self.valid_report.average[cfg.train.select_metric]
        improved = metric > state.best_metric
        if improved:
            state.best_metric, state.best_epoch = metric, state.epoch
            state.epochs_without_improvement = 0
        else:
            state.epochs_without_improvement += 1
        if self.scheduler is not None and not self.scheduler_per_step:
            self.scheduler.step(predictions.loss)
        losses = {k: v / max(1, state.batch_in_epoch) for k, v in state.epoch_aux_sums.items()}
        record = EpochRecord(
            epoch=state.epoch + 1, step=state.global_step, train_loss=train_loss, valid_loss=predictions.loss,
            grad_norm_mean=state.epoch_grad_norm_sum / max(1, state.batch_in_epoch),
            grad_norm_max=state.epoch_grad_norm_max,
            valid=dict(self.valid_report.average), valid_thresholds=self.valid_report.thresholds,
            select_metric=cfg.train.select_metric, improved=improved, lr=current_lrs(self.optimizer),
            seconds=time.time() - started, flops_per_utterance=predictions.flops_per_utterance,
            dense_flops_per_utterance=predictions.dense_flops_per_utterance,
            kept_flops_fraction=predictions.flops_fraction,
            train_top_p=state.epoch_top_p,  # p of the epoch's last step (schedule)
            valid_select_top_p={f"{p:g}": value for p, value in slider.items()} if slider else None,
            select_value=metric if slider else None,
            train_task_loss=losses.pop("task", None),
            aux_losses=losses or None,  # each weighted, as added to the task loss
        )
        state.epoch += 1
        state.batch_in_epoch = 0
        state.epoch_loss_sum, state.epoch_samples = 0.0, 0
        state.epoch_grad_norm_sum, state.epoch_grad_norm_max = 0.0, 0.0
        state.epoch_aux_sums = {}
        return record

    def _result(self, interrupted: bool) -> TrainResult:
        best = self.run_dir / "best"
        code = 0
        if interrupted:
            code = EXIT_INTERRUPTED_SIGTERM if self.stop_signal == "SIGTERM" else EXIT_INTERRUPTED_SIGINT
        return TrainResult(
            run_dir=self.run_dir, state=self.state, best_dir=best if best.is_dir() else None,
            interrupted=interrupted, signal_name=self.stop_signal, exit_code=code,
            history=[EpochRecord.from_dict(record) for record in self.state.history],
        )


def _any_rank_flag(info: DistInfo, flag: bool) -> bool:
    if not info.enabled:
        return flag
    from mesm_core.distributed import any_rank

    return any_rank(info, flag)


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, leave=False, dynamic_ncols=True)


class _SignalGuard:
    """SIGINT/SIGTERM ask the trainer to stop after the current step (a second one aborts at once)."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "_SignalGuard":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.trainer.stop_requested:
            raise KeyboardInterrupt  # second signal: abort now, without saving
        self.trainer.stop_requested = True
        self.trainer.stop_signal = signal.Signals(signum).name
        if self.trainer.is_main:
            log.info(f"\n{self.trainer.stop_signal} received: finishing the current step, then saving RUN/last")

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def run_training(cfg: RunConfig, options: TrainOptions, dist_info: DistInfo | None = None) -> TrainResult:
    """Train one run of any model family (single process or one torchrun rank) on ``options.cache_dir``, the
    family's kind of data directory. The data-dependent config fields are filled first (the baselines'
    feature sizes and classes), so RUN/config.json is the resolved config. Joins/leaves the process group
    itself when ``dist_info`` is None."""
    own_group = dist_info is None
    dist_info = dist_info or init_distributed(options.device)
    finished = False
    try:
        if options.resume and find_resumable(Path(options.run_dir)) is None:
            raise NothingToResumeError(f"{options.run_dir}: nothing to resume (no last/training_state.pt)")
        family = family_of(cfg)
        family.check_data(options.cache_dir)
        family.configure(cfg, options.cache_dir)
        cfg.validate()
        prepare_run_dir(Path(options.run_dir), cfg, options.cache_dir, dist_info, options.resume)
        barrier(dist_info)
        trainer = Trainer(cfg, options, dist_info)
        if options.resume:
            trainer.resume_from(find_resumable(Path(options.run_dir)))
            state = trainer.state
            if state.finished and not state.stop_reason.startswith("early stop"):
                state.finished = False  # e.g. more --epochs than before: the loop re-checks the limits
            if state.finished and dist_info.is_main:
                log.info(f"{options.run_dir}: the run had already finished ({state.stop_reason})")
        with _SignalGuard(trainer):
            result = trainer.fit()
        trainer.logger.close()
        finished = True
        return result
    finally:
        if own_group:
            cleanup_distributed(synchronize=finished)


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
