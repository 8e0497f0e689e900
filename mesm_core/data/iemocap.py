"""IEMOCAP sources: the raw USC release and the authors' processed folders (docs/data.md,
"Datasets").

Raw: ``IEMOCAP_full_release/Session{1..5}/dialog/{avi/DivX/<dialog>.avi, wav/<dialog>.wav,
transcriptions/<dialog>.txt, EmoEvaluation/<dialog>.txt}``. Each utterance is cut from its dialog by
the EmoEvaluation times; the speaker's side of the split-screen frame and the matching channel
of the stereo dialog wav follow the reference rule (:func:`speaker_side`).

Processed: ``<root>/<dialog>/<utt>/{audio_L.wav, audio_R.wav, image_L_<i>.jpg, image_R_<i>.jpg}``
(frames at the source rate, ~30 fps, already split into halves and centre-cropped to 224×224)
plus ``<root>/meta.pkl`` = {utt: {start_time, end_time, label, text, sr, fps}}.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from mesm_core.config import IEMOCAP_CLASSES
from mesm_core.data.errors import DataSourceError
from mesm_core.data.safe_pickle import load_safe_pickle
from mesm_core.data.scan import ClipJob, SourceScan, one_hot, require_dir
from mesm_core.data.transcript import normalise_text

_EMO_LINE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[([^\]]*)\]")
_TRANSCRIPT_LINE = re.compile(r"^(\S+)\s+\[[^\]]*\]:\s?(.*)$")
_IMAGE_NAME = re.compile(r"^image_([LR])_(\d+)\.jpg$")

# The reference centre-crops each half of the 480×720 frame to 224×224 (rows 128:352).
REFERENCE_CROP_SIDE = 224


def parse_emo_evaluation(path: str | Path) -> list[tuple[float, float, str, str, tuple[float, ...]]]:
    """``[start - end]\\tUTT_ID\\tLABEL\\t[v, a, d]`` lines → (start, end, id, label, vad) tuples."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        match = _EMO_LINE.match(line.strip())
        if match:
            start, end, utt, label, vad = match.groups()
            try:
                values = tuple(float(v) for v in vad.split(",") if v.strip())
            except ValueError:
                values = ()
            rows.append((float(start), float(end), utt, label, values))
    return rows


def parse_transcription(path: str | Path) -> dict[str, str]:
    """``UTT_ID [t1-t2]: text`` lines → {id: text}. The text is everything after the first "]:".

    (The reference kept what follows the *last* ':' and so lost text containing a colon.)
    """
    texts = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        match = _TRANSCRIPT_LINE.match(line.strip())
        if match:
            texts[match.group(1)] = normalise_text(match.group(2))
    return texts


def speaker_side(utterance_id: str) -> tuple[str, int]:
    """Reference rule: ("left", channel 0) iff the session letter (Ses01F → F) equals the first
    letter of the utterance suffix (…_F000 → F), else ("right", 1)."""
    parts = utterance_id.split("_")
    if len(parts) < 2 or not parts[0] or not parts[-1]:
        raise ValueError(f"not an IEMOCAP utterance id: {utterance_id!r}")
    return ("left", 0) if parts[0][-1] == parts[-1][0] else ("right", 1)


def reference_half_crop(height: int, width: int, side: str, crop_side: int = REFERENCE_CROP_SIDE) -> tuple[int, int, int, int]:
    """Pixel box of the reference's per-speaker view: the left/right half of the frame, centre-cropped
    to ``crop_side``² (rows 128:352, columns 68:292 of a 480×360 half); smaller frames keep what fits."""
    half = width // 2
    x0 = 0 if side == "left" else half
    side_w = min(crop_side, half)
    side_h = min(crop_side, height)
    x1 = x0 + (half - side_w) // 2
    y1 = (height - side_h) // 2
    return (x1, y1, x1 + side_w, y1 + side_h)


def _find_release_root(root: Path) -> Path:
    if (root / "IEMOCAP_full_release").is_dir():
        root = root / "IEMOCAP_full_release"
    if not sorted(root.glob("Session*/dialog")):
        raise DataSourceError(f"{root}: no Session*/dialog folders; expected the IEMOCAP_full_release layout "
                              "Session1..5/dialog/{avi/DivX, wav, transcriptions, EmoEvaluation}")
    return root


