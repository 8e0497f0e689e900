"""The ``synthetic`` dataset source: the embedded synthetic set, generated where it is missing, then read
like ``folder`` (its ``labels.csv``), each record getting its ground-truth cue masks after preprocessing."""

from __future__ import annotations

import functools
from pathlib import Path

from mesm_core.config import DataConfig
from mesm_core.data.folder import folder_source
from mesm_core.data.scan import SourceScan
from mesm_core.data.synthetic.cues import attach_cues
from mesm_core.data.synthetic.generator import ensure_dataset
from mesm_core.types import ClipRecord

__all__ = ["synthetic_source"]


def synthetic_source(root: str | Path, seed: int | None = None, n_clips: int | None = None) -> SourceScan:
    """Generate the synthetic dataset at ``root`` if missing (:func:`~.generator.ensure_dataset`: None keeps
    what a dataset already there was made with), then scan it like ``folder``; every job attaches its
    record's cue masks (``cues/<id>.npz``, :func:`~.cues.attach_cues`) once preprocessed."""
    root = Path(root)
    ensure_dataset(root, seed=seed, n_clips=n_clips)
    scan = folder_source(root, dataset="synthetic")
    hook = functools.partial(_attach_cues, source_dir=str(root))
    for job in scan.jobs:
        job.postprocess = hook
    return scan


def _attach_cues(record: ClipRecord, config: DataConfig, source_dir: str) -> ClipRecord:
    """``ClipJob.postprocess`` of a synthetic job (module level, so jobs pickle into worker processes)."""
    return attach_cues(record, source_dir, config)
