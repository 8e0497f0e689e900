"""Model families: what differs between the end-to-end models and the two-phase baselines, in one place.

    family_of(cfg) → E2E        FE2E, MESM          read a preprocessed clip cache   → Batch
                   → BASELINES  LF-LSTM, LF-TRANS,  read a feature cache             → FeatureBatch
                                EmoEmbs, MulT

Which family an architecture belongs to is its registry entry's ``family`` (``mesm_core.models.registry``).
A :class:`ModelFamily` knows how to check and open its kind of data directory, how to build a model from
its config section (the registry's builder, plus the pretrained resources the family hands in), and what a
batch is (dataset + collate). Everything above it is written once: the Trainer (``mesm_core.training``), the
prediction collector and the evaluation (``mesm_core.evaluation``), checkpoint loading
(``mesm_core.loading``) and the CLIs. Both families' models map a batch to the same
:class:`~mesm_core.types.ModelOutput`, so losses, thresholds and metrics need no family at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

from torch import nn

from mesm_core.config import BaselineModelConfig, ModelConfig, RunConfig
from mesm_core.errors import InputError
from mesm_core.models.registry import Arch, build_model, get_arch

__all__ = ["DataDirError", "SplitDataset", "ModelFamily", "E2EFamily", "BaselineFamily", "E2E", "BASELINES",
           "FAMILIES", "family_of", "has_split", "label_embeddings_for"]


class DataDirError(InputError, ValueError):
    """``--data`` is not the kind of directory the model family reads (message says which and how to make one)."""


class SplitDataset(Protocol):
    """What a family's dataset offers: items in a stable order, their ids and their labels."""

    ids: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...

    def labels(self) -> Any: ...


class ModelFamily:
    """The per-family adapter. Subclasses fill in the data and model hooks; the rest of mesm uses only these."""

    name = ""
    models = ""       # the models of the family, for messages
    data_kind = ""    # the kind of data directory it reads
    data_marker = ""  # the file every such directory has
    make_data = ""    # how to make one
    has_default_data = False  # trains without --data (on the embedded synthetic dataset)

    def check_data(self, data_dir: str | Path) -> Path:
        """``data_dir`` as a Path when it is this family's kind of data directory, else :class:`DataDirError`
        (saying how to make one, and what the directory is when it belongs to the other family)."""
        path = Path(data_dir)
        if not path.is_dir():
            raise DataDirError(f"{path}: no such directory ({self.make_data})")
        if not (path / self.data_marker).is_file():
            other = next((f for f in FAMILIES if f is not self and (path / f.data_marker).is_file()), None)
            hint = f"; it is a {other.data_kind}, which {other.models} read" if other is not None else ""
            raise DataDirError(f"{path}: not a {self.data_kind} (no {self.data_marker}; {self.make_data}){hint}")
        return path

    def configure(self, cfg: RunConfig, data_dir: str | Path) -> RunConfig:
        """Fill the config fields that come from the data (in place); the E2E models need none."""
        return cfg

    def build_model(self, config: Any, *, pretrained: bool = True) -> nn.Module:
        """A fresh model for its config section. ``pretrained`` loads pretrained resources (the E2E text encoder,
        EmoEmbs' GloVe label vectors); False when the weights are about to come from a checkpoint, or offline."""
        resources = self.resources(get_arch(config.arch), config) if pretrained else {}
        return build_model(config, pretrained=pretrained, **resources)

    def resources(self, arch: Arch, config: Any) -> dict[str, Any]:
        """The pretrained resources this family hands to ``arch``'s builder (none by default)."""
        return {}

    def dataset(self, data_dir: str | Path, split: str, config: Any) -> SplitDataset:
        """The items of ``split`` in the data directory, labels in the order of ``config.classes``.
        Raises an :class:`InputError` when the split is missing or empty."""
        raise NotImplementedError

    def collate_fn(self, model: nn.Module, dataset: SplitDataset) -> Callable[[list], Any]:
        """items → the batch ``model`` takes."""
        raise NotImplementedError

    def dataset_name(self, data_dir: str | Path) -> str | None:
        """The dataset the data came from (e.g. "iemocap", "synthetic"): it picks the reported metrics."""
        return None


