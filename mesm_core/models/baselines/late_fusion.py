"""The late-fusion skeleton of LF-LSTM, LF-TRANS and EmoEmbs: a branch per modality scores the classes, and
FE2E's :class:`~mesm_core.models.baselines.common.LogitFusion` fuses the per-modality logits."""

from __future__ import annotations

from typing import Any

import torch

from mesm_core.models.baselines.common import BaselineModel, LogitFusion, make_output
from mesm_core.models.baselines.config import BaselineModelConfig, check_modalities
from mesm_core.types import FeatureBatch, ModelOutput

__all__ = ["LateFusion"]


class LateFusion(BaselineModel):
    """Per-modality logits, fused. A subclass builds its branches in :meth:`build` and scores one modality in
    :meth:`modality_logits`.

    ``build`` runs before the fusion layer is made, so the parameters are created (and drawn from the RNG)
    in the order each model always created them: a seed gives the same initial weights as before.
    """

    def __init__(self, config: BaselineModelConfig, **build_args: Any) -> None:
        super().__init__()
        check_modalities(config)
        self.config = config
        self.modalities = tuple(config.modalities)
        self.build(config, **build_args)
        self.fusion = LogitFusion(len(self.modalities), init_value=self.fusion_init())

    def build(self, config: BaselineModelConfig, **build_args: Any) -> None:
        """Create the branches (the modules of every modality in ``self.modalities``)."""
        raise NotImplementedError

    def fusion_init(self) -> float | None:
        """The initial fusion weight of each modality; None keeps PyTorch's default init (FE2E, the LF models)."""
        return None

    def modality_logits(self, modality: str, x: torch.Tensor, lengths: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """One modality's features x (B, L, d) with lengths (B,) → class logits (B, C)."""
        raise NotImplementedError

    def fuse(self, batch: FeatureBatch, **kwargs: Any) -> ModelOutput:
        """Every modality's logits (``kwargs`` passed to :meth:`modality_logits`), fused."""
        logits = [self.modality_logits(m, *batch.features(m), **kwargs) for m in self.modalities]
        return make_output(self.modalities, logits, self.fusion)

    def forward(self, batch: FeatureBatch, top_p: float | None = None, return_trace: bool = False) -> ModelOutput:
        """``top_p``/``return_trace`` exist for interface parity with FE2E/MESM and are ignored."""
        return self.fuse(batch)
