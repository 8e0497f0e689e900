"""Train any preset: ``python -m mesm_core.train [--preset NAME] [--data DIR] [--out RUN] ...``.

FE2E / MESM presets read a preprocessed clip cache; the two-phase baselines (lf_lstm, lf_trans, emoembs,
mult) a feature cache (``python -m mesm_core.features build``). Both go through the same trainer, with the
same resume, DDP, checkpoints and logs. With no arguments it trains ``mesm_small`` on the embedded synthetic
dataset, generating it (and its cache) under ``data/`` first if missing. Multi-GPU / multi-node:
``torchrun --nproc_per_node N -m mesm_core.train ...`` (the batch size is per process). See docs/training.md.

Exit codes: 0 done (finished or early-stopped), 2 bad arguments or input (one ``error:`` line), 1 a failure
(e.g. a NaN loss), 130 / 143 stopped by SIGINT / SIGTERM after saving ``RUN/last`` (continue with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from mesm_core.config import ConfigError, RunConfig, apply_overrides, run_config_from_dict
from mesm_core.console import log_to_console

DEFAULT_PRESET = "mesm_small"


def build_parser() -> argparse.ArgumentParser:
    from mesm_core.data.prepare import DEFAULT_SYNTHETIC_CACHE

    parser = argparse.ArgumentParser(
        prog="python -m mesm_core.train",
        description="Train a preset (paper recipe from its TrainConfig): FE2E/MESM on a preprocessed cache, the "
        f"baselines on a feature cache. With no arguments: {DEFAULT_PRESET} on the synthetic dataset "
        f"({DEFAULT_SYNTHETIC_CACHE}, generated if missing).",
    )
    parser.add_argument("--preset", default=None, help=f"preset, any of mesm_core.list_presets() (default {DEFAULT_PRESET})")
    parser.add_argument("--data", type=Path, default=None,
                        help=f"preprocessed cache (FE2E/MESM; default {DEFAULT_SYNTHETIC_CACHE}, synthetic) or "
                        "feature cache (baselines; required)")
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
                        help="no pretrained weights: a random text encoder, zero EmoEmbs label vectors (offline "
                        "tests; not for real training)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch prints")
    parser.add_argument("--no-test", action="store_true", help="do not evaluate the best checkpoint on the test split")
    return parser


def _positive(parser: argparse.ArgumentParser, name: str, value: int | None, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        parser.error(f"{name} must be >= {minimum}, got {value}")


def resolve_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> RunConfig:
    """The RunConfig of this invocation, validated: a preset + overrides, or the saved one on --resume."""
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
        except ConfigError as exc:
            parser.error(f"--set: {exc}")
        if args.seed is not None:
            cfg.train.seed = args.seed
        for flag, value, field in (("--init-from", args.init_from, "init_from"), ("--distill-from", args.distill_from, "distill_from")):
            if value is not None:
                from mesm_core.checkpoint import CheckpointError, resolve_checkpoint_dir

                try:
                    setattr(cfg.train, field, str(resolve_checkpoint_dir(value)))
                except CheckpointError as exc:
                    parser.error(f"{flag}: {exc}")
        if cfg.train.distill_from and cfg.train.distill_weight <= 0 and cfg.train.saliency_from != "teacher":
            cfg.train.distill_weight = 1.0  # a teacher given for nothing else: distil its logits
    if args.epochs is not None:
        cfg.train.epochs = args.epochs
    if args.num_workers is not None:
        cfg.data.num_workers = args.num_workers
    try:
        cfg.validate()
    except ConfigError as exc:
        parser.error(str(exc))
    return cfg


def resolve_data(args: argparse.Namespace, cfg: RunConfig, parser: argparse.ArgumentParser, dist_info) -> Path:
    """The data directory: --data, the one a resumed run used, or (FE2E/MESM) the synthetic cache, made if missing
    (by rank 0, the others wait)."""
    from mesm_core.data.prepare import DEFAULT_SYNTHETIC_CACHE, DEFAULT_SYNTHETIC_SOURCE, ensure_synthetic_cache
    from mesm_core.distributed import barrier
    from mesm_core.errors import InputError
    from mesm_core.families import DataDirError, family_of
    from mesm_core.training.run_files import read_run_info

    family = family_of(cfg)
    data = args.data
    if data is None and args.resume:
        try:
            previous = read_run_info(args.out)
        except InputError as exc:
            parser.error(f"--resume: {exc}")
        if previous is not None:
            data = Path(previous.cache_dir)
    if data is None and not family.has_default_data:
        parser.error(f"--data FEATURE_CACHE is required for the baseline preset {cfg.preset!r} (build one with "
                     "python -m mesm_core.features build --clips CLIP_CACHE --out FEATURE_CACHE)")
    if data is None:
        data = DEFAULT_SYNTHETIC_CACHE
        if dist_info.is_main and not (data / "manifest.jsonl").is_file():
            print(f"generating the synthetic dataset in {DEFAULT_SYNTHETIC_SOURCE} → {data} ...", flush=True)
            ensure_synthetic_cache(DEFAULT_SYNTHETIC_SOURCE, data)
        barrier(dist_info)
    try:
        return family.check_data(data)
    except DataDirError as exc:
        parser.error(f"--data {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_to_console()
    _positive(parser, "--epochs", args.epochs)
    _positive(parser, "--max-steps", args.max_steps)
    _positive(parser, "--num-workers", args.num_workers, minimum=0)
    cfg = resolve_config(args, parser)

    from mesm_core.distributed import DeviceError, broadcast_object, cleanup_distributed, init_distributed
    from mesm_core.errors import MesmError
    from mesm_core.training.loop import NonFiniteLossError, TrainOptions, run_training

    try:
        dist_info = init_distributed(args.device)
    except DeviceError as exc:
        parser.error(str(exc))
    finished = False
    try:
        cache = resolve_data(args, cfg, parser, dist_info)
        out = args.out
        if out is None:
            out = Path("runs") / f"{cfg.preset or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"
        out = Path(broadcast_object(dist_info, str(out)))  # all ranks write/read the same run directory
        if not args.resume and (out / "last").exists():
            parser.error(f"--out {out} already holds a run; pass --resume to continue it or choose another --out")
        options = TrainOptions(
            run_dir=out, cache_dir=cache, device=args.device, resume=args.resume, max_steps=args.max_steps,
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
        except MesmError as exc:  # bad data or setting found on the way (each names the file and the reason)
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 2
        if dist_info.is_main:
            if result.interrupted:
                print(f"stopped by {result.signal_name or 'a signal'}; state saved in {out / 'last'} "
                      f"(continue with --resume --out {out})", flush=True)
            else:
                state = result.state
                print(f"done: {state.stop_reason}; best epoch {state.best_epoch + 1} "
                      f"(valid {cfg.train.select_metric} {state.best_metric:.4f}) in {out / 'best'}", flush=True)
        finished = True
        return result.exit_code
    finally:
        cleanup_distributed(synchronize=finished)


if __name__ == "__main__":
    sys.exit(main())
