"""What the studio tells people when something goes wrong: what to do first, the detail one click away.

Errors are classified by type (``mesm_core.errors``): an :class:`~mesm_core.errors.InputError` is the
user's to fix and gets advice in their terms; anything else is a bug and says so. The text never shows a
server path (Gradio keeps uploads under a temporary folder the user never chose), an errno, or a
configuration field name the page offers no way to set.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from mesm_core.checkpoint import CheckpointError
from mesm_core.data.errors import (
    ClipError,
    ClipTooLongError,
    EmptyClipError,
    EmptyTranscriptError,
    FileTooLargeError,
    NoAudioStreamError,
    NoVideoStreamError,
    UnreadableMediaError,
)
from mesm_core.errors import FileInputError, InputError, MissingResourceError

__all__ = ["ErrorText", "explain_error", "plain_text"]

# An absolute path (POSIX or Windows), possibly quoted: replaced by its last part.
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s'\"<>|:,;()\[\]\\/]+){2,}")
_ERRNO = re.compile(r"\[Errno\s*-?\d+\]\s*|\berrno\s*-?\d+\b:?\s*", re.IGNORECASE)
_CONFIG_FIELD = re.compile(r"\s*\((?:DataConfig|ModelConfig|TrainConfig|RunConfig)\.[A-Za-z_]+\)|"
                           r"(?:DataConfig|ModelConfig|TrainConfig|RunConfig)\.([A-Za-z_]+)")


def plain_text(text: str) -> str:
    """``text`` without server paths (each becomes its file name), errno numbers or config field names."""
    text = _ERRNO.sub("", str(text))
    text = _PATH.sub(lambda m: re.split(r"[\\/]", m.group(0))[-1], text)
    text = _CONFIG_FIELD.sub(lambda m: m.group(1).replace("_", " ") if m.group(1) else "", text)
    return re.sub(r"\s{2,}", " ", text).replace(" ,", ",").strip()


@dataclass(frozen=True)
class ErrorText:
    """One error for people: ``headline`` says what to do, ``detail`` what exactly went wrong."""

    headline: str
    detail: str = ""

    def markdown(self) -> str:
        """The status line: the headline, and the detail behind a click (an HTML ``<details>``)."""
        text = f"**Problem:** {self.headline}"
        if self.detail:
            text += (f"\n\n<details><summary>Technical detail</summary>\n\n{html.escape(self.detail)}\n\n"
                     "</details>")
        return text

    def __str__(self) -> str:
        return self.headline + (f" ({self.detail})" if self.detail else "")


def _file_name(exc: FileInputError) -> str:
    return Path(exc.path).name if exc.path and exc.path != "<memory>" else "this file"


def explain_error(exc: BaseException, *, max_seconds: float | None = None, max_upload_mb: float | None = None) -> ErrorText:
    """The :class:`ErrorText` for an exception raised while serving a request.

    ``max_seconds`` / ``max_upload_mb``: the studio's limits, named in the advice for a clip that is too
    long or too large.
    """
    detail = plain_text(getattr(exc, "reason", None) or str(exc))
    if isinstance(exc, EmptyTranscriptError):
        return ErrorText("Transcript needed: type the words spoken in the clip. MESM's attention is asked by the "
                         "text what to look at, so it cannot run without them.")
    if isinstance(exc, ClipError):
        name = _file_name(exc)
        if isinstance(exc, UnreadableMediaError):
            advice = (f"“{name}” could not be read as a video. Upload a video file that plays in a media player "
                      "(MP4, MOV, AVI, MKV, WebM…); if it does, it may be cut short: export it again.")
        elif isinstance(exc, NoVideoStreamError):
            advice = f"“{name}” has no picture track. Upload a video of the speaker's face, with its sound."
        elif isinstance(exc, NoAudioStreamError):
            advice = (f"“{name}” has no sound track. The model listens to the voice as well as it looks at the "
                      "face: upload the clip with its audio.")
            detail = "the file has no audio stream"  # the pipeline's own text offers a separate audio file
        elif isinstance(exc, ClipTooLongError):
            limit = f" of {max_seconds:g} s" if max_seconds else ""
            advice = f"“{name}” is longer than the limit{limit}. Trim it to one utterance and upload it again."
        elif isinstance(exc, FileTooLargeError):
            limit = f" of {max_upload_mb:g} MB" if max_upload_mb else ""
            advice = f"“{name}” is larger than the upload limit{limit}. Trim or compress it and upload it again."
        elif isinstance(exc, EmptyClipError):
            advice = f"“{name}” has nothing to analyse (no frames or zero length). Upload a clip a second or longer."
        else:
            advice = f"“{name}” cannot be analysed. Try another clip."
        return ErrorText(advice, detail)
    if isinstance(exc, CheckpointError):
        return ErrorText("This checkpoint cannot be loaded. Pick one from the list, or give a folder holding "
                         "config.json and model.safetensors.", detail)
    if isinstance(exc, MissingResourceError):
        return ErrorText("Something this needs is not installed on the server; the detail says what.", detail)
    if isinstance(exc, InputError):
        return ErrorText(plain_text(str(exc)))
    return ErrorText("Something went wrong inside the studio (a bug, not your input). Try again or another clip; "
                     "the server log has the details.", f"{type(exc).__name__}: {detail}")
