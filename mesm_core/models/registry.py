"""The architecture registry: one entry per model architecture, the one place an ``arch`` name is told apart.

Each model class registers itself where it is defined (detectron2's ``META_ARCH_REGISTRY``, timm's
``register_model``)::

    @register_arch("mesm", family="e2e", supports_top_p=True)
    class MESM(MultimodalModel): ...

An entry (:class:`Arch`) builds its model (:func:`build_model`, through the class's ``from_config``) and
carries what the rest of mesm asks about an architecture:

* ``family``: the kind of data it reads, ``"e2e"`` (a preprocessed clip cache → ``Batch``) or ``"baseline"``
  (a feature cache → ``FeatureBatch``); ``mesm_core.families`` maps the name to its adapter;
* capabilities: ``supports_top_p`` (a top-p sparse stage: MESM; the model's own ``supports_top_p`` reads
  it), ``label_vectors`` (frozen label-word vectors handed in by the family: EmoEmbs).

Callers ask a capability (``get_arch(cfg.arch).supports_top_p``), never compare names. Every model module is
imported by ``mesm_core/models/__init__.py``, which runs before this module can be imported, so the table
is full whenever it is read. The names themselves (and the config section each takes) are declared in
``mesm_core.config`` (``E2E_ARCHS``, ``BASELINE_ARCHS``); ``tests/test_models.py`` checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, TypeVar

from torch import nn

from mesm_core.config import ConfigError

__all__ = ["Arch", "register_arch", "get_arch", "list_archs", "build_model"]

Family = Literal["e2e", "baseline"]
ModelClass = TypeVar("ModelClass", bound=type)


@dataclass(frozen=True)
class Arch:
    """One registered architecture: its builder, its family and its capabilities."""

    name: str
    family: Family
    builder: Callable[..., nn.Module]   # the class's from_config(config, *, pretrained, **resources)
    supports_top_p: bool = False        # a top-p sparse stage (``model(batch, top_p=p)`` changes what it computes)
    label_vectors: bool = False         # takes frozen label-word vectors (``label_embeddings``) from its family

    def build(self, config: Any, *, pretrained: bool = True, **resources: Any) -> nn.Module:
        """A fresh model for ``config`` (not validated here; see :func:`build_model`)."""
        return self.builder(config, pretrained=pretrained, **resources)


_ARCHS: dict[str, Arch] = {}


def register_arch(name: str, *, family: Family, supports_top_p: bool = False,
                  label_vectors: bool = False) -> Callable[[ModelClass], ModelClass]:
    """Class decorator: register the model class under ``name`` (it must offer ``from_config``) and set
    ``cls.arch = name``."""

    def wrap(cls: ModelClass) -> ModelClass:
        if name in _ARCHS:
            raise ValueError(f"architecture {name!r} registered twice")
        _ARCHS[name] = Arch(name, family, cls.from_config, supports_top_p, label_vectors)
        cls.arch = name
        return cls

    return wrap


def list_archs(family: Family | None = None) -> list[str]:
    """Names of the registered architectures (of ``family`` only, when given), sorted."""
    return sorted(name for name, arch in _ARCHS.items() if family is None or arch.family == family)


def get_arch(name: str) -> Arch:
    """The entry of ``name``; :class:`~mesm_core.config.ConfigError` (a ValueError) listing the valid names."""
    try:
        return _ARCHS[name]
    except KeyError:
        raise ConfigError(f"unknown architecture {name!r}; registered: {', '.join(list_archs())}") from None


def build_model(config: Any, *, pretrained: bool = True, **resources: Any) -> nn.Module:
    """The model of ``config.arch`` built from ``config`` (kept as ``model.config``), after validating it.

    ``pretrained`` loads what the model fetches itself (the E2E text encoder's weights); False builds random
    weights of the same shapes, offline (for weights about to come from a checkpoint). ``resources`` are
    what a family hands in (EmoEmbs' ``label_embeddings`` (C, E); see ``mesm_core.families``). Raises
    :class:`~mesm_core.config.ConfigError` for an unknown arch or an invalid config.
    """
    arch = get_arch(config.arch)
    config.validate()
    return arch.build(config, pretrained=pretrained, **resources)
