"""The concrete sparse backends by name, and which of them are installed.

``auto`` chooses among :data:`PATHS` per call (``auto.py``) and reaches them through :func:`path_backend`;
``get_backend`` in the package ``__init__`` adds ``auto`` on top. Each backend module is imported only
when asked for (spconv's import alone takes seconds).
"""

from __future__ import annotations

import functools
import importlib.util

from mesm_core.models.sparse.block import SparseBackend

__all__ = ["BACKENDS", "PATHS", "spconv_available", "resolve_backend_name", "path_backend"]

BACKENDS = ("masked", "dense", "gather", "spconv")
PATHS = ("dense", "gather", "spconv")  # what "auto" chooses from


@functools.lru_cache(maxsize=1)
def spconv_available() -> bool:
    """Whether spconv is installed (looked up once: ``auto`` asks on every call)."""
    return importlib.util.find_spec("spconv") is not None


def resolve_backend_name(name: str) -> str:
    """Validates a backend name ("auto" stays "auto": it chooses per call)."""
    if name == "auto":
        return name
    if name not in BACKENDS:
        raise ValueError(f"unknown sparse backend {name!r}; choose one of auto, {', '.join(BACKENDS)}")
    if name == "spconv" and not spconv_available():
        raise ImportError("sparse_backend='spconv' needs spconv (pip install spconv-cu118 or spconv-cu126); or use 'masked'")
    return name


def path_backend(name: str) -> SparseBackend:
    """The backend callable of one concrete path (masked / dense / gather / spconv; not ``auto``)."""
    resolved = resolve_backend_name(name)
    if resolved == "masked":
        from mesm_core.models.sparse.masked import masked_block

        return masked_block
    if resolved == "dense":
        from mesm_core.models.sparse.dense import dense_block

        return dense_block
    if resolved == "gather":
        from mesm_core.models.sparse.gather import gather_block

        return gather_block
    if resolved == "spconv":
        from mesm_core.models.sparse.spconv_backend import spconv_block

        return spconv_block
    raise ValueError(f"{name!r} is not a concrete sparse path (auto chooses among {', '.join(PATHS)})")
