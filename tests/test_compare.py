"""The comparison table (paper Table 3 layout) and a smoke run of the baselines on a tiny feature cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mesm_core.compare import SystemRuns, aggregate, format_markdown, main, run_compare
from mesm_core.metrics import compute_metrics

CLASSES = ("ang", "exc", "fru", "hap", "neu", "sad")


@pytest.fixture(scope="module")
def tiny(tiny_training):
    return tiny_training.TINY_BASELINE_OVERRIDES


@pytest.fixture(scope="module")
def feature_cache(tiny_training, tmp_path_factory):
    """50/84/35-d features with a learnable class signal, split train/valid/test."""
    return tiny_training.make_feature_cache(tmp_path_factory.mktemp("compare"))


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
def test_compare_smoke_trains_then_loads(feature_cache, tiny, tmp_path):
    kwargs = dict(data=None, features=feature_cache, seeds=[0, 1], runs_dir=tmp_path / "runs",
                  baselines=["lf_lstm", "mult"], e2e=[], epochs=2, baseline_overrides=tiny)
    systems, classes = run_compare(**kwargs)
    assert classes == CLASSES
    assert [s.name for s in systems] == ["LF-LSTM", "MulT"]
    assert all(len(s.runs) == 2 and "seconds" in s.runs[0] for s in systems)
    assert all("flops_per_utterance" not in run and run["best_epoch"] in (1, 2) for s in systems for run in s.runs)
    mtime = (tmp_path / "runs" / "mult-seed1" / "best" / "model.safetensors").stat().st_mtime_ns
    loaded, _ = run_compare(**kwargs)  # finished runs are loaded, not retrained
    assert all("seconds" not in run for s in loaded for run in s.runs)
    assert (tmp_path / "runs" / "mult-seed1" / "best" / "model.safetensors").stat().st_mtime_ns == mtime
    assert [r["test"]["average"] for r in loaded[1].runs] == [r["test"]["average"] for r in systems[1].runs]


@pytest.mark.slow
def test_compare_cli_writes_markdown_and_json(feature_cache, tiny, tmp_path):
    out = tmp_path / "table"
    code = main(["--features", str(feature_cache), "--e2e", "", "--baselines", "lf_trans,emoembs", "--seeds", "0",
                 "--epochs", "1", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)]
                + [f"--set-baseline={o}" for o in tiny])
    assert code == 0
    table = (tmp_path / "table.md").read_text()
    assert "| LF-TRANS | – |" in table and "| EmoEmbs | – |" in table
    payload = json.loads((tmp_path / "table.json").read_text())
    assert payload["classes"] == list(CLASSES) and payload["metrics"] == ["accuracy", "f1"]
    assert [s["kind"] for s in payload["systems"]] == ["baseline", "baseline"]


def test_compare_cli_rejects_unknown_presets(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--features", str(tmp_path), "--baselines", "lf_gru", "--e2e", "", "--out", str(tmp_path / "t")])
    assert exit_info.value.code == 2 and "unknown preset(s) ['lf_gru']" in capsys.readouterr().err


@pytest.mark.slow
def test_saved_baseline_reloads_with_identical_predictions(feature_cache, tiny, tmp_path):
    """A baseline's RUN/best is an ordinary checkpoint: load_checkpoint rebuilds it (EmoEmbs' label vectors come
    back from the file) and evaluate_checkpoint reproduces the trainer's test metrics."""
    from mesm_core.loading import load_checkpoint
    from mesm_core.config import apply_overrides
    from mesm_core.evaluation import evaluate_checkpoint
    from mesm_core.presets import get_preset
    from mesm_core.training import TrainOptions, run_training

    cfg = apply_overrides(get_preset("emoembs"), tiny + ["train.epochs=1"])
    result = run_training(cfg, TrainOptions(run_dir=tmp_path / "run", cache_dir=feature_cache, device="cpu",
                                            progress=False, tensorboard=False))
    model, info = load_checkpoint(tmp_path / "run" / "best")
    assert info.run_config.model.feature_sizes == (50, 84, 35) and info.thresholds == result.valid_report.thresholds
    assert torch.any(model.label_embeddings != 0)  # the label vectors came back from the checkpoint
    reloaded = evaluate_checkpoint(tmp_path / "run" / "best", feature_cache, "test")
    assert reloaded.report.average == pytest.approx(result.test_report.average, nan_ok=True)
    assert reloaded.threshold_source.startswith("checkpoint") and reloaded.top_p is None and reloaded.arch == "emoembs"


