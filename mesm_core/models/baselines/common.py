"""Shared pieces of the two-phase baselines: their base class, masks and logit fusion (their input,
``FeatureBatch``, is in ``mesm_core.types``; the late-fusion skeleton is ``late_fusion.py``)."""

from __future__ import annotations

import torch
from torch import nn

from mesm_core.config import MODALITIES
from mesm_core.types import FeatureBatch, FlopsReport, ModelOutput

__all__ = ["BaselineModel", "LogitFusion", "valid_mask", "last_valid", "no_flops", "dummy_feature_batch"]


class BaselineModel(nn.Module):
    """Base of the two-phase baselines: ``forward(batch: FeatureBatch, top_p=None, return_trace=False) ->
    ModelOutput``, built from the config alone plus what its family hands in."""

    arch = ""  # set by register_arch (models/registry.py)

    @classmethod
    def from_config(cls, config, *, pretrained: bool = True, **resources) -> "BaselineModel":
        """The registry's builder. The baselines fetch nothing themselves, so ``pretrained`` changes nothing
        here; their one pretrained resource (EmoEmbs' ``label_embeddings``) comes in ``resources``."""
        return cls(config, **resources)


def valid_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) bool, True at the first ``lengths[b]`` steps."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def last_valid(sequence: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The step ``lengths[b] - 1`` of each sequence: (B, L, D) → (B, D)."""
    index = (lengths.clamp(min=1) - 1).to(sequence.device)
    return sequence[torch.arange(sequence.shape[0], device=sequence.device), index]


def no_flops() -> FlopsReport:
    """Two-phase baselines compute no feature-extraction FLOPs inside the model."""
    return FlopsReport(dense=0.0, actual=0.0, layers=[])


class LogitFusion(nn.Module):
    """FE2E's late fusion: ``Linear(M, 1, bias=False)`` over the stacked per-modality logits.

    M unconstrained scalars shared by all classes (the reference's ``weighted_fusion``). With a
    single modality its logits are returned unchanged. ``init_value`` None keeps PyTorch's default
    init (FE2E, LF models); EmoEmbs starts from 1/M each.
    """

    def __init__(self, n_modalities: int, init_value: float | None = None) -> None:
        super().__init__()
        self.n_modalities = n_modalities
        self.weights = nn.Linear(n_modalities, 1, bias=False) if n_modalities > 1 else None
        if self.weights is not None and init_value is not None:
            nn.init.constant_(self.weights.weight, init_value)

    def forward(self, logits: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """logits: M tensors (B, C) → fused (B, C) and the M fusion weights."""
        if self.weights is None:
            return logits[0], logits[0].new_ones(1)
        stacked = torch.stack(logits, dim=-1)  # (B, C, M)
        return self.weights(stacked).squeeze(-1), self.weights.weight.detach().reshape(-1)


def make_output(modalities: tuple[str, ...], logits: list[torch.Tensor], fusion: LogitFusion) -> ModelOutput:
    fused, weights = fusion(logits)
    return ModelOutput(
        logits=fused,
        modality_logits=dict(zip(modalities, logits)),
        fusion_weights=weights,
        flops=no_flops(),
    )


def dummy_feature_batch(
    feature_sizes: tuple[int, int, int] = (50, 84, 35),
    lengths: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] = ((7, 3), (5, 9), (4, 1)),
    n_classes: int = 6,
    seed: int = 0,
) -> FeatureBatch:
    """A random FeatureBatch with the given per-utterance lengths (for tests and smoke runs)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for modality, size, lens in zip(MODALITIES, feature_sizes, lengths):
        lens_t = torch.tensor(lens, dtype=torch.long)
        padded = torch.randn(len(lens), int(lens_t.max()), size, generator=generator)
        padded = padded * valid_mask(lens_t, padded.shape[1])[..., None]
        tensors[modality] = padded
        tensors[f"{modality}_lengths"] = lens_t
    batch_size = len(lengths[0])
    labels = (torch.rand(batch_size, n_classes, generator=generator) > 0.5).float()
    face = valid_mask(tensors["visual_lengths"], tensors["visual"].shape[1])
    return FeatureBatch(**tensors, visual_face=face, labels=labels, ids=[f"u{i}" for i in range(batch_size)])
