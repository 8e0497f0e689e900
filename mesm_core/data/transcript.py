"""A clip's transcript: given, or read from a ``.txt`` / ``.srt`` file beside the video; always on one line.

:func:`resolve_transcript` is the one rule for where the words come from. The data pipeline
(``preprocess_clip``), the :class:`~mesm_core.inference.Predictor` and the studio's sample list all use
it, so a clip reads the same words everywhere. Dataset sources that store the text themselves call
:func:`normalise_text` only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mesm_core.data.errors import UnreadableMediaError

__all__ = ["Transcript", "resolve_transcript", "find_transcript", "read_transcript_file", "normalise_text"]

_SRT_TIMING = re.compile(r"^\d\d:\d\d:\d\d[,.]\d+\s*-->\s*\d\d:\d\d:\d\d[,.]\d+")


@dataclass(frozen=True)
class Transcript:
    """The words of a clip and where they came from."""

    text: str     # whitespace collapsed to single spaces; "" when there are none
    source: str   # "given", "none", or the path of the sidecar file read (what ``meta.transcript_source`` records)


def normalise_text(text: str) -> str:
    """Collapse whitespace (newlines included) to single spaces."""
    return " ".join(str(text).split())


def read_transcript_file(path: str | Path) -> str:
    """Text of a ``.txt`` (as is) or ``.srt`` (cue numbers and timings removed) file, on one line.

    Raises :class:`~mesm_core.data.errors.UnreadableMediaError` naming the file when it cannot be read.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise UnreadableMediaError(path, f"cannot read transcript ({exc})") from exc
    if path.suffix.lower() == ".srt":
        lines = [ln for ln in text.splitlines()
                 if ln.strip() and not ln.strip().isdigit() and not _SRT_TIMING.match(ln.strip())]
        text = " ".join(lines)
    return normalise_text(text)


def find_transcript(video: str | os.PathLike) -> Path | None:
    """``<stem>.txt`` or ``<stem>.srt`` beside the video, if present (``.txt`` first)."""
    video = Path(video)
    for suffix in (".txt", ".srt"):
        candidate = video.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def resolve_transcript(video: str | os.PathLike | None, transcript: str | None = None) -> Transcript:
    """The given ``transcript``, else the sidecar beside ``video`` (:func:`find_transcript`), else "".

    A given transcript wins even when it is empty (an explicit "" means "no words"); ``video=None``
    (image sequences) looks for no sidecar.
    """
    if transcript is None and video is not None:
        found = find_transcript(video)
        if found is not None:
            return Transcript(read_transcript_file(found), str(found))
        return Transcript("", "none")
    return Transcript(normalise_text(transcript or ""), "given" if transcript is not None else "none")
