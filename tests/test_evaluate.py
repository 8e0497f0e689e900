"""Evaluation: one collector, thresholds from validation only, the top-p sweep, attention on cue regions, the
evaluation JSON and its figures, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mesm_core import create_model, save_checkpoint
from mesm_core import evaluation as ev
from mesm_core.loading import load_checkpoint
from mesm_core.evaluate import main as evaluate_main
from mesm_core.metrics import choose_thresholds


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cache(tiny_training, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval_cache")
    classes = tiny_training.tiny_config().model.classes
    return tiny_training.make_tiny_cache(root, classes, {"train": 2, "valid": 6, "test": 5}, cues=True)


def _checkpoint(tiny_training, root: Path, preset: str, thresholds=None) -> Path:
    cfg = tiny_training.tiny_config(preset)
    torch.manual_seed(0)
    model = create_model(cfg.model, text_pretrained=False)
    return save_checkpoint(model, root / preset, run_config=cfg, thresholds=thresholds)


@pytest.fixture(scope="module")
def mesm_checkpoint(tiny_training, tmp_path_factory) -> Path:
    return _checkpoint(tiny_training, tmp_path_factory.mktemp("ckpt"), "mesm_small")


def test_thresholds_are_tuned_on_validation_never_on_test(cache, mesm_checkpoint, monkeypatch):
    model, info = load_checkpoint(mesm_checkpoint)
    assert info.thresholds is None  # so evaluate must tune them
    valid = ev.predict_split(model, cache, "valid", [None])[None]
    seen = []
    from mesm_core.evaluation import thresholds as policy

    real = policy.choose_thresholds

    def spy(probs, labels, *args, **kwargs):
        seen.append(np.asarray(probs).copy())
        return real(probs, labels, *args, **kwargs)

    monkeypatch.setattr(policy, "choose_thresholds", spy)
    result = ev.evaluate_checkpoint(mesm_checkpoint, cache, "test", model=model, info=info)
    assert len(seen) == 1 and seen[0].shape[0] == 6  # the 6 validation utterances, not the 5 test ones
    assert np.allclose(seen[0], valid.probs)
    assert result.report.thresholds == list(choose_thresholds(valid.probs, valid.labels))
    assert result.threshold_source == "tuned on the valid split"
    assert result.report.n_samples == 5


def test_checkpoint_thresholds_win_and_test_tuning_is_refused(tiny_training, cache, tmp_path):
    saved = [0.35, 0.4, 0.45, 0.5, 0.55, 0.6]
    checkpoint = _checkpoint(tiny_training, tmp_path, "fe2e_small", thresholds=saved)
    result = ev.evaluate_checkpoint(checkpoint, cache, "test")
    assert result.report.thresholds == pytest.approx(saved)
    assert result.threshold_source.startswith("checkpoint")
    model, info = load_checkpoint(checkpoint)
    info.thresholds = None
    classes = tiny_training.tiny_config().model.classes
    no_valid = tiny_training.make_tiny_cache(tmp_path / "no_valid", classes, {"train": 2, "test": 3})
    with pytest.raises(ValueError, match="refusing to tune thresholds on 'test'"):
        ev.evaluate_checkpoint(checkpoint, no_valid, "test", model=model, info=info)


@pytest.mark.parametrize(
    "text, expected",
    [("0.1,0.2,...,0.5", [0.1, 0.2, 0.3, 0.4, 0.5]), ("1, 0.5", [0.5, 1.0]), ("0.25", [0.25])],
)
def test_parse_top_ps(text, expected):
    assert ev.parse_top_ps(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["0,0.5", "1.5", "a,b", "0.1,0.2,...", ""])
def test_parse_top_ps_rejects(text):
    with pytest.raises(ValueError):
        ev.parse_top_ps(text)


def test_sweep_reuses_weights_and_flops_grow_with_p(cache, mesm_checkpoint, tmp_path):
    model, info = load_checkpoint(mesm_checkpoint)
    sweep = ev.sweep_top_p(model, info, cache, [0.2, 0.6, 1.0], split="test")
    flops = [row.flops_per_utterance for row in sweep.rows]
    assert flops[0] < flops[1] <= flops[2] <= sweep.rows[0].dense_flops_per_utterance
    # Same weights: the single-p path (forward) and the sweep (one encode, forward_prepared per p) agree exactly.
    single = ev.predict_split(model, cache, "test", [0.6])[0.6]
    direct = ev.predict_split(model, cache, "test", [0.2, 0.6])[0.6]
    assert np.array_equal(single.probs, direct.probs) and single.ids == direct.ids
    assert sweep.threshold_source == "tuned on the valid split at each p"
    table = sweep.format_table()
    assert "0.20" in table and "GFLOPs" in table


def test_cue_report_chance_matches_the_region_area(cache, mesm_checkpoint):
    model, _ = load_checkpoint(mesm_checkpoint)
    report = ev.cue_attention_report(model, cache, "test", top_p=0.5)
    assert report is not None
    rows = {(r.modality, r.block): r for r in report.rows}
    assert set(rows) == {(m, b) for m in ("visual", "audio") for b in (1, 2, 3)}
    # Face cue = pixels 10..29 of 48. 24×24 grid (2×2 pixels a cell): cells 5..14 → (10/24)².
    assert rows[("visual", 1)].chance == pytest.approx((10 / 24) ** 2)
    # 12×12 grid (4×4 pixels): cells 3..6 are fully cue, cells 2 and 7 half along each axis, so a
    # cell is cue (≥ half its pixels) for rows 3..6 × columns 2..7 and rows 2, 7 × columns 3..6.
    assert rows[("visual", 2)].chance == pytest.approx((4 * 6 + 2 * 4) / 144)
    any_rule = ev.cue_attention_report(model, cache, "test", top_p=0.5, cell_rule="any")
    assert {(r.modality, r.block): r for r in any_rule.rows}[("visual", 2)].chance == pytest.approx((6 / 12) ** 2)
    for row in report.rows:
        assert 0.0 <= row.attention_in_cue <= 1.0 and 0.0 <= row.kept_in_cue <= 1.0
    assert "attn/chance" in report.format_table()


def test_cue_grid_rules():
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, 0] = True       # 1 of 4 pixels of the top-left cell
    mask[0, 0:2, 2] = True     # 2 of 4 pixels of the top-right cell
    assert ev.cue_grid(mask, (2, 2), "any").tolist() == [[[True, True], [False, False]]]
    assert ev.cue_grid(mask, (2, 2), "majority").tolist() == [[[False, True], [False, False]]]
    with pytest.raises(ValueError):
        ev.cue_grid(mask, (2, 2), "most")


def _main(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in-process; returns (exit code, stdout, stderr)."""
    try:
        code = evaluate_main(list(args))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_writes_table_json_and_sweep_and_viz_draws_its_figures(cache, mesm_checkpoint, tmp_path, capsys):
    from mesm_viz.evaluation_figures import main as figures_main

    out = tmp_path / "result.json"
    code, stdout, stderr = _main(capsys, "--checkpoint", str(mesm_checkpoint), "--data", str(cache), "--split", "test",
                                 "--out", str(out), "--top-p", "0.5,1.0", "--device", "cpu")
    assert code == 0, stderr
    assert "average" in stdout and "top-p sweep" in stdout and "cue regions" in stdout
    data = json.loads(out.read_text())
    assert data["evaluation"]["split"] == "test" and data["evaluation"]["n_samples"] == 5
    assert [row["top_p"] for row in data["sweep"]["rows"]] == [0.5, 1.0]
    assert data["cues"]["cell_rule"] == "majority"
    assert not list(tmp_path.glob("*.html"))  # core draws nothing
    assert figures_main([str(out)]) == 0
    assert (tmp_path / "result_topp.html").is_file() and (tmp_path / "result_cues.html").is_file()
    assert figures_main([str(out), "--figure", str(tmp_path / "f.html"), "--cue-figure", str(tmp_path / "c.html")]) == 0
    assert "plotly" in (tmp_path / "f.html").read_text() and "plotly" in (tmp_path / "c.html").read_text()


