"""The selection ablation's bookkeeping and the model-card writer (no training here: fake results)."""

from __future__ import annotations

import json

import pytest

from mesm_core.ablation import VARIANTS, format_markdown, summarise, train_command


def _result(variant: str, seed: int, f1: float, ratio: float) -> dict:
    cues = {"rows": [{"modality": m, "block": b, "attention_ratio": ratio + b, "fixed_map_ratio": 1.0,
                      "enrichment_active": 1.5, "kept_ratio": 1.0} for m in ("audio", "visual") for b in (1, 2, 3)]}
    sweep = [{"top_p": p, "average": {"f1": f1 - 0.01}, "flops_per_utterance": 1e9 * p,
              "vs_fe2e": {"difference": -0.01}, "blocks": [{"modality": m, "block": b, "kept_share": p / b,
                                                             "floor_decided_share": 0.0}
                                                            for m in ("audio", "visual") for b in (1, 2, 3)]}
             for p in (0.3, 0.5, 0.7, 0.9, 1.0)]
    return {"variant": variant, "seed": seed, "valid_f1": f1, "evaluation": {"average": {"f1": f1},
                                                                             "flops_per_utterance": 5e8},
            "vs_fe2e": {"difference": f1 - 0.9, "ci": [f1 - 0.92, f1 - 0.88]}, "sweep": sweep, "cues": cues}


def test_summary_means_and_spreads_over_seeds():
    results = [_result("paper", 0, 0.80, 1.0), _result("paper", 1, 0.90, 2.0), _result("slider", 0, 0.95, 3.0)]
    summaries = {s.variant: s for s in summarise(results)}
    paper = summaries["paper"]
    assert paper.seeds == [0, 1]
    assert paper.mean["test_f1"] == pytest.approx(0.85) and paper.spread["test_f1"] == pytest.approx(0.10)
    assert paper.mean["attention_ratio:visual2"] == pytest.approx(3.5)
    assert paper.mean["kept@0.3:audio1"] == pytest.approx(0.3)
    assert [s.variant for s in summarise(results)] == ["paper", "slider"]  # the order of VARIANTS
    page = format_markdown(list(summaries.values()), {"f1": 0.9, "flops": 1e9},
                           {"command": "x", "machine": "m", "data": "d", "seeds": "0, 1", "fe2e": "f", "budget": "b"})
    assert "| `paper` | 85.0 ± 5.0 | 85.0 ± 5.0 | -5.0 [-7.0, -3.0] |" in page
    assert "0.33 |" in page                                   # FLOPs(0.3) ÷ FLOPs(0.9)
    assert "30 / 50 / 90 (floor 0 %)" in page
    assert "Attention mass on the cue ÷ chance" in page and "never reach" in page and "3.50 ± 0.50 (1.00)" in page


def test_every_variant_builds_a_valid_training_command_and_leave_one_out_covers_every_piece(tmp_path):
    from mesm_core.ablation import PIECES
    from mesm_core.config import apply_overrides
    from mesm_core.presets import get_preset

    names = [v.name for v in VARIANTS]
    assert len(names) == len(set(names)) and {"fe2e+", "paper", "previous", "slider"} <= set(names)
    assert {f"slider − {p.name}" for p in PIECES} <= set(names)
    for variant in VARIANTS:
        command = train_command(variant, 1, tmp_path / "cache", tmp_path / "fe2e", tmp_path / "run")
        overrides = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
        cfg = apply_overrides(get_preset(variant.preset), overrides)   # every override names a real field
        if variant.teacher:
            cfg.train.distill_from = "teacher"
        cfg.validate()
        assert "--init-from" in command and command[command.index("--seed") + 1] == "1"
        assert ("--distill-from" in command) == variant.teacher
    slider = {o for o in next(v for v in VARIANTS if v.name == "slider").overrides}
    for piece in PIECES:
        without = next(v for v in VARIANTS if v.name == f"slider − {piece.name}")
        assert not set(piece.on) & set(without.overrides) and set(piece.on) <= slider


