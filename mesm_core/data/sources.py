"""Dataset sources: each scans a dataset layout and yields :class:`~mesm_core.data.clip.ClipJob` s.

Names (as on the ``mesm_core.preprocess`` command line): ``iemocap`` (raw release),
``iemocap-processed`` (the authors' processed folders), ``mosei`` (raw CMU-MOSEI release),
``mosei-processed``, ``folder`` (``labels.csv``), ``synthetic`` (the embedded synthetic set).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mesm_core.data.clip import ClipJob
from mesm_core.data.errors import DataSourceError


@dataclass
class SourceScan:
    """What a source found: the jobs, the class names, and everything it skipped (never silent)."""

    dataset: str
    root: Path
    classes: tuple[str, ...]
    jobs: list[ClipJob]
    skipped: Counter = field(default_factory=Counter)   # reason → count
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)  # reason → a few ids
    warnings: Counter = field(default_factory=Counter)  # kept, but worth knowing: reason → count
    has_splits: bool = False   # the jobs carry their split from the source itself

    def skip(self, reason: str, item: str) -> None:
        self.skipped[reason] += 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(item)

    def warn(self, reason: str, item: str) -> None:
        self.warnings[reason] += 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(item)

    def summary(self) -> str:
        lines = [f"{self.dataset}: {len(self.jobs)} utterance(s) from {self.root}"]
        for reason, count in sorted(self.skipped.items()):
            examples = ", ".join(self.skipped_examples.get(reason, []))
            lines.append(f"  skipped {count}: {reason}" + (f" (e.g. {examples})" if examples else ""))
        for reason, count in sorted(self.warnings.items()):
            examples = ", ".join(self.skipped_examples.get(reason, []))
            lines.append(f"  warning ({count}): {reason}" + (f" (e.g. {examples})" if examples else ""))
        return "\n".join(lines)


def one_hot(label: str, classes: tuple[str, ...]) -> np.ndarray:
    vector = np.zeros(len(classes), np.float32)
    vector[classes.index(label)] = 1.0
    return vector


def require_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataSourceError(f"{path}: {what} not found (the source folder does not exist)")
    if not path.is_dir():
        raise DataSourceError(f"{path}: {what} must be a folder")
    return path


def _builders() -> dict[str, Callable[..., SourceScan]]:
    from mesm_core.data import folder, iemocap, mosei

    return {
        "iemocap": iemocap.iemocap_raw_source,
        "iemocap-processed": iemocap.iemocap_processed_source,
        "mosei": mosei.mosei_raw_source,
        "mosei-processed": mosei.mosei_processed_source,
        "folder": folder.folder_source,
        "synthetic": folder.synthetic_source,
    }


SOURCE_NAMES = ("iemocap", "iemocap-processed", "mosei", "mosei-processed", "folder", "synthetic")


def build_source(name: str, root: str | Path, **options: Any) -> SourceScan:
    """Scan dataset ``name`` at ``root`` → SourceScan. Options go to the builder (e.g. seed, n_clips)."""
    builders = _builders()
    if name not in builders:
        raise DataSourceError(f"unknown dataset {name!r}; choose one of {', '.join(SOURCE_NAMES)}")
    return builders[name](root, **options)


__all__ = ["SourceScan", "SOURCE_NAMES", "build_source", "one_hot", "require_dir"]
