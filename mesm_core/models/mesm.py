"""MESM: the multimodal end-to-end sparse model (paper §4.3; docs/models.md, "MESM").

Per non-text modality: dense low-level CNN (stem + first VGG blocks), then for each of the last
``n_sparse_blocks`` VGG blocks a *cross-modal sparse block*:
    text-queried attention over the active cells of each frame → nucleus top-p mask →
    submanifold sparse VGG block (+ sparse max-pool),
and back to a dense map for the flatten MLP and temporal Transformer (as in FE2E).

Attention modes (docs/deviations.md, "Models" and "Selection training"):
  * ``"straight_through"`` (default): the forward pass is the paper's (plain masked features, so p = 1 is
    exactly the dense CNN); in training the hard keep mask carries a surrogate gradient to every active
    cell, dropped ones included (``models/keep_gate.py``), computed on the masked backend.
  * ``"trained"``: kept features are multiplied by their attention renormalised over the kept cells of
    their frame times the number of kept cells, w_j = |K| · a_j / Σ_{i∈K} a_i, so the attention gets a
    gradient on kept cells only; uniform attention (or a single kept cell) leaves features unchanged.
  * ``"reference"``: the original code: selection on a detached copy, weights never applied, so the
    attention layers get no gradient; ``reference_block1_bug`` also reproduces the block-1
    coordinate/feature order scramble (docs/deviations.md, "Models").
"""

from __future__ import annotations

import torch
from torch import nn

from mesm_core.config import ModelConfig
from mesm_core.flops import SparseBlockCounts, active_neighbour_count
from mesm_core.models.attention import CrossModalAttention
from mesm_core.models.fe2e import MultimodalModel
from mesm_core.models.keep_gate import keep_gate
from mesm_core.models.nucleus import check_top_p, nucleus_select
from mesm_core.models.registry import register_arch
from mesm_core.models.sparse import SparseVGGBlock, get_backend, pool_mask, statistics_at
from mesm_core.types import SelectionState, SparseBlockTrace, SparseStageOutput

__all__ = ["MESM", "SparseStage", "scramble_like_reference"]


