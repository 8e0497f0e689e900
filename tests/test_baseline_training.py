"""The two-phase baselines on the one training stack: bit-identical resume (dropout RNG, sampler position and
the plateau scheduler's state included), the run's files, and the validation-only thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mesm_core.config import apply_overrides
from mesm_core.presets import get_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def features(tiny_training, tmp_path_factory) -> Path:
    return tiny_training.make_feature_cache(tmp_path_factory.mktemp("baseline_features"))


def _train(tiny_training, preset: str, cache: Path, run: Path, extra: list[str], **options):
    from mesm_core.training import TrainOptions, run_training

    cfg = apply_overrides(get_preset(preset), tiny_training.TINY_BASELINE_OVERRIDES + extra)
    defaults = dict(device="cpu", progress=False, tensorboard=False, evaluate_test=False)
    defaults.update(options)
    return run_training(cfg, TrainOptions(run_dir=run, cache_dir=cache, **defaults))


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


def _log(run: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock field."""
    from mesm_core.training.log import read_metrics_log

    return [{k: v for k, v in record.to_dict().items() if k != "seconds"} for record in read_metrics_log(run)]


# 36 training items, batch 8: 5 steps an epoch. mult: dropout everywhere and ReduceLROnPlateau with patience 0
# (the lr drops after every epoch whose validation loss is not a new best); lf_trans: dropout, no scheduler.
CASES = [("lf_trans", [], 3), ("mult", ["train.plateau_patience=0", "train.lr=0.05"], 7), ("emoembs", [], 5)]


@pytest.mark.slow
@pytest.mark.parametrize("preset, extra, stop_after_step", CASES)
def test_interrupt_and_resume_equals_uninterrupted(tiny_training, features, tmp_path, preset, extra, stop_after_step):
    extra = extra + ["train.epochs=3", "train.early_stop=0"]
    straight = tmp_path / "straight"
    result = _train(tiny_training, preset, features, straight, extra)
    assert result.exit_code == 0 and result.state.global_step == 15

    def stop(trainer, state):
        if state.global_step == stop_after_step:
            trainer.stop_requested, trainer.stop_signal = True, "SIGTERM"

    resumed = tmp_path / "resumed"
    first = _train(tiny_training, preset, features, resumed, extra, step_callback=stop)
    assert first.interrupted and first.exit_code == 143 and first.state.global_step == stop_after_step
    second = _train(tiny_training, preset, features, resumed, extra, resume=True)
    assert not second.interrupted and second.state.global_step == 15
    for name in ("last", "best"):
        a, b = _weights(straight / name), _weights(resumed / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert _log(straight) == _log(resumed)  # losses, validation metrics and the lr of every epoch


@pytest.mark.slow
def test_plateau_scheduler_lowers_the_lr_on_the_validation_loss(tiny_training, features, tmp_path):
    result = _train(tiny_training, "mult", features, tmp_path / "run",
                    ["train.epochs=4", "train.early_stop=0", "train.plateau_patience=0", "train.lr=0.05"])
    log = _log(tmp_path / "run")
    assert all(record["valid_loss"] > 0 for record in log)
    lrs = [record["lr"]["main"] for record in log]
    best_loss = [min(r["valid_loss"] for r in log[: i + 1]) for i in range(len(log))]
    for i, record in enumerate(log):  # patience 0: each epoch without a new best validation loss divides the lr by 10
        previous = 0.05 if i == 0 else lrs[i - 1]
        worse = i > 0 and record["valid_loss"] > best_loss[i - 1]
        assert lrs[i] == pytest.approx(previous * (0.1 if worse else 1.0))
    assert result.exit_code == 0


@pytest.mark.slow
def test_a_baseline_run_writes_the_files_of_every_run(tiny_training, features, tmp_path):
    from mesm_core.loading import load_checkpoint
    from mesm_core.config import run_config_from_dict

    run = tmp_path / "run"
    result = _train(tiny_training, "lf_lstm", features, run, ["train.epochs=2"], evaluate_test=True)
    saved = run_config_from_dict(json.loads((run / "config.json").read_text()))
    assert saved.is_baseline and saved.model.feature_sizes == (50, 84, 35)  # resolved against the feature cache
    assert {"train_loss", "valid_loss", "valid", "valid_thresholds", "lr", "grad_norm_mean", "flops_per_utterance",
            "kept_flops_fraction"} <= set(_log(run)[0])
    model, info = load_checkpoint(run / "best")
    assert info.metadata["validation"]["split"] == "valid" and all(0.05 <= t <= 0.95 for t in info.thresholds)
    test = json.loads((run / "test_metrics.json").read_text())
    assert test["thresholds"] == pytest.approx(info.thresholds)  # test uses the validation thresholds
    assert test["n_samples"] == 12 and test["best_epoch"] == result.state.best_epoch + 1
