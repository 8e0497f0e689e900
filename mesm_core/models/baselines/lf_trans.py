"""LF-TRANS: late-fusion Transformer baseline (reference ``src/models/baselines/lf_transformer.py``).

Per modality: a Transformer encoder with d_model = feature size (PyTorch defaults: FFN 2048,
dropout 0.1, ReLU, post-LN), a learned CLS vector prepended and **no positional encoding** (as in
the reference; these define the baseline), an MLP head ``Linear(d → d//2) → ReLU → Linear(d//2 → C)``
on the CLS output, then FE2E's logit fusion.

Audio and visual use a key-padding mask. Text is masked too by default; ``mask_text=False``
reproduces the reference, whose text encoder attends to the zero padding.
"""

from __future__ import annotations

import torch
from torch import nn

from mesm_core.config import MODALITIES
from mesm_core.models.baselines.common import valid_mask
from mesm_core.models.baselines.config import BaselineModelConfig
from mesm_core.models.baselines.late_fusion import LateFusion
from mesm_core.models.registry import register_arch

__all__ = ["LFTransformer"]


class _Branch(nn.Module):
    def __init__(self, size: int, heads: int, layers: int, ff: int, dropout: float, n_classes: int) -> None:
        super().__init__()
        if size % heads:
            raise ValueError(f"LF-TRANS: {heads} heads do not divide the feature size {size}")
        layer = nn.TransformerEncoderLayer(size, heads, dim_feedforward=ff, dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.cls = nn.Parameter(torch.randn(size))  # nn.Embedding's N(0, 1) init, as in the reference
        self.head = nn.Sequential(nn.Linear(size, size // 2), nn.ReLU(), nn.Linear(size // 2, n_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, use_mask: bool) -> torch.Tensor:
        """x (B, L, d) → logits (B, C)."""
        tokens = torch.cat([self.cls.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
        padding = None
        if use_mask:
            padding = ~valid_mask(lengths + 1, tokens.shape[1])  # CLS + real steps are valid
        return self.head(self.encoder(tokens, src_key_padding_mask=padding)[:, 0])


@register_arch("lf_trans", family="baseline")
class LFTransformer(LateFusion):
    """``forward(batch: FeatureBatch) -> ModelOutput`` with logits (B, C)."""

    def build(self, config: BaselineModelConfig) -> None:
        n_classes = len(config.classes)
        self.branches = nn.ModuleDict({
            m: _Branch(config.feature_size(m), config.trans_heads[MODALITIES.index(m)], config.trans_layers,
                       config.trans_ff, config.trans_dropout, n_classes)
            for m in self.modalities
        })

    def modality_logits(self, modality: str, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        use_mask = self.config.mask_text or modality != "text"
        return self.branches[modality](x, lengths, use_mask)
