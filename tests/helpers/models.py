"""Random-weight models and checkpoints small enough for tests; the ``models`` fixture.

Every model here uses the 2-layer random BERT text encoder (``text_model="tiny-random"``), so nothing
depends on downloaded weights or on the bundled demo checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import torch

TINY_TEXT = {"text_model": "tiny-random"}


# A keep floor that sets the masks of random weights at the deployed p (their attention is flat, so the nucleus
# keeps about p of the cells): the studio's floor explanation and the paper's-rule switch have something to show.
BINDING_FLOORS = {"min_keep_visual": 0.8, "min_keep_audio": 0.2}


def make_checkpoint(folder: Path, preset: str = "mesm_small", thresholds: list[float] | None = None,
                    thresholds_by_top_p: dict[float, list[float]] | None = None, **overrides) -> Path:
    """A saved checkpoint of ``preset`` with seeded random weights (and optional per-class thresholds, one set or
    one per p); ``overrides``: model-config fields (e.g. ``**BINDING_FLOORS``)."""
    from mesm_core import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model(preset, **TINY_TEXT, **overrides)
    save_checkpoint(model, folder, thresholds=thresholds, thresholds_by_top_p=thresholds_by_top_p)
    return folder
