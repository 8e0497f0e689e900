"""The selection-training ablation: ``python -m mesm_core.ablation --data CACHE --fe2e CHECKPOINT``.

Trains every variant of :data:`VARIANTS` with several seeds through the public training command,
evaluates each best checkpoint (chosen on validation macro-F1 only) on the test split with the public
evaluation functions, and writes ``docs/results/selection_ablation.md`` plus a JSON file with every
number. Cue masks are used only here, to *report* where the attention lands; they never reach training
or model selection. Runs are resumable: a variant/seed whose ``result.json`` exists is not retrained.

Rows: test macro-F1 at the deployed p (0.5), FLOPs relative to FE2E and to the same MESM at p = 1,
attention/chance and kept/chance per block and modality, the kept share of each block's grid, and the
spread over seeds. ``scripts/selection_ablation.sh`` holds the exact command behind the committed page.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["Variant", "VARIANTS", "summarise", "format_markdown", "main"]

# Every variant starts from these settings (the paper's plain selection with the straight-through gate), so
# the rows do not depend on the preset's defaults; each variant then adds its own overrides.
COMMON = ("train.batch_size=8", "train.scheduler=cosine", "train.early_stop=0", "train.clip_grad_norm=1.0",
          "model.attention_mode=straight_through", "model.attention_scorer=cell", "model.attention_smoothing=0",
          "model.min_keep_audio=0", "model.min_keep_visual=0", "train.saliency_weight=0", "train.dense_step_every=0",
          "train.top_p_warmup_epochs=0", "train.top_p_anneal_epochs=0", "train.attention_lr_factor=1",
          "train.distill_weight=0")
WARM = ("train.lr=0.0003",)
SALIENCY = ("train.saliency_weight=1.0", "train.saliency_power=1.0", "train.dense_step_every=2")
FLOOR = ("model.min_keep_audio=0.2", "model.min_keep_visual=0.6")
CONTEXT = ("model.attention_scorer=context",)
RECIPE = (*CONTEXT, *FLOOR, *SALIENCY, "train.attention_lr_factor=3")


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: overrides on top of ``mesm_small`` + :data:`COMMON`."""

    name: str
    description: str
    overrides: tuple[str, ...]
    warm_start: bool
    epochs: int
    distill: bool = False


VARIANTS: tuple[Variant, ...] = (
    Variant("scratch", "from scratch, `trained` attention (the previous demo recipe)",
            ("train.lr=0.001", "model.attention_mode=trained"), False, 12),
    Variant("scratch+recipe", "from scratch with the recipe below, p = 1 for 4 epochs then annealed to 0.5 over 2 (3)",
            ("train.lr=0.001", *RECIPE, "train.top_p_warmup_epochs=4", "train.top_p_anneal_epochs=2"), False, 12),
    Variant("warm", "warm start from FE2E, `trained` attention", (*WARM, "model.attention_mode=trained"), True, 3),
    Variant("warm+gate", "warm start, straight-through keep gate (1)", WARM, True, 3),
    Variant("warm+gate+saliency", "warm start, gate, saliency target on dense steps", (*WARM, *SALIENCY), True, 3),
    Variant("warm+gate+distill", "warm start, gate, distillation from FE2E (3)", WARM, True, 3, distill=True),
    Variant("warm+gate+floor", "warm start, gate, keep floors 0.2 audio / 0.6 faces (4)", (*WARM, *FLOOR), True, 3),
    Variant("warm+gate+context", "warm start, gate, context scorer (5)", (*WARM, *CONTEXT), True, 3),
    Variant("warm+gate+smooth", "warm start, gate, 3×3 score smoothing (5)", (*WARM, "model.attention_smoothing=3"),
            True, 3),
    Variant("best", "warm start, gate, context scorer, keep floors 0.2 / 0.6, saliency on dense steps, attention lr × 3 "
            "(the demo recipe)", (*WARM, *RECIPE), True, 3),
    Variant("best+teacher", "the demo recipe with the saliency target taken from the dense FE2E teacher, γ = 2 "
            "(an option, added after the demo recipe was chosen)",
            (*WARM, *RECIPE, "train.saliency_source=teacher", "train.saliency_power=2"), True, 3, distill=True),
)


