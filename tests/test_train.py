"""Training engine and CLI: optimisation, loss weighting, sampling, resumable state, checkpoints, errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mesm_core import create_model, dummy_batch
from mesm_core.config import RunConfig
from mesm_core.models import list_archs
from mesm_core.presets import get_preset
from mesm_core.training.optim import build_optimizer, build_scheduler, pos_weight_from_labels
from mesm_core.training.sampler import EpochSampler
from mesm_core.training.state import (
    LoopState,
    atomic_directory,
    capture_rng_state,
    find_resumable,
    load_training_state,
    restore_rng_state,
    save_training_state,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# --- optimisation -------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", [f"{arch}_small" for arch in list_archs("e2e")])
@pytest.mark.slow
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tiny_training, preset):
    cfg = tiny_training.tiny_config(preset, ["train.lr=0.01"])
    torch.manual_seed(0)
    model = create_model(cfg.model, text_pretrained=False)
    batch = dummy_batch(cfg.model, batch_size=4, n_frames=2, n_chunks=2, tokenizer=model.tokenizer)
    optimizer = build_optimizer(model, cfg)
    criterion = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight_from_labels(batch.labels.numpy()))
    model.eval()  # no dropout, fixed BN statistics: a deterministic objective
    losses = []
    for _ in range(10):
        loss = criterion(model(batch).logits, batch.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_text_branch_gets_scaled_learning_rate(tiny_training):
    cfg = tiny_training.tiny_config("fe2e_small", ["model.text_trainable=true", "model.text_lr_factor=0.1", "train.lr=0.01"])
    model = create_model(cfg.model, text_pretrained=False)
    groups = {g["name"]: g for g in build_optimizer(model, cfg).param_groups}
    assert groups["main"]["lr"] == pytest.approx(0.01)
    assert groups["text"]["lr"] == pytest.approx(0.001)
    text_ids = {id(p) for p in groups["text"]["params"]}
    assert {id(p) for p in model.text_encoder.parameters()} <= text_ids
    assert {id(p) for p in model.text_head.parameters()} <= text_ids


def test_frozen_text_encoder_is_not_optimised(tiny_training):
    cfg = tiny_training.tiny_config("mesm_small")  # small presets freeze the text encoder
    model = create_model(cfg.model, text_pretrained=False)
    optimised = {id(p) for g in build_optimizer(model, cfg).param_groups for p in g["params"]}
    assert not any(id(p) in optimised for p in model.text_encoder.parameters())


def test_pos_weight_is_neg_over_pos_from_training_labels():
    labels = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 0, 0]], np.float32)
    weight = pos_weight_from_labels(labels)
    assert weight.dtype == torch.float32
    assert weight.tolist() == pytest.approx([3.0, 3.0, 1 / 3])
    assert pos_weight_from_labels(np.array([[0.0], [0.0]])).tolist() == [1.0]  # undefined → 1


def test_cosine_schedule_steps_per_batch(tiny_training):
    cfg = tiny_training.tiny_config("fe2e_small", ["train.scheduler=cosine", "train.epochs=2"])
    model = create_model(cfg.model, text_pretrained=False)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch=5)
    lrs = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[4] == pytest.approx(cfg.train.lr / 2, rel=1e-6)  # halfway through 10 steps
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


# --- sampling and state -----------------------------------------------------------------------------

def test_sampler_is_a_function_of_seed_and_epoch_and_resumes_mid_epoch():
    sampler = EpochSampler(10, shuffle=True, seed=3, batch_size=3)
    sampler.set_epoch(2)
    full = list(sampler)
    assert sorted(full) == list(range(10))
    sampler.set_epoch(2, start_batch=2)
    assert list(sampler) == full[6:]
    sampler.set_epoch(3)
    assert list(sampler) != full


@pytest.mark.parametrize("n, world", [(10, 2), (7, 3), (5, 4)])
def test_sampler_shards_cover_the_data(n, world):
    train = [EpochSampler(n, shuffle=True, seed=0, rank=r, world_size=world, pad=True) for r in range(world)]
    lengths = {len(list(s)) for s in train}
    assert len(lengths) == 1  # equal step counts on every rank (DDP)
    assert set().union(*(set(s) for s in train)) == set(range(n))
    evaluation = [EpochSampler(n, shuffle=False, rank=r, world_size=world, pad=False) for r in range(world)]
    merged = sorted(i for s in evaluation for i in s)
    assert merged == list(range(n))  # each sample exactly once


def test_training_data_record_names_kind_source_seeds_and_splits(tmp_path):
    """The record a checkpoint keeps of its data: the cache's dataset kind and source, the source's own seed
    (the synthetic generator's dataset.json), the training seed and the split sizes, and a sentence."""
    from mesm_core.config import DataConfig
    from mesm_core.data.cache import write_cache_info
    from mesm_core.training.checkpointing import training_data_record

    source = tmp_path / "synthetic"
    source.mkdir()
    (source / "dataset.json").write_text(json.dumps({"seed": 7, "n_clips": 12}))
    cache = tmp_path / "cache"
    write_cache_info(cache, DataConfig(), ("a", "b"), dataset="synthetic", source=str(source))
    record = training_data_record(cache, {"train": [0] * 8, "valid": [0] * 2, "test": [0] * 2}, "synthetic", 3)
    assert record["kind"] == "synthetic" and record["source"] == str(source) and record["source_seed"] == 7
    assert record["train_seed"] == 3 and record["splits"] == {"train": 8, "valid": 2, "test": 2}
    assert "synthetic" in record["description"] and "dataset seed 7" in record["description"]
    bare = training_data_record(tmp_path / "nothing", {"train": [0]}, None, 0)   # no cache.json: still a record
    assert bare["kind"] == "unknown" and bare["source_seed"] is None


def test_rng_state_round_trip():
    torch.manual_seed(1)
    np.random.seed(1)
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3))
    torch.rand(5)
    np.random.rand(5)
    restore_rng_state(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])


