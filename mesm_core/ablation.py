"""The selection-training ablation: ``python -m mesm_core.ablation --data CACHE --fe2e CHECKPOINT``.

Trains every variant of :data:`VARIANTS` with several seeds through the public training command (warm-started
from the FE2E checkpoint), evaluates each best checkpoint (chosen on validation only) on the test split with
the public evaluation (``mesm_core.evaluation.run_evaluation``), and writes ``docs/results/selection_ablation.md``
plus a JSON file with every number. Cue masks are used only here, to *report* where the attention lands; they
never reach training or model selection. Runs are resumable: a variant/seed whose ``result.json`` exists is
not retrained.

The rows: the recipe (``slider``), each piece of it taken out in turn (``slider − X``, leave-one-out), the
paper's rule trained at the deployed p, the previous demo recipe, and an FE2E control fine-tuned from the same
checkpoint for the same epochs (MESM's warm start is extra training FE2E did not get). Every comparison with
FE2E carries a paired-bootstrap 95 % interval; a difference inside it is a tie.
``scripts/selection_ablation.sh`` holds the exact command behind the committed page.
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

from mesm_core.io import write_json

__all__ = ["Piece", "PIECES", "Variant", "VARIANTS", "summarise", "format_markdown", "main", "DEPLOYED_P"]

DEPLOYED_P = 0.7
SLIDER_P = (0.3, 0.5, 0.7, 0.9, 1.0)
EPOCHS = 6

# Every variant starts from these settings (warm start from FE2E, the paper's plain selection with the
# straight-through gate, no selection losses), so the rows do not depend on the preset's defaults.
TRAIN = ("train.lr=0.0003", "train.batch_size=8", "train.scheduler=cosine", "train.early_stop=0",
         "train.clip_grad_norm=1.0")
COMMON = (*TRAIN, "model.attention_mode=straight_through", f"model.top_p={DEPLOYED_P}",
          "model.attention_scorer=cell", "model.attention_smoothing=0", "model.min_keep_audio=0",
          "model.min_keep_visual=0", "train.saliency_weight=0", "train.dense_step_every=0",
          "train.top_p_warmup_epochs=0", "train.top_p_anneal_epochs=0", "train.top_p_sampling=fixed",
          "train.attention_lr_factor=1", "train.distill_weight=0", "train.keep_ratio_audio=0",
          "train.keep_ratio_visual=0", "model.bn_top_p=[]", "train.bn_calibration_batches=0", "train.select_top_p=[]",
          "model.attention_query=text", "model.detach_scorer_input=false", "train.gate_every=1",
          # every MESM row decides at each p with thresholds chosen on validation at that p (a decision rule, not
          # training: the rows then differ only in how they were trained)
          "train.threshold_top_p=[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0]")


@dataclass(frozen=True)
class Piece:
    """One piece of the recipe: the overrides that switch it on (the recipe has them all)."""

    name: str
    description: str
    on: tuple[str, ...]


PIECES: tuple[Piece, ...] = (
    Piece("sampling", "p drawn per step from [0.2, 1] and selection on validation at p = 0.3 and 0.7",
          ("train.top_p_sampling=uniform", "train.top_p_range=[0.2,1.0]", "train.select_top_p=[0.3,0.7]")),
    Piece("bn_regimes", "BN statistics per p regime (0.1 … 1.0), re-estimated on 4 training batches before each "
          "validation", ("model.bn_top_p=[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0]", "train.bn_calibration_batches=4")),
    Piece("keep_ratio", "keep-ratio budget: the nucleus at p keeps ρ·p² of the cells (ρ = 0.6 audio, 1.0 faces)",
          ("train.keep_ratio_audio=0.6", "train.keep_ratio_visual=1.0", "train.keep_ratio_power=2",
           "train.keep_ratio_weight=30")),
    # "auto" is the teacher's saliency here (every slider row has --distill-from FE2E), as in the preset
    Piece("teacher_saliency", "teacher saliency target (FE2E Grad × Input, γ = 2, λ = 0.5, every step)",
          ("train.saliency_source=auto", "train.saliency_weight=0.5", "train.saliency_power=2",
           "train.saliency_at=all")),
    Piece("distill", "distillation from FE2E's probabilities (weight 1)", ("train.distill_weight=1.0",)),
    Piece("posterior_query", "attention query = text CLS + the detached posterior of the earlier branches",
          ("model.attention_query=text+posterior",)),
    Piece("detach_scorer", "the selection losses train the scorer only (its input features detached)",
          ("model.detach_scorer_input=true",)),
    Piece("safety_floor", "a 5 % safety floor per frame", ("model.min_keep_audio=0.05", "model.min_keep_visual=0.05")),
    Piece("context_scorer", "the context scorer (3×3 neighbourhood + the frame's mean feature)",
          ("model.attention_scorer=context",)),
    Piece("attention_lr", "the attention layers at 3 × the learning rate", ("train.attention_lr_factor=3",)),
)


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: overrides on top of :data:`COMMON` for ``preset``."""

    name: str
    description: str
    overrides: tuple[str, ...]
    epochs: int = EPOCHS
    teacher: bool = False      # --distill-from FE2E (the teacher's targets are computed once per run)
    preset: str = "mesm_small"

    @property
    def is_fe2e(self) -> bool:
        return self.preset.startswith("fe2e")


