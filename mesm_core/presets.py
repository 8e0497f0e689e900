"""Named run presets (timm-style registry) of every model family: paper settings, small CPU-trainable
variants and the two-phase baselines.

Every preset is a full :class:`~mesm_core.config.RunConfig` (model + data + train), so a run is
reproducible from its name plus overrides. ``get_preset`` always returns a fresh copy; ``list_presets``
lists FE2E/MESM and the baselines alike, and ``python -m mesm_core.train --preset NAME`` trains any of them.

Paper presets follow the reference implementation (docs/models.md; docs/training.md, "Paper presets"): ALBERT-base-v2
text encoder fine-tuned at lr/10, VGG-style CNNs 64-64-64-128-256-512, 4-layer 64-d Transformers,
Adam lr 5e-5, batch 8, 40 epochs, early stop 6. MESM keeps the paper's best p per dataset
(IEMOCAP 0.7, MOSEI 0.5).

Small presets share the input geometry of the paper (48×48 faces, 128×32 mel chunks, MOSEI's six
classes) but are about 60× narrower, use the packaged MiniLM as a *frozen* text encoder and a log mel
transform, so they train on two CPU cores in minutes on the embedded synthetic dataset. ``mesm_small``
also carries the slider recipe (one checkpoint for every p: p drawn per step, BN statistics and thresholds per
p, a keep-ratio budget, a teacher's saliency target, deployed at p = 0.7); the paper presets keep the paper's
per-cell scorer and plain nucleus.

Baseline presets carry each model's own recipe (docs/baselines.md); their feature sizes and classes are
taken from the feature cache when a run is configured for it:

* ``lf_lstm``, ``lf_trans``: the MESM README's baseline command (Adam lr 5e-4, batch 32, 60 epochs,
  early stop 8 on validation average F1, grad-norm clip 2, BCE with pos_weight).
* ``emoembs``: the EmoEmbs README for IEMOCAP (batch 64, lr 1e-3, ≤100 epochs, clip 1.0, early stop
  8, ReduceLROnPlateau(factor 0.1, patience 5) on the validation loss).
* ``mult``: MulT paper Table 5 for IEMOCAP (batch 32, lr 2e-3, clip 0.8, ≤30 epochs,
  ReduceLROnPlateau(factor 0.1, patience 20) as in the MulT repo) with MESM's validation-F1 early
  stopping (8 epochs).
"""

from __future__ import annotations

import copy
from typing import Callable

from mesm_core.config import (
    IEMOCAP_CLASSES,
    MOSEI_CLASSES,
    BaselineModelConfig,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)

__all__ = ["list_presets", "get_preset", "register_preset"]

_REGISTRY: dict[str, Callable[[], RunConfig]] = {}


