"""What a dataset source found: :class:`SourceScan` (jobs, classes, everything skipped) and the small
helpers every source uses. The registry of sources is :mod:`mesm_core.data.sources`; the sources
themselves (``folder``, ``iemocap``, ``mosei``) import this module, never the registry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mesm_core.data.clip import ClipJob
from mesm_core.data.errors import DataSourceError

__all__ = ["SourceScan", "one_hot", "require_dir"]


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
