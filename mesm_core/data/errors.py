"""Errors raised by the data pipeline (all :class:`~mesm_core.errors.InputError` s).

Every per-clip problem is a :class:`ClipError` (also a ``ValueError``) that names the file and the
reason, so a batch job can record ``str(error)`` in its manifest and carry on with the next clip.
"""

from __future__ import annotations

from mesm_core.errors import FileInputError, InputError


class ClipError(FileInputError, ValueError):
    """A clip that cannot be turned into model inputs. ``str(e)`` is ``"<file>: <reason>"``."""


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


class DataSourceError(InputError, ValueError):
    """A dataset source (root folder, labels file, split lists) is missing or malformed."""


class CorruptRecordError(FileInputError, ValueError):
    """A cached record file cannot be read back; names the file."""


class UnsafePickleError(FileInputError, ValueError):
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
