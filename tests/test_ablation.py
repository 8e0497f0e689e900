"""The selection ablation's bookkeeping and the model-card writer (no training here: fake results)."""

from __future__ import annotations

import json

import pytest

from mesm_core.ablation import VARIANTS, format_markdown, summarise, train_command


def _result(variant: str, seed: int, f1: float, ratio: float) -> dict:
    cues = [{"modality": m, "block": b, "attention_ratio": ratio + b, "kept_ratio": 1.0, "kept_share": 0.3}
            for m in ("audio", "visual") for b in (1, 2, 3)]
    return {"variant": variant, "seed": seed, "test_f1": f1, "test_auc": 0.9, "test_f1_p1": f1, "valid_f1": f1,
            "flops_vs_fe2e": 0.4, "flops_vs_p1": 0.45, "cues": cues}


def test_summary_means_and_spreads_over_seeds():
    results = [_result("warm", 0, 0.80, 1.0), _result("warm", 1, 0.90, 2.0), _result("best", 0, 0.95, 3.0)]
    summaries = {s.variant: s for s in summarise(results)}
    warm = summaries["warm"]
    assert warm.seeds == [0, 1]
    assert warm.mean["test_f1"] == pytest.approx(0.85) and warm.spread["test_f1"] == pytest.approx(0.10)
    assert warm.mean["attention_ratio:visual2"] == pytest.approx(3.5)
    assert [s.variant for s in summarise(results)] == ["warm", "best"]  # the order of VARIANTS
    page = format_markdown(list(summaries.values()), {"f1": 0.9, "flops": 1e9},
                           {"command": "x", "machine": "m", "data": "d", "seeds": "0, 1", "fe2e": "f", "budget": "b"})
    assert "| `warm` | 85.0 ± 5.0 | -5.0 |" in page
    assert "Attention mass on the cue ÷ chance" in page and "never reach training or model" in page


def test_every_variant_builds_a_valid_training_command(tmp_path):
    from mesm_core.config import apply_overrides
    from mesm_core.presets import get_preset

    names = [v.name for v in VARIANTS]
    assert len(names) == len(set(names)) and {"scratch", "warm", "best"} <= set(names)
    for variant in VARIANTS:
        command = train_command(variant, 1, tmp_path / "cache", tmp_path / "fe2e", tmp_path / "run")
        overrides = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
        apply_overrides(get_preset("mesm_small"), overrides)   # every override names a real field
        assert ("--init-from" in command) == variant.warm_start
        assert command[command.index("--seed") + 1] == "1"


def test_model_card_reports_targets_from_the_evaluation(tmp_path):
    import mesm_core
    from mesm_core.checkpoint import save_checkpoint
    from mesm_core.config import RunConfig
    from mesm_core.model_card import write_model_card

    model = mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random")
    from mesm_core.resources import REPO_ROOT

    run_config = RunConfig(preset="mesm_small", model=model.config)
    run_config.train.init_from = str(REPO_ROOT / "assets" / "checkpoints" / "fe2e_small")   # as the CLI stores it
    save_checkpoint(model, tmp_path, run_config=run_config)
    classes = list(model.config.classes)
    per_class = {m: [0.9] * 6 for m in ("accuracy", "weighted_accuracy", "precision", "recall", "f1", "auc")}
    evaluation = {"classes": classes, "per_class": per_class, "average": {m: 0.9 for m in per_class},
                  "thresholds": [0.5] * 6, "positives": [10] * 6, "n_samples": 60, "top_p": 0.5,
                  "threshold_source": "checkpoint", "flops_per_utterance": 4e8, "dense_flops_per_utterance": 1.2e9}
    rows = [{"top_p": p, "average": {"accuracy": 0.9, "weighted_accuracy": 0.9, "f1": 0.9}, "flops_per_utterance": 1e9 * p}
            for p in (0.5, 1.0)]
    cues = {"top_p": 0.5, "rows": [{"modality": m, "block": b, "grid": [4, 4], "attention_in_cue": 0.3,
                                    "kept_in_cue": 0.3, "chance": 0.1, "attention_ratio": 3.0 if m == "audio" else 1.5,
                                    "kept_ratio": 3.0, "kept_share": 0.25} for m in ("audio", "visual") for b in (1, 2, 3)]}
    (tmp_path / "evaluation.json").write_text(json.dumps({"evaluation": evaluation, "sweep": {"rows": rows}, "cues": cues}))
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 0.5, "valid": {"f1": 0.9, "accuracy": 0.9},
                                                        "seconds": 60, "improved": True}) + "\n")
    (tmp_path / "README.md").write_text("OLD-GENERATED-PART\n\n## Notes\n\nkept by hand\n")
    fe2e = {"evaluation": {"average": {"f1": 0.95, "accuracy": 0.95, "weighted_accuracy": 0.95}, "flops_per_utterance": 1e9}}
    card = write_model_card(tmp_path, "bash scripts/train_demo.sh", fe2e).read_text()
    assert "90.0 vs 95.0 (-5.0 points) → **missed**" in card
    assert "0.40 × → **met**" in card
    assert "3.00 / 3.00 / 3.00 → **met**" in card and "1.50 / 1.50 / 1.50 → **missed**" in card
    assert card.endswith("## Notes\n\nkept by hand\n") and "OLD-GENERATED-PART" not in card
    assert "warm start from `assets/checkpoints/fe2e_small`" in card      # repo-relative, as the commands write it
