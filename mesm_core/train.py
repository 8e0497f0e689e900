"""Train FE2E / MESM: ``python -m mesm_core.train [--preset NAME] [--data CACHE] [--out RUN] ...``.

With no arguments it trains ``mesm_small`` on the embedded synthetic dataset, generating it (and its
cache) under ``data/`` first if missing. Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m
mesm_core.train ...`` (the batch size is per process). See docs/training.md.

Exit codes: 0 done (finished or early-stopped), 2 bad arguments, 1 a failure (e.g. a NaN loss),
130 / 143 stopped by SIGINT / SIGTERM after saving ``RUN/last`` (continue with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from mesm_core.config import RunConfig, apply_overrides, run_config_from_dict

DEFAULT_PRESET = "mesm_small"
DEFAULT_SYNTHETIC_SOURCE = Path("data/synthetic")
DEFAULT_SYNTHETIC_CACHE = Path("data/synthetic_cache")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mesm_core.train",
        description="Train FE2E / MESM (paper recipe from the preset's TrainConfig). With no arguments: "
        f"{DEFAULT_PRESET} on the synthetic dataset ({DEFAULT_SYNTHETIC_CACHE}, generated if missing).",
    )
    parser.add_argument("--preset", default=None, help=f"model/recipe preset (default {DEFAULT_PRESET})")
    parser.add_argument("--data", type=Path, default=None,
                        help=f"preprocessed cache directory (default {DEFAULT_SYNTHETIC_CACHE}, synthetic)")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default runs/<preset>-<time>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="config override, repeatable, e.g. --set train.lr=1e-4 --set model.top_p=0.5")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seed", type=int, default=None, help="train.seed")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from RUN/last")
    parser.add_argument("--epochs", type=int, default=None, help="train.epochs (may be raised on --resume)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many optimizer steps in total (smoke tests); the cut epoch is validated")
    parser.add_argument("--init-from", type=Path, default=None, metavar="CHECKPOINT",
                        help="warm start: initialise from a trained FE2E or MESM checkpoint (train.init_from; "
                        "FE2E's last dense blocks become MESM's sparse blocks, docs/training.md)")
    parser.add_argument("--distill-from", type=Path, default=None, metavar="CHECKPOINT",
                        help="dense teacher checkpoint for distillation (train.distill_from; set train.distill_weight)")
    parser.add_argument("--num-workers", type=int, default=None, help="data loader workers (data.num_workers)")
    parser.add_argument("--random-text-weights", action="store_true",
                        help="build the text encoder with random weights (offline tests; not for real training)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch prints")
    parser.add_argument("--no-test", action="store_true", help="do not evaluate the best checkpoint on the test split")
    return parser


def _positive(parser: argparse.ArgumentParser, name: str, value: int | None, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        parser.error(f"{name} must be >= {minimum}, got {value}")


def resolve_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> RunConfig:
    """The RunConfig of this invocation: a preset + overrides, or the saved one on --resume."""
    from mesm_core.presets import get_preset, list_presets

    if args.resume:
        if args.out is None:
            parser.error("--resume needs --out RUN_DIR (the run to continue)")
        config_path = args.out / "config.json"
        if not config_path.is_file():
            parser.error(f"--resume: {config_path} does not exist (not a run directory)")
        changing = [flag for flag, value in (("--preset", args.preset), ("--seed", args.seed), ("--init-from", args.init_from),
                                             ("--distill-from", args.distill_from)) if value is not None]
        if args.overrides:
            changing.append("--set")
        if changing:
            parser.error(f"--resume continues the saved config; {', '.join(changing)} cannot change it "
                         "(only --epochs, --max-steps, --num-workers and --device may be given)")
        try:
            cfg = run_config_from_dict(json.loads(config_path.read_text()), where=str(config_path))
        except (ValueError, json.JSONDecodeError) as exc:
            parser.error(f"--resume: {config_path}: {exc}")
    else:
        name = args.preset or DEFAULT_PRESET
        if name not in list_presets():
            parser.error(f"unknown preset {name!r}; choose one of: {', '.join(list_presets())}")
        cfg = get_preset(name)
        try:
            apply_overrides(cfg, args.overrides)
        except ValueError as exc:
            parser.error(f"--set: {exc}")
        if args.seed is not None:
            cfg.train.seed = args.seed
        for flag, value, name in (("--init-from", args.init_from, "init_from"), ("--distill-from", args.distill_from, "distill_from")):
            if value is not None:
                from mesm_core.checkpoint import CheckpointError, resolve_checkpoint_dir

                try:
                    setattr(cfg.train, name, str(resolve_checkpoint_dir(value)))
                except CheckpointError as exc:
                    parser.error(f"{flag}: {exc}")
        if cfg.train.distill_from and cfg.train.distill_weight <= 0:
            cfg.train.distill_weight = 1.0
    if args.epochs is not None:
        cfg.train.epochs = args.epochs
    if args.num_workers is not None:
        cfg.data.num_workers = args.num_workers
    _check_config(cfg, parser)
    return cfg


def _check_config(cfg: RunConfig, parser: argparse.ArgumentParser) -> None:
    train = cfg.train
    problems = []
    if train.lr <= 0:
        problems.append(f"train.lr must be > 0 (got {train.lr})")
    if train.batch_size < 1:
        problems.append(f"train.batch_size must be >= 1 (got {train.batch_size})")
    if train.epochs < 1:
        problems.append(f"train.epochs must be >= 1 (got {train.epochs})")
    if train.scheduler not in ("none", "cosine"):
        problems.append(f"train.scheduler must be none or cosine (got {train.scheduler!r})")
    if train.amp_dtype not in ("bfloat16", "float16"):
        problems.append(f"train.amp_dtype must be bfloat16 or float16 (got {train.amp_dtype!r})")
    if train.loss != "bce":
        problems.append(f"train.loss must be bce (got {train.loss!r})")
    if train.select_metric not in ("accuracy", "weighted_accuracy", "precision", "recall", "f1", "auc"):
        problems.append(f"train.select_metric {train.select_metric!r} is not a metric name")
    if train.attention_lr_factor <= 0:
        problems.append(f"train.attention_lr_factor must be > 0 (got {train.attention_lr_factor})")
    for name in ("top_p_warmup_epochs", "top_p_anneal_epochs", "distill_weight"):
        if getattr(train, name) < 0:
            problems.append(f"train.{name} must be >= 0 (got {getattr(train, name)})")
    if not 0 <= train.keep_min_fraction <= train.keep_max_fraction <= 1:
        problems.append(f"train.keep_min_fraction and keep_max_fraction must satisfy 0 <= min <= max <= 1 "
                        f"(got {train.keep_min_fraction}, {train.keep_max_fraction})")
    model = cfg.model
    if model.keep_temperature <= 0:
        problems.append(f"model.keep_temperature must be > 0 (got {model.keep_temperature})")
    if train.saliency_weight < 0 or train.saliency_power <= 0:
        problems.append(f"train.saliency_weight must be >= 0 and train.saliency_power > 0 "
                        f"(got {train.saliency_weight}, {train.saliency_power})")
    if train.saliency_at not in ("dense", "all"):
        problems.append(f"train.saliency_at must be dense or all (got {train.saliency_at!r})")
    if train.dense_step_every < 0:
        problems.append(f"train.dense_step_every must be >= 0 (got {train.dense_step_every})")
    if train.saliency_weight > 0 and (model.arch != "mesm" or model.attention_mode != "straight_through"):
        problems.append("train.saliency_weight > 0 needs a MESM with model.attention_mode=straight_through")
    if cfg.data.num_workers < 0:
        problems.append(f"data.num_workers must be >= 0 (got {cfg.data.num_workers})")
    if problems:
        parser.error("; ".join(problems))


def ensure_synthetic_cache(source: Path = DEFAULT_SYNTHETIC_SOURCE, cache: Path = DEFAULT_SYNTHETIC_CACHE) -> Path:
    """Generate the synthetic dataset (``ensure_dataset``) and preprocess it into ``cache`` if missing,
    with the project's own ``python -m mesm_core.preprocess`` (reruns resume)."""
    from mesm_core import preprocess
    from mesm_core.data.synthetic import ensure_dataset

    ensure_dataset(source, progress=True)
    code = preprocess.main(["--dataset", "synthetic", "--source", str(source), "--out", str(cache), "--workers", "2"])
    if code != 0:
        raise RuntimeError(f"preprocessing the synthetic dataset into {cache} failed (exit code {code})")
    return cache


