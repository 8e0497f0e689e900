"""FE2E and MESM models and their building blocks.

``create_model`` / ``dummy_batch`` live in :mod:`mesm_core.models.factory`; spconv and transformers are
imported only when a model needs them.
"""

from mesm_core.models.factory import build_model, create_model, dummy_batch

__all__ = ["build_model", "create_model", "dummy_batch"]