def test_training_state_loads_with_weights_only(tiny_training, tmp_path):
    cfg = tiny_training.tiny_config("fe2e_small")
    model = create_model(cfg.model, text_pretrained=False)
    optimizer = build_optimizer(model, cfg)
    loss = model(dummy_batch(cfg.model, tokenizer=model.tokenizer)).logits.sum()
    loss.backward()
    optimizer.step()
    loop = LoopState(epoch=3, global_step=7, best_metric=0.5)
    save_training_state(tmp_path, loop=loop, optimizer=optimizer, scheduler=None, scaler=None,
                        rng={"per_rank": [capture_rng_state()]})
    payload = load_training_state(tmp_path)
    assert payload["loop"].epoch == 3 and payload["loop"].global_step == 7
    fresh = build_optimizer(model, cfg)
    fresh.load_state_dict(payload["optimizer"])
    assert fresh.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()


def test_training_state_with_pickled_code_is_refused(tmp_path):
    torch.save({"format": 1, "evil": print}, tmp_path / "training_state.pt")
    with pytest.raises(ValueError, match="training_state.pt"):
        load_training_state(tmp_path)


def test_atomic_directory_replaces_or_leaves_untouched(tmp_path):
    target = tmp_path / "last"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("one")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "a.txt").write_text("two")
            raise RuntimeError("crash while writing")
    assert (target / "a.txt").read_text() == "one"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("three")
    assert (target / "a.txt").read_text() == "three"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert find_resumable(tmp_path) is None  # no training state inside


# --- CLI errors ------------------------------------------------------------------------------------------