def _train_baseline(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Two-phase baselines (lf_lstm, lf_trans, emoembs, mult) train on a feature cache
    (``python -m mesm_core.features build``), through their own loop with the same metrics and thresholds."""
    from mesm_core import baseline_train

    if args.data is None:
        parser.error(f"--data FEATURE_CACHE is required for the baseline preset {args.preset!r}")
    out = args.out or Path("runs") / f"{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    forwarded = ["--preset", args.preset, "--features", str(args.data), "--run-dir", str(out)]
    if args.seed is not None:
        forwarded += ["--seed", str(args.seed)]
    if args.epochs is not None:
        forwarded += ["--epochs", str(args.epochs)]
    if args.device not in (None, "auto"):
        forwarded += ["--device", args.device]
    for item in args.overrides or []:
        forwarded += ["--set", item]
    return baseline_train.main(forwarded)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from mesm_core.baseline_presets import is_baseline_preset

    if args.preset and is_baseline_preset(args.preset):
        return _train_baseline(args, parser)
    _positive(parser, "--epochs", args.epochs)
    _positive(parser, "--max-steps", args.max_steps)
    _positive(parser, "--num-workers", args.num_workers, minimum=0)
    cfg = resolve_config(args, parser)

    from mesm_core.training.distributed import (
        DeviceError,
        barrier,
        broadcast_object,
        cleanup_distributed,
        init_distributed,
    )

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda was requested but CUDA is not available on this machine")
    try:
        dist_info = init_distributed(args.device)
    except DeviceError as exc:
        parser.error(str(exc))
    try:
        cache = args.data
        if cache is None and args.resume:
            run_json = args.out / "run.json"
            if run_json.is_file():
                cache = Path(json.loads(run_json.read_text())["cache_dir"])
        if cache is None:
            cache = DEFAULT_SYNTHETIC_CACHE
            if dist_info.is_main and not (cache / "manifest.jsonl").is_file():
                print(f"generating the synthetic dataset in {DEFAULT_SYNTHETIC_SOURCE} → {cache} ...", flush=True)
                ensure_synthetic_cache(DEFAULT_SYNTHETIC_SOURCE, cache)
            barrier(dist_info)
        if not Path(cache).is_dir():
            parser.error(f"--data {cache}: no such directory (preprocess a dataset first: python -m mesm_core.preprocess)")
        if not (Path(cache) / "cache.json").is_file():
            parser.error(f"--data {cache}: not a preprocessed cache (no cache.json; make one with python -m mesm_core.preprocess)")
        out = args.out
        if out is None:
            out = Path("runs") / f"{cfg.preset or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"
        out = Path(broadcast_object(dist_info, str(out)))  # all ranks write/read the same run directory
        if not args.resume and (out / "last").exists():
            parser.error(f"--out {out} already holds a run; pass --resume to continue it or choose another --out")

        from mesm_core.training.loop import NonFiniteLossError, TrainOptions, run_training

        options = TrainOptions(
            run_dir=out, cache_dir=Path(cache), device=args.device, resume=args.resume, max_steps=args.max_steps,
            num_workers=args.num_workers, text_pretrained=not args.random_text_weights,
            progress=not args.no_progress, evaluate_test=not args.no_test,
        )
        if dist_info.is_main:
            print(f"training {cfg.preset or cfg.model.arch} → {out} (data {cache}, {dist_info.world_size} "
                  f"process(es) on {dist_info.device})", flush=True)
        try:
            result = run_training(cfg, options, dist_info)
        except NonFiniteLossError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        if dist_info.is_main:
            if result.interrupted:
                print(f"stopped by {result.signal_name or 'a signal'}; state saved in {out / 'last'} "
                      f"(continue with --resume --out {out})", flush=True)
            else:
                state = result.state
                print(f"done: {state.stop_reason}; best epoch {state.best_epoch + 1} "
                      f"(valid {cfg.train.select_metric} {state.best_metric:.4f}) in {out / 'best'}", flush=True)
        return result.exit_code
    finally:
        cleanup_distributed()


if __name__ == "__main__":
    sys.exit(main())