class E2EFamily(ModelFamily):
    """FE2E and MESM on a preprocessed clip cache (``python -m mesm_core.preprocess``)."""

    name = "e2e"
    models = "FE2E and MESM"
    data_kind = "preprocessed cache"
    data_marker = "cache.json"
    make_data = "make one with python -m mesm_core.preprocess"
    has_default_data = True

    def dataset(self, data_dir: str | Path, split: str, config: ModelConfig) -> SplitDataset:
        from mesm_core.data import CacheDataset

        return CacheDataset(Path(data_dir), split, classes=config.classes)

    def collate_fn(self, model: nn.Module, dataset: SplitDataset) -> Callable[[list], Any]:
        from functools import partial

        from mesm_core.data import collate
        from mesm_core.data.errors import DataSourceError

        expected = model.config.chunk_frames
        chunk_frames = int(getattr(dataset, "data_config", {}).get("chunk_frames", expected))
        if chunk_frames != expected:
            raise DataSourceError(f"{getattr(dataset, 'cache_dir', 'the cache')}: the cache was made with "
                                  f"{chunk_frames}-frame mel chunks but the model expects {expected}")
        return partial(collate, tokenizer=model.tokenizer, chunk_frames=chunk_frames)

    def dataset_name(self, data_dir: str | Path) -> str | None:
        from mesm_core.data.cache import read_cache_info

        try:
            return read_cache_info(data_dir).dataset
        except InputError:
            return None


class BaselineFamily(ModelFamily):
    """LF-LSTM, LF-TRANS, EmoEmbs and MulT on a feature cache (``python -m mesm_core.features build``)."""

    name = "baseline"
    models = "the two-phase baselines"
    data_kind = "feature cache"
    data_marker = "features.json"
    make_data = "make one with python -m mesm_core.features build --clips CLIP_CACHE --out FEATURE_CACHE"

    def configure(self, cfg: RunConfig, data_dir: str | Path) -> RunConfig:
        """Feature sizes and classes come from the feature cache (the preset's are placeholders)."""
        from mesm_core.features.cache import FeatureCache

        cache = FeatureCache(data_dir)
        model = cfg.model
        model.feature_sizes = cache.feature_sizes
        if cache.classes and tuple(model.classes) != cache.classes:
            model.classes = cache.classes
            if model.label_words and len(model.label_words) != len(cache.classes):
                model.label_words = ()
        return cfg

    def resources(self, arch: Arch, config: BaselineModelConfig) -> dict[str, Any]:
        """EmoEmbs' frozen label vectors (GloVe), for an architecture that takes them."""
        return {"label_embeddings": label_embeddings_for(config)} if arch.label_vectors else {}

    def dataset(self, data_dir: str | Path, split: str, config: BaselineModelConfig) -> SplitDataset:
        from mesm_core.features.cache import FeatureCache, FeatureCacheError
        from mesm_core.features.dataset import FeatureDataset

        cache = FeatureCache(data_dir)
        if cache.classes and tuple(cache.classes) != tuple(config.classes):
            raise FeatureCacheError(f"{cache.root}: the feature cache has classes {list(cache.classes)}, the model "
                                    f"{list(config.classes)}")
        return FeatureDataset(cache, split, normalize=config.normalize_features)

    def collate_fn(self, model: nn.Module, dataset: SplitDataset) -> Callable[[list], Any]:
        from mesm_core.features.dataset import collate_features

        return collate_features

    def dataset_name(self, data_dir: str | Path) -> str | None:
        from mesm_core.features.cache import FeatureCache

        try:
            source = FeatureCache(data_dir).info.get("source") or {}
        except InputError:
            return None
        return source.get("dataset") if isinstance(source, dict) else None


def label_embeddings_for(config: BaselineModelConfig):
    """EmoEmbs' frozen label vectors: GloVe 6B 50-d of each class's label word, a (C, 50) float tensor."""
    import torch

    from mesm_core.config import ConfigError
    from mesm_core.features.text import load_glove

    glove = load_glove()
    if config.emo_hidden[0] != glove.dim:
        raise ConfigError(f"EmoEmbs: text hidden size {config.emo_hidden[0]} must equal the label-vector size "
                          f"{glove.dim} (GloVe 6B 50-d); set model.emo_hidden=[{glove.dim}, ...]")
    return torch.from_numpy(glove.vectors(config.resolved_label_words()))


E2E = E2EFamily()
BASELINES = BaselineFamily()
FAMILIES = (E2E, BASELINES)
_BY_NAME = {family.name: family for family in FAMILIES}


def family_of(item: Any) -> ModelFamily:
    """The family of a RunConfig, a model config section, or a model (by its ``config``): its architecture's
    registry entry says which."""
    config = item.model if isinstance(item, RunConfig) else getattr(item, "config", item)
    return _BY_NAME[get_arch(config.arch).family]


def has_split(data_dir: str | Path, split: str, config: Any) -> bool:
    """True when the data directory holds a non-empty ``split`` the model of ``config`` can read."""
    try:
        return len(family_of(config).dataset(data_dir, split, config)) > 0
    except (InputError, FileNotFoundError):
        return False
