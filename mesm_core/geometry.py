"""Feature-map shapes of the VGG-style encoder as plain arithmetic (no torch, no model).

The models size their layers with it and the analytic FLOPs count (``mesm_core.flops``) walks the same
shapes, so both live below the models: ``flops`` needs no ``models`` import (docs/architecture.md).
"""

from __future__ import annotations

__all__ = ["encoder_geometry"]


def encoder_geometry(
    input_hw: tuple[int, int], block_channels: tuple[int, ...], pool_after: tuple[int, ...], stem_channels: int
) -> list[tuple[int, int, int]]:
    """(C, H, W) after the stem (conv + 2×2 max-pool) and after each VGG block, for an input of size
    ``input_hw``; a block in ``pool_after`` halves H and W."""
    h, w = input_hw[0] // 2, input_hw[1] // 2
    shapes = [(stem_channels, h, w)]
    for index, c in enumerate(block_channels):
        if index in pool_after:
            h, w = h // 2, w // 2
        shapes.append((c, h, w))
    return shapes
