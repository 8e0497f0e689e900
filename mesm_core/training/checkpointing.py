"""How the trainer saves RUN/last and RUN/best in the checkpoint format (``mesm_core.checkpoint``), the same for
every model family; it reads them back with ``load_weights_into`` / ``read_checkpoint_info`` directly.

``RUN/last`` and ``RUN/best`` are ordinary model checkpoints (``model.safetensors`` + ``config.json``,
loadable by ``load_checkpoint``/``predict``); ``best``'s config.json also records the per-class
thresholds chosen on validation and the validation metrics at that epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from mesm_core.config import RunConfig


def save_model(
    model: nn.Module,
    directory: Path,
    cfg: RunConfig,
    thresholds: list[float] | None = None,
    metrics: dict[str, Any] | None = None,
    thresholds_by_top_p: dict[float, list[float]] | None = None,
) -> None:
    """Checkpoint via ``save_checkpoint``. ``metrics`` (e.g. the validation report of ``best``) goes to
    config.json["metadata"]["validation"]; a flat summary of its averages to config.json["metrics"]."""
    from mesm_core.checkpoint import save_checkpoint

    summary: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    if metrics is not None:
        summary = {f"valid_{k}": v for k, v in metrics.get("average", {}).items() if v is not None}
        if "epoch" in metrics:
            summary["epoch"] = metrics["epoch"]
        metadata["validation"] = metrics
    save_checkpoint(model, directory, run_config=cfg, thresholds=thresholds, metrics=summary,
                    thresholds_by_top_p=thresholds_by_top_p, **metadata)
