"""Feature datasets and batching for the baselines: z-scored (by default) padded FeatureBatches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mesm_core.config import MODALITIES
from mesm_core.features.cache import FeatureCache, FeatureCacheError, FeatureItem, NormStats
from mesm_core.types import FeatureBatch

__all__ = ["FeatureDataset", "collate_features"]


class FeatureDataset(Dataset):
    """The items of one split of a feature cache.

    ``normalize=True`` (default) z-scores every dimension with the cache's train statistics and sets
    faceless visual frames to 0 (the train mean); ``normalize=False`` is the reference (raw features).
    ``max_steps`` optionally truncates each sequence (keeps the first steps).
    """

    def __init__(self, cache: FeatureCache | str | Path, split: str, normalize: bool = True,
                 max_steps: int | None = None, preload: bool = True) -> None:
        self.cache = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
        self.split = split
        self.ids = self.cache.ids(split)
        if not self.ids:
            raise FeatureCacheError(f"{self.cache.root}: split {split!r} has no items (splits: {self.cache.splits()})")
        self.stats: NormStats | None = self.cache.stats() if normalize else None
        self.max_steps = max_steps
        self._items = [self._prepare(self.cache.load(i)) for i in self.ids] if preload else None

    def _prepare(self, item: FeatureItem) -> FeatureItem:
        arrays = {}
        for modality in MODALITIES:
            array = getattr(item, modality).astype(np.float32)
            if self.stats is not None:
                array = self.stats.apply(modality, array)
                if modality == "visual":
                    array[~item.visual_face] = 0.0
            arrays[modality] = array[: self.max_steps] if self.max_steps else array
        face = item.visual_face[: self.max_steps] if self.max_steps else item.visual_face
        return FeatureItem(item.id, item.split, arrays["text"], arrays["audio"], arrays["visual"], face,
                           item.labels, item.meta)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> FeatureItem:
        if self._items is not None:
            return self._items[index]
        return self._prepare(self.cache.load(self.ids[index]))

    def labels(self) -> np.ndarray:
        """(N, C) labels of the split; raises if any item is unlabelled."""
        rows = []
        for i in range(len(self)):
            labels = self[i].labels
            if labels is None:
                raise FeatureCacheError(f"{self.cache.root}: item {self.ids[i]!r} has no labels")
            rows.append(labels)
        return np.stack(rows).astype(np.float32)


def _pad(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.long)
    padded = torch.zeros(len(arrays), int(lengths.max()), arrays[0].shape[1])
    for i, array in enumerate(arrays):
        padded[i, : array.shape[0]] = torch.from_numpy(np.ascontiguousarray(array))
    return padded, lengths


def collate_features(items: list[FeatureItem]) -> FeatureBatch:
    """FeatureItems → zero-padded FeatureBatch (labels only when every item has them)."""
    if not items:
        raise ValueError("cannot collate an empty list of items")
    tensors = {}
    for modality in MODALITIES:
        tensors[modality], tensors[f"{modality}_lengths"] = _pad([getattr(item, modality) for item in items])
    face = torch.zeros(tensors["visual"].shape[:2], dtype=torch.bool)
    for i, item in enumerate(items):
        face[i, : len(item.visual_face)] = torch.from_numpy(item.visual_face.astype(bool))
    labels = None
    if all(item.labels is not None for item in items):
        labels = torch.from_numpy(np.stack([item.labels for item in items]).astype(np.float32))
    return FeatureBatch(**tensors, visual_face=face, labels=labels, ids=[item.id for item in items])
