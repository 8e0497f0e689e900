"""A model or a dummy batch from a preset name, a RunConfig or a model config: the package face's builders
(``mesm_core.create_model``, ``mesm_core.dummy_batch``).

They live above both the presets and the models, so that ``mesm_core.models`` never reads a preset.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch import nn

from mesm_core.config import BaselineModelConfig, ModelConfig, ModelSection, RunConfig
from mesm_core.families import family_of
from mesm_core.models.text import build_tokenizer
from mesm_core.presets import get_preset
from mesm_core.types import Batch

__all__ = ["create_model", "dummy_batch", "resolve_model_config"]


def resolve_model_config(preset_or_config: str | RunConfig | ModelSection, **overrides) -> ModelSection:
    """A fresh model config from a preset name / RunConfig / model config, with field overrides of its type."""
    if isinstance(preset_or_config, str):
        config = get_preset(preset_or_config).model
    elif isinstance(preset_or_config, RunConfig):
        config = copy.deepcopy(preset_or_config.model)
    elif isinstance(preset_or_config, (ModelConfig, BaselineModelConfig)):
        config = copy.deepcopy(preset_or_config)
    else:
        raise TypeError(f"expected a preset name, RunConfig or ModelConfig, got {type(preset_or_config).__name__}")
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown {type(config).__name__} field(s) {sorted(unknown)}; valid fields: "
                        f"{', '.join(sorted(fields))}")
    for name, value in overrides.items():
        current = getattr(config, name)
        setattr(config, name, tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value)
    return config


def create_model(preset: str | RunConfig | ModelSection, text_pretrained: bool = True, **overrides) -> nn.Module:
    """Build a model from a preset name (see ``list_presets()``) plus model-config field overrides, through its
    family (which hands EmoEmbs its label vectors).

    ``text_pretrained=False`` builds the text encoder with random weights, offline (same architecture).
    Example: ``create_model("mesm_small", top_p=0.3, sparse_backend="masked")``. Raises ``ConfigError``
    (a ValueError) for an invalid config.
    """
    config = resolve_model_config(preset, **overrides)
    return family_of(config).build_model(config, pretrained=text_pretrained)


_WORDS = ("i", "am", "so", "happy", "sad", "angry", "really", "today", "this", "is", "not", "fine", "what", "wow", "oh", "no")


def dummy_batch(
    preset_or_config: str | RunConfig | ModelConfig,
    batch_size: int = 2,
    n_frames: int = 3,
    n_chunks: int = 4,
    seed: int = 0,
    tokenizer=None,
) -> Batch:
    """A random but valid Batch for any FE2E/MESM preset/config (offline; deterministic for a seed).

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
