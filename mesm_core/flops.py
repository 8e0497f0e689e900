"""Analytic feature-extraction FLOPs: face and audio CNNs plus MESM's attention layers.

Convention (FLOPs = 2 × multiply-adds; the same as ``torch.utils.flop_counter``):
  * dense conv k×k, C_in→C_out on an H×W output: 2·k²·C_in·C_out·H·W (padding positions included,
    as FlopCounterMode counts them);
  * submanifold sparse conv 3×3: 2·C_in·C_out·Σ_{active output cells} #active neighbours (self included);
    its ``dense`` counterpart is the 9-neighbour dense count over all cells;
  * cross-modal attention: per scored cell 2·(K²·C·k + k) (W_m over a K×K window, K = 1 for the paper's
    per-cell scorer and 3 for the context scorer, and w_a) plus 2·d·k per frame (W_q) and, for the
    context scorer, 2·C·k per frame (W_g); ``dense`` = every cell of the frame, ``actual`` = the active
    cells that were scored;
  * max-pools, BatchNorm, ReLU, tanh, softmax and the nucleus sort are not counted (all O(cells·C),
    < 0.5 % of the convs).
Flatten MLPs, temporal Transformers and the text encoder are not feature extraction and are not
counted. Counts cover a whole batch (all frames and chunks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mesm_core.config import ModelConfig
from mesm_core.geometry import encoder_geometry
from mesm_core.types import FlopsReport, FlopsRow

__all__ = [
    "conv_flops",
    "dense_cnn_rows",
    "active_neighbour_count",
    "SparseBlockCounts",
    "sparse_block_rows",
    "build_report",
    "per_item_dense_flops",
]


def conv_flops(c_in: int, c_out: int, kernel: int, height: int, width: int, n: int = 1) -> float:
    """FLOPs of a dense k×k convolution producing n maps of height×width."""
    return 2.0 * kernel * kernel * c_in * c_out * height * width * n


def dense_cnn_rows(
    modality: str, n_items: int, in_channels: int, input_hw: tuple[int, int], config: ModelConfig, n_dense_blocks: int
) -> list[FlopsRow]:
    """Rows for the stem and the first ``n_dense_blocks`` VGG blocks over ``n_items`` frames/chunks."""
    shapes = encoder_geometry(input_hw, config.block_channels, config.pool_after, config.stem_channels)
    stem = conv_flops(in_channels, config.stem_channels, config.stem_kernel, input_hw[0], input_hw[1], n_items)
    rows = [FlopsRow(modality, "stem", stem, stem)]
    c_in, (_, h, w) = config.stem_channels, shapes[0]
    for index in range(n_dense_blocks):
        c_out = config.block_channels[index]
        block = conv_flops(c_in, c_out, 3, h, w, n_items) + conv_flops(c_out, c_out, 3, h, w, n_items)
        rows.append(FlopsRow(modality, f"block{index + 1}", block, block))
        c_in, (_, h, w) = c_out, shapes[index + 1]
    return rows


def per_item_dense_flops(config: ModelConfig, modality: str) -> float:
    """Dense CNN FLOPs of one face (``"visual"``) or one mel chunk (``"audio"``), all blocks dense."""
    if modality == "visual":
        in_channels, hw = 3, (config.face_size, config.face_size)
    else:
        in_channels, hw = 1, (config.n_mels, config.chunk_frames)
    return sum(r.dense for r in dense_cnn_rows(modality, 1, in_channels, hw, config, len(config.block_channels)))


def active_neighbour_count(mask: torch.Tensor) -> torch.Tensor:
    """Σ over active cells of the number of active cells in their 3×3 window (self included); scalar tensor."""
    m = mask[:, None].float()
    neighbours = F.conv2d(m, torch.ones(1, 1, 3, 3, device=mask.device), padding=1)
    return (neighbours * m).sum()


@dataclass
class SparseBlockCounts:
    """Raw counts for one MESM attention + sparse block (tensors, turned into floats once per forward)."""

    index: int                # 1-based sparse block number
    c_in: int
    c_out: int
    attention_hidden: int     # k
    query_dim: int            # d
    n_items: int              # frames/chunks
    grid: tuple[int, int]     # (H, W) of the block input
    scored_cells: torch.Tensor    # active cells the attention scored
    neighbour_sum: torch.Tensor   # active_neighbour_count(kept)
    attention_kernel: int = 1     # K of W_m (1: the paper's per-cell scorer; 3: context scorer)
    attention_global: bool = False  # context scorer: W_g on the frame's mean feature


def sparse_block_rows(modality: str, counts: list[SparseBlockCounts]) -> tuple[list[FlopsRow], list[tuple[FlopsRow, torch.Tensor]]]:
    """Rows for the attention + sparse blocks, and (row, tensor) pairs whose tensor gives the row's ``actual``.

    :func:`build_report` fills them in with a single device sync.
    """
    rows: list[FlopsRow] = []
    pending: list[tuple[FlopsRow, torch.Tensor]] = []
    for c in counts:
        h, w = c.grid
        cells = float(c.n_items * h * w)
        per_cell = 2.0 * (c.attention_kernel ** 2 * c.c_in * c.attention_hidden + c.attention_hidden)
        query = 2.0 * (c.query_dim + (c.c_in if c.attention_global else 0)) * c.attention_hidden * c.n_items
        attention = FlopsRow(modality, f"attention{c.index}", per_cell * cells + query, 0.0)
        pending.append((attention, c.scored_cells.float() * per_cell + query))
        macs_per_neighbour = c.c_in * c.c_out + c.c_out * c.c_out
        sparse = FlopsRow(modality, f"sparse_block{c.index}", 2.0 * 9 * cells * macs_per_neighbour, 0.0)
        pending.append((sparse, c.neighbour_sum.float() * 2.0 * macs_per_neighbour))
        rows += [attention, sparse]
    return rows, pending


def build_report(rows: list[FlopsRow], pending: list[tuple[FlopsRow, torch.Tensor]] | None = None) -> FlopsReport:
    """Set each pending row's ``actual`` from its tensor (one device sync in all) and total the rows."""
    if pending:
        values = torch.stack([t.detach().double().reshape(()) for _, t in pending]).tolist()
        for (row, _), value in zip(pending, values):
            row.actual = float(value)
    return FlopsReport(dense=sum(r.dense for r in rows), actual=sum(r.actual for r in rows), layers=list(rows))
