"""``python -m mesm_core.preprocess``: a dataset → a resumable cache of preprocessed utterances.

    python -m mesm_core.preprocess --dataset iemocap --source /data/IEMOCAP_full_release \\
        --out cache/iemocap --splits /data/splits/IEMOCAP --workers 4

Datasets: iemocap, iemocap-processed, mosei, mosei-processed, folder, synthetic (docs/data.md).
Rerunning the same command resumes: finished records are verified and skipped, failed ones retried.
``--shard i/n`` processes every n-th utterance (for cluster job arrays; each shard writes its own
manifest, merged on read).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    args = build_parser().parse_args(argv)
    from mesm_core.data.cache import SPLITS_INFO, parse_shard, preprocess_jobs
    from mesm_core.data.errors import DataSourceError
    from mesm_core.data.sources import build_source
    from mesm_core.data.splits import assign_splits, generate_iemocap_split, load_split_lists, report_existing_splits
    from mesm_core.io import write_json

    try:
        config = data_config_from_overrides(args.overrides)
        shard = parse_shard(args.shard) if args.shard else None
        if not args.source.exists() and args.dataset != "synthetic":
            raise DataSourceError(f"{args.source}: source folder does not exist")
        options = {"seed": args.seed, "n_clips": args.n_clips} if args.dataset == "synthetic" else {}
        scan = build_source(args.dataset, args.source, **options)
        print(scan.summary(), flush=True)
        if args.splits is not None:
            report = assign_splits(scan.jobs, load_split_lists(args.splits), origin=f"official lists ({args.splits})",
                                   warn=False)
        elif scan.has_splits:
            report = report_existing_splits(scan.jobs, origin="the source's split column", warn=False)
        elif args.dataset.startswith("iemocap"):
            seed = 0 if args.seed is None else args.seed
            lists = generate_iemocap_split([job.id for job in scan.jobs], seed=seed)
            report = assign_splits(scan.jobs, lists, origin=f"a generated random 70/10/20 split (seed {seed})",
                                   warn=False)
        else:
            report = report_existing_splits(scan.jobs, origin="nowhere (no --splits given)", warn=False)
            if not args.keep_unassigned:
                raise DataSourceError(f"{args.dataset} needs split lists: pass --splits DIR (train.txt, valid.txt, "
                                      "test.txt) or --keep-unassigned to cache everything as split 'unassigned'")
        print(report.summary(), flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        write_json(args.out / SPLITS_INFO, report.to_dict(), indent=1)
        if args.keep_unassigned:
            for job in scan.jobs:
                job.split = job.split or "unassigned"
            jobs = scan.jobs
        else:
            jobs = [job for job in scan.jobs if job.split is not None]
            if report.unassigned:
                print(f"not processing {len(report.unassigned)} utterance(s) in no split "
                      "(--keep-unassigned processes them)", flush=True)
        summary = preprocess_jobs(jobs, args.out, config, scan.classes, dataset=args.dataset, source=str(scan.root),
                                  workers=args.workers, shard=shard, limit=args.limit, device=args.device,
                                  progress=not args.no_progress)
    except (DataSourceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.text(), flush=True)
    return 1 if (args.strict and summary.failed) else 0


if __name__ == "__main__":
    sys.exit(main())
