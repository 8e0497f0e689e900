"""The feature cache: pre-extracted per-step features of every utterance, for the two-phase baselines.

Layout of a cache directory::

    features.json     format, version, feature sizes and names, extractor versions and model checksums,
                      classes, where the features came from
    items/<id>.npz    text (L_t, D_t), audio (L_a, D_a), visual (L_v, D_v) float32,
                      visual_face (L_v,) bool, labels (C,) float32 (absent when unlabelled)
    manifest.jsonl    one line per attempt: {"id", "split", "status": "ok"|"failed", "file", "time", ...}; the
                      latest entry of an id wins, so a resumed build retries failures and skips finished items
    stats.json        per-dimension mean/std of each modality over the TRAIN split (z-scoring);
                      visual statistics use frames with a face only
    report.json       counts per split and the failures (id, reason)

Every sequence has at least one step; frames without a face are zero rows with ``visual_face``
False, never dropped. ``items/`` and the manifests are an :class:`~mesm_core.item_store.ItemStore`, as
in the clip cache: the same file naming, merge rule and atomic, fsynced writes, so an interrupted build
can be resumed with the same command.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from mesm_core.config import MODALITIES
from mesm_core.errors import InputError
from mesm_core.io import atomic_write
from mesm_core.item_store import ItemStore

__all__ = ["FEATURE_CACHE_FORMAT", "FEATURE_CACHE_VERSION", "FeatureItem", "FeatureCache", "FeatureCacheError",
           "NormStats", "compute_stats"]

FEATURE_CACHE_FORMAT = "mesm-feature-cache"
FEATURE_CACHE_VERSION = 1
_STD_FLOOR = 1e-6


class FeatureCacheError(InputError, ValueError):
    """A feature cache (or one of its files) is missing, malformed or inconsistent; names the file."""


@dataclass
class FeatureItem:
    """One utterance's features (see the module docstring for shapes)."""

    id: str
    split: str
    text: np.ndarray
    audio: np.ndarray
    visual: np.ndarray
    visual_face: np.ndarray
    labels: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def validate(self, sizes: dict[str, int] | None = None) -> None:
        """Raise FeatureCacheError naming the item if shapes, lengths or values are wrong."""
        for modality in MODALITIES:
            array = getattr(self, modality)
            if array.ndim != 2 or array.shape[0] < 1:
                raise FeatureCacheError(f"item {self.id!r}: {modality} must be (L ≥ 1, D), got {array.shape}")
            if sizes is not None and array.shape[1] != sizes[modality]:
                raise FeatureCacheError(
                    f"item {self.id!r}: {modality} has {array.shape[1]} dims, the cache expects {sizes[modality]}"
                )
            if not np.all(np.isfinite(array)):
                raise FeatureCacheError(f"item {self.id!r}: {modality} features contain NaN or inf")
        if self.visual_face.shape != (self.visual.shape[0],):
            raise FeatureCacheError(
                f"item {self.id!r}: visual_face {self.visual_face.shape} does not match {self.visual.shape[0]} frames"
            )


