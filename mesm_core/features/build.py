"""Extract the hand-crafted features of preprocessed utterances (ClipRecords) into a feature cache.

Inputs per utterance are what the E2E models see: the transcript, the 2 fps face crops and the
mel spectrogram of ``ClipRecord``; the eGeMAPS part of the acoustic features also needs the
waveform, which is re-read from the record's source (``record.meta.audio_path`` or
``record.source``, with its channel and [start_s, end_s) window when recorded) and checked against
the record's audio duration.

``audio_source``: "mel" (34-d Bark+MFCC from the cached mel, works on any record), "waveform"
(84-d with eGeMAPS; a record whose waveform cannot be re-read is reported as failed) or "auto"
(waveform when openSMILE is installed and the first record's waveform can be read).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from mesm_core.features.audio import AudioExtractor, opensmile_available
from mesm_core.features.cache import FeatureCache, FeatureItem
from mesm_core.features.text import GloveVectors, glove_fingerprint, load_glove, text_features
from mesm_core.features.visual import FACE_MODEL_SHA256, VisualExtractor
from mesm_core.types import ClipRecord

log = logging.getLogger(__name__)

__all__ = ["record_waveform", "extract_record", "build_feature_cache", "iter_clip_cache"]

_DURATION_TOLERANCE_S = 0.05


def record_waveform(record: ClipRecord, sample_rate: int = 16000) -> np.ndarray | None:
    """The record's audio re-read from its source, or None when it cannot be found or does not match."""
    from mesm_core.data.audio import load_audio

    meta = record.meta
    path = meta.audio_path or record.source
    if not path or not Path(path).is_file():
        return None
    try:
        waveform = load_audio(path, sample_rate=sample_rate, channel=meta.audio_channel,
                              start=meta.start_s, end=meta.end_s)
    except (ValueError, OSError):
        return None
    expected = meta.audio_duration_s
    if expected is not None and abs(waveform.duration_s - float(expected)) > _DURATION_TOLERANCE_S:
        return None
    return waveform.samples


def extract_record(record: ClipRecord, split: str, glove: GloveVectors, audio: AudioExtractor,
                   visual: VisualExtractor, waveform: np.ndarray | None = None) -> FeatureItem:
    """One ClipRecord → FeatureItem (text per token, audio per 400 ms window, visual per sampled frame)."""
    text, text_info = text_features(record.transcript or "", glove)
    acoustic = audio(waveform, 16000, mel=record.mel)
    expected_windows = max(1, -(-record.mel.shape[1] // audio.window_frames))
    if acoustic.shape[0] != expected_windows:
        raise ValueError(f"{record.id}: {acoustic.shape[0]} audio windows, expected {expected_windows}")
    faces = np.asarray(record.faces)
    frames, face = visual(faces if len(faces) else np.zeros((0, 1, 1, 3), np.uint8))
    meta = {"tokens": text_info["tokens"], "oov": text_info["oov"], "source": record.source}
    return FeatureItem(id=record.id, split=split, text=text, audio=acoustic, visual=frames, visual_face=face,
                       labels=None if record.labels is None else np.asarray(record.labels, np.float32), meta=meta)


def build_feature_cache(
    records: Iterable[ClipRecord],
    out_dir: str | Path,
    classes: tuple[str, ...],
    *,
    face_model: str | Path | None = None,
    face_model_sha256: str | None = FACE_MODEL_SHA256,
    audio_source: str = "auto",
    overwrite: bool = False,
    source_info: dict | None = None,
    progress: bool = True,
) -> FeatureCache:
    """Extract every record (its split from ``record.meta.split``) into ``out_dir``; resumable.

    A record that fails (unreadable audio for the eGeMAPS part, bad shapes) is recorded in the
    manifest with its reason and the build goes on; ``report.json`` lists the failures.
    """
    if audio_source not in ("auto", "mel", "waveform"):
        raise ValueError(f"audio_source must be auto, mel or waveform, got {audio_source!r}")
    iterator = iter(records)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no records to extract")
    if audio_source == "auto":
        audio_source = "waveform" if opensmile_available() and record_waveform(first) is not None else "mel"
    audio = AudioExtractor(use_egemaps=audio_source == "waveform")
    glove = load_glove()
    started = time.time()
    with VisualExtractor(face_model, expected_sha256=face_model_sha256) as visual:
        cache = FeatureCache.create(
            out_dir,
            sizes={"text": glove.dim, "audio": audio.dim, "visual": visual.dim},
            names={"text": "glove6b50d_ptb", "audio": audio.name, "visual": visual.name},
            extractors={"text": glove_fingerprint(), "audio": audio.fingerprint(), "visual": visual.fingerprint(),
                        "audio_source": audio_source},
            classes=classes, source=source_info or {}, overwrite=overwrite,
        )
        done = cache.done_ids()
        n_new = n_failed = n_seen = 0

        def all_records():
            yield first
            yield from iterator

        for record in all_records():
            n_seen += 1
            split = str(record.meta.split or "unsplit")
            if record.id in done:
                continue
            try:
                waveform = None
                if audio_source == "waveform":
                    waveform = record_waveform(record)
                    if waveform is None:
                        raise ValueError(f"{record.source or record.id}: cannot re-read the waveform for the eGeMAPS "
                                         "features (source missing or its duration differs from the record); "
                                         "use --audio-source mel")
                cache.write(extract_record(record, split, glove, audio, visual, waveform))
                n_new += 1
            except (ValueError, RuntimeError, OSError) as exc:
                cache.record_failure(record.id, split, str(exc))
                n_failed += 1
            if progress and n_seen % 50 == 0:
                log.info(f"features: {n_seen} records seen, {n_new} extracted, {n_failed} failed "
                         f"({time.time() - started:.0f} s)")
    report = cache.finalize()
    if progress:
        log.info(f"features: done in {time.time() - started:.1f} s: {n_new} extracted, {n_failed} failed, "
                 f"{n_seen - n_new - n_failed} already cached; splits {report['splits']}")
    return cache


def iter_clip_cache(clip_cache: str | Path) -> Iterator[ClipRecord]:
    """ClipRecords of a preprocessed cache (all splits), each with ``meta.split`` from the manifest."""
    from mesm_core.data.cache import cache_entries, load_record

    root = Path(clip_cache)
    entries = cache_entries(root)
    if not entries:
        raise ValueError(f"{root}: the preprocessed cache has no finished records")
    for entry in entries:
        record = load_record(root / entry["file"])
        record.meta = record.meta.copy()
        record.meta.split = entry.get("split") or record.meta.split or "unsplit"
        if record.labels is None and entry.get("labels") is not None:
            record.labels = np.asarray(entry["labels"], np.float32)
        yield record
