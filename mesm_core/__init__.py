"""mesm_core: FE2E and MESM (Dai et al., NAACL 2021) as trainable PyTorch models, with data, training and FLOPs.

Heavy submodules are imported lazily so ``import mesm_core`` stays cheap. A name here is never also a
submodule's name (``mesm_core.predict`` is the CLI module; the one-call function is
``mesm_core.inference.predict``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": "mesm_core.factory",
    "list_presets": "mesm_core.presets",
    "get_preset": "mesm_core.presets",
    "dummy_batch": "mesm_core.factory",
    "save_checkpoint": "mesm_core.checkpoint",
    "load_checkpoint": "mesm_core.loading",
    "CheckpointError": "mesm_core.errors",
    "Predictor": "mesm_core.inference",
    "Prediction": "mesm_core.inference",
    "preprocess_clip": "mesm_core.data.clip",
    "Batch": "mesm_core.types",
    "ClipRecord": "mesm_core.types",
    "ModelOutput": "mesm_core.types",
    "FlopsReport": "mesm_core.types",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mesm_core' has no attribute {name!r}")
