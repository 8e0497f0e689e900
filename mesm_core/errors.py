"""The root of every error mesm raises on purpose, in two kinds a caller can act on.

::

    MesmError
    ├── InputError            the user can fix it: a bad clip, an empty transcript, a wrong checkpoint,
    │   │                     a malformed dataset or cache. The app shows the message; CLIs exit with 2.
    │   ├── FileInputError    ... about one file: ``str(e) == "<file>: <reason>"``, ``e.path``, ``e.reason``
    │   └── CheckpointError   ... a checkpoint that is missing, malformed or does not fit its model
    └── MissingResourceError  something optional is not installed or not downloaded (a text model, GloVe,
                              the MediaPipe face model). Installing it fixes it; the input was fine.

Every concrete class also keeps the builtin base it had before this root existed (``ValueError`` or
``RuntimeError``), so ``except ValueError`` around older call sites still catches it. Classify by
``isinstance`` against these roots, never by class name.

The concrete classes live beside the code that raises them, except :class:`CheckpointError`: both the
checkpoint format (``mesm_core.checkpoint``) and the weight mapping of a warm start
(``mesm_core.models.warm_start``, which must not import the format) raise it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MesmError", "InputError", "FileInputError", "CheckpointError", "MissingResourceError"]


class MesmError(Exception):
    """Base of the errors mesm raises deliberately (anything else is a bug)."""


class InputError(MesmError):
    """Input the user can fix: the message says what is wrong and, where possible, what to do."""


class FileInputError(InputError):
    """An input error about one file. ``str(e)`` is ``"<file>: <reason>"``; picklable across processes."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = str(path) if path is not None else "<memory>"
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep (path, reason) when errors cross process boundaries
        return (type(self), (self.path, self.reason))


class CheckpointError(InputError, RuntimeError):
    """A checkpoint is missing, malformed or does not match the model it describes (message names the file)."""


class MissingResourceError(MesmError):
    """An optional resource (package, model file, pretrained weights) is not available here."""
