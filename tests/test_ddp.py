"""``torchrun --nproc_per_node 2 -m mesm_core.train`` on CPU (gloo): one short epoch on a tiny cache."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from mesm_core.presets import get_preset


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_cpu_processes(repo_root, tiny_training, tmp_path):
    classes = get_preset("mesm_small").model.classes
    # Odd split sizes: the last evaluation shard is uneven, and no sample may be counted twice.
    cache = tiny_training.make_tiny_cache(tmp_path, classes, {"train": 6, "valid": 5, "test": 3})
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "mesm_core.train",
        "--preset", "mesm_small", "--data", str(cache), "--out", str(run), "--device", "cpu", "--epochs", "1",
        "--random-text-weights", "--no-progress", *[a for item in tiny_training.TINY_OVERRIDES for a in ("--set", item)],
        "--set", "train.batch_size=2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Rank 0 alone writes the run: one log line per epoch, one config, one checkpoint set.
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(log) == 1
    runs = json.loads((run / "run.json").read_text())["runs"]
    assert runs[0]["world_size"] == 2
    assert result.stdout.count("training mesm_small") == 1
    # 6 training samples, 2 ranks × batch 2 → 2 steps per epoch per rank.
    assert log[0]["step"] == 2
    test = json.loads((run / "test_metrics.json").read_text())
    assert test["n_samples"] == 3  # gathered across ranks, uneven shards, no duplicates

    # The gathered validation metrics equal a single-process evaluation of the same weights.
    from mesm_core.evaluation import evaluate_checkpoint

    single = evaluate_checkpoint(run / "best", cache, "valid", thresholds="checkpoint", device="cpu")
    assert single.report.n_samples == 5
    assert np.allclose([single.report.average[m] for m in ("f1", "accuracy")],
                       [log[0]["valid"][m] for m in ("f1", "accuracy")])


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_a_baseline(repo_root, tiny_training, tmp_path):
    """The baselines take the same DDP path: rank 0 writes, validation and test are gathered without duplicates."""
    cache = tiny_training.make_feature_cache(tmp_path, {"train": 9, "valid": 7, "test": 5})
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "mesm_core.train",
        "--preset", "lf_trans", "--data", str(cache), "--out", str(run), "--device", "cpu", "--epochs", "1",
        "--no-progress", *[a for item in tiny_training.TINY_BASELINE_OVERRIDES for a in ("--set", item)],
        "--set", "train.batch_size=2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["step"] == 3  # 9 samples padded to 10: 5 per rank, batch 2 → 3 steps
    assert json.loads((run / "run.json").read_text())["runs"][0]["world_size"] == 2
    assert json.loads((run / "test_metrics.json").read_text())["n_samples"] == 5

    from mesm_core.evaluation import evaluate_checkpoint

    single = evaluate_checkpoint(run / "best", cache, "valid", thresholds="checkpoint", device="cpu")
    assert single.report.n_samples == 7
    assert np.allclose([single.report.average[m] for m in ("f1", "accuracy")],
                       [log[0]["valid"][m] for m in ("f1", "accuracy")])
