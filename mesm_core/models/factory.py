"""Model construction from presets/configs, and synthetic batches for tests and smoke runs."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch import nn

from mesm_core.config import ModelConfig, RunConfig
from mesm_core.models.text import build_tokenizer
from mesm_core.presets import get_preset, list_presets
from mesm_core.types import Batch

__all__ = ["create_model", "build_model", "dummy_batch", "list_presets", "resolve_model_config"]


def resolve_model_config(preset_or_config: str | RunConfig | ModelConfig, **overrides) -> ModelConfig:
    """A fresh ModelConfig from a preset name / RunConfig / ModelConfig, with ModelConfig-field overrides."""
    if isinstance(preset_or_config, str):
        config = get_preset(preset_or_config).model
    elif isinstance(preset_or_config, RunConfig):
        config = copy.deepcopy(preset_or_config.model)
    elif isinstance(preset_or_config, ModelConfig):
        config = copy.deepcopy(preset_or_config)
    else:
        raise TypeError(f"expected a preset name, RunConfig or ModelConfig, got {type(preset_or_config).__name__}")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown ModelConfig field(s) {sorted(unknown)}; valid fields: {', '.join(sorted(fields))}")
    for name, value in overrides.items():
        current = getattr(config, name)
        setattr(config, name, tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value)
    return config


def build_model(config: ModelConfig, text_pretrained: bool = True) -> nn.Module:
    """FE2E or MESM for ``config.arch`` (the config object is kept as ``model.config``). Raises ``ConfigError``
    (a ValueError) for an invalid config (:meth:`ModelConfig.validate`)."""
    config.validate()
    if config.arch == "fe2e":
        from mesm_core.models.fe2e import FE2E

        return FE2E(config, text_pretrained=text_pretrained)
    if config.arch == "mesm":
        from mesm_core.models.mesm import MESM

        return MESM(config, text_pretrained=text_pretrained)
    raise ValueError(f"unknown arch {config.arch!r}; expected 'fe2e' or 'mesm'")


def create_model(preset: str | RunConfig | ModelConfig, text_pretrained: bool = True, **overrides) -> nn.Module:
    """Build a model from a preset name (see ``list_presets()``) plus ModelConfig-field overrides.

    ``text_pretrained=False`` builds the text encoder with random weights, offline (same architecture).
    Example: ``create_model("mesm_small", top_p=0.3, sparse_backend="masked")``.
    """
    return build_model(resolve_model_config(preset, **overrides), text_pretrained=text_pretrained)


_WORDS = ("i", "am", "so", "happy", "sad", "angry", "really", "today", "this", "is", "not", "fine", "what", "wow", "oh", "no")


def dummy_batch(
    preset_or_config: str | RunConfig | ModelConfig,
    batch_size: int = 2,
    n_frames: int = 3,
    n_chunks: int = 4,
    seed: int = 0,
    tokenizer=None,
) -> Batch:
    """A random but valid Batch for any preset/config (offline; deterministic for a seed).

    Faces are uniform 0..255, chunks positive (exponential, like power mel), transcripts random
    words, labels multi-hot. Per-utterance lengths vary between 1 and n_frames / n_chunks (the
    first utterance always has the maximum). ``tokenizer`` defaults to the one a model built with
    ``text_pretrained=False`` uses (pass ``model.tokenizer`` to match a pretrained model).
    """
    config = resolve_model_config(preset_or_config)
    rng = np.random.default_rng(seed)

    def lengths(maximum: int) -> torch.Tensor:
        values = rng.integers(1, max(maximum, 1) + 1, size=batch_size)
        values[0] = maximum
        return torch.as_tensor(values, dtype=torch.long) if maximum > 0 else torch.zeros(batch_size, dtype=torch.long)

    face_lengths, chunk_lengths = lengths(n_frames), lengths(n_chunks)
    s = config.face_size
    faces = torch.as_tensor(rng.integers(0, 256, size=(int(face_lengths.sum()), 3, s, s)), dtype=torch.float32)
    chunks = torch.as_tensor(rng.exponential(1.0, size=(int(chunk_lengths.sum()), 1, config.n_mels, config.chunk_frames)), dtype=torch.float32)
    texts = [" ".join(rng.choice(_WORDS, size=int(rng.integers(2, 9)))) for _ in range(batch_size)]
    tokenizer = tokenizer or build_tokenizer(config.text_model, config.text_max_len, pretrained=False)
    labels = torch.as_tensor(rng.random((batch_size, len(config.classes))) < 0.3, dtype=torch.float32)
    return Batch(
        faces=faces, face_lengths=face_lengths, chunks=chunks, chunk_lengths=chunk_lengths,
        text=tokenizer(texts), labels=labels, ids=[f"dummy_{seed}_{i}" for i in range(batch_size)],
    )
