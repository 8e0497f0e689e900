"""What a dataset source found: :class:`ClipJob` (one utterance to preprocess: the contract between the
sources and the cache), :class:`SourceScan` (jobs, classes, everything skipped) and the small helpers
every source uses. The registry of sources is :mod:`mesm_core.data.sources`; the sources themselves
(``folder``, ``iemocap``, ``mosei``, ``synthetic``) import this module, never the registry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mesm_core.config import DataConfig
from mesm_core.data.clip import Crop, Window, preprocess_clip, preprocess_frames
from mesm_core.data.errors import DataSourceError, NoAudioStreamError
from mesm_core.data.faces import FaceDetector
from mesm_core.data.video import CropSpec
from mesm_core.types import ClipRecord

__all__ = ["ClipJob", "SourceScan", "one_hot", "require_dir"]


@dataclass
class ClipJob:
    """One utterance to preprocess. Every dataset source yields these; the cache runs them.

    Either ``video`` (with optional ``start``/``end`` window, ``crop``, ``audio``) or ``images``
    (+ ``image_rate`` and ``audio``). ``postprocess(record, config) -> record`` (a module-level
    function, so jobs pickle into worker processes) runs after preprocessing, e.g. to attach
    synthetic cue masks.
    """

    id: str
    split: str | None = None
    labels: np.ndarray | None = None
    video: str | None = None
    images: list[str] | None = None
    image_rate: float | None = None
    audio: str | None = None
    transcript: str | None = None
    start: float | None = None
    end: float | None = None
    crop: CropSpec = None
    audio_channel: int | None = None
    duration: float | None = None
    postprocess: Callable[[ClipRecord, DataConfig], ClipRecord] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        if self.video:
            return str(self.video)
        if self.images:
            return str(Path(self.images[0]).parent)
        return str(self.audio or self.id)

    def run(self, config: DataConfig, detector: FaceDetector | None = None) -> ClipRecord:
        """Preprocess this utterance → ClipRecord (id, labels, split and source meta attached)."""
        crop = Crop(self.crop, self.audio_channel)
        if self.video is not None:
            record = preprocess_clip(self.video, self.transcript, audio=self.audio, config=config, detector=detector,
                                     window=Window(self.start, self.end), crop=crop, clip_id=self.id)
        elif self.images is not None:
            if self.audio is None:
                raise NoAudioStreamError(self.source, "image-sequence clip without an audio file")
            record = preprocess_frames(self.images, self.audio, self.transcript or "",
                                       frame_rate=self.image_rate or 30.0, duration=self.duration, config=config,
                                       detector=detector, crop=crop, clip_id=self.id)
        else:
            raise ValueError(f"job {self.id!r} has neither a video nor images")
        record.labels = None if self.labels is None else np.asarray(self.labels, np.float32)
        record.meta.split = self.split
        record.meta.update(self.meta)  # the source's own fields (dataset, dialog, side...) land in extra
        if self.postprocess is not None:
            record = self.postprocess(record, config)
        return record


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
