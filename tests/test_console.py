"""The core logs; the CLIs show those lines on their console, as plain text; nothing shows otherwise."""

from __future__ import annotations

import logging

from mesm_core.console import log_to_console


def test_library_lines_reach_the_console_only_once_a_cli_asks(capsys):
    log = logging.getLogger("mesm_core.training.loop")
    root = logging.getLogger("mesm_core")
    saved = (root.level, list(root.handlers))
    try:
        root.setLevel(logging.NOTSET)  # as in a fresh process: an earlier in-process CLI test configured it
        root.handlers[:] = []
        log.info("quiet")
        assert capsys.readouterr().out == ""
        log_to_console()
        log_to_console()  # again: still one handler
        log.info("epoch 1: train loss 0.5000")
        assert capsys.readouterr().out == "epoch 1: train loss 0.5000\n"
        log_to_console(stream="stderr")
        log.info("features: done")
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("", "features: done\n")
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
