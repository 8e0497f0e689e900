"""LF-LSTM: late-fusion BiLSTM baseline (reference ``src/models/baselines/lf_rnn.py``).

Per modality: a 1-layer bidirectional LSTM with hidden size = input size, an utterance vector of
2·d, an MLP head ``Linear(2d → d) → ReLU → Linear(d → C)``, then FE2E's 3-scalar logit fusion.

Utterance vector:
* default: sequences are packed, the vector is ``h_n`` of both directions (true last step forward,
  first step backward) for every modality;
* ``faithful_padding=True`` (the reference): no packing; text takes the BiLSTM *output at the last
  padded step*, audio/visual take ``h_n`` after running over the zero padding.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from mesm_core.models.baselines.config import BaselineModelConfig
from mesm_core.models.baselines.late_fusion import LateFusion
from mesm_core.models.registry import register_arch

__all__ = ["LFLSTM"]


class _Branch(nn.Module):
    def __init__(self, size: int, n_classes: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(size, size, num_layers=1, bidirectional=True, batch_first=True)
        self.head = nn.Sequential(nn.Linear(2 * size, size), nn.ReLU(), nn.Linear(size, n_classes))

    def encode(self, x: torch.Tensor, lengths: torch.Tensor, faithful: bool, last_padded_output: bool) -> torch.Tensor:
        """x (B, L, d), lengths (B,) → (B, 2d)."""
        if faithful:
            output, (h_n, _) = self.lstm(x)
            if last_padded_output:
                return output[:, -1]
        else:
            packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(packed)
        # h_n: (2, B, d) → (B, 2d), forward then backward.
        return h_n.transpose(0, 1).reshape(x.shape[0], -1)


@register_arch("lf_lstm", family="baseline")
class LFLSTM(LateFusion):
    """``forward(batch: FeatureBatch) -> ModelOutput`` with logits (B, C)."""

    def build(self, config: BaselineModelConfig) -> None:
        n_classes = len(config.classes)
        self.branches = nn.ModuleDict({m: _Branch(config.feature_size(m), n_classes) for m in self.modalities})

    def modality_logits(self, modality: str, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        branch = self.branches[modality]
        vector = branch.encode(x, lengths, self.config.faithful_padding, last_padded_output=modality == "text")
        return branch.head(vector)
