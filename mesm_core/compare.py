"""Table 3 of the paper for this project: the four two-phase baselines next to FE2E and MESM.

    python -m mesm_core.compare --data CLIP_CACHE [--features FEATURE_CACHE] --seeds 0,1,2 --out docs/results/NAME

For every system and seed it trains a model through the one trainer (``mesm_core.training.run_training``:
the baselines on the feature cache, FE2E/MESM on the clip cache), or loads the finished run from
``--runs-dir`` (an interrupted one is resumed), scores the test split with the thresholds tuned on
validation, and writes ``NAME.md`` (the paper's layout: per-class accuracy and F1, their average, and
the feature-extraction FLOPs of the end-to-end models) and ``NAME.json`` (every run, mean and std over seeds). When ``--features`` is not given,
the feature cache is built from ``--data`` into ``RUNS_DIR/features`` first.
"""

from __future__ import annotations

import argparse
import math
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mesm_core.console import log_to_console
from mesm_core.errors import InputError, MesmError
from mesm_core.io import atomic_write, write_json
from mesm_core.metrics import METRIC_LABELS, MetricsReport, report_metrics_for

__all__ = ["SystemRuns", "aggregate", "format_markdown", "run_compare", "main"]

DEFAULT_BASELINES = ("lf_lstm", "lf_trans", "emoembs", "mult")
DEFAULT_E2E = ("fe2e_small", "mesm_small")
DISPLAY_NAMES = {"lf_lstm": "LF-LSTM", "lf_trans": "LF-TRANS", "emoembs": "EmoEmbs", "mult": "MulT"}


@dataclass
class SystemRuns:
    """The test results of one system over seeds."""

    name: str
    preset: str
    kind: str  # "baseline" | "e2e"
    # {"seed", "run_dir", "test": MetricsReport dict, "best_epoch", "parameters", "flops_per_utterance"?, "seconds"?}:
    # one RUN/test_metrics.json (training/run_files.py TestMetrics) as the comparison's JSON lists it
    runs: list[dict] = field(default_factory=list)

    def reports(self) -> list[MetricsReport]:
        return [MetricsReport.from_dict(run["test"]) for run in self.runs]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return math.nan, math.nan
    return float(np.mean(finite)), float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0


def aggregate(system: SystemRuns, metrics: Sequence[str]) -> dict:
    """Mean and std over seeds of each per-class and average metric (and FLOPs for E2E systems)."""
    reports = system.reports()
    if not reports:
        raise ValueError(f"{system.name}: no finished runs to aggregate")
    classes = reports[0].classes
    out: dict = {"per_class": {}, "average": {}, "n_seeds": len(reports)}
    for metric in metrics:
        out["per_class"][metric] = [_mean_std([r.per_class[metric][c] for r in reports]) for c in range(len(classes))]
        out["average"][metric] = _mean_std([r.average[metric] for r in reports])
    flops = [run.get("flops_per_utterance") for run in system.runs if run.get("flops_per_utterance") is not None]
    out["flops_per_utterance"] = _mean_std(flops) if flops else None
    return out


def _cell(mean_std: tuple[float, float], show_std: bool) -> str:
    mean, std = mean_std
    if math.isnan(mean):
        return "n/a"
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if show_std else f"{100 * mean:.1f}"


