"""What a checkpoint records about the data it learned from, in one line for the page.

The trainer writes ``config.json["metadata"]["training_data"]``
(:func:`mesm_core.training.checkpointing.training_data_record`): the dataset kind, its source folder, the
source's seed, the training seed and the split sizes. Older checkpoints record a sentence only, or nothing.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["data_facts"]


def data_facts(metadata: Mapping[str, Any]) -> str:
    """"kind synthetic · source data/synthetic · dataset seed 0 · training seed 1 · train 840 / valid 120 /
    test 240 clips" from a checkpoint's metadata; "" when it records no structured record."""
    record = metadata.get("training_data")
    if not isinstance(record, dict):
        return ""
    facts = []
    if record.get("kind"):
        facts.append(f"kind {record['kind']}")
    if record.get("source"):
        facts.append(f"source `{record['source']}`")
    if record.get("source_seed") is not None:
        facts.append(f"dataset seed {record['source_seed']}")
    if record.get("train_seed") is not None:
        facts.append(f"training seed {record['train_seed']}")
    splits = record.get("splits")
    if isinstance(splits, dict) and splits:
        facts.append(" / ".join(f"{split} {n}" for split, n in splits.items()) + " clips")
    return " · ".join(facts)
