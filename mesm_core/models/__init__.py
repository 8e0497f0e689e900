"""The models and their building blocks: FE2E, MESM and the two-phase baselines, one registry over them.

Importing this package imports every model module, and so fills the architecture registry
(``registry.py``): ``build_model(config)``, ``get_arch(name)``, ``list_archs()``. Models never read presets,
checkpoints or data (``mesm_core.factory`` builds from a preset name, ``mesm_core.loading`` from a
checkpoint); spconv and transformers are imported only when a model needs them.
"""

from mesm_core.models import baselines, fe2e, mesm  # noqa: F401  (each registers its architectures)
from mesm_core.models.registry import Arch, build_model, get_arch, list_archs, register_arch

__all__ = ["Arch", "build_model", "get_arch", "list_archs", "register_arch"]
