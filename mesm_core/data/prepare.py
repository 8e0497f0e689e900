"""A dataset source → a preprocessed cache, as one library call (``python -m mesm_core.preprocess`` is its CLI).

:func:`build_cache` scans the source, assigns the splits (official lists, the source's own split column, or
IEMOCAP's generated 70/10/20 split), writes ``splits.json`` and runs the clips into the cache; reruns resume.
:func:`ensure_synthetic_cache` makes the embedded synthetic dataset and its cache when they are missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from mesm_core.config import DataConfig
from mesm_core.data.cache import SPLITS_INFO, PreprocessSummary, preprocess_jobs
from mesm_core.data.errors import DataSourceError
from mesm_core.data.sources import build_source
from mesm_core.data.splits import assign_splits, generate_iemocap_split, load_split_lists, report_existing_splits
from mesm_core.io import write_json

__all__ = ["build_cache", "ensure_synthetic_cache", "DEFAULT_SYNTHETIC_SOURCE", "DEFAULT_SYNTHETIC_CACHE"]

DEFAULT_SYNTHETIC_SOURCE = Path("data/synthetic")
DEFAULT_SYNTHETIC_CACHE = Path("data/synthetic_cache")


def build_cache(
    dataset: str,
    source: str | Path,
    out: str | Path,
    *,
    splits: str | Path | None = None,
    config: DataConfig | None = None,
    workers: int = 0,
    shard: tuple[int, int] | None = None,
    limit: int | None = None,
    seed: int | None = None,
    n_clips: int | None = None,
    keep_unassigned: bool = False,
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> PreprocessSummary:
    """Preprocess dataset ``dataset`` (a name of ``mesm_core.data.sources``) at ``source`` into the cache ``out``.

    ``splits``: a folder of official split lists; without it the source's own split column is used, IEMOCAP
    gets a generated split (``seed``, default 0) and other datasets need ``keep_unassigned`` (everything in
    split "unassigned"). ``seed`` / ``n_clips`` also choose the synthetic dataset. ``log`` receives the scan and
    split summaries. Raises :class:`DataSourceError` (an ``InputError``) for a missing or malformed source.
    """
    source, out = Path(source), Path(out)
    if not source.exists() and dataset != "synthetic":
        raise DataSourceError(f"{source}: source folder does not exist")
    options = {"seed": seed, "n_clips": n_clips} if dataset == "synthetic" else {}
    scan = build_source(dataset, source, **options)
    log(scan.summary())
    if splits is not None:
        report = assign_splits(scan.jobs, load_split_lists(splits), origin=f"official lists ({splits})", warn=False)
    elif scan.has_splits:
        report = report_existing_splits(scan.jobs, origin="the source's split column", warn=False)
    elif dataset.startswith("iemocap"):
        split_seed = 0 if seed is None else seed
        lists = generate_iemocap_split([job.id for job in scan.jobs], seed=split_seed)
        report = assign_splits(scan.jobs, lists, origin=f"a generated random 70/10/20 split (seed {split_seed})",
                               warn=False)
    else:
        report = report_existing_splits(scan.jobs, origin="nowhere (no --splits given)", warn=False)
        if not keep_unassigned:
            raise DataSourceError(f"{dataset} needs split lists: pass --splits DIR (train.txt, valid.txt, "
                                  "test.txt) or --keep-unassigned to cache everything as split 'unassigned'")
    log(report.summary())
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SPLITS_INFO, report.to_dict(), indent=1)
    if keep_unassigned:
        for job in scan.jobs:
            job.split = job.split or "unassigned"
        jobs = scan.jobs
    else:
        jobs = [job for job in scan.jobs if job.split is not None]
        if report.unassigned:
            log(f"not processing {len(report.unassigned)} utterance(s) in no split (--keep-unassigned processes them)")
    return preprocess_jobs(jobs, out, config or DataConfig(), scan.classes, dataset=dataset, source=str(scan.root),
                           workers=workers, shard=shard, limit=limit, device=device, progress=progress)


def ensure_synthetic_cache(source: str | Path = DEFAULT_SYNTHETIC_SOURCE, cache: str | Path = DEFAULT_SYNTHETIC_CACHE,
                           *, workers: int = 2) -> Path:
    """Generate the synthetic dataset in ``source`` (the one already there is kept) and preprocess it into
    ``cache`` (reruns resume); the same as ``python -m mesm_core.preprocess --dataset synthetic``."""
    from mesm_core.data.synthetic import ensure_dataset

    ensure_dataset(source, progress=True)
    build_cache("synthetic", source, cache, workers=workers)
    return Path(cache)
