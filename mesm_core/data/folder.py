"""The ``folder`` source: any labelled video collection (the ``synthetic`` source reads its set through it).

``SRC/labels.csv`` columns: ``id``, ``video`` (path relative to SRC), ``transcript`` (may be empty:
then ``<video stem>.txt``/``.srt`` beside the video is used), optional ``split``
(train/valid/test), optional ``audio`` (a separate audio file, relative to SRC), optional
``start``/``end`` (seconds), and one 0/1 column per class: every other column is a class, in order.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mesm_core.data.errors import DataSourceError
from mesm_core.data.scan import ClipJob, SourceScan, require_dir

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


__all__ = ["RESERVED_COLUMNS", "SPLIT_NAMES", "folder_source"]
