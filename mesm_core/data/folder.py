"""The ``folder`` source (any labelled video collection) and the ``synthetic`` source built on it.

``SRC/labels.csv`` columns: ``id``, ``video`` (path relative to SRC), ``transcript`` (may be empty:
then ``<video stem>.txt``/``.srt`` beside the video is used), optional ``split``
(train/valid/test), optional ``audio`` (a separate audio file, relative to SRC), optional
``start``/``end`` (seconds), and one 0/1 column per class: every other column is a class, in order.
"""

from __future__ import annotations

import csv
import functools
import importlib
from pathlib import Path

import numpy as np

from mesm_core.config import DataConfig
from mesm_core.data.errors import DataSourceError
from mesm_core.data.scan import ClipJob, SourceScan, require_dir
from mesm_core.types import ClipRecord

RESERVED_COLUMNS = ("id", "video", "transcript", "split", "audio", "start", "end")
SPLIT_NAMES = ("train", "valid", "test")
_SPLIT_ALIASES = {"val": "valid", "validation": "valid", "dev": "valid"}


def _float_or_none(value: str | None, where: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise DataSourceError(f"{where}: {value!r} is not a number") from exc


def folder_source(root: str | Path, dataset: str = "folder") -> SourceScan:
    """Scan ``root/labels.csv`` → jobs. Raises DataSourceError naming the file, row and column on bad input."""
    root = require_dir(root, "source folder")
    labels_path = root / "labels.csv"
    if not labels_path.is_file():
        raise DataSourceError(f"{labels_path}: labels.csv not found (columns: id, video, transcript, "
                              "[split], [audio], then one 0/1 column per class)")
    with open(labels_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("id", "video") if c not in columns]
        if missing:
            raise DataSourceError(f"{labels_path}: missing column(s) {missing}")
        classes = tuple(c for c in columns if c not in RESERVED_COLUMNS)
        if not classes:
            raise DataSourceError(f"{labels_path}: no class columns (every column other than "
                                  f"{', '.join(RESERVED_COLUMNS)} is a class)")
        rows = list(reader)
    scan = SourceScan(dataset, root, classes, [], has_splits="split" in columns)
    seen: set[str] = set()
    for line_no, raw in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "") for k, v in raw.items()}
        where = f"{labels_path}:{line_no}"
        utt = row["id"].strip()
        if not utt:
            raise DataSourceError(f"{where}: empty id")
        if utt in seen:
            raise DataSourceError(f"{where}: duplicate id {utt!r}")
        seen.add(utt)
        try:
            labels = np.array([float(row[c] or 0) for c in classes], np.float32)
        except ValueError as exc:
            raise DataSourceError(f"{where}: class values must be 0/1 ({exc})") from exc
        split = None
        if scan.has_splits:
            split = row.get("split", "").strip().lower() or None
            split = _SPLIT_ALIASES.get(split, split)
            if split is not None and split not in SPLIT_NAMES:
                raise DataSourceError(f"{where}: split {row['split']!r} is not one of {SPLIT_NAMES}")
        video = root / row["video"].strip()
        if not row["video"].strip() or not video.is_file():
            scan.skip("video file missing", f"{utt} ({video})")
            continue
        audio = row.get("audio", "").strip()
        transcript = row.get("transcript")
        scan.jobs.append(ClipJob(
            id=utt, split=split, labels=labels, video=str(video), audio=str(root / audio) if audio else None,
            transcript=transcript if transcript and transcript.strip() else None,
            start=_float_or_none(row.get("start"), where), end=_float_or_none(row.get("end"), where),
            meta={"dataset": dataset},
        ))
    return scan


def _attach_synthetic_cues(record: ClipRecord, config: DataConfig, source_dir: str) -> ClipRecord:
    """Post-processing hook for synthetic jobs (module level so jobs pickle into workers)."""
    synthetic = importlib.import_module("mesm_core.data.synthetic")
    attach = getattr(synthetic, "attach_cues", None)
    if attach is None:
        return record
    result = attach(record, source_dir, config)
    return record if result is None else result


def synthetic_source(root: str | Path, seed: int | None = None, n_clips: int | None = None) -> SourceScan:
    """Generate the synthetic dataset at ``root`` if missing (``mesm_core.data.synthetic.ensure_dataset``:
    None keeps what a dataset already there was made with), then scan it like ``folder``; each record
    gets its cue masks via ``attach_cues`` when available."""
    try:
        synthetic = importlib.import_module("mesm_core.data.synthetic")
    except ImportError as exc:
        raise DataSourceError(f"the synthetic dataset generator is not available ({exc})") from exc
    ensure = getattr(synthetic, "ensure_dataset", None)
    if ensure is None:
        raise DataSourceError("mesm_core.data.synthetic.ensure_dataset is not available in this installation")
    kwargs = {"seed": seed, "n_clips": n_clips}
    root = Path(root)
    ensure(root, **kwargs)
    scan = folder_source(root, dataset="synthetic")
    if hasattr(synthetic, "attach_cues"):
        hook = functools.partial(_attach_synthetic_cues, source_dir=str(root))
        for job in scan.jobs:
            job.postprocess = hook
    return scan


__all__ = ["RESERVED_COLUMNS", "SPLIT_NAMES", "folder_source", "synthetic_source"]
