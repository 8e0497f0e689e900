"""The comparison table (paper Table 3 layout) and a smoke run of the baselines on a tiny feature cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mesm_core.compare import SystemRuns, aggregate, format_markdown, main, run_compare
from mesm_core.features.byof import import_items
from mesm_core.features.cache import FeatureItem
from mesm_core.metrics import compute_metrics

CLASSES = ("ang", "exc", "fru", "hap", "neu", "sad")
TINY = ["model.trans_ff=16", "model.trans_layers=1", "model.mult_dim=10", "model.mult_heads=2",
        "model.mult_layers=1", "model.emo_hidden=[50,8,4]", "train.batch_size=8"]


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory):
    """50/84/35-d features with a learnable class signal, split train/valid/test."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("compare") / "features"

    def items():
        for split, n in (("train", 36), ("valid", 12), ("test", 12)):
            for i in range(n):
                c = i % 6
                lengths = rng.integers(2, 7, 3)
                text = rng.normal(size=(lengths[0], 50)).astype(np.float32)
                text[:, c] += 2.0
                audio = rng.normal(size=(lengths[1], 84)).astype(np.float32)
                audio[:, c] += 2.0
                visual = rng.normal(size=(lengths[2], 35)).astype(np.float32)
                face = np.ones(lengths[2], bool)
                face[0] = i % 4 != 0
                visual[~face] = 0
                yield FeatureItem(f"{split}{i}", split, text, audio, visual, face, np.eye(6, dtype=np.float32)[c])

    return import_items(items(), root, CLASSES, {"text": "t", "audio": "a", "visual": "v"}).root


def _report(f1s, seed):
    rng = np.random.default_rng(seed)
    labels = np.eye(6)[np.arange(12) % 6]
    probs = np.clip(labels * f1s + rng.uniform(0, 0.2, labels.shape), 0, 1)
    return compute_metrics(probs, labels, [0.5] * 6, CLASSES).to_dict()


def test_table_layout_mean_and_std():
    baseline = SystemRuns("LF-LSTM", "lf_lstm", "baseline",
                          [{"seed": s, "test": _report(0.9, s)} for s in (0, 1)])
    e2e = SystemRuns("MESM", "mesm_small", "e2e",
                     [{"seed": s, "test": _report(0.9, s), "flops_per_utterance": f} for s, f in ((0, 2e9), (1, 4e9))])
    stats = aggregate(e2e, ("accuracy", "f1"))
    assert stats["flops_per_utterance"] == (3e9, pytest.approx(math.sqrt(2) * 1e9))
    assert aggregate(baseline, ("accuracy", "f1"))["flops_per_utterance"] is None
    table = format_markdown([baseline, e2e], CLASSES, ("accuracy", "f1"), title="T")
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[:4] == ["Model", "#FLOPs (×10⁹)", "ang Acc", "ang F1"] and header[-2:] == ["Average Acc", "Average F1"]
    assert len(header) == 2 + 2 * 7
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[2:]}
    assert rows["LF-LSTM"][1] == "–" and rows["MESM"][1].startswith("3.000 ± 1.414")
    average_acc = np.mean([_report(0.9, s)["average"]["accuracy"] for s in (0, 1)])
    assert rows["MESM"][-2].startswith(f"{100 * average_acc:.1f} ± ")


@pytest.mark.slow
def test_compare_smoke_trains_then_loads(feature_cache, tmp_path):
    kwargs = dict(data=None, features=feature_cache, seeds=[0, 1], runs_dir=tmp_path / "runs",
                  baselines=["lf_lstm", "mult"], e2e=[], epochs=2, baseline_overrides=TINY)
    systems, classes = run_compare(**kwargs)
    assert classes == CLASSES
    assert [s.name for s in systems] == ["LF-LSTM", "MulT"]
    assert all(len(s.runs) == 2 and "seconds" in s.runs[0] for s in systems)
    mtime = (tmp_path / "runs" / "mult-seed1" / "best" / "model.safetensors").stat().st_mtime_ns
    loaded, _ = run_compare(**kwargs)  # finished runs are loaded, not retrained
    assert all("seconds" not in run for s in loaded for run in s.runs)
    assert (tmp_path / "runs" / "mult-seed1" / "best" / "model.safetensors").stat().st_mtime_ns == mtime
    assert [r["test"]["average"] for r in loaded[1].runs] == [r["test"]["average"] for r in systems[1].runs]


