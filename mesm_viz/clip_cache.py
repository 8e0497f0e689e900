"""The studio's prepared clips: what does not depend on p, kept once per clip and shared by every session.

Three layers, each an LRU under one lock:

* **features** (checkpoint, video content hash): the clip run through the p- and transcript-independent
  stage (:meth:`Predictor.prepare <mesm_core.inference.Predictor.prepare>`: decode, MTCNN, mel, the dense
  CNN layers). It starts as soon as a file is given (:meth:`ClipCache.prefetch`), in a pool of
  ``workers`` threads, so that Analyze often finds it done or under way;
* **display frames** (video content hash, sampled times): the strip's frames, decoded again at display
  size after the first result (they are not needed to draw it);
* **entries** (checkpoint, video, transcript, cue file): a :class:`ClipEntry`, the features with the
  transcript encoded (:meth:`Predictor.retext`) and the true cue regions attached, plus the predictions
  and drawn views of every p shown (p-dependent, cached per entry).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mesm_core.config import DataConfig
from mesm_core.data.errors import EmptyTranscriptError
from mesm_core.inference import Prediction, Predictor, PreparedClip, SweepPoint
from mesm_core.types import ClipRecord
from mesm_viz.predictor_pool import PredictorPool
from mesm_viz.workers import BACKGROUND_NICE, HEAVY_NICE, PREPARE_NICE, niced_pool

log = logging.getLogger(__name__)

__all__ = ["Progress", "PLACEHOLDER_TEXT", "clip_key", "ClipEntry", "ClipCache"]

Progress = Callable[[float, str], None]
# The transcript the features are first encoded with (MESM needs one); Analyze re-encodes the real one.
PLACEHOLDER_TEXT = "…"


def clip_key(checkpoint: str, video_sha1: str, transcript: str, cue_file: str | None = None) -> str:
    """The LRU key of an entry: checkpoint + video content hash + transcript (+ the cue file given)."""
    text = hashlib.sha1(transcript.encode("utf-8")).hexdigest()[:12]
    ck = hashlib.sha1(str(checkpoint).encode("utf-8")).hexdigest()[:8]
    key = f"{ck}-{video_sha1[:16]}-{text}"
    return key + (f"-{hashlib.sha1(cue_file.encode('utf-8')).hexdigest()[:8]}" if cue_file else "")


@dataclass
class ClipEntry:
    """Everything the views need for one (checkpoint, video, transcript, cue file); never in gr.State."""

    key: str
    checkpoint: str
    video: str
    prepared: PreparedClip
    cue_file: str | None = None                            # the true cue regions attached to the record
    cue_note: str = ""                                     # why a cue file given was not used
    frames: list[np.ndarray] | None = None                 # display frames (FRAME_HEIGHT rows), once decoded
    sweeps: dict[bool, list[SweepPoint]] = field(default_factory=dict)  # keep_floor → every slider position
    curves: dict[bool, dict] = field(default_factory=dict)  # keep_floor → the cost curve (plotly dict), unmarked
    floor_ranges: dict = field(default_factory=dict)       # (modality, layer) → p up to which the floor decides
    flat_to: float | None = None                           # the cost curve is flat up to this p (floor-bound)
    mel_bases: dict = field(default_factory=dict)          # coloured spectrograms (p-independent)
    predictions: "OrderedDict[tuple, Prediction]" = field(default_factory=OrderedDict)  # (p, floors) → result
    drawn: "OrderedDict[tuple, Any]" = field(default_factory=OrderedDict)  # (what, p, floors, …) → view model
    regions: dict[int, list] = field(default_factory=dict)  # frame → FACS regions at crop size
    timings: dict[str, float] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def record(self) -> ClipRecord:
        return self.prepared.record


# Pixels to decode (frame area × frames) above which a preparation counts as large: a 10 s clip at 1280×720 and
# 30 fps is 2.8e8; a 3 s 4K clip at 30 fps 7.5e8.
HEAVY_PIXELS = 3.0e8


def decode_cost(video: str) -> float:
    """Pixels the decoder goes through for a clip (width × height × frame rate × seconds), from its container's
    header; 0 when the file cannot say (it is then prepared as a small clip, and fails there if unreadable)."""
    import av

    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            seconds = float(container.duration or 0) / 1e6 or float(stream.duration * stream.time_base or 0)
            rate = float(stream.average_rate or 25)
            return float(stream.codec_context.width * stream.codec_context.height) * rate * seconds
    except Exception:  # noqa: BLE001 — a probe only
        return 0.0


def _require_text(predictor: Predictor, text: str, source: str) -> None:
    if not text and predictor.is_sparse:
        raise EmptyTranscriptError(source, "empty transcript; MESM needs the words of the utterance "
                                           "(the text is the query of its cross-modal attention)")


@dataclass
class _Job:
    """A preparation under way: its future and the stages it reported (for a progress bar)."""

    future: Future
    stages: list[tuple[float, str]] = field(default_factory=lambda: [(0.01, "Waiting for a free worker")])


class ClipCache:
    """Features, display frames and entries of the clips analysed in this process (see the module doc).

    ``data_config(predictor)`` gives the preprocessing with the studio's limits; ``workers`` threads
    prepare clips (the analyses running at once); ``size`` entries stay cached.
    """

    def __init__(self, pool: PredictorPool, data_config: Callable[[Predictor], DataConfig], workers: int = 2,
                 size: int = 6) -> None:
        self.pool = pool
        self.data_config = data_config
        self.size = max(1, size)
        # Preparations yield to slider moves; display frames come after the first result (their own worker
        # at a lower priority still, so they never hold up a preparation). mesm_viz.workers.
        self.executor = niced_pool(workers, PREPARE_NICE, "mesm-prepare")
        # A large clip (4K, long) yields to a small one and to slider moves: its own pool, at a lower priority.
        self.heavy_executor = niced_pool(workers, HEAVY_NICE, "mesm-prepare-large")
        self.frame_executor = niced_pool(1, BACKGROUND_NICE, "mesm-frames")
        self.lock = threading.RLock()
        self.jobs: OrderedDict[tuple[str, str], _Job] = OrderedDict()
        self.frame_jobs: OrderedDict[tuple, Future] = OrderedDict()
        self.entries: OrderedDict[str, ClipEntry] = OrderedDict()
        self._hashes: dict[tuple[str, float, int], str] = {}

    # --- content hash ---------------------------------------------------------------------------
    def sha1(self, video: str) -> str:
        """The video's SHA-1 (cached by path, mtime and size: an upload is hashed once)."""
        from mesm_core.io import file_sha1

        path = Path(video)
        if not path.is_file():
            return ""
        stat = path.stat()
        marker = (str(path), stat.st_mtime, stat.st_size)
        with self.lock:
            if marker in self._hashes:
                return self._hashes[marker]
        digest = file_sha1(path)
        with self.lock:
            self._hashes[marker] = digest
            while len(self._hashes) > 256:
                self._hashes.pop(next(iter(self._hashes)))
        return digest

    # --- features ---------------------------------------------------------------------------------
    def _prepare(self, video: str, checkpoint: str, cue: str | None, sha1: str, job: _Job) -> PreparedClip:
        def report(fraction: float, stage: str) -> None:
            job.stages.append((fraction, stage))

        predictor = self.pool.get(checkpoint)
        start = time.perf_counter()
        prepared = predictor.prepare(video, PLACEHOLDER_TEXT, data_config=self.data_config(predictor),
                                     progress=report, cue_file=cue, video_sha1=sha1 or None)
        prepared.timings["prepare_total_s"] = time.perf_counter() - start
        from mesm_viz.frames import FRAME_HEIGHT

        self.frames(video, prepared.record, prepared.video_sha1, FRAME_HEIGHT)   # decoded while the views are drawn
        return prepared

    def _job(self, video: str, checkpoint: str, cue: str | None) -> _Job:
        """The preparation of (checkpoint, video content, true cue file): started once, reused after."""
        sha1 = self.sha1(video)
        key = (checkpoint, sha1 or str(video), cue or "")
        with self.lock:
            job = self.jobs.get(key)
            failed = job is not None and job.future.done() and job.future.exception() is not None
            if job is None or failed:   # a failed preparation is tried again (the error may be transient)
                job = _Job(Future())
                pool = self.heavy_executor if decode_cost(video) > HEAVY_PIXELS else self.executor
                job.future = pool.submit(self._prepare, video, checkpoint, cue, sha1, job)
                self.jobs[key] = job
            self.jobs.move_to_end(key)
            while len(self.jobs) > self.size:
                self.jobs.popitem(last=False)
            return job

    def prefetch(self, video: str | None, checkpoint: str, cue: str | None = None) -> None:
        """Start preparing a clip as soon as it is given (the result waits in the cache for Analyze); ``cue``:
        its true cue file, when it has one (attached while preparing)."""
        if video:
            try:
                self._job(str(video), checkpoint, cue)
            except Exception as exc:  # noqa: BLE001 — Analyze reports the problem in the user's words
                log.debug("prefetch of %s not started: %s", video, exc)

    def features(self, video: str, checkpoint: str, cue: str | None = None,
                 progress: Progress | None = None) -> PreparedClip:
        """The prepared clip (placeholder transcript), waiting for its job; raises what preparing raised."""
        job = self._job(video, checkpoint, cue)
        told = 0
        while True:
            try:
                result = job.future.result(timeout=0.1)
            except FutureTimeout:
                result = None
            if progress is not None:   # every stage reported since the last look, in order
                stages = list(job.stages)
                for fraction, stage in stages[told:]:
                    progress(fraction, stage)
                told = len(stages)
            if result is not None or job.future.done():
                return job.future.result()

    # --- display frames ---------------------------------------------------------------------------
    def frames(self, video: str, record: ClipRecord, sha1: str, height: int) -> Future:
        """A future of the display frames of ``record``'s sampled times (decoded once per clip)."""
        from mesm_viz.frames import decode_display_frames

        key = (sha1 or video, float(record.meta.start_s or 0.0), tuple(np.round(record.frame_times, 4)), height)
        with self.lock:
            future = self.frame_jobs.get(key)
            if future is None:
                future = self.frame_executor.submit(decode_display_frames, video, record.frame_times, height,
                                                    start_s=record.meta.start_s)
                self.frame_jobs[key] = future
            self.frame_jobs.move_to_end(key)
            while len(self.frame_jobs) > self.size:
                self.frame_jobs.popitem(last=False)
            return future

    # --- entries ----------------------------------------------------------------------------------
    def get(self, key: str) -> ClipEntry | None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
            return entry

    def store(self, entry: ClipEntry) -> ClipEntry:
        with self.lock:
            self.entries[entry.key] = entry
            self.entries.move_to_end(entry.key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return entry

    def with_text(self, predictor: Predictor, features: PreparedClip, text: str) -> PreparedClip:
        """The features with ``text`` as the transcript (re-encoded; MESM refuses an empty one)."""
        _require_text(predictor, text, features.record.source or features.record.id)
        if getattr(predictor.model, "text_encoder", None) is not None:
            return predictor.retext(features, text)
        record = dataclasses.replace(features.record, transcript=text)
        return dataclasses.replace(features, record=record, transcript=text)

    def entry(self, video: str, text: str, checkpoint: str, cue_file: str | None, cue: str | None,
              outcome: Callable[[PreparedClip], tuple[str | None, str]], progress: Progress | None = None) -> ClipEntry:
        """The entry of (checkpoint, video, transcript, cue file given), built from the clip's features.

        ``cue``: the true cue file to attach (the one given, or one found for the clip); ``outcome(prepared)``
        says which file was used and, when a given one did not fit, why (the entry's ``cue_file``/``cue_note``)."""
        sha1 = self.sha1(video)
        key = clip_key(checkpoint, sha1, text, cue_file)
        cached = self.get(key)
        if cached is not None:
            return cached
        predictor = self.pool.get(checkpoint)
        _require_text(predictor, text, Path(video).name)   # before waiting for the clip: fail fast
        start = time.perf_counter()
        features = self.features(video, checkpoint, cue, progress)
        prepared = self.with_text(predictor, features, text)
        used, note = outcome(prepared)
        entry = ClipEntry(key=key, checkpoint=checkpoint, video=str(video), prepared=prepared, cue_file=used,
                          cue_note=note, timings=dict(prepared.timings, entry_s=time.perf_counter() - start))
        return self.store(entry)

    def retexted(self, entry: ClipEntry, text: str, cue_file: str | None) -> ClipEntry:
        """The entry of the same clip with another transcript (only the text is encoded again)."""
        key = clip_key(entry.checkpoint, entry.prepared.video_sha1 or self.sha1(entry.video), text, cue_file)
        cached = self.get(key)
        if cached is not None:
            return cached
        prepared = self.with_text(self.pool.get(entry.checkpoint), entry.prepared, text)
        new = ClipEntry(key=key, checkpoint=entry.checkpoint, video=entry.video, prepared=prepared,
                        cue_file=entry.cue_file, cue_note=entry.cue_note, frames=entry.frames, regions=entry.regions,
                        mel_bases=entry.mel_bases, timings=dict(entry.timings))
        return self.store(new)