@dataclass
class NormStats:
    """Per-dimension mean and std of each modality (from the train split)."""

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    split: str = "train"
    counts: dict[str, int] = field(default_factory=dict)

    def apply(self, modality: str, array: np.ndarray) -> np.ndarray:
        return ((array - self.mean[modality]) / self.std[modality]).astype(np.float32)

    def to_dict(self) -> dict:
        return {"split": self.split, "counts": self.counts,
                "mean": {m: v.tolist() for m, v in self.mean.items()},
                "std": {m: v.tolist() for m, v in self.std.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "NormStats":
        return cls(mean={m: np.asarray(v, np.float64) for m, v in data["mean"].items()},
                   std={m: np.asarray(v, np.float64) for m, v in data["std"].items()},
                   split=data.get("split", "train"), counts=dict(data.get("counts", {})))


def compute_stats(items: Iterable[FeatureItem], sizes: dict[str, int], split: str = "train") -> NormStats:
    """Streaming per-dimension mean/std (float64 sums). Visual rows without a face are skipped.

    A dimension with std below 1e-6 (e.g. a never-active AU presence) gets std 1 (no scaling).
    """
    sums = {m: np.zeros(sizes[m]) for m in MODALITIES}
    squares = {m: np.zeros(sizes[m]) for m in MODALITIES}
    counts = {m: 0 for m in MODALITIES}
    for item in items:
        for modality in MODALITIES:
            rows = getattr(item, modality).astype(np.float64)
            if modality == "visual":
                rows = rows[item.visual_face.astype(bool)]
            sums[modality] += rows.sum(axis=0)
            squares[modality] += (rows ** 2).sum(axis=0)
            counts[modality] += rows.shape[0]
    mean, std = {}, {}
    for modality in MODALITIES:
        n = max(counts[modality], 1)
        mean[modality] = sums[modality] / n
        var = np.maximum(squares[modality] / n - mean[modality] ** 2, 0.0)
        sd = np.sqrt(var)
        std[modality] = np.where(sd < _STD_FLOOR, 1.0, sd)
    return NormStats(mean=mean, std=std, split=split, counts=counts)


class FeatureCache:
    """Read and write a feature cache directory (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        info_path = self.root / "features.json"
        if not info_path.is_file():
            raise FeatureCacheError(f"{info_path}: not a feature cache (features.json is missing); "
                                    "build one with 'python -m mesm_core.features build'")
        try:
            self.info = json.loads(info_path.read_text())
        except json.JSONDecodeError as exc:
            raise FeatureCacheError(f"{info_path}: malformed JSON ({exc})") from exc
        if self.info.get("format") != FEATURE_CACHE_FORMAT:
            raise FeatureCacheError(f"{info_path}: format {self.info.get('format')!r} is not {FEATURE_CACHE_FORMAT!r}")
        if self.info.get("version") != FEATURE_CACHE_VERSION:
            raise FeatureCacheError(f"{info_path}: cache version {self.info.get('version')!r}; this code reads "
                                    f"version {FEATURE_CACHE_VERSION}")
        self._store = ItemStore(self.root, "items")
        self._entries: dict[str, dict] | None = None

    # --- creation -----------------------------------------------------------------------------

    @classmethod
    def create(cls, root: str | Path, sizes: dict[str, int], names: dict[str, str], extractors: dict,
               classes: tuple[str, ...] | list[str], source: dict, overwrite: bool = False) -> "FeatureCache":
        """Create (or reopen for resuming) a cache. Reopening requires identical sizes, extractors and classes."""
        root = Path(root)
        info = {
            "format": FEATURE_CACHE_FORMAT, "version": FEATURE_CACHE_VERSION,
            "sizes": {m: int(sizes[m]) for m in MODALITIES}, "names": dict(names),
            "extractors": extractors, "classes": list(classes), "source": source,
        }
        info_path = root / "features.json"
        if info_path.is_file() and not overwrite:
            existing = cls(root)
            for key in ("sizes", "names", "extractors", "classes"):
                if json.loads(json.dumps(existing.info.get(key))) != json.loads(json.dumps(info[key])):
                    raise FeatureCacheError(
                        f"{info_path}: the existing cache was built with different {key} "
                        f"({existing.info.get(key)} vs {info[key]}); use another directory or --overwrite"
                    )
            return existing
        if overwrite and root.exists():
            for old in [*root.glob("manifest*.jsonl"), root / "stats.json", root / "report.json"]:
                old.unlink(missing_ok=True)
            for old in (root / "items").glob("*.npz") if (root / "items").is_dir() else []:
                old.unlink()
        (root / "items").mkdir(parents=True, exist_ok=True)
        info["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        atomic_write(info_path, json.dumps(info, indent=2))
        return cls(root)

    def _append_manifest(self, entry: dict) -> None:
        entry = self._store.append(entry)
        if self._entries is not None:
            self._entries[entry["id"]] = entry

    def write(self, item: FeatureItem) -> None:
        """Validate and store one item (atomic), then record it in the manifest."""
        item.validate(self.sizes)
        arrays = {m: getattr(item, m).astype(np.float32) for m in MODALITIES}
        arrays["visual_face"] = item.visual_face.astype(bool)
        if item.labels is not None:
            arrays["labels"] = np.asarray(item.labels, np.float32)
        self._append_manifest({
            "id": item.id, "split": item.split, "status": "ok", "file": self._store.write(item.id, arrays),
            "lengths": [int(arrays[m].shape[0]) for m in MODALITIES],
            "faces": int(arrays["visual_face"].sum()), "meta": item.meta,
        })

    def record_failure(self, item_id: str, split: str, reason: str) -> None:
        self._append_manifest({"id": item_id, "split": split, "status": "failed", "error": reason})

    def finalize(self, stats_split: str = "train") -> dict:
        """Compute z-scoring statistics on ``stats_split`` and write stats.json and report.json."""
        ids = self.ids(stats_split)
        if ids:
            stats = compute_stats((self.load(i) for i in ids), self.sizes, stats_split)
            atomic_write(self.root / "stats.json", json.dumps(stats.to_dict()))
        report = self.report()
        atomic_write(self.root / "report.json", json.dumps(report, indent=2))
        return report

    # --- reading ------------------------------------------------------------------------------

    @property
    def sizes(self) -> dict[str, int]:
        return {m: int(self.info["sizes"][m]) for m in MODALITIES}

    @property
    def feature_sizes(self) -> tuple[int, int, int]:
        return tuple(self.sizes[m] for m in MODALITIES)  # type: ignore[return-value]

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.info.get("classes", ()))

    def entries(self) -> dict[str, dict]:
        """id → the winning manifest entry of that id (the item store's merge rule)."""
        if self._entries is None:
            self._entries = self._store.entries()
        return self._entries

    def done_ids(self) -> set[str]:
        return {i for i, e in self.entries().items() if e["status"] == "ok"}

    def ids(self, split: str | None = None) -> list[str]:
        """Ids of stored items (of ``split``), in manifest order."""
        return [i for i, e in self.entries().items() if e["status"] == "ok" and (split is None or e["split"] == split)]

    def splits(self) -> list[str]:
        return sorted({e["split"] for e in self.entries().values() if e["status"] == "ok"})

    def load(self, item_id: str) -> FeatureItem:
        entry = self.entries().get(item_id)
        if entry is None or entry["status"] != "ok":
            raise FeatureCacheError(f"{self.root}: no stored item {item_id!r}")
        path = self._store.resolve(entry["file"])
        try:
            with np.load(path, allow_pickle=False) as data:
                item = FeatureItem(
                    id=item_id, split=entry["split"],
                    text=data["text"], audio=data["audio"], visual=data["visual"],
                    visual_face=data["visual_face"].astype(bool),
                    labels=data["labels"] if "labels" in data.files else None, meta=entry.get("meta", {}),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise FeatureCacheError(f"{path}: cannot read item {item_id!r} ({exc})") from exc
        item.validate(self.sizes)
        return item

    def iter_items(self, split: str | None = None) -> Iterator[FeatureItem]:
        for item_id in self.ids(split):
            yield self.load(item_id)

    def stats(self) -> NormStats:
        path = self.root / "stats.json"
        if not path.is_file():
            raise FeatureCacheError(f"{path}: no normalisation statistics (the cache has no train split, or its "
                                    "build was not finalised; rerun the build command to finish it)")
        return NormStats.from_dict(json.loads(path.read_text()))

    def report(self) -> dict:
        entries = self.entries().values()
        per_split: dict[str, dict[str, int]] = {}
        for entry in entries:
            counts = per_split.setdefault(entry["split"], {"ok": 0, "failed": 0})
            counts[entry["status"]] += 1
        failures = [{"id": e["id"], "split": e["split"], "error": e["error"]} for e in entries if e["status"] == "failed"]
        faceless = sum(1 for e in entries if e["status"] == "ok" and e.get("faces", 1) == 0)
        return {"splits": per_split, "failed": failures, "utterances_without_any_face": faceless,
                "sizes": self.sizes, "names": self.info.get("names", {})}
