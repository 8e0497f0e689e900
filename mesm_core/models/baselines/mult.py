"""MulT (Tsai et al. 2019, ``yaohungt/Multimodal-Transformer``) for unaligned variable-length streams.

* Input projection: per modality ``Conv1d(D_m → d, kernel k_m, padding 0, bias=False)``, which
  shortens a stream by k_m − 1 (streams shorter than k_m are zero-padded to k_m first).
* Crossmodal transformers: for each target modality and each other (source) modality, a stack of
  pre-LN blocks where the target gives the queries and the source the keys/values. Inputs are
  scaled by √d, get sinusoidal positions and embedding dropout; FFN 4d; a final LayerNorm.
* Memory transformers: per target, its crossmodal outputs are concatenated ((M−1)·d) and passed
  through a self-attention transformer of max(layers, 3) blocks.
* Head: the last valid step of every memory output, concatenated, a residual block
  (Linear, ReLU, dropout, Linear, + skip) and ``Linear(→ C)``.

Deviation (documented): the original has no key-padding masks because the CMU pickles are
fixed-length; here every attention gets the key-padding mask of its source stream and the "last
step" is the last *valid* step, so variable-length streams are handled exactly. The optional causal
``attn_mask`` of the original is off (as in the EmoEmbs repo's MulT configuration).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mesm_core.config import MODALITIES
from mesm_core.models.baselines.common import BaselineModel, last_valid, no_flops, valid_mask
from mesm_core.models.baselines.config import BaselineModelConfig, check_modalities
from mesm_core.models.registry import register_arch
from mesm_core.types import FeatureBatch, ModelOutput

__all__ = ["MulT"]


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """fairseq-style table (length, dim): sin half then cos half, positions 1..length (0 = padding)."""
    half = dim // 2
    scale = math.log(10000.0) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, device=device, dtype=torch.float32) * -scale)
    angles = torch.arange(1, length + 1, device=device, dtype=torch.float32)[:, None] * freqs[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(length, 1, device=device)], dim=1)
    return table


class _Block(nn.Module):
    """One pre-LN (cross-)attention block with a 4d ReLU FFN."""

    def __init__(self, dim: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=attn_dropout, batch_first=True)
        self.norm_attention = nn.LayerNorm(dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.relu_dropout = relu_dropout
        self.res_dropout = res_dropout

    def forward(self, x: torch.Tensor, source: torch.Tensor | None, key_padding: torch.Tensor) -> torch.Tensor:
        residual = x
        x = self.norm_attention(x)
        keys = x if source is None else self.norm_attention(source)  # the original normalises k/v with the same LN
        x, _ = self.attention(x, keys, keys, key_padding_mask=key_padding, need_weights=False)
        x = residual + F.dropout(x, self.res_dropout, self.training)
        residual = x
        x = F.dropout(F.relu(self.fc1(self.norm_ff(x))), self.relu_dropout, self.training)
        return residual + F.dropout(self.fc2(x), self.res_dropout, self.training)


class _Transformer(nn.Module):
    """MulT's TransformerEncoder: self-attention (source None) or crossmodal (source given)."""

    def __init__(self, dim: int, heads: int, layers: int, attn_dropout: float, relu_dropout: float,
                 res_dropout: float, embed_dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"MulT: {heads} heads do not divide the width {dim}")
        self.blocks = nn.ModuleList(
            [_Block(dim, heads, attn_dropout, relu_dropout, res_dropout) for _ in range(layers)]
        )
        self.norm = nn.LayerNorm(dim)
        self.scale = math.sqrt(dim)
        self.embed_dropout = embed_dropout

    def _embed(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        positions = sinusoidal_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        x = self.scale * x + positions[None] * valid[..., None]
        return F.dropout(x, self.embed_dropout, self.training)

    def forward(self, x: torch.Tensor, x_valid: torch.Tensor,
                source: torch.Tensor | None = None, source_valid: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, d) queries; source (B, S, d) keys/values (None: self-attention). → (B, L, d)."""
        x = self._embed(x, x_valid)
        if source is not None:
            source = self._embed(source, source_valid)
            key_padding = ~source_valid
        else:
            key_padding = ~x_valid
        for block in self.blocks:
            x = block(x, source, key_padding)
        return self.norm(x)


@register_arch("mult", family="baseline")
class MulT(BaselineModel):
    """``forward(batch: FeatureBatch) -> ModelOutput`` (early fusion: no per-modality logits)."""

    def __init__(self, config: BaselineModelConfig) -> None:
        super().__init__()
        check_modalities(config)
        if len(config.modalities) < 2:
            raise ValueError("MulT needs at least two modalities (its crossmodal attention has no source otherwise)")
        self.config = config
        self.modalities = tuple(config.modalities)
        d = config.mult_dim
        n_sources = len(self.modalities) - 1
        self.kernels = {m: config.mult_kernels[MODALITIES.index(m)] for m in self.modalities}
        self.projections = nn.ModuleDict({
            m: nn.Conv1d(config.feature_size(m), d, self.kernels[m], padding=0, bias=False) for m in self.modalities
        })
        common = dict(heads=config.mult_heads, relu_dropout=config.mult_relu_dropout,
                      res_dropout=config.mult_res_dropout, embed_dropout=config.mult_embed_dropout)
        attn = {m: config.mult_attn_dropout[MODALITIES.index(m)] for m in self.modalities}
        self.crossmodal = nn.ModuleDict({
            f"{target}_from_{source}": _Transformer(d, layers=config.mult_layers, attn_dropout=attn[target], **common)
            for target in self.modalities for source in self.modalities if source != target
        })
        self.memory = nn.ModuleDict({
            m: _Transformer(n_sources * d, layers=max(config.mult_layers, 3), attn_dropout=attn[m], **common)
            for m in self.modalities
        })
        combined = len(self.modalities) * n_sources * d
        self.proj1 = nn.Linear(combined, combined)
        self.proj2 = nn.Linear(combined, combined)
        self.out = nn.Linear(combined, len(config.classes))

    def _project(self, modality: str, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) → (B, L', d) and its valid mask (B, L'), L' = max(L, k) − k + 1."""
        kernel = self.kernels[modality]
        if x.shape[1] < kernel:
            x = F.pad(x, (0, 0, 0, kernel - x.shape[1]))
        if modality == "text":
            x = F.dropout(x, self.config.mult_embed_dropout, self.training)
        projected = self.projections[modality](x.transpose(1, 2)).transpose(1, 2)
        new_lengths = (lengths - kernel + 1).clamp(min=1)
        return projected, valid_mask(new_lengths, projected.shape[1])

    def forward(self, batch: FeatureBatch, top_p: float | None = None, return_trace: bool = False) -> ModelOutput:
        """``top_p``/``return_trace`` exist for interface parity with FE2E/MESM and are ignored."""
        streams = {m: self._project(m, *batch.features(m)) for m in self.modalities}
        pooled = []
        for target in self.modalities:
            x, x_valid = streams[target]
            crossed = [
                self.crossmodal[f"{target}_from_{source}"](x, x_valid, *streams[source])
                for source in self.modalities if source != target
            ]
            memory = self.memory[target](torch.cat(crossed, dim=-1), x_valid)
            pooled.append(last_valid(memory, x_valid.sum(dim=1)))
        hidden = torch.cat(pooled, dim=-1)
        residual = self.proj2(F.dropout(F.relu(self.proj1(hidden)), self.config.mult_out_dropout, self.training))
        logits = self.out(residual + hidden)
        return ModelOutput(logits=logits, modality_logits={}, fusion_weights=logits.new_zeros(0), flops=no_flops())