def register_preset(name: str) -> Callable[[Callable[[], RunConfig]], Callable[[], RunConfig]]:
    """Decorator registering a zero-argument function that builds a RunConfig."""

    def wrap(fn: Callable[[], RunConfig]) -> Callable[[], RunConfig]:
        if name in _REGISTRY:
            raise ValueError(f"preset {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_presets() -> list[str]:
    """Names of all registered presets, sorted."""
    return sorted(_REGISTRY)


def get_preset(name: str) -> RunConfig:
    """A fresh :class:`RunConfig` for ``name``; raises KeyError listing the valid names."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown preset {name!r}; valid presets: {', '.join(list_presets())}")
    cfg = _REGISTRY[name]()
    cfg.preset = name
    return copy.deepcopy(cfg)


# --- paper presets ------------------------------------------------------------------------------

def _paper(arch: str, classes: tuple[str, ...], top_p: float) -> RunConfig:
    model = ModelConfig(
        arch=arch,  # type: ignore[arg-type]
        classes=classes,
        text_model="albert-base-v2",
        text_max_len=100,
        text_trainable=True,
        text_lr_factor=0.1,
        top_p=top_p,
    )
    train = TrainConfig(lr=5e-5, batch_size=8, epochs=40, early_stop=6)
    return RunConfig(model=model, data=DataConfig(), train=train)


@register_preset("fe2e_iemocap")
def _fe2e_iemocap() -> RunConfig:
    return _paper("fe2e", IEMOCAP_CLASSES, top_p=0.7)


@register_preset("mesm_iemocap")
def _mesm_iemocap() -> RunConfig:
    return _paper("mesm", IEMOCAP_CLASSES, top_p=0.7)


@register_preset("fe2e_mosei")
def _fe2e_mosei() -> RunConfig:
    return _paper("fe2e", MOSEI_CLASSES, top_p=0.5)


@register_preset("mesm_mosei")
def _mesm_mosei() -> RunConfig:
    return _paper("mesm", MOSEI_CLASSES, top_p=0.5)


# --- small presets (embedded synthetic dataset, CPU) --------------------------------------------

def _small(arch: str) -> RunConfig:
    model = ModelConfig(
        arch=arch,  # type: ignore[arg-type]
        classes=MOSEI_CLASSES,
        stem_channels=16,
        block_channels=(16, 16, 32, 64, 128),
        pool_after=(2, 3, 4),
        n_sparse_blocks=3,
        flatten_hidden=128,
        trans_dim=32,
        trans_layers=1,
        trans_heads=2,
        trans_ff=64,
        trans_dropout=0.1,
        text_model="minilm",
        text_max_len=48,
        text_trainable=False,
        audio_transform="log",
        top_p=0.5,
    )
    train = TrainConfig(lr=1e-3, batch_size=16, epochs=30, early_stop=6)
    if arch == "mesm":
        # The slider recipe (docs/training.md, "Training the selection"; leave-one-out ablation in
        # docs/results/selection_ablation.md): one checkpoint for every p. p is drawn per step from [0.2, 1]; BN
        # statistics and decision thresholds per p regime; a keep-ratio budget (the nucleus at p keeps about
        # ρ·p² of a frame's cells: ρ = 0.6 audio, 1.0 faces) instead of fixed keep floors (a 5 % safety floor
        # remains); the attention pulled towards a dense teacher's saliency (or, without one, the model's own
        # task-only saliency) and queried with the earlier branches' posterior; distillation from the teacher.
        # The demo adds --init-from / --distill-from assets/checkpoints/fe2e_small (scripts/train_demo.sh).
        regimes = tuple(round(0.1 * i, 1) for i in range(1, 11))
        model.top_p = 0.7
        model.attention_scorer, model.attention_query, model.detach_scorer_input = "context", "text+posterior", True
        model.min_keep_audio = model.min_keep_visual = 0.05
        model.bn_top_p = regimes
        train.top_p_sampling, train.top_p_range = "uniform", (0.2, 1.0)
        train.bn_calibration_batches, train.select_top_p, train.threshold_top_p = 4, (0.3, 0.7), regimes
        train.keep_ratio_audio, train.keep_ratio_visual, train.keep_ratio_power, train.keep_ratio_weight = 0.6, 1.0, 2.0, 30.0
        train.saliency_source, train.saliency_weight, train.saliency_power, train.saliency_at = "auto", 0.5, 2.0, "all"
        train.distill_weight = 1.0
        train.attention_lr_factor = 3.0
    return RunConfig(model=model, data=DataConfig(), train=train)


@register_preset("fe2e_small")
def _fe2e_small() -> RunConfig:
    return _small("fe2e")


@register_preset("mesm_small")
def _mesm_small() -> RunConfig:
    return _small("mesm")


# --- two-phase baselines (feature cache) ----------------------------------------------------------

def _baseline(arch: str, **train) -> RunConfig:
    return RunConfig(model=BaselineModelConfig(arch=arch, classes=IEMOCAP_CLASSES),  # type: ignore[arg-type]
                     data=DataConfig(), train=TrainConfig(**train))


@register_preset("lf_lstm")
def _lf_lstm() -> RunConfig:
    return _baseline("lf_lstm", lr=5e-4, batch_size=32, epochs=60, early_stop=8, clip_grad_norm=2.0)


@register_preset("lf_trans")
def _lf_trans() -> RunConfig:
    return _baseline("lf_trans", lr=5e-4, batch_size=32, epochs=60, early_stop=8, clip_grad_norm=2.0)


@register_preset("emoembs")
def _emoembs() -> RunConfig:
    return _baseline("emoembs", lr=1e-3, batch_size=64, epochs=100, early_stop=8, clip_grad_norm=1.0,
                     scheduler="plateau", plateau_patience=5, plateau_factor=0.1)


@register_preset("mult")
def _mult() -> RunConfig:
    return _baseline("mult", lr=2e-3, batch_size=32, epochs=30, early_stop=8, clip_grad_norm=0.8,
                     scheduler="plateau", plateau_patience=20, plateau_factor=0.1)
