"""Text-queried additive cross-modal spatial attention (paper Eq. 1-2, reference §2.2).

For every cell j of every frame/chunk with feature x_j ∈ R^C and the utterance's text vector q:
    score_j = w_a · tanh(W_m x_j + b_m + W_q q) + b_a,
then a softmax over the cells of that single frame/chunk (over its *active* cells only when a mask
is given). W_m: Linear(C, k) with bias, W_q: Linear(d, k) without bias, w_a: Linear(k, 1) with bias;
k = C as in the reference.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CrossModalAttention", "masked_spatial_softmax"]


def masked_spatial_softmax(scores: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the (H, W) cells of each frame; inactive cells get probability 0.

    scores (N, H, W), active (N, H, W) bool or None → (N, H, W).
    Every frame must have at least one active cell (MESM guarantees it: nucleus keeps ≥1 cell).
    """
    n, h, w = scores.shape
    flat = scores.reshape(n, h * w)
    if active is not None:
        flat = flat.masked_fill(~active.reshape(n, h * w), float("-inf"))
    return torch.softmax(flat, dim=-1).reshape(n, h, w)


class CrossModalAttention(nn.Module):
    """``forward(x (N, C, H, W), query (N, d), active (N, H, W) | None) -> probs (N, H, W)``.

    ``query`` holds the text vector of each frame's utterance (already repeated per frame).
    """

    def __init__(self, channels: int, query_dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or channels
        self.channels, self.query_dim, self.hidden = channels, query_dim, hidden
        self.feature_proj = nn.Linear(channels, hidden)           # W_m, b_m
        self.query_proj = nn.Linear(query_dim, hidden, bias=False)  # W_q
        self.score = nn.Linear(hidden, 1)                          # w_a, b_a

    def forward(self, x: torch.Tensor, query: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        cells = x.permute(0, 2, 3, 1)                              # (N, H, W, C)
        mixed = torch.tanh(self.feature_proj(cells) + self.query_proj(query)[:, None, None, :])
        scores = self.score(mixed).squeeze(-1)                     # (N, H, W)
        return masked_spatial_softmax(scores, active)
