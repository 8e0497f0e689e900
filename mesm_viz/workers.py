"""Thread pools for the studio's background work, at a lower CPU priority than the slider.

A slider move is tens of milliseconds of work that a user waits for; preparing a 4K clip is seconds. On
shared cores the kernel splits CPU time by priority (``nice``), so each pool's threads lower their own
priority when they start (Linux: ``setpriority`` on the thread id; threads FFmpeg and torch start from them
inherit it). Slider moves run in Gradio's own threads at the process's priority.

Levels (``nice``): clip preparation +3 (another user's analysis yields to a slider move about 2:1), a large
clip's preparation +8 (a 4K clip yields to a short clip and to slider moves), the display frames, the preview and
the cost curve's sweep +10 (they are not waited for).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

__all__ = ["PREPARE_NICE", "HEAVY_NICE", "BACKGROUND_NICE", "niced_pool", "background"]

PREPARE_NICE = 3
HEAVY_NICE = 8
BACKGROUND_NICE = 10


def _lower_priority(nice: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError, PermissionError) as exc:  # not Linux, or not allowed: run at normal priority
        log.debug("thread priority unchanged: %s", exc)


def niced_pool(workers: int, nice: int, name: str) -> ThreadPoolExecutor:
    """A pool of ``workers`` threads that run at ``nice`` (a higher number is a lower priority)."""
    return ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name, initializer=_lower_priority,
                              initargs=(nice,))


_BACKGROUND: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


def background() -> ThreadPoolExecutor:
    """The process's pool for work nobody waits on at once (preview, sweep): two threads at nice +10."""
    global _BACKGROUND
    with _LOCK:
        if _BACKGROUND is None:
            _BACKGROUND = niced_pool(2, BACKGROUND_NICE, "mesm-background")
        return _BACKGROUND
