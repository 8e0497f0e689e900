"""Training state (optimizer, scheduler, counters, RNG) saved without pickled code.

Checkpoint directories are replaced atomically (:func:`atomic_directory`, over ``mesm_core.io``);
:func:`find_resumable` falls back to the ``.old`` copy kept during the swap.

``training_state.pt`` is a ``torch.save`` of plain dicts, lists, numbers, strings and tensors only;
it is loaded with ``torch.load(weights_only=True)``, which refuses anything else.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mesm_core.io import atomic_directory as _atomic_directory

STATE_FILE = "training_state.pt"
STATE_FORMAT = 1


@dataclass
class LoopState:
    """Counters the loop needs to continue exactly where it stopped.

    ``epoch`` is the epoch in progress (0-based); ``batch_in_epoch`` the batches of it already trained
    (0 at an epoch boundary). ``epoch_loss_sum``/``epoch_samples`` accumulate the running train loss.
    """

    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0
    best_metric: float = float("-inf")
    best_epoch: int = -1
    epochs_without_improvement: int = 0
    epoch_loss_sum: float = 0.0
    epoch_samples: int = 0
    epoch_grad_norm_sum: float = 0.0
    epoch_grad_norm_max: float = 0.0
    epoch_aux_sums: dict[str, float] = field(default_factory=dict)  # weighted selection losses, summed over steps
    epoch_top_p: float | None = None  # MESM: the training p of the last step (keep-rate schedule)
    finished: bool = False
    stop_reason: str = ""
    history: list[dict] = field(default_factory=list)


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states as tensors/ints (no pickled objects)."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_cached_gauss": float(np_state[4]),
        "python_version": int(py_version),
        "python_internal": torch.tensor(py_internal, dtype=torch.int64),
        "python_gauss": None if py_gauss is None else float(py_gauss),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            int(state["numpy_pos"]),
            int(state["numpy_has_gauss"]),
            float(state["numpy_cached_gauss"]),
        )
    )
    random.setstate((int(state["python_version"]), tuple(int(v) for v in state["python_internal"].tolist()), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def save_training_state(
    directory: Path,
    *,
    loop: LoopState,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    scaler: Any | None,
    rng: dict[str, Any],
) -> Path:
    path = Path(directory) / STATE_FILE
    payload = {
        "format": STATE_FORMAT,
        "loop": asdict(loop),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),
        "rng": rng,
    }
    torch.save(payload, path)
    return path


def load_training_state(directory: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read ``training_state.pt`` (weights_only: no code is unpickled). Raises FileNotFoundError /
    ValueError naming the file."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training state to resume from")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file or a payload with code in it
        raise ValueError(f"{path}: unreadable training state ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: unknown training-state format")
    payload["loop"] = LoopState(**payload["loop"])
    return payload


def atomic_directory(final: Path):
    """``mesm_core.io.atomic_directory`` keeping the replaced checkpoint as ``<final>.old`` during the
    swap, so :func:`find_resumable` still finds a state if the process dies right then."""
    return _atomic_directory(final, old_name=Path(final).name + ".old")


def find_resumable(run_dir: Path) -> Path | None:
    """``RUN/last`` (or ``RUN/last.old`` after a crash mid-replace) when it holds a training state."""
    for name in ("last", "last.old"):
        candidate = Path(run_dir) / name
        if (candidate / STATE_FILE).is_file():
            return candidate
    return None
