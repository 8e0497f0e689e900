"""Typed configuration of the two-phase baselines (LF-LSTM, LF-TRANS, EmoEmbs, MulT).

:class:`BaselineModelConfig` lives in :mod:`mesm_core.config`, beside the other run-config sections, so that
one registry and one (de)serialiser serve every model family; the baselines import it from here.
"""

from __future__ import annotations

from mesm_core.config import LABEL_WORDS, BaselineModelConfig

__all__ = ["LABEL_WORDS", "BaselineModelConfig", "check_modalities"]


def check_modalities(config: BaselineModelConfig) -> None:
    """Raise ``ConfigError`` (a ValueError) when the config is invalid (:meth:`BaselineModelConfig.validate`)."""
    config.validate()