def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mesm_core.train", *args], cwd=cwd, capture_output=True,
                          text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--set", "train.nonsense=1"], "no field 'nonsense'"),
        (["--set", "train.lr"], "not of the form"),
        (["--set", "train.lr=abc"], "train.lr"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--resume"], "--resume needs --out"),
        (["--device", "tpu"], "invalid choice"),
    ],
)
@pytest.mark.slow
def test_cli_rejects_bad_arguments_before_doing_work(repo_root, args, message):
    result = _cli(repo_root, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "usage:" in result.stderr


def _main(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process (no interpreter start-up); returns (exit code, stdout, stderr)."""
    from mesm_core.train import main

    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_missing_data_dir(tmp_path, capsys):
    code, _, err = _main(capsys, "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"))
    assert code == 2 and "no such directory" in err
    code, _, err = _main(capsys, "--data", str(tmp_path), "--out", str(tmp_path / "run"))
    assert code == 2 and "not a preprocessed cache" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_cuda_without_cuda(tmp_path, capsys):
    code, _, err = _main(capsys, "--device", "cuda", "--data", str(tmp_path), "--out", str(tmp_path / "run"))
    assert code == 2 and "CUDA is not available" in err


# --- whole runs on a tiny cache ---------------------------------------------------------------------------

def _train(cfg: RunConfig, cache: Path, run_dir: Path, **options):
    from mesm_core.training import TrainOptions, run_training

    defaults = dict(device="cpu", text_pretrained=False, progress=False, tensorboard=False, evaluate_test=False)
    defaults.update(options)
    return run_training(cfg, TrainOptions(run_dir=run_dir, cache_dir=cache, **defaults))


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


@pytest.fixture(scope="module")
def tiny_cache(tiny_training, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_cache")
    return tiny_training.make_tiny_cache(root, get_preset("mesm_small").model.classes, {"train": 6, "valid": 5, "test": 5})


@pytest.fixture(scope="module")
def straight_run(tiny_training, tiny_cache, tmp_path_factory) -> Path:
    """Two uninterrupted epochs (3 steps each with batch 2)."""
    run = tmp_path_factory.mktemp("straight") / "run"
    result = _train(tiny_training.tiny_config("mesm_small", ["train.epochs=2", "train.batch_size=2"]), tiny_cache, run,
                    evaluate_test=True)
    assert result.exit_code == 0 and not result.interrupted
    return run


@pytest.mark.slow
def test_run_writes_checkpoints_logs_and_config(straight_run, tiny_cache):
    from mesm_core.loading import load_checkpoint
    from mesm_core.config import run_config_from_dict
    from mesm_core.training.log import read_metrics_log

    saved = run_config_from_dict(json.loads((straight_run / "config.json").read_text()))
    assert saved.train.epochs == 2 and saved.model.text_model == "tiny-random"
    log = read_metrics_log(straight_run)
    assert [r.epoch for r in log] == [1, 2]
    assert {"train_loss", "valid", "lr", "seconds", "flops_per_utterance", "kept_flops_fraction"} <= set(log[0].to_dict())
    assert 0 < log[0].kept_flops_fraction < 1  # MESM skips part of the sparse blocks
    model, info = load_checkpoint(straight_run / "best")
    assert info.thresholds is not None and len(info.thresholds) == 6
    assert all(0.05 <= t <= 0.95 for t in info.thresholds)
    assert info.metadata["validation"]["split"] == "valid"
    # What the run learned from, recorded in the checkpoint and read back for the studio (issue 17, item 7).
    from mesm_core.checkpoint import read_checkpoint_info, read_training_data

    for folder in ("best", "last"):
        record = read_checkpoint_info(straight_run / folder).metadata["training_data"]
        assert record["kind"] == "tiny-test" and record["splits"] == {"train": 6, "valid": 5, "test": 5}
        assert record["train_seed"] == saved.train.seed and record["source"] == "tests/helpers/training.py"
    training = read_training_data(straight_run / "best")
    assert training.source == "config.json" and "tiny-test" in training.description
    test = json.loads((straight_run / "test_metrics.json").read_text())
    assert test["thresholds"] == pytest.approx(info.thresholds)  # test uses validation thresholds
    assert test["n_samples"] == 5


@pytest.mark.parametrize("stop_after_step", [1, 4])
@pytest.mark.slow
def test_interrupt_and_resume_equals_uninterrupted(tiny_training, straight_run, tiny_cache, tmp_path, stop_after_step):
    """A stop request mid-epoch (what SIGINT/SIGTERM do) saves RUN/last; --resume finishes identically."""
    cfg = tiny_training.tiny_config("mesm_small", ["train.epochs=2", "train.batch_size=2"])
    run = tmp_path / "run"

    def stop(trainer, state):
        if state.global_step == stop_after_step:
            trainer.stop_requested, trainer.stop_signal = True, "SIGTERM"

    first = _train(cfg, tiny_cache, run, step_callback=stop)
    assert first.interrupted and first.exit_code == 143
    assert first.state.global_step == stop_after_step
    second = _train(cfg, tiny_cache, run, resume=True)
    assert not second.interrupted and second.state.global_step == 6
    _assert_same_weights(straight_run / "last", run / "last")
    _assert_same_weights(straight_run / "best", run / "best")


@pytest.mark.slow
def test_resume_with_more_epochs_equals_uninterrupted(tiny_training, straight_run, tiny_cache, tmp_path):
    run = tmp_path / "run"
    _train(tiny_training.tiny_config("mesm_small", ["train.epochs=1", "train.batch_size=2"]), tiny_cache, run)
    result = _train(tiny_training.tiny_config("mesm_small", ["train.epochs=2", "train.batch_size=2"]), tiny_cache, run, resume=True)
    assert result.state.epoch == 2
    _assert_same_weights(straight_run / "last", run / "last")


@pytest.mark.slow
def test_non_finite_loss_stops_without_a_checkpoint(tiny_training, tmp_path):
    from mesm_core.training import NonFiniteLossError

    cache = tiny_training.make_tiny_cache(tmp_path, get_preset("fe2e_small").model.classes, {"train": 4, "valid": 2})
    # Poison every training record's audio: log(NaN) → NaN logits → NaN loss at the first step.
    from mesm_core.data.cache import cache_entries, load_record, save_record

    for entry in cache_entries(cache, "train"):
        record = load_record(cache / entry["file"])
        record.mel[:] = np.nan
        save_record(record, cache / entry["file"])
    with pytest.raises(NonFiniteLossError, match="at step 1 "):
        _train(tiny_training.tiny_config("fe2e_small"), cache, tmp_path / "run")
    assert not (tmp_path / "run" / "last").exists() and not (tmp_path / "run" / "best").exists()


@pytest.mark.slow
def test_cli_trains_and_refuses_to_overwrite(tiny_training, tiny_cache, tmp_path, capsys):
    args = ["--preset", "fe2e_small", "--data", str(tiny_cache), "--out", str(tmp_path / "run"), "--device", "cpu",
            "--random-text-weights", "--no-progress", "--max-steps", "2", "--num-workers", "0"]
    args += [a for item in tiny_training.TINY_OVERRIDES for a in ("--set", item)]
    code, out, err = _main(capsys, *args)
    assert code == 0, err
    assert "reached --max-steps 2" in out
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "test_metrics.json").is_file()
    code, _, err = _main(capsys, *args)
    assert code == 2 and "already holds a run" in err
    code, _, err = _main(capsys, "--resume", "--out", str(tmp_path / "run"), "--set", "train.lr=1")
    assert code == 2 and "cannot change it" in err


# --- selection training (warm start, schedule, saliency, keep band, distillation) --------------------------

@pytest.fixture(scope="module")
def tiny_fe2e_run(tiny_cache, tmp_path_factory, tiny_training) -> Path:
    run = tmp_path_factory.mktemp("fe2e") / "run"
    assert _train(tiny_training.tiny_config("fe2e_small", ["train.epochs=1", "train.batch_size=2"]), tiny_cache, run).exit_code == 0
    return run


@pytest.mark.slow
def test_selection_recipe_trains_logs_and_resumes_identically(tiny_fe2e_run, tiny_cache, tmp_path, tiny_training):
    from mesm_core.training.log import read_metrics_log

    extra = ["train.epochs=2", "train.batch_size=2", "model.attention_mode=straight_through",
             f"train.init_from={tiny_fe2e_run / 'best'}", f"train.distill_from={tiny_fe2e_run / 'best'}",
             "train.distill_weight=0.5", "train.saliency_weight=1", "train.dense_step_every=2",
             "train.keep_min_fraction=0.3", "train.keep_max_fraction=0.9",
             "train.top_p_warmup_epochs=0.5", "train.top_p_anneal_epochs=1", "train.keep_ratio_weight=0",
             "model.top_p=0.5", "train.top_p_sampling=fixed"]   # the previous recipe: one annealed p
    straight = tmp_path / "straight"
    tiny_config = tiny_training.tiny_config
    assert _train(tiny_config("mesm_small", extra), tiny_cache, straight).exit_code == 0
    log = read_metrics_log(straight)
    assert set(log[0].aux_losses) == {"keep_band", "distill", "saliency"}   # every auxiliary loss is logged
    assert log[0].train_task_loss > 0
    # 3 steps an epoch: epoch 1 ends on step 2 (mid-anneal), epoch 2 on step 5 (a dense step, p = 1)
    assert log[0].train_top_p == pytest.approx(0.5 + 0.25 * (1 + math.cos(math.pi * 0.5 / 3)))
    assert log[1].train_top_p == 1.0

    def stop(trainer, state):
        if state.global_step == 2:
            trainer.stop_requested, trainer.stop_signal = True, "SIGINT"

    resumed = tmp_path / "resumed"
    assert _train(tiny_config("mesm_small", extra), tiny_cache, resumed, step_callback=stop).interrupted
    assert _train(tiny_config("mesm_small", extra), tiny_cache, resumed, resume=True).exit_code == 0
    _assert_same_weights(straight / "last", resumed / "last")


@pytest.mark.slow
def test_slider_recipe_trains_logs_calibrates_and_resumes_identically(tiny_fe2e_run, tiny_cache, tmp_path,
                                                                     tiny_training):
    """p drawn per step, BN per p regime re-estimated before validation, teacher saliency computed once, keep ratio,
    gate on every other step, selection across two p: one run equals an interrupted + resumed one."""
    from mesm_core.loading import load_checkpoint
    from mesm_core.training.log import read_metrics_log

    teacher = tiny_fe2e_run / "best"
    extra = ["train.epochs=2", "train.batch_size=2", f"train.init_from={teacher}", f"train.distill_from={teacher}",
             "train.saliency_source=teacher", "train.saliency_weight=0.5", "train.saliency_at=all",
             "train.top_p_sampling=uniform", "train.top_p_range=[0.2, 1.0]", "train.gate_every=2",
             "train.keep_ratio_audio=0.4", "train.keep_ratio_visual=0.6", "model.bn_top_p=[0.3, 0.6, 1.0]",
             "train.bn_calibration_batches=2", "train.select_top_p=[0.3, 0.6]", "model.attention_query=text+posterior",
             "model.min_keep_audio=0.05", "model.min_keep_visual=0.05"]
    straight = tmp_path / "straight"
    tiny_config = tiny_training.tiny_config
    assert _train(tiny_config("mesm_small", extra), tiny_cache, straight).exit_code == 0
    log = read_metrics_log(straight)
    assert set(log[0].aux_losses) == {"saliency", "keep_ratio", "distill"}
    assert set(log[0].valid_select_top_p) == {"0.3", "0.6"}
    assert log[0].select_value == pytest.approx(sum(log[0].valid_select_top_p.values()) / 2)
    model, _ = load_checkpoint(straight / "best")
    bn = model.branches["visual"].sparse.blocks[0].bn1
    assert bn.regime_top_p.tolist() == pytest.approx([0.3, 0.6, 1.0])
    assert not torch.allclose(bn.regime_mean[0], bn.regime_mean[2])   # calibrated: each regime its own statistics

    def stop(trainer, state):
        if state.global_step == 2:
            trainer.stop_requested, trainer.stop_signal = True, "SIGINT"

    resumed = tmp_path / "resumed"
    assert _train(tiny_config("mesm_small", extra), tiny_cache, resumed, step_callback=stop).interrupted
    assert _train(tiny_config("mesm_small", extra), tiny_cache, resumed, resume=True).exit_code == 0
    _assert_same_weights(straight / "last", resumed / "last")


# --- the records of a run directory ------------------------------------------------------------------------

@pytest.mark.parametrize("log_file", sorted((Path(__file__).parents[1] / "assets" / "checkpoints").glob("*/metrics.jsonl")),
                         ids=lambda p: p.parent.name)
def test_epoch_records_of_the_bundled_logs_round_trip(log_file):
    from mesm_core.training.log import EpochRecord, read_metrics_log

    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    records = read_metrics_log(log_file.parent)
    assert [r.to_dict() for r in records] == lines and all(isinstance(r, EpochRecord) for r in records)
    last = records[-1]
    if last.valid_select_top_p:   # selection across p: the mean of the validation metric at each p
        assert last.selected == pytest.approx(sum(last.valid_select_top_p.values()) / len(last.valid_select_top_p))
    else:
        assert last.selected == last.valid[last.select_metric]


def test_an_epoch_record_keeps_what_it_does_not_know_and_names_a_bad_line(tmp_path):
    from mesm_core.errors import FileInputError
    from mesm_core.training.log import EpochRecord, read_metrics_log

    record = EpochRecord(epoch=1, step=3, train_loss=0.5, grad_norm_mean=1.0, grad_norm_max=2.0, valid={"f1": 0.4},
                         valid_thresholds=[0.5], select_metric="f1", improved=True, lr={"main": 0.1}, seconds=1.0,
                         flops_per_utterance=2.0, dense_flops_per_utterance=4.0, kept_flops_fraction=0.5,
                         select_value=0.6, valid_select_top_p={"0.3": 0.6})
    data = record.to_dict()
    assert "train_top_p" not in data and "aux_losses" not in data and record.selected == 0.6
    assert EpochRecord.from_dict({**data, "future": 1}).to_dict() == {**data, "future": 1}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(data) + "\n" + json.dumps({"step": 2}) + "\n")
    with pytest.raises(FileInputError, match="metrics.jsonl: line 2 is not an epoch record"):
        read_metrics_log(tmp_path)


def test_run_info_and_test_metrics_round_trip(tmp_path):
    from mesm_core.distributed import DistInfo
    from mesm_core.metrics import compute_metrics
    from mesm_core.training.run_files import TestMetrics, prepare_run_dir, read_run_info, read_test_metrics

    cfg = get_preset("fe2e_small")
    for resume in (False, True):
        prepare_run_dir(tmp_path, cfg, tmp_path / "data", DistInfo(), resume=resume)
    info = read_run_info(tmp_path)
    assert info.cache_dir == str((tmp_path / "data").resolve()) and [r.resumed for r in info.runs] == [False, True]
    assert json.loads((tmp_path / "run.json").read_text()) == info.to_dict()
    rng = np.random.default_rng(0)
    report = compute_metrics(rng.random((8, 2)), (rng.random((8, 2)) > 0.5).astype(np.float32), [0.5, 0.5], ("a", "b"))
    TestMetrics(checkpoint="run/best", best_epoch=2, parameters=10, flops_per_utterance=1e6, report=report).write(tmp_path)
    written = json.loads((tmp_path / "test_metrics.json").read_text())
    assert read_test_metrics(tmp_path).to_dict() == written and written["split"] == "test"
    assert written["thresholds_from"] == "validation (best epoch)" and written["n_samples"] == 8


def test_the_trainer_callbacks_run_in_their_documented_order():
    from mesm_core.training import callbacks

    assert [type(c).__name__ for c in callbacks.default_callbacks()] == [
        "BestCheckpoint", "RunLog", "EarlyStopping", "StopAtLimits", "LastCheckpoint", "TestOnBest"]
