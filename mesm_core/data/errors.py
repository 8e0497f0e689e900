"""Errors raised by the data pipeline.

Every per-clip problem is a :class:`ClipError` (a ``ValueError``) that names the file and the reason,
so a batch job can record ``str(error)`` in its manifest and carry on with the next clip.
"""

from __future__ import annotations

from pathlib import Path


class ClipError(ValueError):
    """A clip that cannot be turned into model inputs. ``str(e)`` is ``"<file>: <reason>"``."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = str(path) if path is not None else "<memory>"
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep (path, reason) when errors cross process boundaries
        return (type(self), (self.path, self.reason))


class UnreadableMediaError(ClipError):
    """The container cannot be opened or decoded (corrupt, truncated, not a media file)."""


class NoVideoStreamError(ClipError):
    """The file has no video stream."""


class NoAudioStreamError(ClipError):
    """Neither the video nor a separate audio file provides an audio stream."""


class EmptyClipError(ClipError):
    """The clip (or the requested start/end window) has zero duration or no decodable content."""


class ClipTooLongError(ClipError):
    """The clip is longer than ``DataConfig.max_duration_s``."""


class FileTooLargeError(ClipError):
    """The file is bigger than ``DataConfig.max_file_mb``."""


class EmptyTranscriptError(ClipError):
    """The transcript is empty and ``require_transcript=True``."""


class SilentAudioError(ClipError):
    """The audio is all zeros and ``require_sound=True`` (otherwise silence is only flagged)."""


class NoFaceError(ClipError):
    """No face was detected in any sampled frame and ``require_face=True`` (otherwise only flagged)."""


class DataSourceError(ValueError):
    """A dataset source (root folder, labels file, split lists) is missing or malformed."""


class _FileError(ValueError):
    """An error about one file: message "<file>: <reason>", picklable across worker processes."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


class CorruptRecordError(_FileError):
    """A cached record file cannot be read back; names the file."""


class UnsafePickleError(_FileError):
    """A pickle file asked for a class outside the allow-list (see ``safe_pickle``)."""


__all__ = [
    "ClipError",
    "UnreadableMediaError",
    "NoVideoStreamError",
    "NoAudioStreamError",
    "EmptyClipError",
    "ClipTooLongError",
    "FileTooLargeError",
    "EmptyTranscriptError",
    "SilentAudioError",
    "NoFaceError",
    "DataSourceError",
    "CorruptRecordError",
    "UnsafePickleError",
]
