"""Two-phase baselines on pre-extracted features: LF-LSTM, LF-TRANS, EmoEmbs, MulT.

Each registers itself as an architecture (``mesm_core.models.registry``): build one with
``build_model(config)`` (EmoEmbs' label vectors: ``build_model(config, label_embeddings=...)``, or
``mesm_core.families.family_of(config).build_model(config)``, which loads them). Every model maps a
:class:`~mesm_core.types.FeatureBatch` to a :class:`~mesm_core.types.ModelOutput`.
"""

from __future__ import annotations

from mesm_core.models.baselines.common import BaselineModel, LogitFusion, dummy_feature_batch
from mesm_core.models.baselines.config import LABEL_WORDS, BaselineModelConfig
from mesm_core.models.baselines.emoembs import EmoEmbs
from mesm_core.models.baselines.late_fusion import LateFusion
from mesm_core.models.baselines.lf_lstm import LFLSTM
from mesm_core.models.baselines.lf_trans import LFTransformer
from mesm_core.models.baselines.mult import MulT

__all__ = [
    "LABEL_WORDS", "BaselineModelConfig", "BaselineModel", "LateFusion", "LogitFusion",
    "LFLSTM", "LFTransformer", "EmoEmbs", "MulT", "dummy_feature_batch",
]