def test_evaluation_json_reads_back_as_the_same_types(cache, mesm_checkpoint, tmp_path):
    """The JSON is a typed contract: reading it back and writing it again gives the same file."""
    report = ev.run_evaluation(mesm_checkpoint, cache, "test", top_ps=[0.3, 1.0], fe2e_checkpoint=mesm_checkpoint)
    first = report.write(tmp_path / "a.json")
    again = ev.read_evaluation(first)
    assert again.write(tmp_path / "b.json").read_text() == first.read_text()
    assert again.sweep.rows[1].report.average == pytest.approx(report.sweep.rows[1].report.average, nan_ok=True)
    assert again.sweep.rows[0].report.classes == report.evaluation.report.classes
    assert [r.kept_share for r in again.cues.rows] == pytest.approx([r.kept_share for r in report.cues.rows])
    assert ev.format_evaluation(again) == ev.format_evaluation(report)


@pytest.mark.parametrize("flag", ["--figure", "--cue-figure", "--plotlyjs"])
def test_cli_points_figure_flags_to_mesm_viz(cache, mesm_checkpoint, tmp_path, capsys, flag):
    code, _, err = _main(capsys, "--checkpoint", str(mesm_checkpoint), "--data", str(cache), flag, "x")
    assert code == 2 and "mesm_viz.evaluation_figures" in err


@pytest.mark.slow
def test_cli_entry_point_runs_as_a_module(repo_root):
    result = subprocess.run([sys.executable, "-m", "mesm_core.evaluate", "--help"], cwd=repo_root, capture_output=True,
                            text=True)
    assert result.returncode == 0 and "--top-p" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "."], "--checkpoint"),
        (["--checkpoint", "/nonexistent", "--data", "."], "no such directory"),
        (["--checkpoint", ".", "--data", "/nonexistent"], "no such directory"),
    ],
)
def test_cli_rejects_bad_arguments(args, message, capsys):
    code, _, err = _main(capsys, *args)
    assert code == 2 and message in err


def test_cli_rejects_bad_split_and_top_p(cache, mesm_checkpoint, capsys):
    code, _, err = _main(capsys, "--checkpoint", str(mesm_checkpoint), "--data", str(cache), "--split", "dev")
    assert code == 2 and "no such (non-empty) split" in err
    code, _, err = _main(capsys, "--checkpoint", str(mesm_checkpoint), "--data", str(cache), "--top-p", "0,2")
    assert code == 2 and "(0, 1]" in err
