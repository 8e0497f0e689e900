"""Narrow presets and a tiny preprocessed cache for the training and evaluation tests; the
``tiny_training`` fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mesm_core.config import RunConfig, apply_overrides
from mesm_core.presets import get_preset

# Narrow versions of the small presets: same geometry, a few thousand weights, random tiny text encoder.
TINY_OVERRIDES = [
    "model.text_model=tiny-random",
    "model.stem_channels=8",
    "model.block_channels=[8,8,8,16,16]",
    "model.flatten_hidden=16",
    "model.trans_dim=16",
    "model.trans_ff=32",
    "model.trans_heads=2",
    "model.trans_dropout=0.1",
    "model.sparse_backend=masked",
    "train.batch_size=4",
    "train.lr=0.003",
]


def tiny_config(preset: str = "mesm_small", extra: list[str] | None = None) -> RunConfig:
    cfg = get_preset(preset)
    apply_overrides(cfg, TINY_OVERRIDES + list(extra or []))
    return cfg


def make_tiny_cache(
    root: Path, classes: tuple[str, ...], sizes: dict[str, int] | None = None, seed: int = 0, cues: bool = False
) -> Path:
    """A cache of random utterances written through the data pipeline's cache writer.

    The first class is made learnable (its positives have brighter faces) so metrics are not constant.
    """
    import time

    from mesm_core.config import DataConfig
    from mesm_core.data.cache import record_path, record_store, save_record, write_cache_info
    from mesm_core.types import ClipRecord

    sizes = sizes or {"train": 8, "valid": 6, "test": 6}
    rng = np.random.default_rng(seed)
    records_by_split = {}
    for split, n in sizes.items():
        records = []
        for i in range(n):
            labels = (rng.random(len(classes)) < 0.4).astype(np.float32)
            labels[0] = float(i % 2)  # both label values in every split
            n_frames = int(rng.integers(1, 3))
            n_mel_frames = int(rng.integers(20, 70))
            faces = rng.integers(0, 120, size=(n_frames, 48, 48, 3)).astype(np.uint8)
            if labels[0]:
                faces[:, 10:30, 10:30] += 120
            face_cues = np.zeros((n_frames, 48, 48), bool)
            face_cues[:, 10:30, 10:30] = True
            mel_cues = np.zeros((128, n_mel_frames), bool)
            mel_cues[20:50, :] = True
            records.append(ClipRecord(
                id=f"{split}_{i:03d}",
                faces=faces,
                face_boxes=np.tile(np.array([0, 0, 48, 48], np.float32), (n_frames, 1)),
                landmarks=np.full((n_frames, 5, 2), np.nan, np.float32),
                face_probs=np.ones(n_frames, np.float32),
                face_detected=np.ones(n_frames, bool),
                frame_times=np.arange(n_frames, dtype=np.float32) * 0.5,
                mel=rng.exponential(1.0, size=(128, n_mel_frames)).astype(np.float32),
                transcript="wow this is great" if labels[0] else "it is fine i guess",
                labels=labels,
                face_cues=face_cues if cues else None,
                mel_cues=mel_cues if cues else None,
            ))
        records_by_split[split] = records
    cache = root / "cache"
    write_cache_info(cache, DataConfig(), classes, dataset="tiny-test", source="tests/helpers/training.py")
    for split, records in records_by_split.items():
        for record in records:
            path = save_record(record, record_path(cache, record.id))
            record_store(cache).append({
                "id": record.id, "split": split, "labels": record.labels.tolist(), "status": "ok",
                "file": str(path.relative_to(cache)), "time": time.time(), "n_frames": len(record.faces),
                "n_chunks": -(-record.mel.shape[1] // 32),
            })
    return cache


BASELINE_CLASSES = ("ang", "exc", "fru", "hap", "neu", "sad")
# Narrow baselines (a few thousand weights) for the feature-cache runs.
TINY_BASELINE_OVERRIDES = ["model.trans_ff=16", "model.trans_layers=1", "model.mult_dim=10", "model.mult_heads=2",
                           "model.mult_layers=1", "model.emo_hidden=[50,8,4]", "train.batch_size=8"]


def make_feature_cache(root: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """A 50/84/35-d feature cache with a learnable class signal (class i % 6 shifts dimension c of every
    modality), split train/valid/test, written through the feature cache's own writer."""
    from mesm_core.features.byof import import_items
    from mesm_core.features.cache import FeatureItem

    sizes = sizes or {"train": 36, "valid": 12, "test": 12}
    rng = np.random.default_rng(seed)

    def items():
        for split, n in sizes.items():
            for i in range(n):
                c = i % 6
                lengths = rng.integers(2, 7, 3)
                text = rng.normal(size=(lengths[0], 50)).astype(np.float32)
                text[:, c] += 2.0
                audio = rng.normal(size=(lengths[1], 84)).astype(np.float32)
                audio[:, c] += 2.0
                visual = rng.normal(size=(lengths[2], 35)).astype(np.float32)
                face = np.ones(lengths[2], bool)
                face[0] = i % 4 != 0
                visual[~face] = 0
                yield FeatureItem(f"{split}{i}", split, text, audio, visual, face, np.eye(6, dtype=np.float32)[c])

    return import_items(items(), root / "features", BASELINE_CLASSES, {"text": "t", "audio": "a", "visual": "v"}).root