def format_markdown(systems: Sequence[SystemRuns], classes: Sequence[str], metrics: Sequence[str],
                    title: str = "", notes: Sequence[str] = ()) -> str:
    """The paper's Table 3 layout: Model | #FLOPs (×10⁹) | per class metric pairs | Average."""
    header = ["Model", "#FLOPs (×10⁹)"]
    for name in list(classes) + ["Average"]:
        header += [f"{name} {METRIC_LABELS.get(m, m)}" for m in metrics]
    lines = [f"# {title}" if title else "", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for system in systems:
        stats = aggregate(system, metrics)
        show_std = stats["n_seeds"] > 1
        flops = stats["flops_per_utterance"]
        flops_cell = "–" if flops is None else (f"{flops[0] / 1e9:.3f}" + (f" ± {flops[1] / 1e9:.3f}" if show_std else ""))
        cells = [system.name, flops_cell]
        for c in range(len(classes)):
            cells += [_cell(stats["per_class"][m][c], show_std) for m in metrics]
        cells += [_cell(stats["average"][m], show_std) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


class CompareError(InputError, ValueError):
    """The comparison cannot run as asked (missing data, no test split)."""


def _entry(seed: int, run_dir: Path, kind: str, seconds: float | None = None) -> dict:
    """One run of the table from its ``test_metrics.json`` (the trainer's, the same for every family)."""
    from mesm_core.training.run_files import read_test_metrics

    test = read_test_metrics(run_dir)
    entry = {"seed": seed, "run_dir": str(run_dir), "test": test.report.to_dict(), "best_epoch": test.best_epoch,
             "parameters": test.parameters}
    if kind == "e2e":  # the baselines' features were extracted beforehand: no FLOPs of theirs to report
        entry["flops_per_utterance"] = test.flops_per_utterance
    if seconds is not None:
        entry["seconds"] = round(seconds, 1)
    return entry


def _run(preset: str, kind: str, seed: int, data: Path, run_dir: Path, *, epochs: int | None, overrides: list[str],
         retrain: bool, progress: bool, text_pretrained: bool, device: str) -> dict:
    """One system and seed through the one trainer: a finished run is read, an interrupted one resumed, else trained."""
    from mesm_core.config import apply_overrides
    from mesm_core.presets import get_preset
    from mesm_core.training.loop import TrainOptions, run_training
    from mesm_core.training.state import find_resumable

    if not retrain and (run_dir / "test_metrics.json").is_file():
        return _entry(seed, run_dir, kind)
    if retrain and run_dir.exists():
        shutil.rmtree(run_dir)
    cfg = apply_overrides(get_preset(preset), overrides)
    cfg.train.seed = seed
    if epochs is not None:
        cfg.train.epochs = epochs
    started = time.time()
    options = TrainOptions(run_dir=run_dir, cache_dir=data, device=device, progress=progress, tensorboard=False,
                           evaluate_test=True, text_pretrained=text_pretrained,
                           resume=find_resumable(run_dir) is not None)
    result = run_training(cfg, options)
    if result.test_report is None:
        raise CompareError(f"{data}: no test split or no best checkpoint; the comparison needs train/valid/test")
    return _entry(seed, run_dir, kind, time.time() - started)


def run_compare(*, data: Path | None, features: Path | None, seeds: Sequence[int], runs_dir: Path,
                baselines: Sequence[str] = DEFAULT_BASELINES, e2e: Sequence[str] = DEFAULT_E2E,
                epochs: int | None = None, baseline_overrides: Sequence[str] = (), e2e_overrides: Sequence[str] = (),
                retrain: bool = False, progress: bool = False, random_text_weights: bool = False,
                device: str = "cpu") -> tuple[list[SystemRuns], tuple[str, ...]]:
    """Train (or load finished runs of) every system for every seed, all through ``run_training``. Returns the
    systems and the classes."""
    from mesm_core.features.cache import FeatureCache

    runs_dir = Path(runs_dir)
    if baselines and features is None:
        if data is None:
            raise CompareError("the baselines need --features (or --data to build the feature cache from)")
        features = runs_dir / "features"
        if not (features / "stats.json").is_file():
            from mesm_core.data.cache import read_cache_info
            from mesm_core.features.build import build_feature_cache, iter_clip_cache

            info = read_cache_info(data)
            build_feature_cache(iter_clip_cache(data), features, info.classes, progress=progress,
                                source_info={"kind": "clip-cache", "path": str(Path(data).resolve())})
    if e2e and data is None:
        raise CompareError("the end-to-end systems need --data (a preprocessed cache); pass --e2e '' to skip them")
    classes: tuple[str, ...] = ()
    if features is not None:
        classes = FeatureCache(features).classes
    if not classes and data is not None:
        from mesm_core.data.cache import read_cache_info

        classes = read_cache_info(data).classes
    systems: list[SystemRuns] = []
    plan = [(preset, "baseline", features, list(baseline_overrides)) for preset in baselines]
    plan += [(preset, "e2e", data, list(e2e_overrides)) for preset in e2e]
    for preset, kind, source, overrides in plan:
        if kind == "baseline":
            name = DISPLAY_NAMES.get(preset, preset)
        else:
            name = preset.split("_")[0].upper()
            name = name if name in ("FE2E", "MESM") else preset
        system = SystemRuns(name, preset, kind)
        for seed in seeds:
            system.runs.append(_run(preset, kind, seed, Path(source), runs_dir / f"{preset}-seed{seed}", epochs=epochs,
                                    overrides=overrides, retrain=retrain, progress=progress,
                                    text_pretrained=kind == "baseline" or not random_text_weights, device=device))
        systems.append(system)
    return systems, classes


def write_outputs(systems: Sequence[SystemRuns], classes: Sequence[str], out: Path, title: str,
                  notes: Sequence[str], metrics: Sequence[str] | None = None) -> tuple[Path, Path]:
    metrics = tuple(metrics) if metrics else report_metrics_for(classes)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out.with_suffix(".md"), out.with_suffix(".json")
    atomic_write(md_path, format_markdown(systems, classes, metrics, title, notes))
    payload = {
        "title": title, "classes": list(classes), "metrics": list(metrics), "notes": list(notes),
        "systems": [{"name": s.name, "preset": s.preset, "kind": s.kind, "runs": s.runs,
                     "aggregate": aggregate(s, metrics)} for s in systems],
    }
    write_json(json_path, payload)  # NaN (an undefined mean) becomes null
    return md_path, json_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesm_core.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="preprocessed cache (E2E systems; feature source)")
    parser.add_argument("--features", type=Path, default=None, help="feature cache for the baselines")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix (.md and .json are written)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/compare"))
    parser.add_argument("--baselines", default=",".join(DEFAULT_BASELINES))
    parser.add_argument("--e2e", default=",".join(DEFAULT_E2E), help="E2E presets ('' to skip)")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs of every system")
    parser.add_argument("--set-baseline", action="append", default=[], help="override for every baseline")
    parser.add_argument("--set-e2e", action="append", default=[], help="override for every E2E preset")
    parser.add_argument("--random-text-weights", action="store_true", help="E2E text encoder without pretrained weights")
    parser.add_argument("--retrain", action="store_true", help="ignore finished runs in --runs-dir")
    parser.add_argument("--title", default="Comparison with the two-phase baselines (paper Table 3 layout)")
    parser.add_argument("--note", action="append", default=[], help="extra note lines for the table")
    parser.add_argument("--metrics", default="", help="comma-separated metric names (default: the dataset's, "
                        "IEMOCAP accuracy,f1; MOSEI weighted_accuracy,f1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    log_to_console()
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    baselines = [b for b in args.baselines.split(",") if b.strip()]
    e2e = [e for e in args.e2e.split(",") if e.strip()]
    from mesm_core.presets import list_presets

    unknown = [name for name in baselines + e2e if name not in list_presets()]
    if unknown:
        parser.error(f"unknown preset(s) {unknown}; choose from: {', '.join(list_presets())}")
    started = time.time()
    try:
        systems, classes = run_compare(data=args.data, features=args.features, seeds=seeds, runs_dir=args.runs_dir,
                                       baselines=baselines, e2e=e2e, epochs=args.epochs,
                                       baseline_overrides=args.set_baseline, e2e_overrides=args.set_e2e,
                                       retrain=args.retrain, progress=args.progress,
                                       random_text_weights=args.random_text_weights, device=args.device)
    except MesmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    notes = [
        f"test split, thresholds tuned on validation; mean ± std over seeds {','.join(map(str, seeds))}",
        "#FLOPs: feature-extraction FLOPs per utterance of the end-to-end models (– for the two-phase baselines, "
        "whose features are extracted beforehand)",
        f"machine: {platform.machine()}, {platform.system()}, CPU; wall time {time.time() - started:.0f} s",
        *args.note,
    ]
    metrics = [m for m in args.metrics.split(",") if m.strip()] or None
    md, js = write_outputs(systems, classes, args.out, args.title, notes, metrics)
    print(md.read_text())
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