def _variant(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    raise KeyError(f"unknown variant {name!r}; known: {', '.join(v.name for v in VARIANTS)}")


# --- one run -----------------------------------------------------------------------------------------

def train_command(variant: Variant, seed: int, data: Path, fe2e: Path, run_dir: Path) -> list[str]:
    """The ``python -m mesm_core.train`` command line of one variant and seed."""
    command = [sys.executable, "-m", "mesm_core.train", "--preset", "mesm_small", "--data", str(data),
               "--out", str(run_dir), "--epochs", str(variant.epochs), "--seed", str(seed), "--device", "cpu",
               "--no-progress", "--no-test"]
    for item in (*COMMON, *variant.overrides):
        command += ["--set", item]
    if variant.warm_start:
        command += ["--init-from", str(fe2e)]
    if variant.distill:
        command += ["--distill-from", str(fe2e)]
    return command


def evaluate_run(run_dir: Path, data: Path, fe2e_flops: float, top_p: float = 0.5) -> dict[str, Any]:
    """Test metrics at ``top_p`` and at 1, FLOPs ratios and the cue report of ``run_dir/best``."""
    from mesm_core.loading import load_checkpoint
    from mesm_core.evaluation import cue_attention_report, evaluate_checkpoint

    model, info = load_checkpoint(run_dir / "best")
    at_p = evaluate_checkpoint(run_dir / "best", data, "test", top_p=top_p, model=model, info=info)
    at_one = evaluate_checkpoint(run_dir / "best", data, "test", top_p=1.0, model=model, info=info)
    cues = cue_attention_report(model, data, "test", top_p=top_p)
    best = info.metrics  # the validation summary the trainer stored in best/config.json
    return {
        "best_epoch": best.get("epoch"),
        "valid_f1": best.get("valid_f1"),
        "test_f1": at_p.report.average["f1"],
        "test_auc": at_p.report.average.get("auc"),
        "test_f1_p1": at_one.report.average["f1"],
        "flops": at_p.flops_per_utterance,
        "flops_vs_fe2e": at_p.flops_per_utterance / fe2e_flops,
        "flops_vs_p1": at_p.flops_per_utterance / at_one.flops_per_utterance,
        "cues": [] if cues is None else [row.to_dict() for row in cues.rows],
    }


def run_one(variant: Variant, seed: int, data: Path, fe2e: Path, out: Path, fe2e_flops: float) -> dict[str, Any]:
    """Train (unless already trained) and evaluate one variant/seed; cached in ``out/<variant>/seed<k>/result.json``."""
    run_dir = out / variant.name / f"seed{seed}"
    result_file = run_dir / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    if not (run_dir / "best").is_dir() or (run_dir / "last").is_dir() and not _finished(run_dir):
        resume = (run_dir / "last").is_dir()
        command = train_command(variant, seed, data, fe2e, run_dir)
        if resume:
            command = [sys.executable, "-m", "mesm_core.train", "--out", str(run_dir), "--resume", "--device", "cpu",
                       "--no-progress", "--no-test"]
        run_dir.mkdir(parents=True, exist_ok=True)
        started = time.time()
        with open(run_dir / "train.log", "a") as log:
            code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
        if code != 0:
            raise RuntimeError(f"{variant.name} seed {seed}: training failed with exit code {code} (see {run_dir / 'train.log'})")
        train_minutes = (time.time() - started) / 60
    else:
        train_minutes = math.nan
    result = {"variant": variant.name, "seed": seed, "train_minutes": train_minutes,
              **evaluate_run(run_dir, data, fe2e_flops)}
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _finished(run_dir: Path) -> bool:
    from mesm_core.training.state import load_training_state

    try:
        return bool(load_training_state(run_dir / "last")["loop"].finished)
    except (FileNotFoundError, ValueError):
        return False


# --- the table -----------------------------------------------------------------------------------

@dataclass
class Summary:
    variant: str
    description: str
    seeds: list[int]
    mean: dict[str, float] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)   # max − min over seeds


