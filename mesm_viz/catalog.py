"""What the studio offers to pick: checkpoint folders (bundled and user-given), the sample clips, and the
ground-truth cue files of clips that have them."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from mesm_core.checkpoint import is_checkpoint_dir
from mesm_core.data.transcript import resolve_transcript
from mesm_core.resources import CHECKPOINTS_DIR, REPO_ROOT, SAMPLES_DIR

__all__ = ["REPO_ROOT", "BUNDLED_CHECKPOINTS", "SAMPLES_DIR", "discover_checkpoints", "bundled_checkpoints",
           "resolve_default_checkpoint", "checkpoint_label", "sample_clips", "sample_cue_files", "sample_transcript",
           "find_cue_file"]

BUNDLED_CHECKPOINTS = CHECKPOINTS_DIR  # absent outside a checkout: then no bundled checkpoints and no samples


def discover_checkpoints(*roots: str | os.PathLike) -> list[str]:
    """Checkpoint folders in ``roots``: a root that is a checkpoint, its sub-folders that are, and their
    ``best/`` (training output layout). Sorted, de-duplicated, as absolute path strings."""
    found: list[str] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for folder in [root] + sorted(p for p in root.iterdir() if p.is_dir()):
            if is_checkpoint_dir(folder):
                found.append(str(folder.resolve()))
            elif is_checkpoint_dir(folder / "best"):
                found.append(str((folder / "best").resolve()))
    return list(dict.fromkeys(found))


def bundled_checkpoints() -> list[str]:
    return discover_checkpoints(BUNDLED_CHECKPOINTS)


def resolve_default_checkpoint(path: str | os.PathLike) -> str:
    """``path`` (or its ``best/``) as an absolute path when it is a checkpoint, else ``path`` unchanged
    (loading it later reports what is wrong)."""
    path = Path(path)
    for folder in (path, path / "best"):
        if is_checkpoint_dir(folder):
            return str(folder.resolve())
    return str(path)


def checkpoint_label(path: str) -> str:
    """The picker's label: the run name (the parent of ``best``/``last``), marked when bundled."""
    folder = Path(path)
    name = folder.parent.name if folder.name in ("best", "last") else folder.name
    try:
        bundled = folder.resolve().is_relative_to(BUNDLED_CHECKPOINTS.resolve())
    except OSError:
        bundled = False
    return f"{name} (bundled)" if bundled else f"{name} — {folder}"


def sample_clips(folder: str | os.PathLike = SAMPLES_DIR) -> list[tuple[str, str]]:
    """``(video, transcript)`` for each sample clip; the transcript comes from the ``.txt`` sidecar."""
    folder = Path(folder)
    return [(str(video), resolve_transcript(video).text) for video in sorted(folder.glob("*.mp4"))] \
        if folder.is_dir() else []


@lru_cache(maxsize=8)
def _sample_index(samples_json: str, mtime: float) -> dict[str, str]:
    try:
        entries = json.loads(Path(samples_json).read_text(encoding="utf-8")).get("samples", [])
    except (OSError, ValueError):
        return {}
    folder = Path(samples_json).parent
    return {e["sha1"]: str(folder / e["cue_file"]) for e in entries if e.get("sha1") and e.get("cue_file")}


def sample_cue_files(folder: str | os.PathLike = SAMPLES_DIR) -> dict[str, str]:
    """Video SHA-1 → cue file of each sample clip that has one (from ``samples.json``). An upload is a
    copy under another name, so a sample is recognised by its content."""
    index = Path(folder) / "samples.json"
    return _sample_index(str(index), index.stat().st_mtime) if index.is_file() else {}


def sample_transcript(video_sha1: str, folder: str | os.PathLike = SAMPLES_DIR) -> tuple[str, str] | None:
    """(transcript, file name) of the sample clip with this content (an upload of a sample is a copy
    under another name), from the ``.txt`` beside it; None for other clips."""
    if not video_sha1:
        return None
    index = Path(folder) / "samples.json"
    try:
        entries = json.loads(index.read_text(encoding="utf-8")).get("samples", [])
    except (OSError, ValueError):
        return None
    for entry in entries:
        video = Path(folder) / str(entry.get("video") or entry.get("file") or "")
        if entry.get("sha1") == video_sha1 and video.is_file():
            text = resolve_transcript(video).text
            return (text, video.name) if text else None
    return None


def find_cue_file(video: str | os.PathLike, video_sha1: str, folder: str | os.PathLike = SAMPLES_DIR) -> str | None:
    """The ground-truth cue file of a clip, if it has one: a sample clip's (by content), else the
    synthetic dataset layout's ``cues/<stem>.npz`` beside the video or beside its folder
    (``SRC/videos/<id>.mp4`` → ``SRC/cues/<id>.npz``). None for clips without known cues."""
    found = sample_cue_files(folder).get(video_sha1)
    if found and Path(found).is_file():
        return found
    video = Path(video)
    for candidate in (video.parent / "cues" / f"{video.stem}.npz", video.parent.parent / "cues" / f"{video.stem}.npz"):
        if candidate.is_file():
            return str(candidate)
    return None