def _recipe(without: str | None = None) -> tuple[str, ...]:
    return tuple(o for piece in PIECES if piece.name != without for o in piece.on)


def _uses_teacher(overrides: Sequence[str]) -> bool:
    return any(o in overrides for o in ("train.saliency_source=auto", "train.distill_weight=1.0"))


def _variants() -> tuple[Variant, ...]:
    recipe = _recipe()
    rows = [
        Variant("fe2e+", "FE2E fine-tuned from the same checkpoint for the same epochs (the control)", (),
                preset="fe2e_small"),
        Variant("paper", f"the paper's rule: no floor, trained at p = {DEPLOYED_P}, no selection losses", ()),
        Variant("previous", "the previous demo recipe: keep floors 20 % / 60 %, self saliency on dense steps (λ = 1, "
                "γ = 1, every 2nd step), context scorer, attention lr × 3, one set of BN statistics, trained at p = 0.5",
                ("model.top_p=0.5", "model.attention_scorer=context", "model.min_keep_audio=0.2",
                 "model.min_keep_visual=0.6", "train.saliency_weight=1.0", "train.saliency_power=1.0",
                 "train.dense_step_every=2", "train.attention_lr_factor=3"), epochs=3),
        Variant("slider", "the recipe: " + "; ".join(p.description for p in PIECES), recipe, teacher=True),
        Variant("slider, self saliency", "the recipe with the model's own task-only saliency (on every 4th step, "
                "at p = 1) instead of the teacher's",
                tuple(o for o in recipe if not o.startswith("train.saliency_"))
                + ("train.saliency_source=self", "train.saliency_weight=0.5", "train.saliency_power=2",
                   "train.saliency_at=dense", "train.dense_step_every=4"), teacher=True),
        Variant("slider, gate 1 in 4", "the recipe with the keep gate on every 4th step only (the others on the fast "
                "sparse path; the attention learns there from the selection losses)", recipe + ("train.gate_every=4",),
                teacher=True),
    ]
    for piece in PIECES:
        overrides = _recipe(without=piece.name)
        rows.append(Variant(f"slider − {piece.name}", f"the recipe without: {piece.description}", overrides,
                            teacher=_uses_teacher(overrides)))
    return tuple(rows)


VARIANTS: tuple[Variant, ...] = _variants()


