"""Random-weight models and checkpoints small enough for tests; the ``models`` fixture.

Every model here uses the 2-layer random BERT text encoder (``text_model="tiny-random"``), so nothing
depends on downloaded weights or on the bundled demo checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import torch

TINY_TEXT = {"text_model": "tiny-random"}


def make_checkpoint(folder: Path, preset: str = "mesm_small", thresholds: list[float] | None = None,
                    thresholds_by_top_p: dict[float, list[float]] | None = None) -> Path:
    """A saved checkpoint of ``preset`` with seeded random weights (and optional per-class thresholds, one set or
    one per p)."""
    from mesm_core import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model(preset, **TINY_TEXT)
    save_checkpoint(model, folder, thresholds=thresholds, thresholds_by_top_p=thresholds_by_top_p)
    return folder
