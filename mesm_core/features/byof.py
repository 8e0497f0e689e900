"""Bring your own features: the authors' hand-crafted feature files, or anything else, as a feature cache.

* :func:`import_iemocap_hcf` reads the reference's ``IEMOCAP_HCF_FEATURES/{phase}_{text,audio,video}_features.pt``
  (300-d GloVe 840B per word; DisVoice 763 × T per speaker side, reduced to the reference's 144
  columns; OpenFace rows whose last 35 columns are the AU intensities and presences), with labels from
  ``IEMOCAP_RAW_PROCESSED/meta.pkl`` and ids from ``IEMOCAP_SPLIT/{phase}_split.txt``. That gives the
  paper's exact 300/144/35 configuration.
* :func:`import_mosei_hcf` reads ``MOSEI_HCF_FEATURES/mosei_senti_hcf_{phase}.pkl`` (keys id/vision/audio/text,
  fixed-length sequences; the reference never documents their extractors).
* :func:`import_items` writes any iterable of :class:`~mesm_core.features.cache.FeatureItem` (your own
  extractor's output) into a cache; the baselines take their input sizes from the cache.

Despite the ``.pt`` suffix the authors' files are plain pickles. They are read with the project's
allow-list unpickler (numpy arrays, containers, numbers, strings only); a real ``torch.save`` zip
file is read with ``torch.load(weights_only=True)``. Neither path can run code from the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mesm_core.config import IEMOCAP_CLASSES, MOSEI_CLASSES
from mesm_core.features.cache import FeatureCache, FeatureItem

__all__ = ["REFERENCE_AUDIO_COLUMNS", "load_feature_pickle", "iemocap_use_left", "import_iemocap_hcf",
           "import_mosei_hcf", "import_items"]

# The reference's 144 DisVoice columns (``-aft 0``): 22 onset Bark energies, 12 onset MFCCs, the 108
# phonological statistics (655–762) and the two "padding" columns 100, 101 (DMFCC-offset 9, 10).
REFERENCE_AUDIO_COLUMNS: tuple[int, ...] = tuple(range(0, 34)) + tuple(range(655, 763)) + (100, 101)
PHASES = ("train", "valid", "test")


def load_feature_pickle(path: str | Path) -> Any:
    """Read a feature file without executing code: torch zip → ``torch.load(weights_only=True)``,
    else the allow-list unpickler. Errors name the file."""
    from mesm_core.data.safe_pickle import load_safe_pickle

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature file does not exist")
    if zipfile.is_zipfile(path):
        import torch

        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError/RuntimeError with its own wording
            raise ValueError(f"{path}: not loadable with weights_only=True ({exc})") from exc
    return load_safe_pickle(path)


def _as_matrix(value: Any, width: int | None, where: str) -> np.ndarray:
    if hasattr(value, "numpy"):
        value = value.numpy()
    array = np.asarray(value, dtype=np.float32)
    if array.size == 0:
        return np.zeros((1, width or 1), np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{where}: expected a (steps, dims) matrix, got shape {array.shape}")
    return np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)


def iemocap_use_left(utterance_id: str) -> bool:
    """The reference's speaker-side rule: Ses01F_impro01_F000 → the left half / channel."""
    entries = utterance_id.split("_")
    return entries[0][-1] == entries[-1][0]


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split list does not exist")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def import_items(items: Iterable[FeatureItem], out_dir: str | Path, classes: tuple[str, ...],
                 names: dict[str, str], extractors: dict | None = None, source: dict | None = None,
                 overwrite: bool = False) -> FeatureCache:
    """Write FeatureItems (all with the same per-modality sizes) to a new cache and finalise it."""
    iterator = iter(items)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no feature items to import")
    sizes = {"text": first.text.shape[1], "audio": first.audio.shape[1], "visual": first.visual.shape[1]}
    cache = FeatureCache.create(out_dir, sizes, names, extractors or {"kind": "user"}, classes,
                                source or {"kind": "user"}, overwrite=overwrite)
    cache.write(first)
    for item in iterator:
        cache.write(item)
    cache.finalize()
    return cache


