"""Shared helpers of the speed benchmarks: interleaved timing, summaries, the machine record.

Timing rule (docs/results/README.md): the variants of one measurement run round-robin, one call of
each per round after a warm-up call each, so load changes on a shared machine hit every variant
alike; a variant's figure is the median over rounds, its spread the quartiles and the extremes, and
a ratio between two variants is the median of the per-round ratios.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "results"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                warmup: int = 1, min_ms: float = 0.0) -> dict[str, list[float]]:
    """Milliseconds per call of each function, ``repeats`` rounds, round-robin.

    ``min_ms`` > 0: a variant faster than that (by its warm-up call) is called k times in a row per round
    and its sample is the mean of the k, so that millisecond calls are not lost in timer and scheduler noise."""
    inner: dict[str, int] = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            elapsed = (time.perf_counter() - start) * 1e3
        inner[name] = max(1, math.ceil(min_ms / max(elapsed, 1e-3))) if min_ms > 0 else 1
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - start) * 1e3 / inner[name])
    return times


def quartiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {"median": statistics.median(ordered), "q1": q1, "q3": q3, "min": ordered[0], "max": ordered[-1]}


def ratio_summary(values: list[float], reference: list[float]) -> dict[str, float]:
    """Per-round ratios values[i] / reference[i], summarised."""
    return quartiles([v / r for v, r in zip(values, reference)])


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_record(device: torch.device | None = None) -> dict[str, Any]:
    """Where and how a benchmark ran: CPU/GPU, cores, load average, torch, the exact command."""
    record: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "load_average_start": load_average(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS") if k in os.environ},
    }
    if device is not None and device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
        record["cuda"] = torch.version.cuda
    return record


def finish_record(record: dict[str, Any]) -> dict[str, Any]:
    record["load_average_end"] = load_average()
    return record


def machine_line(record: dict[str, Any]) -> str:
    gpu = f", GPU {record['gpu']} (CUDA {record.get('cuda')})" if record.get("gpu") else ", no GPU used"
    env = "".join(f"; {k}={v}" for k, v in record.get("env", {}).items())
    return (f"{record['cpu']}, {record['cpu_cores']} cores visible{gpu}{env}; load average (1/5/15 min) "
            f"{record['load_average_start']} at the start, {record.get('load_average_end')} at the end; "
            f"torch {record['torch']}; {record['date']}")


def markdown_header(title: str, machine: dict[str, Any]) -> list[str]:
    """The first lines of every results page: title, the exact command, the machine and its load."""
    return [f"# {title}", "", f"Command: `{machine['command']}`  ", f"Machine: {machine_line(machine)}.", ""]


def write_results(stem: str, payload: dict[str, Any], markdown: str, folder: Path | None = None) -> tuple[Path, Path]:
    folder = folder or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    md_path.write_text(markdown, encoding="utf-8")
    return json_path, md_path