def _cue_key(row: dict) -> str:
    return f"{row['modality']}{row['block']}"


def summarise(results: Sequence[dict[str, Any]]) -> list[Summary]:
    """Mean and max−min spread over seeds of every scalar and of the per-block cue numbers, per variant."""
    out = []
    order = [v.name for v in VARIANTS]
    names = sorted({r["variant"] for r in results}, key=lambda n: order.index(n) if n in order else len(order))
    for name in names:
        runs = [r for r in results if r["variant"] == name]
        values: dict[str, list[float]] = {}
        for r in runs:
            for key in ("test_f1", "test_auc", "test_f1_p1", "valid_f1", "flops_vs_fe2e", "flops_vs_p1"):
                if r.get(key) is not None:
                    values.setdefault(key, []).append(float(r[key]))
            for row in r["cues"]:
                for field_name in ("attention_ratio", "kept_ratio", "kept_share"):
                    if row.get(field_name) is not None:
                        values.setdefault(f"{field_name}:{_cue_key(row)}", []).append(float(row[field_name]))
        description = next((v.description for v in VARIANTS if v.name == name), name)
        summary = Summary(name, description, sorted(r["seed"] for r in runs))
        for key, vals in values.items():
            summary.mean[key] = sum(vals) / len(vals)
            summary.spread[key] = max(vals) - min(vals)
        out.append(summary)
    return out