@pytest.mark.slow
def test_compare_cli_writes_markdown_and_json(feature_cache, tmp_path):
    out = tmp_path / "table"
    code = main(["--features", str(feature_cache), "--e2e", "", "--baselines", "lf_trans,emoembs", "--seeds", "0",
                 "--epochs", "1", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)]
                + [f"--set-baseline={o}" for o in TINY])
    assert code == 0
    table = (tmp_path / "table.md").read_text()
    assert "| LF-TRANS | – |" in table and "| EmoEmbs | – |" in table
    payload = json.loads((tmp_path / "table.json").read_text())
    assert payload["classes"] == list(CLASSES) and payload["metrics"] == ["accuracy", "f1"]
    assert [s["kind"] for s in payload["systems"]] == ["baseline", "baseline"]


@pytest.mark.slow
def test_saved_baseline_reloads_with_identical_predictions(feature_cache, tmp_path):
    from mesm_core.baseline_presets import get_baseline_preset
    from mesm_core.baseline_train import load_baseline, predict_split, train_baseline
    from mesm_core.features.dataset import FeatureDataset

    cfg = get_baseline_preset("emoembs").apply_overrides(TINY + ["train.epochs=1"])
    result = train_baseline(cfg, feature_cache, tmp_path / "run", progress=False)
    model, loaded_cfg, thresholds = load_baseline(tmp_path / "run" / "best")
    assert loaded_cfg.model.feature_sizes == (50, 84, 35) and thresholds == result.valid_report.thresholds
    assert torch.any(model.label_embeddings != 0)  # the label vectors came back from the checkpoint
    test = FeatureDataset(feature_cache, "test")
    probs, labels, _ = predict_split(model, test)
    reloaded = compute_metrics(probs, labels, thresholds, CLASSES)
    assert reloaded.average == pytest.approx(result.test_report.average, nan_ok=True)


def test_quirk_overrides_reach_the_model(feature_cache, tmp_path):
    from mesm_core.baseline_presets import get_baseline_preset

    cfg = get_baseline_preset("lf_trans").apply_overrides(["model.mask_text=false", "normalize=false"])
    assert cfg.model.mask_text is False and cfg.normalize is False
    with pytest.raises(ValueError, match="no field"):
        get_baseline_preset("lf_trans").apply_overrides(["model.nonsense=1"])


@pytest.mark.slow
def test_baseline_train_cli(feature_cache, tmp_path, capsys):
    from mesm_core.baseline_train import main as train_main

    code = train_main(["--preset", "lf_lstm", "--features", str(feature_cache), "--run-dir", str(tmp_path / "run"),
                       "--epochs", "1", "--seed", "3", "--set", "model.faithful_padding=true"])
    assert code == 0
    saved = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert saved["config"]["train"]["seed"] == 3 and saved["config"]["model"]["faithful_padding"] is True
    assert "test (validation thresholds)" in capsys.readouterr().out


@pytest.mark.slow
def test_main_train_cli_dispatches_baseline_presets(feature_cache, tmp_path):
    """``python -m mesm_core.train --preset lf_trans --data FEATURE_CACHE`` trains the baseline."""
    from mesm_core.train import main as train_main

    code = train_main(["--preset", "lf_trans", "--data", str(feature_cache), "--out", str(tmp_path / "run"),
                       "--epochs", "1", "--seed", "2", "--device", "cpu", "--set", "model.mask_text=false"])
    assert code == 0
    saved = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert saved["config"]["train"]["seed"] == 2 and saved["config"]["model"]["mask_text"] is False