def import_iemocap_hcf(data_folder: str | Path, out_dir: str | Path, *, frame_step: int = 1,
                       audio_columns: tuple[int, ...] = REFERENCE_AUDIO_COLUMNS, overwrite: bool = False) -> FeatureCache:
    """The reference's IEMOCAP HCF files → feature cache (300 / len(audio_columns) / 35).

    ``frame_step`` 1 keeps every OpenFace frame like the reference (``full=True``); 15 gives 2 fps.
    """
    from mesm_core.data.safe_pickle import load_safe_pickle

    root = Path(data_folder)
    meta = load_safe_pickle(root / "IEMOCAP_RAW_PROCESSED" / "meta.pkl")
    index = {name: i for i, name in enumerate(IEMOCAP_CLASSES)}

    def items():
        for phase in PHASES:
            folder = root / "IEMOCAP_HCF_FEATURES"
            texts = load_feature_pickle(folder / f"{phase}_text_features.pt")
            audios = load_feature_pickle(folder / f"{phase}_audio_features.pt")
            videos = load_feature_pickle(folder / f"{phase}_video_features.pt")
            for utt in _read_lines(root / "IEMOCAP_SPLIT" / f"{phase}_split.txt"):
                side = "L" if iemocap_use_left(utt) else "R"
                where = f"{folder} [{utt}]"
                audio = _as_matrix(np.asarray(audios[utt][side], np.float32).T, 763, where)
                if audio.shape[1] <= max(audio_columns):
                    raise ValueError(f"{where}: audio has {audio.shape[1]} columns, fewer than the selection needs")
                frames = videos[utt]
                rows = [np.asarray(frames[f"image_{side}_{i}"], np.float32)[-35:]
                        for i in range(0, len(frames) // 2, frame_step) if f"image_{side}_{i}" in frames]
                visual = _as_matrix(np.stack(rows) if rows else np.zeros((0, 35)), 35, where)
                labels = np.zeros(len(IEMOCAP_CLASSES), np.float32)
                labels[index[meta[utt]["label"]]] = 1.0
                yield FeatureItem(id=utt, split=phase, text=_as_matrix(texts[utt], 300, where),
                                  audio=audio[:, list(audio_columns)], visual=visual,
                                  visual_face=np.ones(visual.shape[0], bool), labels=labels)

    return import_items(items(), out_dir, IEMOCAP_CLASSES,
                        names={"text": "glove840b300d (authors)", "audio": f"disvoice{len(audio_columns)} (authors)",
                               "visual": "openface_au35 (authors)"},
                        extractors={"kind": "authors_hcf", "frame_step": frame_step,
                                    "audio_columns": list(audio_columns)},
                        source={"kind": "iemocap_hcf", "path": str(root)}, overwrite=overwrite)


def import_mosei_hcf(data_folder: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> FeatureCache:
    """The reference's MOSEI HCF pickles (fixed-length id/vision/audio/text arrays) → feature cache."""
    from mesm_core.data.safe_pickle import load_safe_pickle

    root = Path(data_folder)
    meta = load_safe_pickle(root / "MOSEI_RAW_PROCESSED" / "meta.pkl")

    def items():
        for phase in PHASES:
            path = root / "MOSEI_HCF_FEATURES" / f"mosei_senti_hcf_{phase}.pkl"
            hcf = load_feature_pickle(path)
            position = {str(i): n for n, i in enumerate(np.asarray(hcf["id"]).tolist())}
            for utt in _read_lines(root / "MOSEI_SPLIT" / f"{phase}_split.txt"):
                if utt not in position:
                    raise ValueError(f"{path}: no features for id {utt!r}")
                n = position[utt]
                where = f"{path} [{utt}]"
                visual = _as_matrix(hcf["vision"][n], None, where)
                yield FeatureItem(id=utt, split=phase, text=_as_matrix(hcf["text"][n], None, where),
                                  audio=_as_matrix(hcf["audio"][n], None, where), visual=visual,
                                  visual_face=np.ones(visual.shape[0], bool),
                                  labels=np.asarray(meta[utt]["label"], np.float32))

    return import_items(items(), out_dir, MOSEI_CLASSES,
                        names={"text": "mosei_hcf_text (authors)", "audio": "mosei_hcf_audio (authors)",
                               "visual": "mosei_hcf_vision (authors)"},
                        extractors={"kind": "authors_hcf"}, source={"kind": "mosei_hcf", "path": str(root)},
                        overwrite=overwrite)
