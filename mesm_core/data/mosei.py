"""CMU-MOSEI sources: the raw CMU release and the authors' processed folders (docs/data.md,
"Datasets").

Raw: ``MOSEI_Raw/{Audio/WAV_16000/<vid>.wav, Videos/Full/Combined/<vid>.mp4,
Transcript/Combined/<vid>.txt, Labels/*.csv}``. Transcript lines are
``vid___clip___start___end___text``; the MTurk label CSVs have one row per annotator with
``Input.VIDEO_ID``, ``Input.CLIP`` and ``Answer.<emotion>`` intensities. An emotion is present iff
the annotators' intensities sum to > 0. Utterance ids are ``<video_id>_<clip>``; video ids may
contain ``_`` and start with ``-``, so the clip is what follows the *last* ``_``.

Processed: ``<root>/<utt>/{audio.wav, image_<i>.jpg}`` (frames already at 2 fps) plus
``<root>/meta.pkl`` = {utt: {text, label[6]}}.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from mesm_core.config import MOSEI_CLASSES
from mesm_core.data.errors import DataSourceError
from mesm_core.data.safe_pickle import load_safe_pickle
from mesm_core.data.scan import ClipJob, SourceScan, require_dir
from mesm_core.data.transcript import normalise_text

# Label CSV column for each class, in MOSEI_CLASSES order.
ANSWER_COLUMNS = ("Answer.anger", "Answer.disgust", "Answer.fear", "Answer.happiness", "Answer.sadness",
                  "Answer.surprise")
_IMAGE_NAME = re.compile(r"^image_(\d+)\.jpg$")
# The authors' MOSEI notebook stored frames at 2 fps already.
PROCESSED_FRAME_RATE = 2.0


def parse_mosei_id(utterance_id: str) -> tuple[str, str]:
    """``"-3g5yACwYnA_10"`` → (``"-3g5yACwYnA"``, ``"10"``); the clip is after the last ``_``."""
    video_id, sep, clip = utterance_id.rpartition("_")
    if not sep or not video_id or not clip:
        raise ValueError(f"not a MOSEI utterance id (<video_id>_<clip>): {utterance_id!r}")
    return video_id, clip


def mosei_id(video_id: str, clip: str | int) -> str:
    return f"{video_id}_{clip}"


def parse_transcript(path: str | Path) -> list[tuple[str, str, float, float, str]]:
    """``vid___clip___start___end___text`` lines → (video_id, clip, start, end, text)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("___", 4)
        if len(parts) < 5:
            continue
        video_id, clip, start, end, text = parts
        try:
            rows.append((video_id, clip.strip(), float(start), float(end), normalise_text(text)))
        except ValueError:
            continue
    return rows


def _number(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else 0.0
    except ValueError:
        return 0.0


def read_label_csvs(folder: str | Path) -> dict[str, np.ndarray]:
    """Sum the annotators' intensities per utterance over all ``*.csv`` in ``folder`` and binarise
    (present iff sum > 0) → {utt_id: float32 (6,)} in MOSEI_CLASSES order."""
    sums: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(ANSWER_COLUMNS), np.float64))
    files = sorted(Path(folder).glob("*.csv"))
    if not files:
        raise DataSourceError(f"{folder}: no label CSV files")
    for path in files:
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.DictReader(handle)
            fields = set(reader.fieldnames or ())
            needed = {"Input.VIDEO_ID", "Input.CLIP", *ANSWER_COLUMNS}
            if not needed <= fields:
                continue  # other CSVs (e.g. sentiment-only batches) are not emotion labels
            for row in reader:
                utt = mosei_id(row["Input.VIDEO_ID"].strip(), row["Input.CLIP"].strip())
                sums[utt] += np.array([_number(row[c]) for c in ANSWER_COLUMNS])
    return {utt: (total > 0).astype(np.float32) for utt, total in sums.items()}


def _find_raw_root(root: Path) -> Path:
    if (root / "MOSEI_Raw").is_dir():
        root = root / "MOSEI_Raw"
    if not (root / "Transcript" / "Combined").is_dir():
        raise DataSourceError(f"{root}: no Transcript/Combined folder; expected the CMU-MOSEI raw layout "
                              "{Audio/WAV_16000, Videos/Full/Combined, Transcript/Combined, Labels}")
    return root


