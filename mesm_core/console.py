"""Console output of the command-line tools.

Library modules never print: they log through ``logging.getLogger(__name__)`` (under the ``mesm_core``
logger), so a program embedding them (the studio, the tests) hears nothing unless it configures logging.
A ``python -m mesm_core.…`` entry point calls :func:`log_to_console` first, and those lines appear on its
console exactly as printed text (the message alone, one per line, flushed).
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

__all__ = ["log_to_console"]

_MARK = "_mesm_console"


class _ConsoleHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` / ``sys.stderr`` is at the moment of each record (so a caller that
    redirects them, pytest's capsys included, captures the lines)."""

    def __init__(self, stream: Literal["stdout", "stderr"]) -> None:
        super().__init__()
        self.stream_name = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = getattr(sys, self.stream_name)
        super().emit(record)


def log_to_console(level: int = logging.INFO, stream: Literal["stdout", "stderr"] = "stdout") -> None:
    """Show the ``mesm_core`` log records of ``level`` and above on ``stream``, as bare messages. Calling it
    again replaces the handler it installed (never adds a second one)."""
    logger = logging.getLogger("mesm_core")
    for handler in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(handler)
    handler = _ConsoleHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    setattr(handler, _MARK, True)
    logger.addHandler(handler)
    logger.setLevel(level)
