"""BatchNorm over the active cells of a sparse block, with one set of running statistics per top-p regime.

A sparse block normalises with statistics taken over the cells it computes. Which cells those are depends on
p: at p = 0.3 a block sees a few strongly attended cells (and, after block 1, holes around them), at p = 1
all of them. One running average cannot be right for both, so a model that is run across the slider keeps
one set per p *regime* (``ModelConfig.bn_top_p``, e.g. 0.1, 0.2, …, 1.0), the switchable BatchNorm of
Slimmable Networks (Yu et al., ICLR 2019) with the statistics re-estimated after training for each regime as
US-Nets do (Yu & Huang, ICCV 2019; ``mesm_core.training.bn_calibration``). The affine weight and bias stay
shared.

The regime is the one nearest to the p the sparse stage runs at. The stage announces that p with
:func:`statistics_at` (a context variable, so threads serving different p at once do not mix), and every
backend reaches the statistics through ``running_mean`` / ``running_var`` / :meth:`ActiveBatchNorm.statistics`
unchanged. Without regimes (``bn_top_p = ()``) there is one set, as in the paper and the reference.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Sequence

import torch
from torch import nn

__all__ = ["ActiveBatchNorm", "RegimeBatchNorm", "statistics_at", "current_top_p", "make_batchnorm"]

_TOP_P: contextvars.ContextVar[float | None] = contextvars.ContextVar("mesm_sparse_top_p", default=None)


@contextlib.contextmanager
def statistics_at(top_p: float | None) -> Iterator[None]:
    """Within the block, :class:`RegimeBatchNorm` layers use (and in training update) the regime nearest ``top_p``."""
    token = _TOP_P.set(None if top_p is None else float(top_p))
    try:
        yield
    finally:
        _TOP_P.reset(token)


def current_top_p() -> float | None:
    """The p announced by the innermost :func:`statistics_at` of this thread/context (None outside one)."""
    return _TOP_P.get()


class ActiveBatchNorm(nn.Module):
    """BatchNorm1d over the rows (active cells) of a (n, C) feature matrix.

    Same statistics and running-average update as nn.BatchNorm (momentum 0.1, eps 1e-5, unbiased
    running variance), but also accepts n = 1 in training (variance 0) since a batch may keep a
    single cell.
    """

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self._register_statistics(channels)
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def _register_statistics(self, channels: int) -> None:
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def statistics(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, biased variance) (C,) to normalise with: of ``rows`` (n, C) in training, updating the running
        averages, else the running ones. At least float32 (e.g. under autocast)."""
        n = rows.shape[0]
        compute = torch.promote_types(rows.dtype, torch.float32)
        if self.training and n > 0:
            x = rows.to(compute)
            return self.batch_statistics(x.mean(0), x.var(0, unbiased=False), n)
        return self.running_mean.to(compute), self.running_var.to(compute)

    def batch_statistics(self, mean: torch.Tensor, var: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Record a training batch's (mean, biased variance) of ``n`` > 0 cells in the running averages; returns them."""
        with torch.no_grad():
            unbiased = var * (n / (n - 1)) if n > 1 else var
            self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), self.momentum)
            self.num_batches_tracked += 1
        return mean, var

    def affine(self, mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) (C,) with normalize(x) = x · scale + shift, in the dtype of ``mean``."""
        scale = torch.rsqrt(var + self.eps) * self.weight.to(mean.dtype)
        return scale, self.bias.to(mean.dtype) - mean * scale

    def normalize(self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """Apply the affine normalisation to x (..., C) with the given statistics; same dtype as x."""
        compute = mean.dtype
        out = (x.to(compute) - mean) * torch.rsqrt(var + self.eps) * self.weight.to(compute) + self.bias.to(compute)
        return out.to(x.dtype)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """rows (n, C) → (n, C), same dtype (statistics in at least float32, e.g. under autocast)."""
        return self.normalize(rows, *self.statistics(rows))


class RegimeBatchNorm(ActiveBatchNorm):
    """:class:`ActiveBatchNorm` with running statistics per top-p regime.

    Buffers: ``regime_top_p`` (K,) the regimes' p, ascending; ``regime_mean`` / ``regime_var`` (K, C).
    ``running_mean`` / ``running_var`` are views of the row of the regime nearest the p announced by
    :func:`statistics_at` (the largest regime outside one), so every backend reads, and in training updates,
    that regime's statistics in place. A state dict with plain ``running_mean`` / ``running_var`` (C,) (a model
    without regimes, e.g. FE2E's blocks after the warm start's renaming) loads into every regime.
    """

    def __init__(self, channels: int, top_ps: Sequence[float], eps: float = 1e-5, momentum: float = 0.1) -> None:
        values = sorted(float(p) for p in top_ps)
        if not values or any(not 0.0 < p <= 1.0 for p in values) or len(set(values)) != len(values):
            raise ValueError(f"BN regimes must be distinct values in (0, 1], got {tuple(top_ps)}")
        self._top_ps = tuple(values)
        super().__init__(channels, eps, momentum)

    def _register_statistics(self, channels: int) -> None:
        k = len(self._top_ps)
        self.register_buffer("regime_top_p", torch.tensor(self._top_ps, dtype=torch.float32))
        self.register_buffer("regime_mean", torch.zeros(k, channels))
        self.register_buffer("regime_var", torch.ones(k, channels))

    @property
    def top_ps(self) -> tuple[float, ...]:
        return self._top_ps

    def regime_index(self, top_p: float | None = None) -> int:
        """Index of the regime nearest ``top_p`` (default: the p of the current :func:`statistics_at`)."""
        p = current_top_p() if top_p is None else float(top_p)
        if p is None:
            return len(self._top_ps) - 1
        return min(range(len(self._top_ps)), key=lambda i: (abs(self._top_ps[i] - p), -i))

    @property
    def running_mean(self) -> torch.Tensor:  # type: ignore[override]
        return self.regime_mean[self.regime_index()]

    @property
    def running_var(self) -> torch.Tensor:  # type: ignore[override]
        return self.regime_var[self.regime_index()]

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        for plain, bank in (("running_mean", "regime_mean"), ("running_var", "regime_var")):
            if prefix + plain in state_dict and prefix + bank not in state_dict:
                value = state_dict.pop(prefix + plain)
                state_dict[prefix + bank] = value.reshape(1, -1).expand(len(self._top_ps), -1).clone()
        if prefix + "regime_top_p" not in state_dict and prefix + "regime_mean" in state_dict:
            state_dict[prefix + "regime_top_p"] = self.regime_top_p.clone()
        key = prefix + "regime_top_p"
        if key in state_dict and tuple(state_dict[key].shape) == tuple(self.regime_top_p.shape) and not torch.allclose(
                state_dict[key].double(), self.regime_top_p.double()):
            error_msgs.append(f"{key}: the checkpoint's BN regimes {state_dict[key].tolist()} differ from the model's "
                              f"{list(self._top_ps)} (model.bn_top_p)")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return f"regimes={list(self._top_ps)}"


def make_batchnorm(channels: int, top_ps: Sequence[float] = ()) -> ActiveBatchNorm:
    """A plain :class:`ActiveBatchNorm` without regimes, else a :class:`RegimeBatchNorm` over ``top_ps``."""
    return RegimeBatchNorm(channels, top_ps) if top_ps else ActiveBatchNorm(channels)
