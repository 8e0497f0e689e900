"""Warm start: the weights of one trained E2E model renamed into another's (FE2E → MESM, MESM → MESM, MESM → FE2E).

This is the pure half (tensors in, tensors out); reading the checkpoint file is ``mesm_core.training.warm_start``.

Mapping (parameter names of ``mesm_core.models``; docs/training.md, "Warm start"):
  * every key the two models share by name and shape is copied (text encoder and head, stems and dense
    VGG blocks, flatten MLPs, Transformers, heads, fusion);
  * FE2E's last ``n_sparse_blocks`` dense VGG blocks ``branches.<m>.cnn.blocks.<i>`` (Sequential
    conv, BN, ReLU, conv, BN, ReLU[, pool]) become MESM's sparse blocks ``branches.<m>.sparse.blocks.<j>``:
    ``.0 → conv1``, ``.1 → bn1``, ``.3 → conv2``, ``.4 → bn2``. Sparse convs have no bias, so each dense
    conv bias b is folded into the following BN's running mean (μ' = μ − b). That is exact: in eval mode
    BN(conv(x) + b) with μ equals BN(conv(x)) with μ − b, and in training the batch mean absorbs b;
  * MESM → FE2E goes the other way with a zero conv bias;
  * parameters without a source (MESM's attention layers when starting from FE2E) keep their fresh
    initialisation.

With plain masking at p = 1 (``attention_mode`` ``"straight_through"`` or ``"reference"``), MESM built
from FE2E's weights computes FE2E's logits (``tests/test_selection.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from mesm_core.config import ModelConfig
from mesm_core.errors import CheckpointError
from mesm_core.models.registry import get_arch

__all__ = ["WarmStartReport", "map_weights"]

# The architecture fields both models must agree on for a warm start to make sense.
_SHARED_FIELDS = (
    "classes", "face_size", "n_mels", "chunk_frames", "stem_channels", "stem_kernel", "block_channels", "pool_after",
    "flatten_hidden", "trans_dim", "trans_layers", "trans_heads", "trans_ff", "text_model", "modalities",
    "audio_transform", "face_mean", "face_std",
)
_DENSE_BLOCK = re.compile(r"^branches\.(\w+)\.cnn\.blocks\.(\d+)\.([0-9])\.(.+)$")
_SPARSE_BLOCK = re.compile(r"^branches\.(\w+)\.sparse\.blocks\.(\d+)\.(conv1|bn1|conv2|bn2)\.(.+)$")
_DENSE_TO_SPARSE = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2"}
_SPARSE_TO_DENSE = {v: k for k, v in _DENSE_TO_SPARSE.items()}


@dataclass
class WarmStartReport:
    """What a warm start did: copied target keys, folded conv biases, target keys left at init."""

    source: str
    source_arch: str
    copied: list[str] = field(default_factory=list)
    folded_biases: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)

    def summary(self) -> str:
        groups = sorted({k.split(".sparse.attention.")[0] + ".sparse.attention" if ".sparse.attention." in k else k
                         for k in self.fresh})
        fresh = f"; left at initialisation: {', '.join(groups)}" if groups else ""
        return (f"warm start from {self.source} ({self.source_arch}): {len(self.copied)} tensors copied, "
                f"{len(self.folded_biases)} conv biases folded into BN{fresh}")


def _sparse(config: ModelConfig) -> bool:
    """Whether the model has sparse blocks (``branches.<m>.sparse.blocks``): a top-p architecture."""
    return get_arch(config.arch).supports_top_p


def _n_dense(config: ModelConfig) -> int:
    return len(config.block_channels) - (config.n_sparse_blocks if _sparse(config) else 0)


def map_weights(
    source: dict[str, torch.Tensor], source_config: ModelConfig, target: nn.Module, where: str = "source"
) -> tuple[dict[str, torch.Tensor], WarmStartReport]:
    """Source tensors renamed (and bias-folded) into ``target``'s state-dict names.

    Returns (tensors to load with ``strict=False``, report). Raises :class:`CheckpointError` when the
    architectures disagree on a shared field or a mapped tensor has the wrong shape.
    """
    target_config: ModelConfig = target.config
    for name in _SHARED_FIELDS:
        a, b = getattr(source_config, name), getattr(target_config, name)
        if a != b:
            raise CheckpointError(f"{where}: cannot warm start: {name} is {a!r} there but {b!r} in the model to train")
    if _sparse(source_config) and _sparse(target_config) and source_config.n_sparse_blocks != target_config.n_sparse_blocks:
        raise CheckpointError(f"{where}: cannot warm start: n_sparse_blocks is {source_config.n_sparse_blocks} there "
                              f"but {target_config.n_sparse_blocks} in the model to train")
    expected = target.state_dict()
    report = WarmStartReport(source=where, source_arch=source_config.arch)
    out: dict[str, torch.Tensor] = {}
    first_sparse_target = _n_dense(target_config)
    first_sparse_source = _n_dense(source_config)
    biases: dict[tuple[str, int, str], torch.Tensor] = {}

    def put(key: str, value: torch.Tensor) -> None:
        key, value = _regime_statistics(key, value, expected)
        if key not in expected:
            return
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"{where}: shape mismatch for {key}: {tuple(value.shape)} vs {tuple(expected[key].shape)}")
        out[key] = value.to(expected[key].dtype)

    for key, value in source.items():
        dense = _DENSE_BLOCK.match(key)
        sparse = _SPARSE_BLOCK.match(key)
        if dense and int(dense.group(2)) >= first_sparse_target and _sparse(target_config):
            modality, index, layer, leaf = dense.group(1), int(dense.group(2)), dense.group(3), dense.group(4)
            if layer not in _DENSE_TO_SPARSE:
                continue
            name = _DENSE_TO_SPARSE[layer]
            if name.startswith("conv") and leaf == "bias":
                biases[(modality, index - first_sparse_target, name)] = value
                continue
            put(f"branches.{modality}.sparse.blocks.{index - first_sparse_target}.{name}.{leaf}", value)
        elif sparse and not _sparse(target_config):
            modality, index, name, leaf = sparse.groups()
            put(f"branches.{modality}.cnn.blocks.{int(index) + first_sparse_source}.{_SPARSE_TO_DENSE[name]}.{leaf}", value)
        else:
            put(key, value)
    for (modality, index, conv), bias in biases.items():
        key = f"branches.{modality}.sparse.blocks.{index}.bn{conv[-1]}.running_mean"
        if key not in out:
            key = key.replace(".running_mean", ".regime_mean")   # every p regime gets the same fold
        if key in out:
            out[key] = out[key] - bias.to(out[key].dtype)
            report.folded_biases.append(f"branches.{modality}.cnn.blocks.{index + first_sparse_target}.{_SPARSE_TO_DENSE[conv]}.bias")
    if not _sparse(target_config) and _sparse(source_config):
        for key in expected:
            dense = _DENSE_BLOCK.match(key)
            if dense and dense.group(3) in ("0", "3") and dense.group(4) == "bias" and int(dense.group(2)) >= first_sparse_source:
                out[key] = torch.zeros_like(expected[key])
    report.copied = sorted(out)
    # a BN's regime grid is set by the model's config, not learned: it needs no source
    report.fresh = sorted(k for k in expected if k not in out and not k.startswith("text_encoder.model.")
                          and not k.endswith(".regime_top_p"))
    return out, report


def _regime_statistics(key: str, value: torch.Tensor, expected: dict[str, torch.Tensor]) -> tuple[str, torch.Tensor]:
    """BN statistics between a model with one set and one with a set per p regime (models/sparse/batchnorm.py):
    one set (C,) fills every regime; a regime bank (K, C) gives its largest p (the dense regime) to one set."""
    for plain, bank in ((".running_mean", ".regime_mean"), (".running_var", ".regime_var")):
        if key.endswith(plain) and key not in expected and key[: -len(plain)] + bank in expected:
            target = key[: -len(plain)] + bank
            return target, value.reshape(1, -1).expand_as(expected[target]).clone()
        if key.endswith(bank) and key not in expected and key[: -len(bank)] + plain in expected:
            return key[: -len(bank)] + plain, value[-1]
    return key, value