def test_quirk_overrides_reach_the_model():
    from mesm_core.config import apply_overrides
    from mesm_core.presets import get_preset

    cfg = apply_overrides(get_preset("lf_trans"), ["model.mask_text=false", "normalize=false"])
    assert cfg.model.mask_text is False and cfg.model.normalize_features is False
    with pytest.raises(ValueError, match="no field"):
        apply_overrides(get_preset("lf_trans"), ["model.nonsense=1"])


@pytest.mark.parametrize("override", ["normalize=flase", "normalize=2", "model.mask_text=nope",
                                      "model.normalize_features="])
def test_a_misspelt_boolean_is_an_error_not_false(override):
    from mesm_core.config import ConfigError, apply_overrides
    from mesm_core.presets import get_preset

    with pytest.raises(ConfigError, match="expected a boolean"):
        apply_overrides(get_preset("lf_lstm"), [override])


@pytest.mark.slow
def test_train_cli_trains_a_baseline_and_evaluate_cli_scores_it(feature_cache, tiny, tmp_path, capsys):
    """``python -m mesm_core.train --preset lf_trans --data FEATURE_CACHE`` then ``python -m mesm_core.evaluate
    --checkpoint RUN/best --data FEATURE_CACHE``: the commands of FE2E/MESM, the same files."""
    from mesm_core.evaluate import main as evaluate_main
    from mesm_core.train import main as train_main

    run = tmp_path / "run"
    code = train_main(["--preset", "lf_trans", "--data", str(feature_cache), "--out", str(run), "--epochs", "1",
                       "--seed", "2", "--device", "cpu", "--no-progress", "--set", "model.mask_text=false"]
                      + [a for item in tiny for a in ("--set", item)])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((run / "best" / "config.json").read_text())
    assert saved["train"]["seed"] == 2 and saved["model"]["mask_text"] is False and saved["model"]["arch"] == "lf_trans"
    assert saved["model"]["feature_sizes"] == [50, 84, 35] and saved["text_encoder"]["source"] is None
    assert {p.name for p in run.iterdir()} >= {"config.json", "run.json", "metrics.jsonl", "last", "best",
                                                 "test_metrics.json"}
    test = json.loads((run / "test_metrics.json").read_text())
    assert test["best_epoch"] == 1 and test["parameters"] > 0 and test["flops_per_utterance"] == 0
    capsys.readouterr()
    out = tmp_path / "eval.json"
    assert evaluate_main(["--checkpoint", str(run / "best"), "--data", str(feature_cache), "--device", "cpu",
                          "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "lf_trans" in stdout and "feature-extraction FLOPs" not in stdout
    evaluation = json.loads(out.read_text())["evaluation"]
    assert evaluation["average"] == pytest.approx(test["average"], nan_ok=True)
    assert evaluation["thresholds"] == pytest.approx(test["thresholds"])


def test_baseline_cli_needs_a_feature_cache(feature_cache, tmp_path, capsys):
    from mesm_core.train import main as train_main

    with pytest.raises(SystemExit) as exit_info:
        train_main(["--preset", "lf_lstm", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2 and "--data FEATURE_CACHE is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--preset", "lf_lstm", "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert "not a feature cache" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--preset", "lf_lstm", "--data", str(feature_cache), "--set", f"train.init_from={tmp_path}"])
    assert "train.init_from needs an FE2E or MESM model" in capsys.readouterr().err
