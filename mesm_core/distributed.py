"""Process-group helpers for single-process and ``torchrun`` (DDP) runs (training, and the prediction collector).

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; when they are present
:func:`init_distributed` joins the group (gloo on CPU, nccl on CUDA). Everything here is a no-op in a
plain single process, so the trainer calls these helpers unconditionally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from mesm_core.errors import InputError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class DeviceError(InputError, RuntimeError):
    """The requested device is not available."""


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available else CPU; ``cuda`` without CUDA raises DeviceError."""
    if preference not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"unknown device {preference!r} (choose auto, cpu or cuda)")
    if preference == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was requested but CUDA is not available on this machine")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def init_distributed(device_preference: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; otherwise a single-process DistInfo."""
    if not launched_by_torchrun():
        return DistInfo(device=resolve_device(device_preference))
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def cleanup_distributed(synchronize: bool = False) -> None:
    """Leave the process group. ``synchronize`` (a run that finished normally on every rank): wait for all
    ranks first, since a rank still inside gloo when its peer tears down aborts ("terminate called without an
    active exception", seen on a loaded 2-core CPU). Never after an error: a peer may never arrive."""
    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable, e.g. numpy arrays), in rank order; ``[obj]`` when single."""
    if not info.enabled:
        return [obj]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def any_rank(info: DistInfo, flag: bool) -> bool:
    """True on every rank when ``flag`` is True on at least one (e.g. a stop request)."""
    if not info.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def broadcast_object(info: DistInfo, obj: Any, src: int = 0) -> Any:
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def may_leave_parameters_unused(model_config: Any, train_dataset: Any = None) -> bool:
    """Whether a training step can leave a trainable parameter without a gradient, i.e. whether DDP needs
    ``find_unused_parameters=True`` (which costs an extra autograd-graph traversal every step).

    Two cases (tests/test_train_ddp_unused.py checks every other configuration uses all its parameters):
      * MESM with ``attention_mode="reference"``: the attention layers never get a gradient;
      * training data with clips that have no frames or no mel chunks (kept, docs/deviations.md): a batch
        made only of such clips skips that modality's CNN. Read from the cache manifest's ``n_frames`` /
        ``n_chunks``; a dataset that does not list them counts as possibly having such clips.
    """
    if getattr(model_config, "attention_mode", None) == "reference":
        from mesm_core.models.registry import get_arch

        if get_arch(model_config.arch).supports_top_p:  # FE2E carries the field but has no attention
            return True
    if train_dataset is None:
        return False
    entries = getattr(train_dataset, "entries", None)
    if entries is None:
        return True
    modalities = tuple(getattr(model_config, "modalities", ("audio", "visual")))
    fields = [f for m, f in (("visual", "n_frames"), ("audio", "n_chunks")) if m in modalities]
    return any(int(entry.get(f, 0) or 0) == 0 for entry in entries for f in fields)
