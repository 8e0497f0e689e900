"""Training throughput: clips/s and peak memory of FE2E and MESM, from a preprocessed cache, with the real trainer.

Each preset runs ``Trainer._train_step`` (the training loop's own step: autocast, loss, selection losses,
backward, clipping, optimizer) on batches from the trainer's own DataLoader over the cache, with the
data-loader workers a user would set (``--workers``, default: 4 capped at the CPU count). After warm-up
steps, ``--steps`` steps are timed; clips/s = clips ÷ wall time, where the wall time is split into
waiting for data and the step itself. ``--data memory`` cycles through batches collated in advance
(the model alone). The heads take the cache's classes (an IEMOCAP preset on the synthetic cache gets its
six). CUDA runs with AMP (bf16 autocast) by default, CPU without (the trainer ignores AMP
on CPU). Paper presets get the MiniLM text encoder (``--text minilm``; with random weights where the
packaged MiniLM is not installed, same architecture and cost) or their own (``--text preset``, ALBERT-base,
random weights offline). ``--profile`` splits a step: data, text encoder, CNNs (+ sparse stage), rest
(temporal Transformers, heads, loss, optimizer, Python), timed separately on one batch, and on CUDA the GPU's
busy time from the profiler. Peak memory: CUDA ``max_memory_allocated``; CPU the process's peak RSS.

    python benchmarks/train_throughput.py                              # CPU: small and full presets
    python benchmarks/train_throughput.py --device cuda --presets fe2e_iemocap,mesm_iemocap --profile
    python benchmarks/train_throughput.py --subset benchmarks/gpu_cache --clips 256   # a small cache to ship
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import REPO, finish_record, machine_record, markdown_header, quartiles, sync, write_results  # noqa: E402

DEFAULT_CACHE = REPO / "data" / "synthetic_cache"
PRESETS = "fe2e_small,mesm_small,fe2e_iemocap,mesm_iemocap"


def make_subset(source: Path, target: Path, clips: int, valid: int = 8) -> Path:
    """Copy ``clips`` training and ``valid`` validation records of a cache (manifest, info, npz files)."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "records").mkdir(exist_ok=True)
    for name in ("cache.json", "splits.json"):
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    wanted = {"train": clips, "valid": valid}
    lines = []
    for line in (source / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("status") == "ok" and wanted.get(entry.get("split"), 0) > 0:
            wanted[entry["split"]] -= 1
            shutil.copy2(source / entry["file"], target / entry["file"])
            lines.append(line)
    (target / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def cache_classes(cache: Path) -> tuple[str, ...] | None:
    from mesm_core.data.cache import read_cache_info
    from mesm_core.errors import InputError

    try:
        return read_cache_info(cache).classes
    except InputError:
        return None


def _config(preset: str, text: str, device: torch.device, amp: bool, batch_size: int | None, cache: Path,
            teacher: str | None = None):
    from mesm_core.models.text import minilm_path
    from mesm_core.presets import get_preset

    cfg = get_preset(preset)
    classes = cache_classes(cache)
    if classes and tuple(cfg.model.classes) != classes:
        cfg.model.classes = classes         # e.g. an IEMOCAP preset on the synthetic cache: only the heads' width changes
    pretrained = True
    if text == "minilm" and cfg.model.text_model != "minilm":
        cfg.model.text_model = "minilm"
    if cfg.model.text_model == "minilm" and minilm_path() is None:
        pretrained = False
    elif cfg.model.text_model not in ("minilm", "tiny-random"):
        pretrained = False                  # offline: the preset's architecture with random weights
    cfg.train.amp = bool(amp and device.type == "cuda")
    cfg.train.amp_dtype = "bfloat16"
    if batch_size:
        cfg.train.batch_size = batch_size
    if teacher:
        from mesm_core.models.registry import get_arch

        if get_arch(cfg.model.arch).supports_top_p:
            cfg.train.distill_from = teacher   # the recipe's teacher: its targets are computed once, outside the timing
    return cfg, pretrained


def build_trainer(preset: str, cache: Path, device: torch.device, workers: int, amp: bool, text: str,
                  batch_size: int | None, run_dir: Path, teacher: str | None = None):
    from mesm_core.distributed import DistInfo
    from mesm_core.training.loop import Trainer, TrainOptions

    cfg, pretrained = _config(preset, text, device, amp, batch_size, cache, teacher)
    options = TrainOptions(run_dir=run_dir, cache_dir=cache, device=device.type, num_workers=workers,
                           text_pretrained=pretrained, progress=False, tensorboard=False, evaluate_test=False)
    trainer = Trainer(cfg, options, DistInfo(device=device))
    trainer.model.train()
    return trainer, {"text_model": cfg.model.text_model, "text_weights": "pretrained" if pretrained else "random",
                     "text_trainable": cfg.model.text_trainable, "batch_size": cfg.train.batch_size,
                     "amp": f"{cfg.train.amp_dtype} autocast" if trainer.use_amp else "off", "classes": len(cfg.model.classes),
                     "sparse_backend_in_training": _training_backend(cfg.model, cfg.train)}


def _training_backend(model_config, train_config) -> str | None:
    from mesm_core.models.registry import get_arch

    if not get_arch(model_config.arch).supports_top_p:
        return None
    if model_config.attention_mode == "straight_through":
        every = train_config.gate_every
        if every == 1:
            return "masked (the straight-through keep gate needs every cell)"
        return f"masked on the gated steps (1 in {every}), {model_config.sparse_backend} on the others"
    return model_config.sparse_backend


def _batches(trainer, source: str, n_preload: int):
    if source == "memory":
        batches = []
        for batch in trainer.train_loader:
            batches.append(batch)
            if len(batches) >= n_preload:
                break
        while True:
            yield from batches
    while True:
        yield from trainer.train_loader


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _profile(trainer, batch, device: torch.device, repeats: int = 3) -> dict:
    """Forward + backward of the text encoder and of the CNNs alone on one batch (ms, median), under the trainer's autocast."""
    from mesm_core.evaluation.collector import autocast_context

    model = trainer.model
    batch = batch.to(device)

    def timed(fn):
        values = []
        for i in range(repeats + 1):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            if i:
                values.append((time.perf_counter() - start) * 1e3)
        model.zero_grad(set_to_none=True)
        return quartiles(values)["median"]

    def text():
        with autocast_context(device, trainer.use_amp, trainer.amp_dtype):
            out = model.encode_text(batch.text)
        if out.requires_grad:
            out.float().sum().backward()

    def cnn():
        with autocast_context(device, trainer.use_amp, trainer.amp_dtype):
            dense = model.encode_dense(batch)
            if model.supports_top_p:
                with torch.no_grad():
                    cls = model.encode_text(batch.text)
            total = 0
            for m in model.branches:
                x = dense[m]
                if model.supports_top_p:
                    lengths = batch.face_lengths if m == "visual" else batch.chunk_lengths
                    query = cls[torch.repeat_interleave(torch.arange(lengths.shape[0], device=device), lengths)]
                    x = model._sparse_stage(m, x, query, None, False).features
                total = total + x.float().sum()
        total.backward()

    result = {"text_encoder_ms": timed(text) if model.text_encoder is not None else 0.0, "cnn_ms": timed(cnn)}
    if device.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            sync(device)
            start = time.perf_counter()
            for _ in range(repeats):
                trainer._train_step(batch)
            sync(device)
            wall = (time.perf_counter() - start) * 1e3 / repeats
        busy = sum(getattr(e, "self_device_time_total", 0.0) for e in prof.key_averages()) / 1e3 / repeats
        result.update(step_wall_ms=wall, gpu_busy_ms=busy, gpu_busy_fraction=busy / wall if wall else None)
    return result


def measure(preset: str, args, device: torch.device, cache: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trainer, info = build_trainer(preset, cache, device, args.workers, args.amp, args.text, args.batch_size,
                                      Path(tmp) / "run", args.teacher)
        frames = [int(e.get("n_frames", 0)) for e in trainer.datasets["train"].entries]
        chunks = [int(e.get("n_chunks", 0)) for e in trainer.datasets["train"].entries]
        stream = _batches(trainer, args.data, n_preload=args.warmup + args.steps)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        data_s = step_s = 0.0
        clips = 0
        first = None
        for index in range(args.warmup + args.steps):
            if index == args.warmup:
                sync(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                data_s = step_s = 0.0
                clips = 0
                wall_start = time.perf_counter()
            start = time.perf_counter()
            batch = next(stream)
            got = time.perf_counter()
            trainer._train_step(batch)
            sync(device)
            data_s += got - start
            step_s += time.perf_counter() - got
            clips += batch.batch_size
            if first is None:
                first = batch
        wall = time.perf_counter() - wall_start
        result = {
            "preset": preset, **info, "device": str(device), "workers": args.workers, "data": args.data,
            "steps": args.steps, "clips": clips, "wall_s": wall, "clips_per_s": clips / wall,
            "data_wait_s": data_s, "step_s": step_s,
            "mean_frames_per_clip": sum(frames) / max(1, len(frames)),
            "mean_chunks_per_clip": sum(chunks) / max(1, len(chunks)),
            "params_m": sum(p.numel() for p in trainer.model.parameters()) / 1e6,
        }
        if device.type == "cuda":
            result["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            result["peak_rss_mb"] = _peak_rss_mb()
        with torch.no_grad():
            out = trainer.model(first.to(device))
        result["feature_gflops_per_clip_forward"] = out.flops.dense / 1e9 / first.batch_size
        if args.profile:
            result["profile"] = _profile(trainer, first, device)
        del trainer
    mem = f"{result['peak_memory_mb']:.0f} MiB GPU" if "peak_memory_mb" in result else f"{result['peak_rss_mb']:.0f} MiB RSS"
    print(f"  {preset} {device} {info['amp']} workers {args.workers} ({args.data}): {result['clips_per_s']:.1f} clips/s, "
          f"data wait {data_s:.2f} s of {wall:.2f} s, peak {mem}", flush=True)
    return result


def markdown(payload: dict) -> str:
    lines = markdown_header("Training throughput (clips/s) from a preprocessed cache", payload["machine"]) + [
        f"Cache: `{payload['cache']}`. One row per preset: the trainer's own step on its own DataLoader; "
        "clips/s over the timed steps after warm-up; *data wait*: share of the wall time spent waiting for the "
        "loader. Text: the text encoder used and its weights (random weights cost the same). GFLOPs: the CNN "
        "feature extraction's dense forward count per clip (× ≈ 3 for forward + backward; the text encoder is not "
        "counted).",
        "",
        "| preset | device | AMP | workers | batch | text | clips/s | data wait | peak memory | frames/clip | CNN GFLOPs fwd/clip |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["runs"]:
        mem = f"{r['peak_memory_mb']:.0f} MiB (GPU)" if "peak_memory_mb" in r else f"{r['peak_rss_mb']:.0f} MiB (RSS)"
        lines.append(
            f"| {r['preset']} | {r['device']} | {r['amp']} | {r['workers']} ({r['data']}) | {r['batch_size']} | "
            f"{r['text_model']} ({r['text_weights']}{', trained' if r['text_trainable'] else ', frozen'}) | "
            f"{r['clips_per_s']:.1f} | {r['data_wait_s'] / r['wall_s']:.0%} | {mem} | {r['mean_frames_per_clip']:.1f} | "
            f"{r['feature_gflops_per_clip_forward']:.2f} |")
    profiled = [r for r in payload["runs"] if "profile" in r]
    if profiled:
        lines += ["", "Profile (one batch; ms): step = the whole training step; text / CNN = forward + backward of "
                  "that part alone; GPU busy = kernel time inside a step (CUDA).", "",
                  "| preset | step ms | data ms/step | text encoder ms | CNNs ms | rest ms | GPU busy |", "|---|---|---|---|---|---|---|"]
        for r in profiled:
            p = r["profile"]
            step = 1e3 * r["step_s"] / r["steps"]
            busy = f"{p['gpu_busy_fraction']:.0%}" if p.get("gpu_busy_fraction") is not None else "—"
            lines.append(f"| {r['preset']} | {step:.1f} | {1e3 * r['data_wait_s'] / r['steps']:.1f} | "
                         f"{p['text_encoder_ms']:.1f} | {p['cnn_ms']:.1f} | {step - p['text_encoder_ms'] - p['cnn_ms']:.1f} | {busy} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=PRESETS)
    parser.add_argument("--cache", default=str(DEFAULT_CACHE))
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--data", choices=("loader", "memory"), default="loader")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="CUDA: no bf16 autocast")
    parser.add_argument("--text", choices=("minilm", "preset"), default="minilm")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--teacher", default=None, help="a dense checkpoint: the MESM presets' --distill-from (their "
                        "recipe's teacher; its targets are computed before the timed steps)")
    parser.add_argument("--subset", default=None, help="write a small copy of --cache here and exit")
    parser.add_argument("--clips", type=int, default=256, help="with --subset: training clips to copy")
    parser.add_argument("--out", default=None, help="results stem in docs/results (default train_throughput_<device>)")
    parser.add_argument("--out-dir", default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    cache = Path(args.cache)
    if args.subset:
        print("wrote", make_subset(cache, Path(args.subset), args.clips))
        return {}
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    payload: dict = {"machine": machine_record(device), "cache": str(cache), "runs": []}
    for preset in args.presets.split(","):
        payload["runs"].append(measure(preset, args, device, cache))
    finish_record(payload["machine"])
    if not args.no_write:
        stem = args.out or f"train_throughput_{device.type}"
        print("wrote", *write_results(stem, payload, markdown(payload), Path(args.out_dir) if args.out_dir else None))
    return payload


if __name__ == "__main__":
    main()
