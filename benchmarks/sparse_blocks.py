"""Wall-clock of MESM's three sparse VGG blocks: dense vs masked vs spconv, at several kept fractions.

Only the sparse blocks are timed (not attention, not the rest of the model). Masks are random with
the requested kept fraction per frame at block 1, and the same fraction of the surviving (pooled)
cells at blocks 2-3, like nucleus selection. "dense" runs the same weights as ordinary conv + BN +
ReLU + max-pool over every cell. Ratios are time / dense time from the same run.

    python benchmarks/sparse_blocks.py                         # paper-size visual blocks, CPU
    python benchmarks/sparse_blocks.py --modality audio --device cuda --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from mesm_core.config import ModelConfig
from mesm_core.flops import active_neighbour_count
from mesm_core.models.sparse import SparseVGGBlock, get_backend, pool_mask, spconv_available
from mesm_core.models.vgg import encoder_geometry
from mesm_core.presets import get_preset


def build_blocks(config: ModelConfig, device: torch.device) -> tuple[list[SparseVGGBlock], int]:
    first = len(config.block_channels) - config.n_sparse_blocks
    c_in = config.block_channels[first - 1] if first > 0 else config.stem_channels
    blocks = []
    for index in range(first, len(config.block_channels)):
        blocks.append(SparseVGGBlock(c_in, config.block_channels[index], pool=index in config.pool_after).to(device).eval())
        c_in = config.block_channels[index]
    return blocks, blocks[0].in_channels


def make_masks(n: int, grid: tuple[int, int], blocks: list[SparseVGGBlock], fraction: float, gen: torch.Generator, device) -> list[torch.Tensor]:
    """One kept mask per block: `fraction` of the cells (≥1 per frame) that are active at that block."""
    masks, active = [], torch.ones(n, *grid, dtype=torch.bool)
    for block in blocks:
        scores = torch.rand(active.shape, generator=gen).masked_fill(~active, 2.0)
        n_active = active.flatten(1).sum(1)
        n_keep = (n_active.float() * fraction).ceil().clamp_min(1).long()
        rank = scores.flatten(1).argsort(1).argsort(1).view_as(scores)
        kept = (rank < n_keep[:, None, None]) & active
        masks.append(kept.to(device))
        active = pool_mask(kept) if block.pool else kept
    return masks


def dense_blocks(blocks: list[SparseVGGBlock], x: torch.Tensor) -> torch.Tensor:
    for block in blocks:
        for conv, bn in block.layers():
            x = F.relu(F.batch_norm(conv(x), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps))
        if block.pool:
            x = F.max_pool2d(x, 2)
    return x


def sparse_blocks(blocks: list[SparseVGGBlock], x: torch.Tensor, masks: list[torch.Tensor], backend) -> torch.Tensor:
    for block, kept in zip(blocks, masks):
        x, _ = backend(block, x * kept[:, None].to(x.dtype), kept)
    return x


def timed(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median milliseconds per function; calls are interleaved round-robin (after one warm-up each)
    so that load changes on a shared machine hit every variant alike."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for name, fn in fns.items():
        fn()
    sync()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mesm_iemocap", help="architecture to take the blocks from")
    parser.add_argument("--modality", choices=["visual", "audio"], default="visual")
    parser.add_argument("--frames", type=int, default=16, help="frames (or chunks) per call")
    parser.add_argument("--fractions", default="0.1,0.3,0.5,0.7,1.0")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backward", action="store_true", help="time forward + backward instead of forward only")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    config = get_preset(args.preset).model
    torch.manual_seed(0)
    blocks, c_in = build_blocks(config, device)
    size = (config.face_size, config.face_size) if args.modality == "visual" else (config.n_mels, config.chunk_frames)
    first = len(config.block_channels) - config.n_sparse_blocks
    grid = encoder_geometry(size, config.block_channels, config.pool_after, config.stem_channels)[first][1:]
    x = torch.relu(torch.randn(args.frames, c_in, *grid, device=device))
    backends = ["masked"] + (["spconv"] if spconv_available() else [])
    gen = torch.Generator().manual_seed(0)

    def variant(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        if not args.backward:
            def forward():
                with torch.no_grad():
                    return fn(x)
            return forward

        def step():
            xx = x.clone().requires_grad_(True)
            fn(xx).sum().backward()
        return step

    mode = "forward+backward" if args.backward else "forward"
    print(f"# {args.preset} {args.modality} sparse blocks, {args.frames} × {c_in}×{grid[0]}×{grid[1]} input, "
          f"{mode}, median of {args.repeats} interleaved runs, device {device} ({torch.get_num_threads()} threads), "
          f"torch {torch.__version__}")
    print(f"{'kept':>5} {'FLOPs':>6} {'dense ms':>9} " + " ".join(f"{b + ' ms':>10} {'÷dense':>6}" for b in backends))
    for fraction in [float(f) for f in args.fractions.split(",")]:
        masks = make_masks(args.frames, grid, blocks, fraction, gen, device)
        fns = {"dense": variant(lambda xx: dense_blocks(blocks, xx))}
        for name in backends:
            fns[name] = variant(lambda xx, backend=get_backend(name): sparse_blocks(blocks, xx, masks, backend))
        ms = timed(fns, args.repeats, device)
        macs = [b.in_channels * b.out_channels + b.out_channels ** 2 for b in blocks]
        counted = sum(float(active_neighbour_count(m)) * k for m, k in zip(masks, macs))
        full = sum(9.0 * m.numel() * k for m, k in zip(masks, macs))
        cells = [f"{fraction:5.2f} {counted / full:6.3f} {ms['dense']:9.1f}"]
        cells += [f"{ms[name]:10.1f} {ms[name] / ms['dense']:6.2f}" for name in backends]
        print(" ".join(cells), flush=True)


if __name__ == "__main__":
    main()
