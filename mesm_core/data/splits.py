"""Train/valid/test split lists: the official id lists, or the paper's random IEMOCAP split.

Official lists (from the authors' repository, ``data split/{IEMOCAP,MOSEI}_split``) are read from a
folder the user gives: ``train.txt``/``valid.txt``/``test.txt`` or ``train_split.txt``/… , one
utterance id per line. The project ships no copy.

Mismatches are reported, never dropped silently: ids listed in a split that have no data, and
utterances with data that no split lists (:class:`SplitReport`).
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mesm_core.data.errors import DataSourceError

SPLIT_NAMES = ("train", "valid", "test")
_FILE_CANDIDATES = {
    "train": ("train.txt", "train_split.txt"),
    "valid": ("valid.txt", "valid_split.txt", "val.txt", "val_split.txt", "dev.txt", "dev_split.txt"),
    "test": ("test.txt", "test_split.txt"),
}
# The paper's IEMOCAP split is a random utterance-level 70/10/20 split (docs/deviations.md, "Splits").
IEMOCAP_SPLIT_FRACTIONS = (0.7, 0.1, 0.2)


def read_id_list(path: str | Path) -> list[str]:
    """One id per line (CR/LF and surrounding spaces stripped, blank lines ignored)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise DataSourceError(f"{path}: cannot read split list ({exc})") from exc
    ids = [line.strip() for line in lines if line.strip()]
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise DataSourceError(f"{path}: duplicate id(s) {duplicates[:5]}")
    return ids


def load_split_lists(directory: str | Path) -> dict[str, list[str]]:
    """Read ``{train,valid,test}.txt`` (or ``*_split.txt``) from ``directory`` → {split: [ids]}.

    Raises DataSourceError when the folder or a list is missing, or an id is in two splits.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataSourceError(f"{directory}: split folder not found")
    lists: dict[str, list[str]] = {}
    for split in SPLIT_NAMES:
        path = next((directory / n for n in _FILE_CANDIDATES[split] if (directory / n).is_file()), None)
        if path is None:
            raise DataSourceError(f"{directory}: no {split} list (looked for {', '.join(_FILE_CANDIDATES[split])})")
        lists[split] = read_id_list(path)
    for i, a in enumerate(SPLIT_NAMES):
        for b in SPLIT_NAMES[i + 1:]:
            overlap = set(lists[a]) & set(lists[b])
            if overlap:
                raise DataSourceError(f"{directory}: {len(overlap)} id(s) are in both {a} and {b}, "
                                      f"e.g. {sorted(overlap)[:3]}")
    return lists


def generate_iemocap_split(ids: Iterable[str], seed: int = 0,
                           fractions: Sequence[float] = IEMOCAP_SPLIT_FRACTIONS) -> dict[str, list[str]]:
    """The paper's IEMOCAP protocol for users without the official lists: a seeded random
    utterance-level split (speaker-dependent), 70/10/20 by default.

    Deterministic for a given id set and seed (ids are sorted before shuffling). Counts are
    round(n·f) for train and valid, the rest for test (7380 ids → 5166/738/1476; the official
    lists are 5162/737/1481).
    """
    ordered = sorted(set(ids))
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(len(ordered))
    shuffled = [ordered[i] for i in order]
    n_train = int(round(len(ordered) * fractions[0]))
    n_valid = int(round(len(ordered) * fractions[1]))
    return {
        "train": shuffled[:n_train],
        "valid": shuffled[n_train:n_train + n_valid],
        "test": shuffled[n_train + n_valid:],
    }


@dataclass
class SplitReport:
    """How split lists and the available data matched."""

    counts: dict[str, int] = field(default_factory=dict)           # split → utterances with data
    missing: dict[str, list[str]] = field(default_factory=dict)    # split → listed ids without data
    unassigned: list[str] = field(default_factory=list)            # ids with data in no split
    origin: str = ""                                               # "official lists (DIR)", "generated (seed 0)", ...

    @property
    def ok(self) -> bool:
        return not self.unassigned and not any(self.missing.values())

    def summary(self) -> str:
        parts = [f"splits from {self.origin}: " + ", ".join(f"{s} {self.counts.get(s, 0)}" for s in SPLIT_NAMES)]
        for split in SPLIT_NAMES:
            ids = self.missing.get(split, [])
            if ids:
                parts.append(f"  {len(ids)} id(s) listed in {split} have no data, e.g. {', '.join(ids[:3])}")
        if self.unassigned:
            parts.append(f"  {len(self.unassigned)} utterance(s) with data are in no split, "
                         f"e.g. {', '.join(self.unassigned[:3])}")
        return "\n".join(parts)

    def to_dict(self) -> dict:
        return {"origin": self.origin, "counts": self.counts, "missing": self.missing, "unassigned": self.unassigned}


def assign_splits(jobs: Sequence, split_lists: dict[str, list[str]], origin: str = "split lists",
                  warn: bool = True) -> SplitReport:
    """Set ``job.split`` from ``split_lists`` for every job (None when no list has it) → SplitReport.

    Emits a ``UserWarning`` with the summary when anything does not match.
    """
    where = {uid: split for split, ids in split_lists.items() for uid in ids}
    available = set()
    for job in jobs:
        job.split = where.get(job.id)
        available.add(job.id)
    report = SplitReport(origin=origin)
    for split in SPLIT_NAMES:
        listed = split_lists.get(split, [])
        report.counts[split] = sum(1 for uid in listed if uid in available)
        report.missing[split] = [uid for uid in listed if uid not in available]
    report.unassigned = sorted(job.id for job in jobs if job.split is None)
    if warn and not report.ok:
        warnings.warn(report.summary(), stacklevel=2)
    return report


def report_existing_splits(jobs: Sequence, origin: str = "the source", warn: bool = True) -> SplitReport:
    """SplitReport for jobs that already carry their split (e.g. a ``split`` column)."""
    report = SplitReport(origin=origin)
    for split in SPLIT_NAMES:
        report.counts[split] = sum(1 for job in jobs if job.split == split)
        report.missing[split] = []
    report.unassigned = sorted(job.id for job in jobs if job.split is None)
    if warn and not report.ok:
        warnings.warn(report.summary(), stacklevel=2)
    return report


__all__ = ["SPLIT_NAMES", "IEMOCAP_SPLIT_FRACTIONS", "read_id_list", "load_split_lists", "generate_iemocap_split",
           "SplitReport", "assign_splits", "report_existing_splits"]