def mosei_raw_source(root: str | Path) -> SourceScan:
    """Scan the raw CMU-MOSEI release → one job per labelled transcript segment."""
    root = _find_raw_root(require_dir(root, "MOSEI release"))
    labels = read_label_csvs(root / "Labels")
    scan = SourceScan("mosei", root, MOSEI_CLASSES, [])
    seen = set()
    for transcript in sorted((root / "Transcript" / "Combined").glob("*.txt")):
        video_id = transcript.stem
        video = root / "Videos" / "Full" / "Combined" / f"{video_id}.mp4"
        wav = root / "Audio" / "WAV_16000" / f"{video_id}.wav"
        for vid, clip, start, end, text in parse_transcript(transcript):
            utt = mosei_id(vid, clip)
            seen.add(utt)
            if utt not in labels:
                scan.skip("segment without labels", utt)
                continue
            if not video.is_file():
                scan.skip("video missing", str(video))
                continue
            scan.jobs.append(ClipJob(
                id=utt, labels=labels[utt], video=str(video), audio=str(wav) if wav.is_file() else None,
                transcript=text, start=start, end=end, audio_channel=0,
                meta={"dataset": "mosei", "video_id": vid, "clip": clip},
            ))
    for utt in sorted(labels.keys() - seen):
        scan.skip("labels without a transcript segment", utt)
    return scan


def _find_processed_root(root: Path) -> Path:
    if not (root / "meta.pkl").is_file() and (root / "MOSEI_RAW_PROCESSED" / "meta.pkl").is_file():
        root = root / "MOSEI_RAW_PROCESSED"
    if not (root / "meta.pkl").is_file():
        raise DataSourceError(f"{root}: meta.pkl not found (expected the authors' MOSEI_RAW_PROCESSED folder)")
    return root


def mosei_processed_source(root: str | Path, frame_rate: float = PROCESSED_FRAME_RATE) -> SourceScan:
    """Scan the authors' processed MOSEI folders. Frames are at ``frame_rate`` (2 fps) already, so at
    500 ms every image is used (the reference's loader subsampled them again by 15)."""
    root = _find_processed_root(require_dir(root, "processed MOSEI folder"))
    meta = load_safe_pickle(root / "meta.pkl")
    if not isinstance(meta, dict):
        raise DataSourceError(f"{root / 'meta.pkl'}: expected a dict of utterance id → info, got {type(meta).__name__}")
    scan = SourceScan("mosei-processed", root, MOSEI_CLASSES, [])
    folders = {p.name for p in root.iterdir() if p.is_dir()}
    for utt in sorted(folders - meta.keys()):
        scan.skip("folder without a meta.pkl entry", utt)
    for utt in sorted(meta):
        info = meta[utt]
        folder = root / utt
        if utt not in folders:
            scan.skip("meta.pkl entry without a folder", utt)
            continue
        label = np.asarray(info.get("label", ()), dtype=np.float32).reshape(-1)
        if label.shape != (len(MOSEI_CLASSES),):
            scan.skip("label is not a 6-vector", utt)
            continue
        frames = {}
        for path in folder.iterdir():
            match = _IMAGE_NAME.match(path.name)
            if match:
                frames[int(match.group(1))] = str(path)
        audio = folder / "audio.wav"
        if not audio.is_file():
            scan.skip("audio.wav missing", utt)
            continue
        scan.jobs.append(ClipJob(
            id=utt, labels=(label > 0).astype(np.float32), images=[frames[i] for i in sorted(frames)],
            image_rate=frame_rate, audio=str(audio), transcript=normalise_text(info.get("text", "")),
            audio_channel=0, meta={"dataset": "mosei-processed"},
        ))
    return scan


__all__ = ["ANSWER_COLUMNS", "parse_mosei_id", "mosei_id", "parse_transcript", "read_label_csvs",
           "mosei_raw_source", "mosei_processed_source"]