def iemocap_raw_source(root: str | Path, classes: tuple[str, ...] = IEMOCAP_CLASSES,
                       reference_crop: bool = True) -> SourceScan:
    """Scan the raw IEMOCAP release → one job per utterance whose label is in ``classes``.

    ``reference_crop`` keeps the reference's 224×224 centre crop of the speaker's half; otherwise
    the whole half frame goes to the face detector.
    """
    root = _find_release_root(require_dir(root, "IEMOCAP release"))
    scan = SourceScan("iemocap", root, tuple(classes), [])
    for emo_file in sorted(root.glob("Session*/dialog/EmoEvaluation/*.txt")):
        dialog = emo_file.stem
        dialog_dir = emo_file.parent.parent
        video = dialog_dir / "avi" / "DivX" / f"{dialog}.avi"
        wav = dialog_dir / "wav" / f"{dialog}.wav"
        transcription = dialog_dir / "transcriptions" / f"{dialog}.txt"
        texts = parse_transcription(transcription) if transcription.is_file() else {}
        for start, end, utt, label, vad in parse_emo_evaluation(emo_file):
            if label not in scan.classes:
                scan.skip(f"label {label!r} not in the classes", utt)
                continue
            if not video.is_file():
                scan.skip("dialog video missing", str(video))
                continue
            if not wav.is_file():
                scan.skip("dialog wav missing", str(wav))
                continue
            if utt not in texts:
                scan.warn("no transcription line (empty transcript)", utt)
            side, channel = speaker_side(utt)
            crop = functools.partial(reference_half_crop, side=side) if reference_crop else side
            scan.jobs.append(ClipJob(
                id=utt, labels=one_hot(label, scan.classes), video=str(video), audio=str(wav),
                transcript=texts.get(utt, ""), start=start, end=end, crop=crop, audio_channel=channel,
                meta={"dataset": "iemocap", "dialog": dialog, "label": label, "vad": list(vad), "side": side},
            ))
    return scan


def _find_processed_root(root: Path) -> Path:
    if not (root / "meta.pkl").is_file() and (root / "IEMOCAP_RAW_PROCESSED" / "meta.pkl").is_file():
        root = root / "IEMOCAP_RAW_PROCESSED"
    if not (root / "meta.pkl").is_file():
        raise DataSourceError(f"{root}: meta.pkl not found (expected the authors' IEMOCAP_RAW_PROCESSED folder)")
    return root


def iemocap_processed_source(root: str | Path, classes: tuple[str, ...] = IEMOCAP_CLASSES,
                             default_fps: float = 30.0) -> SourceScan:
    """Scan the authors' processed IEMOCAP folders (+ meta.pkl, read with the safe unpickler)."""
    root = _find_processed_root(require_dir(root, "processed IEMOCAP folder"))
    meta = load_safe_pickle(root / "meta.pkl")
    if not isinstance(meta, dict):
        raise DataSourceError(f"{root / 'meta.pkl'}: expected a dict of utterance id → info, got {type(meta).__name__}")
    scan = SourceScan("iemocap-processed", root, tuple(classes), [])
    folders = {p.name: p for p in root.glob("*/*") if p.is_dir()}
    for utt in sorted(folders.keys() - meta.keys()):
        scan.skip("folder without a meta.pkl entry", utt)
    for utt in sorted(meta):
        info = meta[utt]
        label = str(info.get("label", ""))
        if label not in scan.classes:
            scan.skip(f"label {label!r} not in the classes", utt)
            continue
        folder = folders.get(utt)
        if folder is None:
            scan.skip("meta.pkl entry without a folder", utt)
            continue
        side, _ = speaker_side(utt)
        letter = "L" if side == "left" else "R"
        frames = {}
        for path in folder.iterdir():
            match = _IMAGE_NAME.match(path.name)
            if match and match.group(1) == letter:
                frames[int(match.group(2))] = str(path)
        images = [frames[i] for i in sorted(frames)]
        if frames and sorted(frames) != list(range(len(frames))):
            scan.warn("image numbering has gaps (frames kept in order)", utt)
        audio = folder / f"audio_{letter}.wav"
        if not audio.is_file():
            scan.skip(f"audio_{letter}.wav missing", utt)
            continue
        fps = float(info.get("fps") or default_fps)
        duration = None
        if info.get("start_time") is not None and info.get("end_time") is not None:
            duration = float(info["end_time"]) - float(info["start_time"])
        scan.jobs.append(ClipJob(
            id=utt, labels=one_hot(label, scan.classes), images=images, image_rate=fps, audio=str(audio),
            transcript=normalise_text(info.get("text", "")), duration=duration,
            meta={"dataset": "iemocap-processed", "label": label, "side": side},
        ))
    return scan


__all__ = ["parse_emo_evaluation", "parse_transcription", "speaker_side", "reference_half_crop",
           "iemocap_raw_source", "iemocap_processed_source"]
