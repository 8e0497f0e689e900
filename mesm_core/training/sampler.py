"""Deterministic, resumable, rank-sharded sampling.

The shuffle order of epoch ``e`` is a function of ``(seed, e)`` only (not of the global RNG), so a
resumed run sees exactly the batches an uninterrupted run would, even when it resumes mid-epoch
(``start_batch`` skips the batches already trained without loading them).
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Indices of one epoch for one rank.

    Training (``shuffle=True, pad=True``): a permutation seeded by ``seed + epoch``, padded by
    wrapping around so every rank gets the same number of samples (DDP needs equal step counts),
    then rank ``r`` takes every ``world_size``-th index starting at ``r``.
    Evaluation (``shuffle=False, pad=False``): rank ``r`` takes ``r, r+W, …`` with no padding, so the
    gathered predictions contain each sample exactly once (uneven last shards are fine).
    """

    def __init__(
        self,
        n_samples: int,
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
        batch_size: int = 1,
    ) -> None:
        if n_samples <= 0:
            raise ValueError("cannot sample from an empty split")
        self.n_samples = n_samples
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.batch_size = batch_size
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def _rank_indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n_samples, generator=generator).tolist()
        else:
            order = list(range(self.n_samples))
        if self.pad and self.world_size > 1:
            total = math.ceil(self.n_samples / self.world_size) * self.world_size
            order = (order * math.ceil(total / len(order)))[:total]
        return order[self.rank :: self.world_size]

    def batches_per_epoch(self) -> int:
        return math.ceil(len(self._rank_indices()) / self.batch_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self._rank_indices()[self.start_batch * self.batch_size :])

    def __len__(self) -> int:
        return max(0, len(self._rank_indices()) - self.start_batch * self.batch_size)
