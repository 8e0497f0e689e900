"""Text-queried additive cross-modal spatial attention (paper Eq. 1-2; docs/models.md, "MESM").

For every cell j of every frame/chunk with feature x_j ∈ R^C and the utterance's text vector q:
    score_j = w_a · tanh(W_m x_j + b_m + W_q q) + b_a,
then a softmax over the cells of that single frame/chunk (over its *active* cells only when a mask
is given). W_m: Linear(C, k) with bias, W_q: Linear(d, k) without bias, w_a: Linear(k, 1) with bias;
k = C as in the reference. This per-cell scorer (``scorer="cell"``) is the paper's and the default.

Two options that are not in the paper (docs/deviations.md, "Selection training"):
  * ``scorer="context"``: W_m x_j becomes a 3×3 convolution over the (zero-filled) active map plus
    W_g x̄, the mean feature of the frame's active cells, so a cell is scored with its neighbourhood
    and the frame's gist (DynamicViT / DynConv style). The extra multiply-adds are counted in FLOPs.
  * ``smoothing=k`` (odd k ≥ 3): the scores are averaged over the active cells of each k×k window
    before the softmax, so a lone high cell among low ones is damped and the nucleus keeps connected
    regions rather than isolated cells. Not counted in FLOPs (like the softmax).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossModalAttention", "SCORERS", "masked_spatial_softmax", "masked_spatial_log_softmax"]

SCORERS = ("cell", "context")


def masked_spatial_log_softmax(scores: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
    """Log-softmax over the (H, W) cells of each frame; inactive cells get -inf.

    scores (N, H, W), active (N, H, W) bool or None → (N, H, W).
    Every frame must have at least one active cell (MESM guarantees it: nucleus keeps ≥1 cell).
    """
    n, h, w = scores.shape
    flat = scores.reshape(n, h * w)
    if active is not None:
        flat = flat.masked_fill(~active.reshape(n, h * w), float("-inf"))
    return torch.log_softmax(flat, dim=-1).reshape(n, h, w)


def masked_spatial_softmax(scores: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the (H, W) cells of each frame; inactive cells get probability 0. Shapes as above."""
    return masked_spatial_log_softmax(scores, active).exp()


def _smooth_scores(scores: torch.Tensor, active: torch.Tensor | None, kernel: int) -> torch.Tensor:
    """Mean of the scores over the active cells of each kernel×kernel window: (N, H, W) → (N, H, W)."""
    weight = torch.ones(1, 1, kernel, kernel, dtype=scores.dtype, device=scores.device)
    m = torch.ones_like(scores) if active is None else active.to(scores.dtype)
    total = F.conv2d((scores * m)[:, None], weight, padding=kernel // 2)[:, 0]
    count = F.conv2d(m[:, None], weight, padding=kernel // 2)[:, 0]
    return total / count.clamp_min(1.0)


class CrossModalAttention(nn.Module):
    """``forward(x (N, C, H, W), query (N, d), active (N, H, W) | None) -> probs (N, H, W)``.

    ``query`` holds the text vector of each frame's utterance (already repeated per frame).
    ``log_probs`` returns the same distribution in log space (-inf on inactive cells).
    """

    def __init__(
        self, channels: int, query_dim: int, hidden: int | None = None, scorer: str = "cell", smoothing: int = 0
    ) -> None:
        super().__init__()
        if scorer not in SCORERS:
            raise ValueError(f"attention scorer must be one of {', '.join(SCORERS)}, got {scorer!r}")
        if smoothing and (smoothing < 3 or smoothing % 2 == 0):
            raise ValueError(f"attention smoothing must be 0 (off) or an odd kernel size >= 3, got {smoothing}")
        hidden = hidden or channels
        self.channels, self.query_dim, self.hidden = channels, query_dim, hidden
        self.scorer, self.smoothing = scorer, smoothing
        if scorer == "cell":
            self.feature_proj = nn.Linear(channels, hidden)                   # W_m, b_m
        else:
            self.feature_proj = nn.Conv2d(channels, hidden, 3, padding=1)     # W_m over a 3×3 neighbourhood
            self.global_proj = nn.Linear(channels, hidden, bias=False)        # W_g on the frame's mean feature
        self.query_proj = nn.Linear(query_dim, hidden, bias=False)  # W_q
        self.score = nn.Linear(hidden, 1)                          # w_a, b_a

    @property
    def kernel_size(self) -> int:
        """Spatial extent of W_m (1 for the paper's per-cell scorer)."""
        return 1 if self.scorer == "cell" else 3

    def scores(self, x: torch.Tensor, query: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """Unnormalised scores (N, H, W) (before masking and softmax)."""
        if self.scorer == "cell":
            local = self.feature_proj(x.permute(0, 2, 3, 1))                 # (N, H, W, k)
        else:
            m = torch.ones_like(x[:, :1]) if active is None else active[:, None].to(x.dtype)
            local = self.feature_proj(x * m).permute(0, 2, 3, 1)
            mean = (x * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3)).clamp_min(1.0)
            local = local + self.global_proj(mean)[:, None, None, :]
        mixed = torch.tanh(local + self.query_proj(query)[:, None, None, :])
        scores = self.score(mixed).squeeze(-1)
        if self.smoothing:
            scores = _smooth_scores(scores, active, self.smoothing)
        return scores

    def log_probs(self, x: torch.Tensor, query: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        return masked_spatial_log_softmax(self.scores(x, query, active), active)

    def forward(self, x: torch.Tensor, query: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        return self.log_probs(x, query, active).exp()
