"""VGG-style CNN shared by faces (3 channels) and mel-spectrogram chunks (1 channel).

Topology (docs/models.md, "FE2E", encoders): stem conv k×k → BN → ReLU → max-pool 2, then VGG blocks of
2×[conv3×3 (bias) → BN → ReLU], each optionally followed by a 2×2 max-pool. Not torchvision's
VGG11 and never pretrained. Paper sizes: 48×48 faces → 512×3×3; 128×32 chunks → 512×8×2.
"""

from __future__ import annotations

import torch
from torch import nn

from mesm_core.geometry import encoder_geometry  # re-exported: the models size their layers with it

__all__ = ["VGGBlock", "VGGEncoder", "FlattenProjection", "encoder_geometry"]


class VGGBlock(nn.Sequential):
    """2×[conv3×3 (bias) → BN → ReLU], optionally followed by a 2×2 max-pool."""

    def __init__(self, in_channels: int, out_channels: int, pool: bool) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers += [nn.Conv2d(c_in, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)
        self.pool = pool


class VGGEncoder(nn.Module):
    """Stem plus the first ``len(block_channels)`` VGG blocks.

    ``forward``: (N, in_channels, H, W) normalised input → (N, block_channels[-1], H', W').
    MESM builds it with only the dense low-level blocks and continues with sparse blocks.
    """

    def __init__(
        self,
        in_channels: int,
        stem_channels: int,
        stem_kernel: int,
        block_channels: tuple[int, ...],
        pool_after: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, stem_kernel, padding=stem_kernel // 2),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        blocks = []
        c_in = stem_channels
        for index, c_out in enumerate(block_channels):
            blocks.append(VGGBlock(c_in, c_out, pool=index in pool_after))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class FlattenProjection(nn.Sequential):
    """Flatten the CNN map of one frame/chunk into one token: Linear(C·H·W, hidden) → ReLU → Linear(hidden, d)."""

    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__(nn.Flatten(1), nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features))
