"""``python -m mesm_core.preprocess``: a dataset → a resumable cache of preprocessed utterances.

    python -m mesm_core.preprocess --dataset iemocap --source /data/IEMOCAP_full_release \\
        --out cache/iemocap --splits /data/splits/IEMOCAP --workers 4

Datasets: iemocap, iemocap-processed, mosei, mosei-processed, folder, synthetic (docs/data.md).
The work is :func:`mesm_core.data.prepare.build_cache`; this module is its argparse front.
Rerunning the same command resumes: finished records are verified and skipped, failed ones retried.
``--shard i/n`` processes every n-th utterance (for cluster job arrays; each shard writes its own
manifest, merged on read).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mesm_core.console import log_to_console
from mesm_core.config import RunConfig, apply_overrides


def build_parser() -> argparse.ArgumentParser:
    from mesm_core.data.sources import SOURCE_NAMES

    parser = argparse.ArgumentParser(prog="python -m mesm_core.preprocess", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=SOURCE_NAMES)
    parser.add_argument("--source", required=True, type=Path, help="dataset root folder")
    parser.add_argument("--out", required=True, type=Path, help="cache folder (created; reruns resume)")
    parser.add_argument("--splits", type=Path, default=None,
                        help="folder with train.txt/valid.txt/test.txt (or *_split.txt), one id per line")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (each with its own MTCNN)")
    parser.add_argument("--shard", default=None, help="i/n: process every n-th utterance starting at i")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="data.FIELD=VALUE",
                        help="DataConfig override, e.g. data.frame_interval_ms=500 (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="process at most K utterances (after sharding)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the generated IEMOCAP split (default 0) / of the synthetic data (default: "
                             "the dataset already in --source, else 0)")
    parser.add_argument("--n-clips", type=int, default=None,
                        help="synthetic: number of clips (default: the dataset already in --source, else 1200; "
                             "a different number regenerates it, with a warning)")
    parser.add_argument("--keep-unassigned", action="store_true",
                        help="also process utterances that no split lists (split 'unassigned')")
    parser.add_argument("--device", default="cpu", help="MTCNN device (cpu, cuda, cuda:1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when any utterance failed")
    return parser


def data_config_from_overrides(overrides: list[str]):
    """``["data.frame_interval_ms=500", "max_frames=100"]`` → DataConfig (the ``data.`` prefix is optional)."""
    items = [item if item.startswith("data.") else f"data.{item}" for item in overrides]
    return apply_overrides(RunConfig(), items).data


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_to_console()
    from mesm_core.data.cache import parse_shard
    from mesm_core.data.prepare import build_cache
    from mesm_core.errors import MesmError

    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        parser.error(str(exc))
    try:
        summary = build_cache(args.dataset, args.source, args.out, splits=args.splits,
                              config=data_config_from_overrides(args.overrides), workers=args.workers, shard=shard,
                              limit=args.limit, seed=args.seed, n_clips=args.n_clips,
                              keep_unassigned=args.keep_unassigned, device=args.device, progress=not args.no_progress,
                              log=lambda line: print(line, flush=True))
    except MesmError as exc:  # a missing or malformed source, split lists, cache or setting: one line, exit 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.text(), flush=True)
    return 1 if (args.strict and summary.failed) else 0


if __name__ == "__main__":
    sys.exit(main())