def scramble_like_reference(x: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Reproduce the reference's block-1 bug: features gathered in (frame, y, x) order are written
    to coordinates listed in (y, x, frame) order. x (N, C, H, W), kept (N, H, W) → scrambled x."""
    cells = x.permute(0, 2, 3, 1)
    rows = cells[kept]                                  # (frame, y, x) order
    coords = kept.permute(1, 2, 0).nonzero()            # (y, x, frame) order
    out = torch.zeros_like(cells)
    out[coords[:, 2], coords[:, 0], coords[:, 1]] = rows
    return out.permute(0, 3, 1, 2)


class SparseStage(nn.Module):
    """The attention + sparse blocks of one modality: ``forward(x (N, C, H, W) dense, query (N, d), top_p, ...)``."""

    def __init__(
        self, in_channels: int, block_channels: tuple[int, ...], pools: tuple[bool, ...], query_dim: int,
        scorer: str = "cell", smoothing: int = 0, hidden: int = 0, min_keep: float = 0.0,
        bn_top_ps: tuple[float, ...] = (),
    ) -> None:
        super().__init__()
        self.min_keep = min_keep
        self.attention = nn.ModuleList()
        self.blocks = nn.ModuleList()
        c_in = in_channels
        for c_out, pool in zip(block_channels, pools):
            self.attention.append(CrossModalAttention(c_in, query_dim, hidden=hidden or None, scorer=scorer,
                                                      smoothing=smoothing))
            self.blocks.append(SparseVGGBlock(c_in, c_out, pool, bn_top_ps))
            c_in = c_out

    def forward(
        self,
        x: torch.Tensor,
        query: torch.Tensor,
        top_p: float,
        config: ModelConfig,
        return_trace: bool,
        keep_floor: bool = True,
        straight_through: bool | None = None,
    ) -> SparseStageOutput:
        """``keep_floor=False`` runs the paper's rule (no keep floor); ``straight_through`` (training, default: on
        in ``attention_mode="straight_through"``) multiplies the keep gate in on the masked backend; off, the
        step runs on ``config.sparse_backend`` and the attention learns only from the selection losses."""
        mode = config.attention_mode
        # The keep gate multiplies every cell, dropped ones included: only the dense emulation can do that.
        gated = mode == "straight_through" and self.training and torch.is_grad_enabled()
        if straight_through is not None:
            gated = gated and straight_through
        backend = get_backend("masked" if gated else config.sparse_backend)
        floor = self.min_keep if keep_floor else 0.0
        n = x.shape[0]
        active = torch.ones(n, x.shape[2], x.shape[3], dtype=torch.bool, device=x.device)
        out = SparseStageOutput(features=x, counts=[], traces=[] if return_trace else None)
        with statistics_at(top_p):   # BN uses (and in training updates) the statistics of this p's regime
            for index, (attention, block) in enumerate(zip(self.attention, self.blocks)):
                x, active = self._block(index, attention, block, x, active, query, top_p, floor, config, backend,
                                        gated, out)
        out.features = x
        return out

    def _block(self, index: int, attention: CrossModalAttention, block: SparseVGGBlock, x: torch.Tensor,
               active: torch.Tensor, query: torch.Tensor, top_p: float, floor: float, config: ModelConfig,
               backend, gated: bool, out: SparseStageOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """One attention + sparse block; appends its counts, trace and selection state to ``out``."""
        mode = config.attention_mode
        n, grid = x.shape[0], (x.shape[2], x.shape[3])
        restrict = None if index == 0 else active
        scored = x.detach() if config.detach_scorer_input else x
        if mode == "reference":
            with torch.no_grad():
                log_probs = attention.log_probs(x, query, restrict)
        else:
            log_probs = attention.log_probs(scored, query, restrict)
        probs = log_probs.exp()
        kept, floor_decided = nucleus_select(probs, top_p, restrict, floor)
        gate = None
        if mode == "reference":
            x_in = x * kept[:, None].to(x.dtype)
            if config.reference_block1_bug and index == 0:
                x_in = scramble_like_reference(x_in, kept)
        elif mode == "trained":
            kept_probs = probs * kept.to(probs.dtype)
            mass = kept_probs.sum(dim=(1, 2), keepdim=True).clamp_min(torch.finfo(probs.dtype).tiny)
            n_kept = kept.sum(dim=(1, 2), keepdim=True).to(probs.dtype)
            x_in = x * (kept_probs / mass * n_kept)[:, None].to(x.dtype)
        else:
            x_in = x
            if gated:
                gate = keep_gate(log_probs, kept, active, config.keep_temperature)
        if self.training:
            out.selections.append(SelectionState(log_probs=log_probs, kept=kept, active=active, gate=gate))
        out.counts.append(SparseBlockCounts(
            index=index + 1, c_in=block.in_channels, c_out=block.out_channels,
            attention_hidden=attention.hidden, query_dim=attention.query_dim, n_items=n, grid=grid,
            scored_cells=active.sum(), neighbour_sum=active_neighbour_count(kept),
            attention_kernel=attention.kernel_size, attention_global=attention.scorer == "context",
        ))
        if out.traces is not None:
            out.traces.append(SparseBlockTrace(
                attention=probs.detach().float(), kept=kept, active_in=active, grid=grid, active_cells=int(kept.sum()),
                floor_decided=floor_decided,
            ))
        if n == 0:
            h, w = (grid[0] // 2, grid[1] // 2) if block.pool else grid
            return x.new_zeros(0, block.out_channels, h, w), pool_mask(kept) if block.pool else kept
        if gate is not None:
            return backend(block, x_in, kept, gate)
        return backend(block, x_in, kept)


@register_arch("mesm", family="e2e", supports_top_p=True)
class MESM(MultimodalModel):
    """FE2E with the last ``config.n_sparse_blocks`` VGG blocks made cross-modal and sparse (reference ``MME2E_Sparse``).

    ``config.attention_query="text+posterior"`` (not in the paper) appends to each modality's query the detached
    class posterior (sigmoid of the logits) of the branches computed before it (text for audio; text and audio
    for faces), so the attention can look for what those branches already suspect (GAIN-style top-down
    attention) instead of only where evidence tends to be.
    """

    def __init__(self, config: ModelConfig, text_pretrained: bool = True) -> None:
        config.validate()  # choices and ranges, the text modality, the reference-bug rule (ModelConfig)
        super().__init__(config, text_pretrained=text_pretrained, n_sparse_blocks=config.n_sparse_blocks)
        first_sparse = len(config.block_channels) - config.n_sparse_blocks
        channels = tuple(config.block_channels[first_sparse:])
        pools = tuple(i in config.pool_after for i in range(first_sparse, len(config.block_channels)))
        text_dim = self.text_encoder.hidden_size
        for modality, branch in self.branches.items():
            query_dim = text_dim + len(self.query_sources(modality)) * len(config.classes)
            hidden = config.attention_hidden_audio if modality == "audio" and config.attention_hidden_audio else \
                config.attention_hidden
            branch.sparse = SparseStage(branch.dense_shape[0], channels, pools, query_dim,
                                        scorer=config.attention_scorer, smoothing=config.attention_smoothing,
                                        hidden=hidden, min_keep=getattr(config, f"min_keep_{modality}"),
                                        bn_top_ps=tuple(config.bn_top_p))

    def query_sources(self, modality: str) -> tuple[str, ...]:
        """The branches whose class posterior joins ``modality``'s attention query (empty: the paper's text CLS)."""
        if self.config.attention_query != "text+posterior":
            return ()
        order = self.modalities  # text, audio, visual: the order forward_prepared computes them in
        return tuple(m for m in order[:order.index(modality)])

    def _stage_query(self, modality: str, text_cls: torch.Tensor, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        sources = self.query_sources(modality)
        if not sources:
            return text_cls
        posterior = [torch.sigmoid(logits[m].detach().float()).to(text_cls.dtype) for m in sources]
        return torch.cat([text_cls, *posterior], dim=-1)

    def _sparse_stage(
        self, modality: str, dense: torch.Tensor, query: torch.Tensor | None, top_p: float | None, return_trace: bool,
        keep_floor: bool = True, straight_through: bool | None = None,
    ) -> SparseStageOutput:
        p = check_top_p(self.config.top_p if top_p is None else top_p)
        return self.branches[modality].sparse(dense, query.to(dense.dtype), p, self.config, return_trace,
                                              keep_floor=keep_floor, straight_through=straight_through)
