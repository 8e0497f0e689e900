"""Presets of the two-phase baselines, with each model's own optimisation recipe.

* ``lf_lstm``, ``lf_trans``: the MESM README's baseline command (Adam lr 5e-4, batch 32, 60 epochs,
  early stop 8 on validation average F1, grad-norm clip 2, BCE with pos_weight).
* ``emoembs``: the EmoEmbs README for IEMOCAP (batch 64, lr 1e-3, ≤100 epochs, clip 1.0, early stop
  8, ReduceLROnPlateau(factor 0.1, patience 5) on the validation loss).
* ``mult``: MulT paper Table 5 for IEMOCAP (batch 32, lr 2e-3, clip 0.8, ≤30 epochs,
  ReduceLROnPlateau(factor 0.1, patience 20) as in the MulT repo) with MESM's validation-F1 early
  stopping (8 epochs).

Feature sizes and classes are taken from the feature cache at training time. Presets are separate
from ``mesm_core.presets`` because a baseline's RunConfig has a different model section; the lead
can list them next to the E2E presets with ``list_baseline_presets()``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Callable

from mesm_core.config import IEMOCAP_CLASSES, _from_dict, apply_overrides, to_dict
from mesm_core.models.baselines.config import BaselineModelConfig

__all__ = ["BaselineTrainConfig", "BaselineRunConfig", "list_baseline_presets", "get_baseline_preset",
           "is_baseline_preset", "baseline_config_from_dict", "BASELINE_CONFIG_VERSION"]

BASELINE_CONFIG_VERSION = 1


@dataclass
class BaselineTrainConfig:
    """Optimisation of a baseline: Adam, BCE with pos_weight, validation-F1 early stopping."""

    lr: float = 5e-4
    batch_size: int = 32
    epochs: int = 60
    early_stop: int = 8
    weight_decay: float = 0.0
    clip_grad_norm: float = 2.0
    plateau_patience: int = 0      # > 0: ReduceLROnPlateau on the validation loss
    plateau_factor: float = 0.1
    seed: int = 0
    select_metric: str = "f1"


@dataclass
class BaselineRunConfig:
    preset: str = ""
    model: BaselineModelConfig = field(default_factory=BaselineModelConfig)
    train: BaselineTrainConfig = field(default_factory=BaselineTrainConfig)
    # z-score features with the cache's train statistics (False = the reference: raw features).
    normalize: bool = True
    version: int = BASELINE_CONFIG_VERSION

    def to_dict(self) -> dict:
        return to_dict(self)

    def apply_overrides(self, overrides: list[str]) -> "BaselineRunConfig":
        """``model.faithful_padding=true``, ``train.epochs=5``, ``normalize=false`` …"""
        top_level = [o for o in overrides if "." not in o.split("=", 1)[0]]
        for item in top_level:
            name, raw = item.split("=", 1)
            if name != "normalize":
                raise ValueError(f"override {item!r}: no field {name!r} in BaselineRunConfig")
            self.normalize = raw.strip().lower() in ("1", "true", "yes")
        apply_overrides(self, [o for o in overrides if o not in top_level])
        return self


def baseline_config_from_dict(data: dict, where: str = "config") -> BaselineRunConfig:
    version = data.get("version", BASELINE_CONFIG_VERSION)
    if version != BASELINE_CONFIG_VERSION:
        raise ValueError(f"{where}: unknown baseline config version {version!r}")
    return _from_dict(BaselineRunConfig, json.loads(json.dumps(data)), where)


_REGISTRY: dict[str, Callable[[], BaselineRunConfig]] = {}


def _register(name: str):
    def wrap(fn: Callable[[], BaselineRunConfig]) -> Callable[[], BaselineRunConfig]:
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_baseline_presets() -> list[str]:
    return sorted(_REGISTRY)


def is_baseline_preset(name: str) -> bool:
    return name in _REGISTRY


def get_baseline_preset(name: str) -> BaselineRunConfig:
    """A fresh BaselineRunConfig; KeyError lists the valid names."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown baseline preset {name!r}; valid: {', '.join(list_baseline_presets())}")
    cfg = _REGISTRY[name]()
    cfg.preset = name
    return copy.deepcopy(cfg)


@_register("lf_lstm")
def _lf_lstm() -> BaselineRunConfig:
    return BaselineRunConfig(model=BaselineModelConfig(arch="lf_lstm", classes=IEMOCAP_CLASSES),
                             train=BaselineTrainConfig(lr=5e-4, batch_size=32, epochs=60, early_stop=8, clip_grad_norm=2.0))


@_register("lf_trans")
def _lf_trans() -> BaselineRunConfig:
    return BaselineRunConfig(model=BaselineModelConfig(arch="lf_trans", classes=IEMOCAP_CLASSES),
                             train=BaselineTrainConfig(lr=5e-4, batch_size=32, epochs=60, early_stop=8, clip_grad_norm=2.0))


@_register("emoembs")
def _emoembs() -> BaselineRunConfig:
    return BaselineRunConfig(model=BaselineModelConfig(arch="emoembs", classes=IEMOCAP_CLASSES),
                             train=BaselineTrainConfig(lr=1e-3, batch_size=64, epochs=100, early_stop=8,
                                                       clip_grad_norm=1.0, plateau_patience=5, plateau_factor=0.1))


@_register("mult")
def _mult() -> BaselineRunConfig:
    return BaselineRunConfig(model=BaselineModelConfig(arch="mult", classes=IEMOCAP_CLASSES),
                             train=BaselineTrainConfig(lr=2e-3, batch_size=32, epochs=30, early_stop=8,
                                                       clip_grad_norm=0.8, plateau_patience=20, plateau_factor=0.1))


