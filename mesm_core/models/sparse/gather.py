"""The ``gather`` path: submanifold convolution as gather-GEMM over the active cells, in plain torch.

The active cells of a block (the same set for both convs: submanifold) become rows (n, C) in
(frame, y, x) order. A *rulebook* lists, for each of the 8 off-centre kernel offsets, the pairs
(input row, output row) of active cells that are neighbours at that offset; the centre offset pairs
every row with itself. A 3×3 conv is then

    out = X · W_centre^T  +  Σ_offsets  scatter_add(out rows, X[in rows] · W_offset^T),

one GEMM per offset over exactly the active-neighbour pairs, so its multiply-adds are the counted
FLOPs of ``mesm_core.flops`` and its time follows them. Frames are batched into the same GEMMs. On
CPU in float32 the GEMMs go to oneDNN (``torch.ops.mkldnn._linear_pointwise``), which runs at about
the speed of oneDNN's dense convolution, where the default BLAS can be 2× slower (measured: AMD EPYC,
MKL); elsewhere to ``F.linear`` (cuBLAS on CUDA).

BN (statistics over the rows, as in ``masked``) and ReLU work on the rows; in eval BN is folded into
the conv (``fold.py``). The 2×2 max-pool is a scatter-max of the rows into their pooled cells (zero
initialised: spconv's max(0, ·)), and only then do rows go into a zero-filled channels-last map. Autograd: a custom Function whose backward is the transposed convolution on the
same rulebook (the pairs of offset −d are those of d swapped) and one GEMM per offset for the weight
gradient (oneDNN too, on the transposed views), so the ``trained`` and ``reference`` attention modes train on this path. The output equals
``masked_block`` (float64: to ~1e-15; tests/test_sparse_backends.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from mesm_core.models.sparse.block import SparseVGGBlock, pool_mask
from mesm_core.models.sparse.fold import conv_taps, folded_conv

__all__ = ["Rulebook", "rulebook", "subm_conv", "gather_block", "onednn_linear_available"]

CENTRE = 4
_ONEDNN: bool | None = None


def onednn_linear_available() -> bool:
    """Whether oneDNN's fused linear op exists here and matches F.linear (checked once)."""
    global _ONEDNN
    if _ONEDNN is None:
        try:
            op = torch.ops.mkldnn._linear_pointwise
            a, w = torch.randn(5, 3), torch.randn(4, 3)
            _ONEDNN = bool(torch.backends.mkldnn.is_available()) and torch.allclose(
                op(a, w, None, "none", [], ""), F.linear(a, w), atol=1e-5)
        except (AttributeError, RuntimeError):
            _ONEDNN = False
    return _ONEDNN


def _onednn(a: torch.Tensor) -> bool:
    return a.device.type == "cpu" and a.dtype == torch.float32 and onednn_linear_available()


