"""Reading the cache for training: :class:`CacheDataset`, :func:`collate` (→ Batch), :func:`make_loader`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mesm_core.data.audio import mel_chunks
from mesm_core.data.cache import cache_entries, load_record, read_cache_info
from mesm_core.data.errors import DataSourceError
from mesm_core.types import Batch, ClipRecord

Tokenizer = Callable[[list[str]], dict[str, torch.Tensor]]


class CacheDataset(Dataset):
    """The ``ok`` records of one split of a preprocessed cache, as :class:`ClipRecord` items.

    ``classes`` (optional) selects/reorders the label columns by name; by default the cache's
    classes (``cache.json``) in their order. A corrupt record raises CorruptRecordError naming the file.
    """

    def __init__(self, cache_dir: str | Path, split: str, classes: Sequence[str] | None = None):
        self.cache_dir = Path(cache_dir)
        self.split = split
        info = read_cache_info(self.cache_dir)
        self.cache_classes = info.classes
        self.classes = tuple(classes) if classes is not None else self.cache_classes
        unknown = [c for c in self.classes if c not in self.cache_classes]
        if unknown:
            raise DataSourceError(f"{self.cache_dir}: class(es) {unknown} not in the cache's classes {self.cache_classes}")
        self._label_index = np.array([self.cache_classes.index(c) for c in self.classes], np.int64)
        self.data_config = info.data
        self.entries = cache_entries(self.cache_dir, split)
        if not self.entries:
            present = sorted({str(e.get("split")) for e in cache_entries(self.cache_dir, None)})
            raise DataSourceError(f"{self.cache_dir}: no preprocessed records in split {split!r} "
                                  f"(splits present: {present or 'none'})")

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def ids(self) -> list[str]:
        return [e["id"] for e in self.entries]

    def labels(self) -> np.ndarray:
        """float32 (N, C) labels from the manifest (no record reading), e.g. for BCE pos_weight."""
        rows = [np.asarray(e.get("labels") or [], np.float32) for e in self.entries]
        if any(row.shape != (len(self.cache_classes),) for row in rows):
            raise DataSourceError(f"{self.cache_dir}: some manifest entries of split {self.split!r} have no labels")
        return np.stack(rows)[:, self._label_index] if rows else np.zeros((0, len(self.classes)), np.float32)

    def __getitem__(self, index: int) -> ClipRecord:
        record = load_record(self.cache_dir / self.entries[index]["file"])
        if record.labels is not None:
            record.labels = np.asarray(record.labels, np.float32)[self._label_index]
        return record


def collate(records: Sequence[ClipRecord], tokenizer: Tokenizer, chunk_frames: int = 32) -> Batch:
    """ClipRecords → Batch.

    faces float32 (ΣF, 3, S, S) 0..255 (from uint8 HWC), face_lengths long (B,),
    chunks float32 (ΣN_c, 1, n_mels, chunk_frames) via mel_chunks, chunk_lengths long (B,),
    text = tokenizer(transcripts) (dict of (B, L) long tensors), labels float32 (B, C) if every
    record has labels (None if none has; a mix raises ValueError), ids.
    """
    if not records:
        raise ValueError("collate needs at least one record")
    size = records[0].faces.shape[1] if records[0].faces.ndim == 4 else 48
    faces = [np.asarray(r.faces, np.uint8).reshape(-1, size, size, 3) for r in records]
    chunks = [mel_chunks(r.mel, chunk_frames) for r in records]
    n_mels = records[0].mel.shape[0]
    all_faces = np.concatenate(faces) if faces else np.zeros((0, size, size, 3), np.uint8)
    all_chunks = np.concatenate(chunks) if chunks else np.zeros((0, 1, n_mels, chunk_frames), np.float32)
    has_labels = [r.labels is not None for r in records]
    if any(has_labels) and not all(has_labels):
        raise ValueError("collate: some records have labels and some do not "
                         f"(without: {[r.id for r in records if r.labels is None][:5]})")
    labels = torch.from_numpy(np.stack([np.asarray(r.labels, np.float32) for r in records])) if all(has_labels) else None
    return Batch(
        faces=torch.from_numpy(np.ascontiguousarray(all_faces.transpose(0, 3, 1, 2))).float(),
        face_lengths=torch.tensor([f.shape[0] for f in faces], dtype=torch.long),
        chunks=torch.from_numpy(np.ascontiguousarray(all_chunks)),
        chunk_lengths=torch.tensor([c.shape[0] for c in chunks], dtype=torch.long),
        text=dict(tokenizer([r.transcript for r in records])),
        labels=labels,
        ids=[r.id for r in records],
    )


def make_loader(cache_dir: str | Path, split: str, tokenizer: Tokenizer, batch_size: int, shuffle: bool,
                num_workers: int = 0, sampler: Sampler | None = None, seed: int = 0,
                classes: Sequence[str] | None = None, drop_last: bool = False) -> DataLoader:
    """DataLoader over ``CacheDataset(cache_dir, split)`` yielding Batch objects.

    Shuffling uses a generator seeded with ``seed`` (reproducible order). ``sampler`` overrides shuffle.
    """
    dataset = CacheDataset(cache_dir, split, classes=classes)
    chunk_frames = int(dataset.data_config.get("chunk_frames", 32))
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=functools.partial(collate, tokenizer=tokenizer, chunk_frames=chunk_frames),
        generator=generator,
        drop_last=drop_last,
        persistent_workers=False,
    )


__all__ = ["CacheDataset", "collate", "make_loader", "Tokenizer"]