def format_markdown(summaries: list[Summary], fe2e: dict[str, Any], meta: dict[str, Any]) -> str:
    """The committed results page."""
    blocks = ("audio1", "audio2", "audio3", "visual1", "visual2", "visual3")

    def pm(s: Summary, key: str, scale: float = 1.0, digits: int = 2) -> str:
        if key not in s.mean:
            return "–"
        return f"{s.mean[key] * scale:.{digits}f} ± {s.spread[key] * scale / 2:.{digits}f}"

    lines = [
        "# Selection-training ablation (MESM `mesm_small`, synthetic data)", "",
        f"Command: `{meta['command']}` (exact settings in `scripts/selection_ablation.sh`). Machine: {meta['machine']}. "
        f"Data: `{meta['data']}` (the seed-0 synthetic set: train 840 / valid 120 / test 240). "
        f"Seeds per variant: {meta['seeds']}. FE2E = `{meta['fe2e']}` (test macro-F1 {fe2e['f1'] * 100:.1f}, "
        f"{fe2e['flops'] / 1e9:.3f} GFLOPs per utterance).", "",
        "Every checkpoint is the best epoch by **validation** macro-F1, with thresholds chosen on validation; the "
        "numbers below are on the **test** split at the deployed p = 0.5. Cue masks are used only to report where "
        "the attention lands (a cell is cue when at least half of its pixels are); they never reach training or model "
        f"selection. **Budget:** {meta['budget']}. Values are mean ± half the range over the seeds.", "",
        "## Accuracy and cost", "",
        "| variant | test macro-F1 (p = 0.5) | Δ vs FE2E | test macro-F1 (p = 1) | FLOPs × FE2E | FLOPs × MESM at p = 1 |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        delta = f"{(s.mean['test_f1'] - fe2e['f1']) * 100:+.1f}" if "test_f1" in s.mean else "–"
        lines.append(f"| `{s.variant}` | {pm(s, 'test_f1', 100, 1)} | {delta} | {pm(s, 'test_f1_p1', 100, 1)} | "
                     f"{pm(s, 'flops_vs_fe2e')} | {pm(s, 'flops_vs_p1')} |")
    for title, key in (("Attention mass on the cue ÷ chance", "attention_ratio"),
                       ("Kept cells on the cue ÷ chance", "kept_ratio"),
                       ("Kept share of the block's grid (all test items)", "kept_share")):
        scale, digits = (100, 0) if key == "kept_share" else (1, 2)
        unit = " (%)" if key == "kept_share" else ""
        lines += ["", f"## {title}{unit}", "",
                  "| variant | " + " | ".join(f"audio {b[-1]}" if b.startswith("audio") else f"visual {b[-1]}" for b in blocks) + " |",
                  "|---|" + "---|" * len(blocks)]
        for s in summaries:
            lines.append(f"| `{s.variant}` | " + " | ".join(pm(s, f"{key}:{b}", scale, digits) for b in blocks) + " |")
    lines += ["", "## Variants", "", "Common overrides of every run: " + ", ".join(f"`{o}`" for o in COMMON) + ".", ""]
    for s in summaries:
        variant = _variant(s.variant)
        lines.append(f"- `{s.variant}`: {s.description}; {variant.epochs} epochs; overrides after the common ones "
                     + ", ".join(f"`{o}`" for o in variant.overrides)
                     + (", `--init-from FE2E`" if variant.warm_start else "")
                     + (", `--distill-from FE2E`" if variant.distill else ""))
    if meta.get("notes"):
        lines += ["", "## Notes", "", *meta["notes"]]
    return "\n".join(lines) + "\n"


# --- CLI -------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mesm_core.ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="preprocessed cache with train/valid/test and cue masks")
    parser.add_argument("--fe2e", type=Path, required=True, help="trained FE2E checkpoint (warm start, distillation, reference)")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"), help="run directories (resumable)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    parser.add_argument("--variants", default="all", help="comma-separated variant names, or all")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (each single-threaded)")
    parser.add_argument("--report", type=Path, default=Path("docs/results/selection_ablation.md"))
    parser.add_argument("--budget", default="3 epochs from the warm start, 12 from scratch (a reduced budget)",
                        help="the training budget, as the page states it")
    parser.add_argument("--machine", default="2 shared CPU cores (x86_64), no GPU")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        variants = list(VARIANTS) if args.variants == "all" else [_variant(n.strip()) for n in args.variants.split(",")]
    except (ValueError, KeyError) as exc:
        parser.error(str(exc))
    if args.jobs < 1 or not seeds:
        parser.error("--jobs must be >= 1 and --seeds non-empty")
    from mesm_core.evaluation import evaluate_checkpoint

    fe2e_eval = evaluate_checkpoint(args.fe2e, args.data, "test")
    fe2e = {"f1": fe2e_eval.report.average["f1"], "flops": fe2e_eval.flops_per_utterance}
    jobs = [(v, s) for v in variants for s in seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, v, s, args.data, args.fe2e, args.out, fe2e["flops"]) for v, s in jobs]
        results, failures = [], []
        for (v, s), future in zip(jobs, futures):
            try:
                results.append(future.result())
                print(f"{v.name} seed {s}: test F1 {results[-1]['test_f1'] * 100:.1f}", flush=True)
            except RuntimeError as exc:
                failures.append(str(exc))
                print(f"error: {exc}", file=sys.stderr, flush=True)
    summaries = summarise(results)
    command = "python -m mesm_core.ablation " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"command": command, "machine": args.machine, "data": str(args.data), "seeds": ", ".join(map(str, seeds)),
            "fe2e": str(args.fe2e), "budget": args.budget,
            "notes": [f"- failed: {f}" for f in failures]}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(format_markdown(summaries, fe2e, meta))
    payload = {"meta": meta, "fe2e": fe2e, "runs": results,
               "summary": [{"variant": s.variant, "seeds": s.seeds, "mean": s.mean, "spread": s.spread} for s in summaries]}
    args.report.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.report} and {args.report.with_suffix('.json')}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
