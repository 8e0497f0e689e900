"""Running a model over a split and collecting probabilities, labels and FLOPs (all ranks merged)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch
from torch import nn

from mesm_core.training.distributed import DistInfo, all_gather_objects
from mesm_core.types import Batch


@dataclass
class SplitPredictions:
    """Per-utterance outputs of one split, in a stable order (the cache's order).

    probs (N, C) float64 sigmoid probabilities, labels (N, C) float32 multi-hot (None without labels),
    flops_dense / flops_actual: feature-extraction FLOPs summed over the split.
    """

    ids: list[str]
    probs: np.ndarray
    labels: np.ndarray | None
    flops_dense: float = 0.0
    flops_actual: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def flops_per_utterance(self) -> float:
        return self.flops_actual / max(1, self.n)

    @property
    def dense_flops_per_utterance(self) -> float:
        return self.flops_dense / max(1, self.n)

    @property
    def flops_fraction(self) -> float:
        return self.flops_actual / self.flops_dense if self.flops_dense > 0 else 1.0


def autocast_context(device: torch.device, amp: bool, amp_dtype: str = "bfloat16"):
    """bf16/fp16 autocast on CUDA when ``amp``; nothing on CPU (CPU autocast would only slow us down)."""
    if amp and device.type == "cuda":
        dtype = torch.float16 if amp_dtype in ("float16", "fp16") else torch.bfloat16
        return torch.autocast(device_type="cuda", dtype=dtype)
    return nullcontext()


@torch.no_grad()
def collect_predictions(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device,
    *,
    top_p: float | None = None,
    amp: bool = False,
    amp_dtype: str = "bfloat16",
    dist_info: DistInfo | None = None,
    order: list[str] | None = None,
) -> SplitPredictions:
    """Evaluate ``model`` (eval mode) on every batch; merge the shards of all ranks.

    ``order`` (the split's ids) fixes the output order and drops duplicates; without it the order is
    rank-major. FLOPs are summed across ranks.
    """
    was_training = model.training
    model.eval()
    ids: list[str] = []
    probs: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    dense = actual = 0.0
    try:
        for batch in batches:
            batch = batch.to(device)
            with autocast_context(device, amp, amp_dtype):
                output = model(batch, top_p=top_p) if top_p is not None else model(batch)
            probs.append(torch.sigmoid(output.logits.float()).cpu().numpy().astype(np.float64))
            if batch.labels is not None:
                labels.append(batch.labels.float().cpu().numpy())
            ids.extend(batch.ids)
            dense += float(output.flops.dense)
            actual += float(output.flops.actual)
    finally:
        model.train(was_training)
    shard = {
        "ids": ids,
        "probs": np.concatenate(probs) if probs else np.zeros((0, 0)),
        "labels": np.concatenate(labels) if labels else None,
        "dense": dense,
        "actual": actual,
    }
    shards = all_gather_objects(dist_info or DistInfo(), shard)
    return _merge(shards, order)


def _merge(shards: list[dict], order: list[str] | None) -> SplitPredictions:
    rows: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    sequence: list[str] = []
    for shard in shards:
        for i, utt in enumerate(shard["ids"]):
            if utt in rows:
                continue  # a sample seen twice (padding) counts once
            rows[utt] = (shard["probs"][i], None if shard["labels"] is None else shard["labels"][i])
            sequence.append(utt)
    if order is not None:
        missing = [utt for utt in order if utt not in rows]
        if missing:
            raise RuntimeError(f"{len(missing)} samples were not evaluated (e.g. {missing[:3]})")
        sequence = list(order)
    has_labels = all(rows[u][1] is not None for u in sequence) and bool(sequence)
    return SplitPredictions(
        ids=sequence,
        probs=np.stack([rows[u][0] for u in sequence]) if sequence else np.zeros((0, 0)),
        labels=np.stack([rows[u][1] for u in sequence]).astype(np.float32) if has_labels else None,
        flops_dense=sum(s["dense"] for s in shards),
        flops_actual=sum(s["actual"] for s in shards),
    )