def _variant(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    raise KeyError(f"unknown variant {name!r}; known: {', '.join(v.name for v in VARIANTS)}")


def _slug(name: str) -> str:
    return name.replace(" − ", "-minus-").replace(", ", "-").replace(" ", "-").replace("+", "-plus")


# --- one run -----------------------------------------------------------------------------------------

def train_command(variant: Variant, seed: int, data: Path, fe2e: Path, run_dir: Path) -> list[str]:
    """The ``python -m mesm_core.train`` command line of one variant and seed."""
    command = [sys.executable, "-m", "mesm_core.train", "--preset", variant.preset, "--data", str(data),
               "--out", str(run_dir), "--epochs", str(variant.epochs), "--seed", str(seed), "--device", "cpu",
               "--no-progress", "--no-test", "--init-from", str(fe2e)]
    common = TRAIN if variant.is_fe2e else COMMON
    for item in (*common, *variant.overrides):
        command += ["--set", item]
    if variant.teacher:
        command += ["--distill-from", str(fe2e)]
    return command


def evaluate_run(run_dir: Path, data: Path, fe2e: Path) -> dict[str, Any]:
    """Test metrics of ``run_dir/best`` at the deployed p and across the slider (checkpoint thresholds), the
    comparison with FE2E, what each block kept, and the cue report at the deployed p."""
    from mesm_core.loading import load_checkpoint
    from mesm_core.evaluation import run_evaluation

    model, info = load_checkpoint(run_dir / "best")
    best = info.metrics
    sparse = getattr(model, "supports_top_p", False)
    report = run_evaluation(run_dir / "best", data, "test", thresholds="checkpoint",
                            top_ps=list(SLIDER_P) if sparse else None, sweep_thresholds="checkpoint",
                            fe2e_checkpoint=fe2e, model=model, info=info)
    result: dict[str, Any] = {"best_epoch": best.get("epoch"), "valid_f1": best.get("valid_f1"),
                              "deployed_p": model.config.top_p if sparse else None,
                              "evaluation": report.evaluation.to_dict(), "vs_fe2e": report.vs_fe2e.to_dict()}
    if report.sweep is not None:
        result["sweep"] = [row.to_dict() for row in report.sweep.rows]
        for row in result["sweep"]:
            row.pop("per_class", None)
    if report.cues is not None:
        result["cues"] = report.cues.to_dict()
    return result


def run_one(variant: Variant, seed: int, data: Path, fe2e: Path, out: Path) -> dict[str, Any]:
    """Train (unless already trained) and evaluate one variant/seed; cached in ``out/<variant>/seed<k>/result.json``."""
    run_dir = out / _slug(variant.name) / f"seed{seed}"
    result_file = run_dir / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    train_minutes = math.nan
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
    result = {"variant": variant.name, "seed": seed, "train_minutes": train_minutes,
              **evaluate_run(run_dir, data, fe2e)}
    write_json(result_file, result)
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


BLOCKS = ("audio1", "audio2", "audio3", "visual1", "visual2", "visual3")


def scalars(result: dict[str, Any]) -> dict[str, float]:
    """The flat numbers of one run that the page averages over seeds."""
    out: dict[str, float] = {}
    evaluation = result["evaluation"]
    out["valid_f1"] = result.get("valid_f1") or math.nan
    out["test_f1"] = evaluation["average"]["f1"]
    out["flops"] = evaluation["flops_per_utterance"]
    vs = result.get("vs_fe2e") or {}
    if vs:
        out["delta_fe2e"], out["ci_low"], out["ci_high"] = vs["difference"], vs["ci"][0], vs["ci"][1]
    for row in result.get("sweep", []):
        p = f"{row['top_p']:g}"
        out[f"f1@{p}"] = row["average"]["f1"]
        out[f"flops@{p}"] = row["flops_per_utterance"]
        if row.get("vs_fe2e"):
            out[f"delta@{p}"] = row["vs_fe2e"]["difference"]
        for block in row.get("blocks", []):
            key = f"{block['modality']}{block['block']}"
            out[f"kept@{p}:{key}"] = block["kept_share"]
            out[f"floor@{p}:{key}"] = block["floor_decided_share"]
    for row in (result.get("cues") or {}).get("rows", []):
        key = f"{row['modality']}{row['block']}"
        for name in ("attention_ratio", "fixed_map_ratio", "enrichment_active", "kept_ratio"):
            if row.get(name) is not None:
                out[f"{name}:{key}"] = row[name]
    return out


def summarise(results: Sequence[dict[str, Any]]) -> list[Summary]:
    """Mean and max−min spread over seeds of every number of :func:`scalars`, per variant (in VARIANTS order)."""
    out = []
    order = [v.name for v in VARIANTS]
    names = sorted({r["variant"] for r in results}, key=lambda n: order.index(n) if n in order else len(order))
    for name in names:
        runs = [r for r in results if r["variant"] == name]
        values: dict[str, list[float]] = {}
        for r in runs:
            for key, value in scalars(r).items():
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    values.setdefault(key, []).append(float(value))
        description = next((v.description for v in VARIANTS if v.name == name), name)
        summary = Summary(name, description, sorted(r["seed"] for r in runs))
        for key, vals in values.items():
            summary.mean[key] = sum(vals) / len(vals)
            summary.spread[key] = max(vals) - min(vals)
        out.append(summary)
    return out


def _pm(s: Summary, key: str, scale: float = 1.0, digits: int = 2) -> str:
    if key not in s.mean:
        return "–"
    spread = f" ± {s.spread[key] * scale / 2:.{digits}f}" if len(s.seeds) > 1 else ""
    return f"{s.mean[key] * scale:.{digits}f}{spread}"


def _ratio(s: Summary, a: str, b: str) -> str:
    if a not in s.mean or b not in s.mean or not s.mean[b]:
        return "–"
    return f"{s.mean[a] / s.mean[b]:.2f}"


def format_markdown(summaries: list[Summary], fe2e: dict[str, Any], meta: dict[str, Any]) -> str:
    """The committed results page."""
    p = f"{DEPLOYED_P:g}"
    lines = [
        "# Selection-training ablation (MESM `mesm_small`, synthetic data)", "",
        f"Command: `{meta['command']}` (exact settings in `scripts/selection_ablation.sh`). Machine: {meta['machine']}. "
        f"Data: `{meta['data']}` (the seed-0 synthetic set: train 840 / valid 120 / test 240). "
        f"Seeds per variant: {meta['seeds']}. FE2E = `{meta['fe2e']}` (test macro-F1 {fe2e['f1'] * 100:.1f}, "
        f"{fe2e['flops'] / 1e9:.3f} GFLOPs per utterance).", "",
        "Every checkpoint is the best epoch by **validation** macro-F1 (with `sampling`, the mean over p = 0.3 and 0.7), "
        "with its thresholds chosen on validation at the deployed p; the numbers below are on the **test** split with "
        f"those thresholds at every p. The deployed p is {p} (the `previous` recipe's is 0.5). Cue masks are used only "
        "to report where the attention lands (a cell is cue when at least half of its pixels are); they never reach "
        f"training or model selection. **Budget:** {meta['budget']}. Values are the mean ± half the range over the "
        "seeds; Δ vs FE2E is the paired-bootstrap difference of macro-F1 with its 95 % interval (mean over seeds of "
        "the interval's ends): an interval holding 0 is a tie.", "",
        "## Accuracy and cost at the deployed p", "",
        "| variant | valid F1 | test F1 | Δ vs FE2E [95 % CI] | test F1 at p = 0.3 | at p = 1 | FLOPs × FE2E | "
        "FLOPs(0.3) ÷ FLOPs(0.9) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        delta = (f"{s.mean['delta_fe2e'] * 100:+.1f} [{s.mean['ci_low'] * 100:+.1f}, {s.mean['ci_high'] * 100:+.1f}]"
                 if "delta_fe2e" in s.mean else "–")
        flops = f"{s.mean['flops'] / fe2e['flops']:.2f}" if "flops" in s.mean else "–"
        lines.append(f"| `{s.variant}` | {_pm(s, 'valid_f1', 100, 1)} | {_pm(s, 'test_f1', 100, 1)} | {delta} | "
                     f"{_pm(s, 'f1@0.3', 100, 1)} | {_pm(s, 'f1@1', 100, 1)} | {flops} | "
                     f"{_ratio(s, 'flops@0.3', 'flops@0.9')} |")
    lines += ["", "## Does the slider move the masks?", "",
              "Kept share of each sparse block's grid at p = 0.3 / 0.5 / 0.9 (%), and the share of frames whose mask a "
              f"keep floor set at the deployed p = {p} (targets: share(0.5) ≤ 0.85 × share(0.9); share(0.3) ≤ 0.85 × "
              "share(0.5) or ≤ 10 %; floor ≤ 10 % of frames at the deployed p).", "",
              "| variant | " + " | ".join(f"{b[:-1]} {b[-1]}" for b in BLOCKS) + " |", "|---|" + "---|" * len(BLOCKS)]
    for s in summaries:
        cells = []
        for b in BLOCKS:
            if f"kept@0.5:{b}" not in s.mean:
                cells.append("–")
                continue
            kept = " / ".join(f"{s.mean.get(f'kept@{q}:{b}', math.nan) * 100:.0f}" for q in ("0.3", "0.5", "0.9"))
            cells.append(f"{kept} (floor {s.mean.get(f'floor@{p}:{b}', math.nan) * 100:.0f} %)")
        lines.append(f"| `{s.variant}` | " + " | ".join(cells) + " |")
    for title, key, note in (
            ("Attention mass on the cue ÷ chance (fixed-map baseline in parentheses)", "attention_ratio",
             "The fixed map is the mean attention over 240 training clips at the same p, scored the same way: "
             "what one map for every clip reaches. Per-clip looking is the difference."),
            ("Within-block enrichment: attention on the cue ÷ the cue share of the block's active cells",
             "enrichment_active", "What each block adds to the enrichment it inherits from the blocks before it.")):
        lines += ["", f"## {title}", "", note, "",
                  "| variant | " + " | ".join(f"{b[:-1]} {b[-1]}" for b in BLOCKS) + " |", "|---|" + "---|" * len(BLOCKS)]
        for s in summaries:
            cells = []
            for b in BLOCKS:
                value = _pm(s, f"{key}:{b}")
                if key == "attention_ratio" and f"fixed_map_ratio:{b}" in s.mean:
                    value += f" ({s.mean[f'fixed_map_ratio:{b}']:.2f})"
                cells.append(value)
            lines.append(f"| `{s.variant}` | " + " | ".join(cells) + " |")
    lines += ["", "## Variants", "", "Common overrides of every MESM run: " + ", ".join(f"`{o}`" for o in COMMON) + ".", ""]
    for s in summaries:
        variant = _variant(s.variant)
        lines.append(f"- `{s.variant}`: {s.description}; preset `{variant.preset}`, {variant.epochs} epochs from "
                     "`--init-from FE2E`" + (", `--distill-from FE2E`" if variant.teacher else "")
                     + ("; overrides after the common ones " + ", ".join(f"`{o}`" for o in variant.overrides)
                        if variant.overrides else ""))
    if meta.get("notes"):
        lines += ["", "## Notes", "", *meta["notes"]]
    return "\n".join(lines) + "\n"


# --- CLI -------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mesm_core.ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="preprocessed cache with train/valid/test and cue masks")
    parser.add_argument("--fe2e", type=Path, required=True, help="trained FE2E checkpoint (warm start, teacher, reference)")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"), help="run directories (resumable)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    parser.add_argument("--variants", default="all", help="names separated by ';', or all")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (each single-threaded)")
    parser.add_argument("--report", type=Path, default=Path("docs/results/selection_ablation.md"))
    parser.add_argument("--budget", default=f"{EPOCHS} epochs from the FE2E warm start (3 for `previous`, as it was made)",
                        help="the training budget, as the page states it")
    parser.add_argument("--machine", default="2 shared CPU cores (x86_64), no GPU")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        variants = list(VARIANTS) if args.variants == "all" else [_variant(n.strip()) for n in args.variants.split(";")]
    except (ValueError, KeyError) as exc:
        parser.error(str(exc))
    if args.jobs < 1 or not seeds:
        parser.error("--jobs must be >= 1 and --seeds non-empty")
    from mesm_core.evaluation import evaluate_checkpoint

    fe2e_eval = evaluate_checkpoint(args.fe2e, args.data, "test")
    fe2e = {"f1": fe2e_eval.report.average["f1"], "flops": fe2e_eval.flops_per_utterance}
    jobs = [(v, s) for v in variants for s in seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, v, s, args.data, args.fe2e, args.out) for v, s in jobs]
        results, failures = [], []
        for (v, s), future in zip(jobs, futures):
            try:
                results.append(future.result())
                print(f"{v.name} seed {s}: test F1 {results[-1]['evaluation']['average']['f1'] * 100:.1f}", flush=True)
            except RuntimeError as exc:
                failures.append(str(exc))
                print(f"error: {exc}", file=sys.stderr, flush=True)
    summaries = summarise(results)
    command = "python -m mesm_core.ablation " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"command": command, "machine": args.machine, "data": str(args.data), "seeds": ", ".join(map(str, seeds)),
            "fe2e": str(args.fe2e), "budget": args.budget, "notes": [f"- failed: {f}" for f in failures]}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(format_markdown(summaries, fe2e, meta))
    payload = {"meta": meta, "fe2e": fe2e, "runs": results,
               "summary": [{"variant": s.variant, "seeds": s.seeds, "mean": s.mean, "spread": s.spread} for s in summaries]}
    write_json(args.report.with_suffix(".json"), payload)
    print(f"wrote {args.report} and {args.report.with_suffix('.json')}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
