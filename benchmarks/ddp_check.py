"""A short DDP training run under torchrun, on NCCL (CUDA) or gloo (CPU), with one process or more.

The project's trainer joins a process group only with WORLD_SIZE > 1; this check joins one with any
world size (one GPU is enough), wraps the model in DistributedDataParallel exactly as the trainer
does (``find_unused_parameters`` from ``may_leave_parameters_unused``), trains ``--steps`` steps from a
cache with the trainer's collate, and checks an all-reduce and that the ranks' weights agree.

    torchrun --nproc_per_node 1 benchmarks/ddp_check.py --cache benchmarks/gpu_cache --json OUT.json
    torchrun --nproc_per_node 2 benchmarks/ddp_check.py --device cpu --preset mesm_small   # gloo
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True)
    parser.add_argument("--preset", default="mesm_iemocap")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import mesm_core
    from mesm_core.data import CacheDataset, collate
    from mesm_core.data.cache import read_cache_info
    from mesm_core.distributed import may_leave_parameters_unused

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    result: dict = {"backend": backend, "world_size": world, "preset": args.preset, "device": str(device)}
    try:
        torch.manual_seed(0)
        classes = read_cache_info(args.cache).classes
        model = mesm_core.create_model(args.preset, text_pretrained=False, text_model="minilm",
                                       classes=tuple(classes)).to(device).train()
        dataset = CacheDataset(args.cache, "train", classes=model.classes)
        find_unused = may_leave_parameters_unused(model.config, dataset)
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=find_unused)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=args.batch_size, collate_fn=partial(collate, tokenizer=model.tokenizer),
            sampler=torch.utils.data.distributed.DistributedSampler(dataset, num_replicas=world, rank=rank))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
        losses, start = [], time.perf_counter()
        for step, batch in zip(range(args.steps), loader):
            batch = batch.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = ddp(batch).logits
            loss = F.binary_cross_entropy_with_logits(logits.float(), batch.labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
        if device.type == "cuda":
            torch.cuda.synchronize()
        total = torch.tensor([float(rank + 1)], device=device)
        dist.all_reduce(total)
        flat = torch.cat([p.detach().flatten()[:1000].float() for p in model.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        result.update(find_unused_parameters=find_unused, steps=len(losses), losses=losses,
                      seconds=time.perf_counter() - start, all_reduce_ok=float(total) == world * (world + 1) / 2,
                      weights_agree=all(torch.equal(g, gathered[0]) for g in gathered), ok=True)
    except Exception as exc:  # noqa: BLE001 - the check reports any failure
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    finally:
        dist.destroy_process_group()
    if rank == 0:
        print(json.dumps(result, indent=1))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0 if result.get("ok") and result.get("all_reduce_ok") and result.get("weights_agree") else 1


if __name__ == "__main__":
    sys.exit(main())
