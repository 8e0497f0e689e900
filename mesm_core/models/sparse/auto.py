"""``auto``: per call, the sparse path with the least measured time at this block's FLOPs share.

The decision variable is the block's FLOPs share s = Σ_active cells #active 3×3 neighbours / (9 · N·H·W)
(the ``actual / dense`` of ``mesm_core.flops`` for this block): the ``gather`` and ``spconv`` paths do
work per neighbour pair, so their time follows s, while ``dense`` costs the same at any s.

``crossovers.json`` (next to this file) holds, per device type, CPU thread count, mode (``forward``:
no autograd; ``train``: forward + backward) and block shape (``C_in x C_out @ H x W``), the time of each
path ÷ the dense VGG block's time, measured at several s by ``benchmarks/sparse_blocks.py --calibrate``
(medians of interleaved repeats; the file records the machine, load, torch version and command). Each
path's measured ratios are made non-decreasing in s (pool-adjacent-violators: more neighbour pairs never
take less work, so a dip is timing noise on a shared machine). For a call, each available path's time is
interpolated linearly in s between the measured points (clamped at the ends) and the least wins; the
crossovers are where the winner changes. Shapes that were not
measured use the measured shape nearest in log(C_in·C_out) and log(H·W); thread counts the nearest
measured one. A device type with no measurement (CUDA until ``benchmarks/gpu_check.sh`` has run on
one) gets ``dense``, which is never slower than the dense block by more than its mask multiplies.

On CPU, ``spconv`` is a candidate only once ``spconv.pytorch`` has been imported (by the user, or an
explicit ``sparse_backend="spconv"``): its import and first call are a one-time cost the steady-state table
does not show, 29.7 s measured on the development machine under load (environment notes: 6-10 s for the
import alone), which would freeze the studio on its first low-p slider move.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mesm_core.models.sparse.backends import PATHS, path_backend, spconv_available
from mesm_core.models.sparse.block import SparseVGGBlock

__all__ = ["TABLE_PATH", "auto_block", "choose_path", "flops_share", "load_table", "block_key", "path_curves"]

TABLE_PATH = Path(__file__).with_name("crossovers.json")
UNMEASURED = "dense"


def flops_share(mask: torch.Tensor) -> float:
    """s of a mask (N, H, W): active-neighbour pairs ÷ the 9 · N·H·W of a dense 3×3 conv."""
    if mask.numel() == 0:
        return 0.0
    h, w = mask.shape[1:]
    padded = F.pad(mask.to(torch.float32), (1, 1, 1, 1))
    rows = padded[:, :, :w] + padded[:, :, 1:w + 1] + padded[:, :, 2:]          # separable 3×3 box sum
    neighbours = rows[:, :h] + rows[:, 1:h + 1] + rows[:, 2:]
    return float((neighbours * mask).sum()) / (9.0 * mask.numel())


def block_key(c_in: int, c_out: int, height: int, width: int) -> str:
    return f"{c_in}x{c_out}@{height}x{width}"


def _parse_key(key: str) -> tuple[float, float]:
    channels, grid = key.split("@")
    c_in, c_out = (int(v) for v in channels.split("x"))
    h, w = (int(v) for v in grid.split("x"))
    return math.log(c_in * c_out), math.log(h * w)


@functools.lru_cache(maxsize=4)
def load_table(path: str | None = None) -> dict[str, Any]:
    """The measured crossover table (an empty one if the file is missing)."""
    file = Path(path) if path else TABLE_PATH
    if not file.is_file():
        return {"devices": {}}
    return json.loads(file.read_text(encoding="utf-8"))


def _nearest(options: dict[str, Any], key: str) -> dict[str, Any]:
    if key in options:
        return options[key]
    target = _parse_key(key)
    best = min(options, key=lambda k: sum(abs(a - b) for a, b in zip(_parse_key(k), target)))
    return options[best]


def _interpolate(xs: list[float], ys: list[float], x: float) -> float:
    if x <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def _non_decreasing(values: list[float]) -> list[float]:
    """Least-squares non-decreasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []                      # [mean, count]
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, count = blocks.pop()
            blocks[-1] = [(blocks[-1][0] * blocks[-1][1] + mean * count) / (blocks[-1][1] + count), blocks[-1][1] + count]
    return [mean for mean, count in blocks for _ in range(int(count))]


def path_curves(points: dict[str, Any]) -> dict[str, list[float]]:
    """Each path's ratio at ``points["share"]``, made non-decreasing in s (cached on the points dict)."""
    curves = points.get("_curves")
    if curves is None:
        curves = points["_curves"] = {p: _non_decreasing(v) for p, v in points["ratio"].items()}
    return curves


def choose_path(
    block: SparseVGGBlock,
    mask: torch.Tensor,
    grad: bool = False,
    device: torch.device | str | None = None,
    threads: int | None = None,
    share: float | None = None,
    table: dict[str, Any] | None = None,
) -> str:
    """The path ("dense" | "gather" | "spconv") auto runs for ``block`` on ``mask`` (see the module docstring)."""
    device_type = torch.device(device if device is not None else mask.device).type
    table = load_table() if table is None else table
    per_device = table.get("devices", {}).get(device_type)
    if not per_device:
        return UNMEASURED
    by_threads = per_device["threads"]
    wanted = threads if threads is not None else torch.get_num_threads()
    entry = by_threads[min(by_threads, key=lambda t: (abs(int(t) - wanted), int(t)))]
    modes = entry.get("train" if grad else "forward") or entry.get("forward")
    if not modes:
        return UNMEASURED
    points = _nearest(modes, block_key(block.in_channels, block.out_channels, mask.shape[1], mask.shape[2]))
    s = flops_share(mask) if share is None else share
    curves = path_curves(points)
    available = [p for p in PATHS if p in curves and (p != "spconv" or _spconv_ready(device_type))]
    if not available:
        return UNMEASURED
    return min(available, key=lambda p: _interpolate(points["share"], curves[p], s))


def _spconv_ready(device_type: str) -> bool:
    return spconv_available() and (device_type != "cpu" or "spconv.pytorch" in sys.modules)


def auto_block(block: SparseVGGBlock, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``block`` with the path :func:`choose_path` picks for this call."""
    grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in block.parameters()))
    return path_backend(choose_path(block, mask, grad=grad, device=x.device))(block, x, mask)
