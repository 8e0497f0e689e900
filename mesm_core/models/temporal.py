"""Per-modality temporal Transformer with a learned CLS token (docs/models.md, "FE2E").

Tokens of all utterances arrive concatenated as (ΣN, d) with per-utterance lengths; they are
scattered into a padded (B, 1 + max N, d) tensor with index arithmetic (no Python loop over
utterances or frames). Zero-length utterances are allowed: their sequence is the CLS token alone.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["TemporalEncoder", "pad_by_lengths"]


def pad_by_lengths(tokens: torch.Tensor, lengths: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter flat tokens (ΣN, d) into a zero-padded (B, offset + max N, d) tensor.

    Returns the padded tensor and ``valid`` (B, offset + max N) bool, True at real tokens
    (the first ``offset`` slots are left free, e.g. for a CLS token, and marked valid).
    """
    lengths = lengths.to(device=tokens.device, dtype=torch.long)
    if int(lengths.sum()) != tokens.shape[0]:
        raise ValueError(f"lengths sum to {int(lengths.sum())} but there are {tokens.shape[0]} tokens")
    batch = lengths.shape[0]
    max_len = int(lengths.max()) if batch > 0 else 0
    utterance = torch.repeat_interleave(torch.arange(batch, device=tokens.device), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    position = torch.arange(tokens.shape[0], device=tokens.device) - starts[utterance]
    padded = tokens.new_zeros(batch, offset + max_len, tokens.shape[-1])
    padded[utterance, offset + position] = tokens
    slots = torch.arange(offset + max_len, device=tokens.device)
    valid = (slots[None, :] < offset + lengths[:, None])
    return padded, valid


def _sinusoidal(length: int, dim: int, device: torch.device) -> torch.Tensor:
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)[:, : dim // 2]
    return table


class TemporalEncoder(nn.Module):
    """nn.TransformerEncoder (post-LN, ReLU) over [CLS] + frame tokens; returns the CLS output.

    ``forward(tokens (ΣN, d), lengths (B,)) -> (B, d)``.
    """

    def __init__(self, dim: int, layers: int, heads: int, ff: int, dropout: float, positional_encoding: bool = False) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=ff, dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.cls = nn.Parameter(torch.empty(dim))
        nn.init.normal_(self.cls)  # nn.Embedding's default init, as in the reference
        self.positional_encoding = positional_encoding

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        padded, valid = pad_by_lengths(tokens, lengths, offset=1)
        if self.positional_encoding and padded.shape[1] > 1:
            table = _sinusoidal(padded.shape[1] - 1, padded.shape[-1], padded.device).to(padded.dtype)
            padded = torch.cat([padded[:, :1], padded[:, 1:] + table * valid[:, 1:, None]], dim=1)
        cls = self.cls.to(padded.dtype).expand(padded.shape[0], 1, -1)
        padded = torch.cat([cls, padded[:, 1:]], dim=1)
        return self.encoder(padded, src_key_padding_mask=~valid)[:, 0]
