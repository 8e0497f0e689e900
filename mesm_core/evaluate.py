"""Evaluate a checkpoint: ``python -m mesm_core.evaluate --checkpoint DIR --data DATA [--split test] [--out FILE]``.

Any model family: FE2E / MESM on a preprocessed clip cache, a two-phase baseline (``RUN/best`` of
``python -m mesm_core.train --preset lf_lstm``) on its feature cache. Prints per-class and average metrics
(the dataset's reported ones, see ``mesm_core.metrics``). Thresholds come from the checkpoint (chosen on
validation during training) or, when it has none, are tuned on the data's ``valid`` split; NEVER on the
split being tested, except when that split is ``valid`` itself.

``--top-p 0.1,0.2,...,1.0`` sweeps the same MESM weights over p (thresholds re-tuned on validation at each p,
or the checkpoint's with ``--sweep-thresholds checkpoint``) with the feature-extraction FLOPs per utterance;
``--fe2e-checkpoint`` adds the FE2E level. On data with cue masks (the synthetic set) a MESM evaluation also
reports the attention on the cue regions. ``--out FILE`` writes all of it as JSON; its figures are drawn by
``python -m mesm_viz.evaluation_figures FILE`` (core draws nothing). The work is ``mesm_core.evaluation``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from mesm_core.console import log_to_console
from mesm_core.evaluation.cues import CUE_CELL_RULE, CUE_CELL_RULES
from mesm_core.evaluation.thresholds import THRESHOLD_MODES

__all__ = ["build_parser", "main"]

_MOVED_FIGURE_FLAGS = ("figure", "cue_figure", "plotlyjs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mesm_core.evaluate",
        description="Evaluate a checkpoint on a preprocessed cache or a feature cache (thresholds from the checkpoint "
        "or the valid split, never the tested split); optional top-p sweep and attention-on-cue analysis. Figures: "
        "python -m mesm_viz.evaluation_figures OUT.json.",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint directory (or a run directory)")
    parser.add_argument("--data", type=Path, required=True,
                        help="preprocessed cache (FE2E/MESM) or feature cache (the baselines)")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--thresholds", choices=THRESHOLD_MODES, default="auto",
                        help="auto: the checkpoint's if it has them, else tuned on the valid split")
    parser.add_argument("--top-p", default=None,
                        help="MESM top-p for a single evaluation, or a list for a sweep: 0.1,0.2,...,1.0")
    parser.add_argument("--sweep-thresholds", choices=("valid", "checkpoint"), default="valid",
                        help="sweep: re-tune thresholds on valid at each p (default) or keep the checkpoint's")
    parser.add_argument("--fe2e-checkpoint", type=Path, default=None, help="FE2E checkpoint for the sweep's reference")
    parser.add_argument("--cues", choices=("auto", "off"), default="auto",
                        help="attention-on-cue report for MESM on data with cue masks (auto)")
    parser.add_argument("--cue-rule", choices=CUE_CELL_RULES, default=CUE_CELL_RULE,
                        help="a grid cell is cue when at least half (majority) / any of its pixels are cue")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--progress", action="store_true", help="progress bars")
    # The figures moved to mesm_viz (core never draws): these flags only say where to.
    for flag in _MOVED_FIGURE_FLAGS:
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_to_console()
    moved = [f"--{flag.replace('_', '-')}" for flag in _MOVED_FIGURE_FLAGS if getattr(args, flag) is not None]
    if moved:
        parser.error(f"{', '.join(moved)}: the figures are drawn by mesm_viz now: evaluate with --out EVAL.json, then "
                     "python -m mesm_viz.evaluation_figures EVAL.json [--figure SWEEP.html] [--cue-figure CUES.html] "
                     "[--plotlyjs embed] (docs/training.md)")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if not args.data.is_dir():
        parser.error(f"--data {args.data}: no such directory")
    if not args.checkpoint.exists():
        parser.error(f"--checkpoint {args.checkpoint}: no such directory")
    if args.fe2e_checkpoint is not None and not args.fe2e_checkpoint.exists():
        parser.error(f"--fe2e-checkpoint {args.fe2e_checkpoint}: no such directory")

    from mesm_core.checkpoint import CheckpointError, read_checkpoint_info
    from mesm_core.loading import load_checkpoint
    from mesm_core.distributed import DeviceError, resolve_device
    from mesm_core.errors import MesmError
    from mesm_core.evaluation import TopPError, format_evaluation, parse_top_ps, run_evaluation
    from mesm_core.families import DataDirError, family_of, has_split

    top_ps: list[float] | None = None
    if args.top_p is not None:
        try:
            top_ps = parse_top_ps(args.top_p)
        except TopPError as exc:
            parser.error(str(exc))
    try:
        device = resolve_device(args.device)
    except DeviceError as exc:
        parser.error(str(exc))
    try:
        config = read_checkpoint_info(args.checkpoint).run_config.model
        family_of(config).check_data(args.data)
    except CheckpointError as exc:
        parser.error(f"--checkpoint: {exc}")
    except DataDirError as exc:
        parser.error(f"--data {exc}")
    if not has_split(args.data, args.split, config):
        parser.error(f"--split {args.split}: {args.data} has no such (non-empty) split")
    try:
        model, info = load_checkpoint(args.checkpoint, map_location=device)
        report = run_evaluation(args.checkpoint, args.data, args.split, thresholds=args.thresholds, top_ps=top_ps,
                                sweep_thresholds=args.sweep_thresholds, fe2e_checkpoint=args.fe2e_checkpoint,
                                cues=args.cues == "auto", cue_rule=args.cue_rule, device=device,
                                batch_size=args.batch_size, progress=args.progress, model=model, info=info)
    except MesmError as exc:  # a wrong checkpoint, data or option found on the way: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_evaluation(report))
    if args.out is not None:
        report.write(args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
