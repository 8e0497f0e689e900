"""Warm start from a checkpoint file: read its weights (``mesm_core.checkpoint``), rename them into the model
to train (``mesm_core.models.warm_start.map_weights``), load them. The trainer's ``--init-from``."""

from __future__ import annotations

import os

from torch import nn

from mesm_core.checkpoint import read_checkpoint_weights
from mesm_core.models.warm_start import WarmStartReport, map_weights

__all__ = ["warm_start"]


def warm_start(model: nn.Module, checkpoint: str | os.PathLike) -> WarmStartReport:
    """Load a trained checkpoint's weights into ``model`` in place (the mapping: ``models/warm_start.py``).

    The text encoder's weights are taken from the checkpoint when it stored them (a frozen pretrained
    encoder is stored by reference and is already loaded in ``model``). Raises ``CheckpointError`` naming
    the file when it is unreadable or its architecture does not fit ``model``.
    """
    tensors, run_config, path = read_checkpoint_weights(checkpoint)
    mapped, report = map_weights(tensors, run_config.model, model, where=str(path))
    model.load_state_dict(mapped, strict=False)
    return report