def _linear(a: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a (m, k) · w (n, k)^T (+ bias) → (m, n); oneDNN for CPU float32, else F.linear."""
    if a.shape[0] > 0 and a.shape[1] > 0 and _onednn(a):
        return torch.ops.mkldnn._linear_pointwise(a, w, bias, "none", [], "")
    return F.linear(a, w, bias)


def bucket(m: int) -> int:
    """Rows to pad m + 1 rows to: 64, or the next of 8 sizes per octave (≤ 12.5 % more)."""
    m += 1
    if m <= 64:
        return 64
    step = 1 << (m.bit_length() - 4)
    return -(-m // step) * step


def _padded(x: torch.Tensor) -> torch.Tensor:
    """x (n, C) followed by zero rows up to bucket(n) rows (row n is always a zero row)."""
    return torch.cat([x, x.new_zeros(bucket(x.shape[0]) - x.shape[0], x.shape[1])])


def _pad_index(index: torch.Tensor, fill: int) -> torch.Tensor:
    """An index list lengthened to its bucket with ``fill``."""
    return torch.cat([index, index.new_full((bucket(index.numel()) - index.numel(),), fill)])


@dataclass
class Rulebook:
    """Active cells of an (N, H, W) mask as rows, and their neighbour pairs per kernel offset."""

    cells: torch.Tensor                    # (n,) long: flat index (frame, y, x) of each row
    pairs: list[tuple[int, torch.Tensor, torch.Tensor]]  # (tap k ≠ 4, input rows, output rows)

    @property
    def rows(self) -> int:
        return int(self.cells.numel())

    def pair_count(self) -> int:
        """Σ over active cells of their active 3×3 neighbours, self included (the FLOPs count)."""
        return self.rows + sum(int(i.numel()) for _, i, _ in self.pairs)


def rulebook(mask: torch.Tensor) -> Rulebook:
    """Rulebook of mask (N, H, W) bool. The pairs of offset −d are those of d swapped, so half are built."""
    n, h, w = mask.shape
    cells = mask.reshape(-1).nonzero().squeeze(1)
    index = torch.full((n, h + 2, w + 2), -1, dtype=torch.long, device=mask.device)
    index[:, 1:-1, 1:-1][mask] = torch.arange(cells.numel(), device=mask.device)
    pairs: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    for tap in range(CENTRE):                          # offsets (dy, dx) = (-1,-1) (-1,0) (-1,1) (0,-1)
        dy, dx = tap // 3 - 1, tap % 3 - 1
        neighbour = index[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w][mask]   # (n_rows,) row of (y+dy, x+dx) or -1
        out_rows = (neighbour >= 0).nonzero().squeeze(1)
        in_rows = neighbour[out_rows]
        pairs.append((tap, in_rows, out_rows))
        pairs.append((8 - tap, out_rows, in_rows))    # offset −d: the same pairs, roles swapped
    return Rulebook(cells=cells, pairs=pairs)


def _conv_rows(x: torch.Tensor, taps: torch.Tensor, book: Rulebook, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Submanifold conv of rows x (n, C_in) with taps (9, C_out, C_in): (n, C_out).

    oneDNN builds (JIT-compiles) a kernel for every new GEMM shape, about 1 ms each, and every mask gives
    new row counts: on that route the row counts are padded to a few sizes (``bucket``) so that kernels are
    reused across calls. Padding rows of x are zero and their products land in discarded output rows."""
    n = x.shape[0]
    if not _onednn(x):
        out = _linear(x, taps[CENTRE], bias)
        for tap, in_rows, out_rows in book.pairs:
            if in_rows.numel():
                out.index_add_(0, out_rows, _linear(x.index_select(0, in_rows), taps[tap]))
        return out
    x = _padded(x)
    out = _linear(x, taps[CENTRE], bias)
    for tap, in_rows, out_rows in book.pairs:
        if in_rows.numel():
            out.index_add_(0, _pad_index(out_rows, n), _linear(x.index_select(0, _pad_index(in_rows, n)), taps[tap]))
    return out[:n]


class _SubmConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, book: Rulebook) -> torch.Tensor:
        taps = conv_taps(weight.to(x.dtype))
        ctx.save_for_backward(x, taps)
        ctx.book, ctx.weight_dtype = book, weight.dtype
        return _conv_rows(x, taps, book)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, taps = ctx.saved_tensors
        book: Rulebook = ctx.book
        grad = grad.contiguous()
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            # transposed conv: tap k's pairs reversed are tap 8−k's, so it is a conv with taps W_{8−k}^T
            flipped = taps.flip(0).transpose(1, 2).contiguous()
            grad_x = _conv_rows(grad, flipped, book)
        if ctx.needs_input_grad[1]:
            # dW_k = G[out rows]^T · X[in rows]: _linear(a, b) = a · b^T on the transposed views (oneDNN takes
            # strides); on the oneDNN route the pair lists are padded (zero rows) as in _conv_rows
            n = x.shape[0]
            pad = _onednn(x)
            gp, xp = (_padded(grad), _padded(x)) if pad else (grad, x)
            grads = torch.zeros_like(taps)
            grads[CENTRE] = _linear(gp.t(), xp.t())
            for tap, in_rows, out_rows in book.pairs:
                if in_rows.numel():
                    if pad:
                        in_rows, out_rows = _pad_index(in_rows, n), _pad_index(out_rows, n)
                    grads[tap] = _linear(gp.index_select(0, out_rows).t(), xp.index_select(0, in_rows).t())
            c_out, c_in = taps.shape[1:]
            grad_weight = grads.view(3, 3, c_out, c_in).permute(2, 3, 0, 1).to(ctx.weight_dtype)
        return grad_x, grad_weight, None