def test_model_card_reports_targets_from_the_evaluation(tmp_path):
    import mesm_core
    from mesm_core.checkpoint import save_checkpoint
    from mesm_core.config import RunConfig
    from mesm_core.evaluation import EvaluationReport
    from mesm_core.evaluation.bootstrap import BootstrapComparison
    from mesm_core.evaluation.cues import CueReport
    from mesm_core.evaluation.keep import BlockKeep
    from mesm_core.evaluation.scoring import EvaluationResult
    from mesm_core.evaluation.sweep import SweepResult, SweepRow
    from mesm_core.cues import CueRow
    from mesm_core.metrics import MetricsReport
    from mesm_core.model_card import write_model_card
    from mesm_core.resources import REPO_ROOT

    model = mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random")
    run_config = RunConfig(preset="mesm_small", model=model.config)
    run_config.train.init_from = str(REPO_ROOT / "assets" / "checkpoints" / "fe2e_small")   # as the CLI stores it
    save_checkpoint(model, tmp_path, run_config=run_config)
    classes = tuple(model.config.classes)

    def metrics(f1: float) -> MetricsReport:
        per_class = {m: [f1] * 6 for m in ("accuracy", "weighted_accuracy", "precision", "recall", "f1", "auc")}
        return MetricsReport.from_dict({"classes": list(classes), "per_class": per_class,
                                        "average": {m: f1 for m in per_class}, "thresholds": [0.5] * 6,
                                        "positives": [10] * 6, "n_samples": 60, "dataset": "synthetic"})

    def blocks(p: float, floor: float = 0.0) -> list[BlockKeep]:
        return [BlockKeep(m, b, p * p / b, p, floor, 10) for m in ("audio", "visual") for b in (1, 2, 3)]

    fe2e = EvaluationResult("fe2e", "test", metrics(0.95), "checkpoint", 1e9, 1e9, None, "fe2e")
    mesm = EvaluationResult("mesm", "test", metrics(0.945), "checkpoint", 4e8, 1.2e9, 0.7, "mesm",
                            blocks=blocks(0.7, floor=0.2))
    rows = [SweepRow(p, metrics(0.93 if p == 0.3 else 0.945), 1e9 * p * p, 1.2e9, blocks=blocks(p),
                     vs_fe2e=BootstrapComparison("macro-F1", 0.94, 0.95, -0.01, -0.03, 0.01, 0.3, 100))
            for p in (0.3, 0.5, 0.7, 0.9, 1.0)]
    cue_rows = [CueRow(m, b, (4, 4), 0.3, 0.3, 0.1, 0.1, 5, 0.25, fixed_in_cue=0.25 if m == "visual" else 0.1,
                       floor_decided_share=0.2)
                for m in ("audio", "visual") for b in (1, 2, 3)]
    report = EvaluationReport(mesm, SweepResult("test", "mesm", "checkpoint", ("f1",), rows, fe2e),
                              CueReport("test", 0.7, cue_rows, fixed_map_source="mean attention"), fe2e,
                              BootstrapComparison("macro-F1", 0.945, 0.95, -0.005, -0.02, 0.01, 0.6, 100))
    report.write(tmp_path / "evaluation.json")
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 0.5, "valid": {"f1": 0.9, "accuracy": 0.9},
                                                        "seconds": 60, "improved": True}) + "\n")
    (tmp_path / "README.md").write_text("OLD-GENERATED-PART\n\n## Notes\n\nkept by hand\n")
    card = write_model_card(tmp_path, "bash scripts/train_demo.sh", fe2e).read_text()
    assert "94.5 vs 95.0 (-0.5 points, 95 % CI of the difference [-2.0, +1.0]) → **met**" in card
    assert "0.40 × → **met**" in card
    assert "p = 0.3 within 3 points of FE2E's (same checkpoint and thresholds): 93.0 (-2.0 points) → **met**" in card
    assert "0.31 / 0.31 / 0.31 / 0.31 / 0.31 / 0.31 → **met**" in card        # (0.5² / 0.9²)
    assert "FLOPs at p = 0.3 ≤ 0.7 × FLOPs at p = 0.9: 0.11 × → **met**" in card
    assert "20% / 20% / 20% / 20% / 20% / 20% → **missed**" in card           # the floor decides too often
    assert "3.00 / 3.00 / 3.00 → **met**" in card and "+0.50 / +0.50 / +0.50 → **met**" in card
    assert card.endswith("## Notes\n\nkept by hand\n") and "OLD-GENERATED-PART" not in card
    assert "warm start from `assets/checkpoints/fe2e_small`" in card      # repo-relative, as the commands write it
