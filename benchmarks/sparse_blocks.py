"""Wall-clock of MESM's sparse VGG blocks on every path, against the dense VGG blocks, at several kept fractions.

Only the sparse blocks are timed (not attention, not the rest of the model). Masks are random with
the requested kept fraction per frame at block 1, and the same fraction of the surviving (pooled)
cells at blocks 2-3, like nucleus selection. "vgg" runs the same weights as ordinary conv + BN + ReLU
(+ max-pool) over every cell: the dense time every ratio divides by. Paths: masked (the reference
emulation), dense (the fast emulation), gather (gather-GEMM), spconv (when installed) and auto (the
per-call choice from ``mesm_core/models/sparse/crossovers.json``). "forward" runs in eval mode without
autograd; "backward" runs forward + backward in training mode (BN batch statistics), from the input
and into every parameter. Timing: docs/results/README.md (interleaved rounds, medians, per-round ratios).

    python benchmarks/sparse_blocks.py                       # the full grid, writes docs/results/sparse_blocks.{json,md}
    python benchmarks/sparse_blocks.py --presets mesm_iemocap --modalities visual --threads 1 --modes forward
    python benchmarks/sparse_blocks.py --calibrate --write-table   # per-block crossovers → crossovers.json
    python benchmarks/sparse_blocks.py --device cuda --threads 0 --out sparse_blocks_cuda
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import finish_record, interleaved, machine_record, markdown_header, quartiles, ratio_summary, write_results  # noqa: E402

from mesm_core.config import ModelConfig  # noqa: E402
from mesm_core.models.sparse import SparseVGGBlock, get_backend, pool_mask, spconv_available  # noqa: E402
from mesm_core.models.sparse.auto import TABLE_PATH, block_key, choose_path, flops_share, load_table  # noqa: E402
from mesm_core.models.vgg import encoder_geometry  # noqa: E402
from mesm_core.presets import get_preset  # noqa: E402

CALIBRATION_FRACTIONS = "0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.8,1.0"


def build_blocks(config: ModelConfig, device: torch.device) -> tuple[list[SparseVGGBlock], int]:
    first = len(config.block_channels) - config.n_sparse_blocks
    c_in = config.block_channels[first - 1] if first > 0 else config.stem_channels
    blocks = []
    for index in range(first, len(config.block_channels)):
        blocks.append(SparseVGGBlock(c_in, config.block_channels[index], pool=index in config.pool_after).to(device).eval())
        c_in = config.block_channels[index]
    return blocks, blocks[0].in_channels


def sparse_grid(config: ModelConfig, modality: str) -> tuple[int, int]:
    size = (config.face_size, config.face_size) if modality == "visual" else (config.n_mels, config.chunk_frames)
    first = len(config.block_channels) - config.n_sparse_blocks
    return encoder_geometry(size, config.block_channels, config.pool_after, config.stem_channels)[first][1:]


def make_masks(n: int, grid: tuple[int, int], blocks: list[SparseVGGBlock], fraction: float, gen: torch.Generator,
               device: torch.device) -> list[torch.Tensor]:
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


def vgg_blocks(blocks: list[SparseVGGBlock], x: torch.Tensor) -> torch.Tensor:
    """The dense VGG blocks with the same weights (BN: running statistics in eval, batch statistics in training)."""
    for block in blocks:
        for conv, bn in block.layers():
            h = conv(x)
            if block.training:
                x = F.relu(F.batch_norm(h, None, None, bn.weight, bn.bias, True, 0.0, bn.eps))
            else:
                x = F.relu(F.batch_norm(h, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps))
        if block.pool:
            x = F.max_pool2d(x, 2)
    return x


def sparse_blocks(blocks: list[SparseVGGBlock], x: torch.Tensor, masks: list[torch.Tensor], backend) -> torch.Tensor:
    """As MESM calls them: the block input is not zeroed off the kept mask (every backend masks it itself)."""
    for block, kept in zip(blocks, masks):
        x, _ = backend(block, x, kept)
    return x


def _paths() -> list[str]:
    return ["masked", "dense", "gather"] + (["spconv"] if spconv_available() else []) + ["auto"]


def _variant(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, blocks: list[SparseVGGBlock],
             backward: bool) -> Callable[[], object]:
    if not backward:
        def forward():
            with torch.no_grad():
                return fn(x)
        return forward
    params = [p for b in blocks for p in b.parameters()]

    def step():
        for p in params:
            p.grad = None
        xx = x.clone().requires_grad_(True)
        fn(xx).sum().backward()
    return step


def _counted_share(blocks: list[SparseVGGBlock], masks: list[torch.Tensor]) -> float:
    macs = [b.in_channels * b.out_channels + b.out_channels ** 2 for b in blocks]
    counted = sum(flops_share(m) * 9.0 * m.numel() * k for m, k in zip(masks, macs))
    return counted / sum(9.0 * m.numel() * k for m, k in zip(masks, macs))


def _sweep(fractions: list[float], variants, repeats: int, device: torch.device, min_ms: float) -> list[dict[str, list[float]]]:
    """Time every variant at every kept fraction. ``variants(i)`` gives the functions of fraction i (one named
    "vgg"). Each round runs all fractions, so a bad spell on the shared machine (a descheduled OpenMP thread can
    cost a path with many parallel regions 10× for a minute) hits every fraction in a few rounds rather than one
    fraction in all of them, and the medians drop it."""
    fns = {(i, name): fn for i in range(len(fractions)) for name, fn in variants(i).items()}
    times = interleaved(fns, repeats, device, min_ms=min_ms)
    return [{name: values for (j, name), values in times.items() if j == i} for i in range(len(fractions))]


def chain_case(preset: str, modality: str, backward: bool, fractions: list[float], frames: int, repeats: int,
               device: torch.device, min_ms: float = 0.0) -> dict:
    """The three sparse blocks of one modality as a chain, every path, at each kept fraction."""
    config = get_preset(preset).model
    torch.manual_seed(0)
    blocks, c_in = build_blocks(config, device)
    for block in blocks:
        block.train(backward)
    grid = sparse_grid(config, modality)
    x = torch.relu(torch.randn(frames, c_in, *grid, device=device))
    gen = torch.Generator().manual_seed(0)
    all_masks = [make_masks(frames, grid, blocks, fraction, gen, device) for fraction in fractions]

    def variants(i: int) -> dict:
        fns = {"vgg": _variant(lambda xx: vgg_blocks(blocks, xx), x, blocks, backward)}
        for name in _paths():
            fns[name] = _variant(lambda xx, backend=get_backend(name): sparse_blocks(blocks, xx, all_masks[i], backend),
                                 x, blocks, backward)
        return fns

    rows = []
    for fraction, masks, times in zip(fractions, all_masks, _sweep(fractions, variants, repeats, device, min_ms)):
        rows.append({
            "kept": fraction,
            "flops_share": _counted_share(blocks, masks),
            "block_shares": [flops_share(m) for m in masks],
            "auto_paths": [choose_path(b, m, grad=backward, device=device) for b, m in zip(blocks, masks)],
            "ms": {name: quartiles(values) for name, values in times.items()},
            "ratio": {name: ratio_summary(values, times["vgg"]) for name, values in times.items() if name != "vgg"},
        })
        best = min((n for n in rows[-1]["ratio"] if n != "auto"), key=lambda n: rows[-1]["ratio"][n]["median"])
        print(f"  {preset} {modality} {'fwd+bwd' if backward else 'fwd'} {torch.get_num_threads()}t kept {fraction:.2f} "
              f"share {rows[-1]['flops_share']:.3f} vgg {rows[-1]['ms']['vgg']['median']:.1f} ms  "
              + " ".join(f"{n} {r['median']:.2f}" for n, r in rows[-1]["ratio"].items())
              + f"  (best {best}; auto → {'/'.join(rows[-1]['auto_paths'])})", flush=True)
    return {
        "preset": preset, "modality": modality, "mode": "forward+backward" if backward else "forward",
        "threads": torch.get_num_threads(), "frames": frames, "input": [c_in, *grid],
        "blocks": [block_key(b.in_channels, b.out_channels, *m.shape[1:]) for b, m in zip(blocks, all_masks[0])],
        "rows": rows,
    }


def calibrate_case(preset: str, modality: str, backward: bool, fractions: list[float], frames: int, repeats: int,
                   device: torch.device, min_ms: float = 0.0) -> dict[str, dict]:
    """Each sparse block alone: time of each path ÷ the dense VGG block at random masks of each kept fraction."""
    config = get_preset(preset).model
    torch.manual_seed(0)
    blocks, _ = build_blocks(config, device)
    grid = sparse_grid(config, modality)
    gen = torch.Generator().manual_seed(1)
    table: dict[str, dict] = {}
    paths = ["dense", "gather"] + (["spconv"] if spconv_available() else [])
    for block in blocks:
        block.train(backward)
        key = block_key(block.in_channels, block.out_channels, *grid)
        x = torch.relu(torch.randn(frames, block.in_channels, *grid, device=device))
        masks = [make_masks(frames, grid, [block], fraction, gen, device)[0] for fraction in fractions]

        def variants(i: int, block=block, x=x, masks=masks) -> dict:
            fns = {"vgg": _variant(lambda xx: vgg_blocks([block], xx), x, [block], backward)}
            for name in paths:
                fns[name] = _variant(lambda xx, backend=get_backend(name): sparse_blocks([block], xx, [masks[i]], backend),
                                     x, [block], backward)
            return fns

        sweep = _sweep(fractions, variants, repeats, device, min_ms)
        shares = [flops_share(m) for m in masks]
        order = sorted(range(len(shares)), key=lambda i: shares[i])
        table[key] = {
            "share": [round(shares[i], 4) for i in order],
            "kept": [fractions[i] for i in order],
            "vgg_ms": [round(quartiles(sweep[i]["vgg"])["median"], 3) for i in order],
            "ratio": {name: [round(ratio_summary(sweep[i][name], sweep[i]["vgg"])["median"], 4) for i in order]
                      for name in paths},
        }
        print(f"  calibrate {key} {'train' if backward else 'forward'} {torch.get_num_threads()}t: "
              f"crossovers {crossovers(table[key])}", flush=True)
        if block.pool:
            grid = (grid[0] // 2, grid[1] // 2)
    return table


def crossovers(points: dict) -> list[tuple[str, float | None]]:
    """[(path, s up to which it wins), ...] from measured points (linear interpolation, as auto does)."""
    from mesm_core.models.sparse.auto import _interpolate, path_curves

    share, curves = points["share"], path_curves(dict(points))
    lo, hi = share[0], share[-1]
    grid = [lo + (hi - lo) * i / 400 for i in range(401)]
    winners = [min(curves, key=lambda n: _interpolate(share, curves[n], s)) for s in grid]
    out: list[tuple[str, float | None]] = []
    for s, name in zip(grid, winners):
        if not out or out[-1][0] != name:
            if out:
                out[-1] = (out[-1][0], round(s, 3))
            out.append((name, None))
    return out


def markdown(payload: dict) -> str:
    lines = markdown_header("Sparse VGG blocks: wall-clock of every path ÷ the dense VGG blocks", payload["machine"]) + [
        "Each table: the three sparse blocks of one modality, "
        f"{payload['frames']} frames or chunks, random masks of the kept fraction (block 1; blocks 2-3 keep that "
        "fraction of the pooled survivors). *FLOPs share*: counted submanifold FLOPs ÷ dense FLOPs. *vgg ms*: the dense "
        "VGG blocks, median [quartiles] over interleaved rounds. Path columns: median of the per-round ratios path ÷ vgg. "
        "*best*: the fastest path apart from auto. *target*: 1.5 × FLOPs share (issue 11; checked where the share ≥ 0.2). "
        "*auto*: the path it ran at blocks 1/2/3 (d = dense, g = gather, s = spconv).",
        "",
    ]
    for case in payload["chains"]:
        names = list(case["rows"][0]["ratio"])
        lines += [
            f"## {case['preset']} {case['modality']}, {case['mode']}, {case['threads']} thread(s), input "
            f"{case['frames']}×{'×'.join(map(str, case['input']))}",
            "",
            "| kept | FLOPs share | vgg ms | " + " | ".join(names) + " | best | target | auto ran |",
            "|" + "---|" * (len(names) + 6),
        ]
        for row in case["rows"]:
            vgg = row["ms"]["vgg"]
            ratios = {n: row["ratio"][n]["median"] for n in names}
            best = min((n for n in names if n != "auto"), key=ratios.get)
            target = 1.5 * row["flops_share"]
            met = "" if row["flops_share"] < 0.2 else (" ✓" if min(ratios[best], ratios["auto"]) <= target else " ✗")
            lines.append(
                f"| {row['kept']:.2f} | {row['flops_share']:.3f} | {vgg['median']:.1f} [{vgg['q1']:.1f}–{vgg['q3']:.1f}] | "
                + " | ".join(f"{ratios[n]:.2f}" for n in names)
                + f" | {best} | {target:.2f}{met} | {'/'.join(p[0] for p in row['auto_paths'])} |"
            )
        lines.append("")
    if payload.get("calibration"):
        lines += ["## Crossovers measured for auto (per block, FLOPs share s where the fastest path changes)", ""]
        for (mode, threads), table in (((c["mode"], c["threads"]), c["table"]) for c in payload["calibration"]):
            for key, points in table.items():
                steps = ", ".join(f"{name} up to s = {upto}" if upto is not None else f"{name} above"
                                  for name, upto in crossovers(points))
                lines.append(f"- {key}, {mode}, {threads} thread(s): {steps}")
        lines.append("")
    return "\n".join(lines)


def write_table(payload: dict, device: torch.device, path: Path = TABLE_PATH) -> None:
    """Merge this run's calibration into the crossover table auto reads."""
    table = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"devices": {}}
    table["about"] = ("Time of each sparse path ÷ the dense VGG block, at measured FLOPs shares s, per device type, "
                      "torch thread count, mode and block shape; written by benchmarks/sparse_blocks.py --calibrate "
                      "--write-table (see mesm_core/models/sparse/auto.py).")
    per_device = table["devices"].setdefault(device.type, {"threads": {}})
    for case in payload["calibration"]:
        entry = per_device["threads"].setdefault(str(case["threads"]), {})
        entry.setdefault(case["mode"], {}).update(case["table"])
        entry.setdefault("source", {})[case["mode"]] = {
            k: payload["machine"].get(k) for k in ("date", "command", "cpu", "gpu", "cpu_cores", "load_average_start",
                                                  "load_average_end", "torch")}
    path.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    load_table.cache_clear()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="mesm_iemocap,mesm_small", help="architectures to take the blocks from")
    parser.add_argument("--modalities", default="visual,audio")
    parser.add_argument("--threads", default="1,2", help="torch CPU thread counts, comma-separated (0: leave torch's)")
    parser.add_argument("--modes", default="forward,backward", help="forward and/or backward (forward + backward)")
    parser.add_argument("--frames", type=int, default=16, help="frames (or chunks) per call")
    parser.add_argument("--fractions", default="0.1,0.3,0.5,0.7,1.0")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds per measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-ms", type=float, default=25.0,
                        help="repeat calls faster than this within a round and time their mean (timer/scheduler noise)")
    parser.add_argument("--calibrate", action="store_true", help="measure per-block crossovers instead of the chains")
    parser.add_argument("--write-table", action="store_true", help="with --calibrate: merge into the table auto reads")
    parser.add_argument("--out", default=None, help="results stem in docs/results (default sparse_blocks[_calibration])")
    parser.add_argument("--out-dir", default=None, help="folder for the results (default docs/results)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    payload: dict = {"machine": machine_record(device), "frames": args.frames, "repeats": args.repeats,
                     "device": str(device), "spconv": spconv_available(), "chains": [], "calibration": []}
    fractions = [float(f) for f in (CALIBRATION_FRACTIONS if args.calibrate and args.fractions == "0.1,0.3,0.5,0.7,1.0"
                                    else args.fractions).split(",")]
    for threads in [int(t) for t in args.threads.split(",")]:
        if threads:
            torch.set_num_threads(threads)
        for mode in args.modes.split(","):
            backward = mode == "backward"
            for preset in args.presets.split(","):
                for modality in args.modalities.split(","):
                    if args.calibrate:
                        payload["calibration"].append({
                            "preset": preset, "modality": modality, "threads": torch.get_num_threads(),
                            "mode": "train" if backward else "forward",
                            "table": calibrate_case(preset, modality, backward, fractions, args.frames, args.repeats,
                                                    device, args.min_ms),
                        })
                    else:
                        payload["chains"].append(chain_case(preset, modality, backward, fractions, args.frames,
                                                            args.repeats, device, args.min_ms))
    finish_record(payload["machine"])
    if args.calibrate and args.write_table:
        write_table(payload, device)
    if not args.no_write:
        stem = args.out or ("sparse_blocks_calibration" if args.calibrate else "sparse_blocks")
        paths = write_results(stem, payload, markdown(payload), Path(args.out_dir) if args.out_dir else None)
        print("wrote", *paths)
    return payload


if __name__ == "__main__":
    main()
