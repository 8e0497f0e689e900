"""The one prediction collector: run a model over a split and collect probabilities, labels, loss and FLOPs.

The trainer (validation every epoch, test at the end), the evaluation of a checkpoint, the top-p sweep and
the comparison all go through :func:`collect_top_ps`; it works for every model family (a model maps a batch
to a ``ModelOutput``) and merges the shards of all DDP ranks.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from mesm_core.distributed import DistInfo, all_gather_objects
from mesm_core.evaluation.keep import BlockKeep, keep_rows, merge_tallies, tally_trace
from mesm_core.families import SplitDataset, family_of
from mesm_core.types import ModelOutput

__all__ = ["SplitPredictions", "autocast_context", "collect_top_ps", "collect_predictions", "split_batches",
           "predict_split"]


@dataclass
class SplitPredictions:
    """Per-utterance outputs of one split, in a stable order (the data directory's order).

    probs (N, C) float64 sigmoid probabilities, labels (N, C) float32 multi-hot (None without labels),
    flops_dense / flops_actual: feature-extraction FLOPs summed over the split (0 for the baselines, whose
    features were extracted beforehand), loss: the mean BCE of the split when a criterion was given,
    blocks: what each sparse block kept (``evaluation/keep.py``) when collected with ``keep_stats=True`` (MESM).
    """

    ids: list[str]
    probs: np.ndarray
    labels: np.ndarray | None
    flops_dense: float = 0.0
    flops_actual: float = 0.0
    loss: float | None = None
    extra: dict = field(default_factory=dict)
    blocks: list[BlockKeep] = field(default_factory=list)

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


def _outputs(model: nn.Module, batch: Any, top_ps: Sequence[float | None],
             trace: bool = False) -> Iterator[tuple[float | None, ModelOutput]]:
    """(p, output) for every p. With several p the p-independent stage (text CLS, dense low-level CNN features)
    runs once per batch and ``forward_prepared`` once per p; ``forward`` is exactly these stages in order."""
    extra = {"return_trace": True} if trace else {}
    if len(top_ps) == 1:
        p = top_ps[0]
        yield p, model(batch, **extra) if p is None else model(batch, top_p=p, **extra)
        return
    text_cls = model.encode_text(batch.text) if getattr(model, "text_encoder", None) is not None else None
    dense = model.encode_dense(batch)
    for p in top_ps:
        yield p, model.forward_prepared(batch, text_cls, dense, top_p=p, **extra)


@torch.no_grad()
def collect_top_ps(
    model: nn.Module,
    batches: Iterable[Any],
    device: torch.device | str,
    top_ps: Sequence[float | None] = (None,),
    *,
    amp: bool = False,
    amp_dtype: str = "bfloat16",
    dist_info: DistInfo | None = None,
    order: list[str] | None = None,
    criterion: nn.Module | None = None,
    keep_stats: bool = False,
) -> dict[float | None, SplitPredictions]:
    """Evaluate ``model`` (eval mode) on every batch at each of ``top_ps`` (None: the model's own p; the
    baselines and FE2E take only None) in one pass; merge the shards of all ranks.

    ``order`` (the split's ids) fixes the output order and drops duplicates; without it the order is
    rank-major. FLOPs and the ``criterion`` loss (mean over utterances) are summed across ranks.
    ``keep_stats`` (MESM): also tally what each sparse block kept (``SplitPredictions.blocks``).
    """
    keep_stats = keep_stats and getattr(model, "supports_top_p", False)
    device = torch.device(device)
    top_ps = list(top_ps)
    was_training = model.training
    model.eval()
    shards: dict[Any, dict[str, Any]] = {
        p: {"ids": [], "probs": [], "labels": [], "dense": 0.0, "actual": 0.0, "loss": 0.0, "keep": {}} for p in top_ps
    }
    try:
        for batch in batches:
            batch = batch.to(device)
            with autocast_context(device, amp, amp_dtype):
                outputs = list(_outputs(model, batch, top_ps, trace=keep_stats))
            for p, output in outputs:
                shard = shards[p]
                shard["probs"].append(torch.sigmoid(output.logits.float()).cpu().numpy().astype(np.float64))
                if batch.labels is not None:
                    shard["labels"].append(batch.labels.float().cpu().numpy())
                    if criterion is not None:
                        loss = criterion(output.logits.float(), batch.labels.float())
                        shard["loss"] += float(loss) * batch.batch_size
                shard["ids"].extend(batch.ids)
                shard["dense"] += float(output.flops.dense)
                shard["actual"] += float(output.flops.actual)
                if keep_stats:
                    shard["keep"] = merge_tallies([shard["keep"], tally_trace(output.trace)])
    finally:
        model.train(was_training)
    results = {}
    for p, shard in shards.items():
        shard["probs"] = np.concatenate(shard["probs"]) if shard["probs"] else np.zeros((0, 0))
        shard["labels"] = np.concatenate(shard["labels"]) if shard["labels"] else None
        results[p] = _merge(all_gather_objects(dist_info or DistInfo(), shard), order,
                            with_loss=criterion is not None)
    return results


def collect_predictions(model: nn.Module, batches: Iterable[Any], device: torch.device | str, *,
                        top_p: float | None = None, **options: Any) -> SplitPredictions:
    """:func:`collect_top_ps` at one p."""
    return collect_top_ps(model, batches, device, [top_p], **options)[top_p]


def _merge(shards: list[dict], order: list[str] | None, with_loss: bool) -> SplitPredictions:
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
    loss = None
    if with_loss and has_labels:
        loss = sum(s["loss"] for s in shards) / len(sequence) if sequence else math.nan
    return SplitPredictions(
        ids=sequence,
        probs=np.stack([rows[u][0] for u in sequence]) if sequence else np.zeros((0, 0)),
        labels=np.stack([rows[u][1] for u in sequence]).astype(np.float32) if has_labels else None,
        flops_dense=sum(s["dense"] for s in shards),
        flops_actual=sum(s["actual"] for s in shards),
        loss=loss,
        blocks=keep_rows(merge_tallies(s.get("keep", {}) for s in shards)),
    )


def split_batches(model: nn.Module, dataset: SplitDataset, batch_size: int) -> Iterator[tuple[list, Any]]:
    """(items, collated batch) over ``dataset`` in its order, ``batch_size`` items at a time."""
    collate = family_of(model).collate_fn(model, dataset)
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        yield items, collate(items)


def predict_split(
    model: nn.Module,
    data_dir: str | Path,
    split: str,
    top_ps: Sequence[float | None] = (None,),
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    progress: bool = False,
    keep_stats: bool = False,
) -> dict[float | None, SplitPredictions]:
    """Predictions of ``split`` of a data directory (the model family's kind) at each p, in one pass
    (``keep_stats``: with what each sparse block kept, MESM)."""
    dataset = family_of(model).dataset(data_dir, split, model.config)
    batches: Iterable[Any] = (batch for _, batch in split_batches(model, dataset, batch_size))
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=math.ceil(len(dataset) / batch_size), desc=split, leave=False)
    return collect_top_ps(model, batches, device, top_ps, order=list(dataset.ids), keep_stats=keep_stats)
