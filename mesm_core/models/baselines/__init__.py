"""Two-phase baselines on pre-extracted features: LF-LSTM, LF-TRANS, EmoEmbs, MulT.

``create_baseline(config, label_embeddings=None)`` builds one from a :class:`BaselineModelConfig`;
every model maps a :class:`~mesm_core.types.FeatureBatch` to a :class:`~mesm_core.types.ModelOutput`.
"""

from __future__ import annotations

import torch
from torch import nn

from mesm_core.models.baselines.common import LogitFusion, dummy_feature_batch
from mesm_core.models.baselines.config import BASELINE_ARCHS, LABEL_WORDS, BaselineModelConfig
from mesm_core.models.baselines.emoembs import EmoEmbs
from mesm_core.models.baselines.lf_lstm import LFLSTM
from mesm_core.models.baselines.lf_trans import LFTransformer
from mesm_core.models.baselines.mult import MulT

__all__ = [
    "BASELINE_ARCHS", "LABEL_WORDS", "BaselineModelConfig", "LogitFusion",
    "LFLSTM", "LFTransformer", "EmoEmbs", "MulT", "create_baseline", "dummy_feature_batch",
]


def create_baseline(config: BaselineModelConfig, label_embeddings: torch.Tensor | None = None) -> nn.Module:
    """Build the baseline named by ``config.arch``.

    ``label_embeddings`` (C, E): EmoEmbs' frozen label-word vectors (ignored by the others; when
    absent EmoEmbs starts from zeros, to be filled by ``load_state_dict``).
    """
    if config.arch == "lf_lstm":
        return LFLSTM(config)
    if config.arch == "lf_trans":
        return LFTransformer(config)
    if config.arch == "emoembs":
        return EmoEmbs(config, label_embeddings)
    if config.arch == "mult":
        return MulT(config)
    raise ValueError(f"unknown baseline arch {config.arch!r}; valid: {', '.join(BASELINE_ARCHS)}")