def subm_conv(x: torch.Tensor, weight: torch.Tensor, book: Rulebook) -> torch.Tensor:
    """Submanifold 3×3 conv (no bias) of rows x (n, C_in) with a dense-layout weight [C_out, C_in, 3, 3]."""
    return _SubmConv.apply(x, weight, book)


def _gather_rows(x: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Rows (n, C) of x (N, C, H, W) at the flat cells. A channels-last x is indexed in place; an NCHW one
    is transposed only at the active cells (its (C, N·H·W) view copies with contiguous inner runs)."""
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(-1, c).index_select(0, cells)
    return x.transpose(0, 1).reshape(c, -1).index_select(1, cells).t().contiguous()


def _rows_to_map(rows: torch.Tensor, cells: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Rows (n, C) at flat cells → zero-filled (N, C, H, W) map (channels-last memory)."""
    n, h, w = shape
    flat = rows.new_zeros(n * h * w, rows.shape[1]).index_copy_(0, cells, rows)
    return flat.view(n, h, w, rows.shape[1]).permute(0, 3, 1, 2)


def _pool_rows(rows: torch.Tensor, cells: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """2×2 sparse max-pool of rows ≥ 0: (pooled rows, their flat cells in the pooled grid, pooled mask).

    A pooled cell is active iff a cell of its window is; its value max(0, max over the active ones)."""
    n, h, w = mask.shape
    pooled = pool_mask(mask)
    pooled_cells = pooled.reshape(-1).nonzero().squeeze(1)
    frame, y, x = cells // (h * w), (cells // w) % h, cells % w
    if h % 2 or w % 2:                                  # the last row/column of an odd grid is in no window
        inside = (y < h - h % 2) & (x < w - w % 2)
        rows, frame, y, x = rows[inside], frame[inside], y[inside], x[inside]
    compact = torch.empty(pooled.numel(), dtype=torch.long, device=mask.device)
    compact[pooled_cells] = torch.arange(pooled_cells.numel(), device=mask.device)
    parent = compact[(frame * (h // 2) + y // 2) * (w // 2) + x // 2]
    out = rows.new_zeros(pooled_cells.numel(), rows.shape[1])
    out = out.scatter_reduce(0, parent[:, None].expand(-1, rows.shape[1]), rows, "amax", include_self=True)
    return out, pooled_cells, pooled


def gather_block(block: SparseVGGBlock, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``block`` on the active cells of x (N, C_in, H, W) by gather-GEMM; returns (y, output mask).

    Runs in float32 (float64 stays float64) outside autocast, like the spconv backend."""
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    with torch.autocast(device_type=x.device.type, enabled=False):
        y, out_mask = _gather_block(block, x.to(dtype), mask)
    return y.to(x.dtype), out_mask


def _gather_block(block: SparseVGGBlock, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n, c, h, w = x.shape
    book = rulebook(mask)
    rows = _gather_rows(x, book.cells)
    fold = not block.training and not torch.is_grad_enabled() and book.rows > 0
    for conv, bn in block.layers():
        if fold:
            taps, bias = folded_conv(conv, bn, rows.dtype, taps=True)
            rows = torch.relu_(_conv_rows(rows, taps, book, bias))
        else:
            rows = torch.relu(bn(subm_conv(rows, conv.weight, book)))
    if not block.pool:
        return _rows_to_map(rows, book.cells, (n, h, w)), mask
    pooled_rows, pooled_cells, pooled = _pool_rows(rows, book.cells, mask)
    return _rows_to_map(pooled_rows, pooled_cells, (n, h // 2, w // 2)), pooled
