"""How the trainer saves RUN/last and RUN/best in the checkpoint format (``mesm_core.checkpoint``), the same for
every model family; it reads them back with ``load_weights_into`` / ``read_checkpoint_info`` directly.

``RUN/last`` and ``RUN/best`` are ordinary model checkpoints (``model.safetensors`` + ``config.json``,
loadable by ``load_checkpoint``/``predict``); ``best``'s config.json also records the per-class
thresholds chosen on validation and the validation metrics at that epoch, and both record what the run
learned from (:func:`training_data_record`: dataset kind, source, seeds, split sizes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sized

from torch import nn

from mesm_core.config import RunConfig


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def training_data_record(cache_dir: str | Path, datasets: Mapping[str, Sized], dataset: str | None,
                         train_seed: int) -> dict[str, Any]:
    """What a run learns from, for ``config.json["metadata"]["training_data"]``: the dataset kind (the
    cache's ``dataset``), its source (the folder it was preprocessed from), the source's own seed when it
    records one (the synthetic generator's ``dataset.json``), the training seed, the split sizes and a
    sentence for people (``description``, which ``checkpoint.read_training_data`` shows beside predictions).
    """
    cache_dir = Path(cache_dir)
    info = _read_json(cache_dir / "cache.json") or _read_json(cache_dir / "features.json")
    source = info.get("source")
    if isinstance(source, dict):          # a feature cache names the clip cache it was built from
        source = source.get("source") or source.get("cache") or source.get("path")
    source_seed = None
    if isinstance(source, str) and source:
        for folder in (Path(source), cache_dir.parent / Path(source).name):
            seed = _read_json(folder / "dataset.json").get("seed")
            if seed is not None:
                source_seed = seed
                break
    splits = {split: len(items) for split, items in datasets.items()}
    kind = dataset or info.get("dataset") or "unknown"
    sizes = " / ".join(f"{split} {n}" for split, n in splits.items())
    seed_text = f", dataset seed {source_seed}" if source_seed is not None else ""
    description = (f"the {kind} dataset ({source or cache_dir.name}{seed_text}; cache {cache_dir.name}): {sizes} clips; "
                   f"training seed {train_seed}")
    return {"kind": kind, "source": source, "source_seed": source_seed, "cache": str(cache_dir),
            "train_seed": train_seed, "splits": splits, "description": description}


def save_model(
    model: nn.Module,
    directory: Path,
    cfg: RunConfig,
    thresholds: list[float] | None = None,
    metrics: dict[str, Any] | None = None,
    thresholds_by_top_p: dict[float, list[float]] | None = None,
    training_data: dict[str, Any] | None = None,
) -> None:
    """Checkpoint via ``save_checkpoint``. ``metrics`` (e.g. the validation report of ``best``) goes to
    config.json["metadata"]["validation"]; a flat summary of its averages to config.json["metrics"];
    ``training_data`` (:func:`training_data_record`) to config.json["metadata"]["training_data"]."""
    from mesm_core.checkpoint import save_checkpoint

    summary: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    if training_data is not None:
        metadata["training_data"] = training_data
    if metrics is not None:
        summary = {f"valid_{k}": v for k, v in metrics.get("average", {}).items() if v is not None}
        if "epoch" in metrics:
            summary["epoch"] = metrics["epoch"]
        metadata["validation"] = metrics
    save_checkpoint(model, directory, run_config=cfg, thresholds=thresholds, metrics=summary,
                    thresholds_by_top_p=thresholds_by_top_p, **metadata)
