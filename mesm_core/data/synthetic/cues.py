"""Ground-truth cue masks of the synthetic dataset, carried onto a preprocessed ClipRecord.

``cues/<id>.npz`` stores the cues in source coordinates (canonical face masks + one pose per video
frame; audio boxes in seconds and Hz). :func:`attach_cues` turns them into the record's grids:
``face_cues`` (F, 48, 48) on the record's own face crops (same crop region as the pixels, via
``mesm_core.data.faces``) and ``mel_cues`` (n_mels, T) on the record's mel spectrogram.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mesm_core.config import DataConfig
from mesm_core.data.faces import center_region, crop_box, resize_region
from mesm_core.data.synthetic import audio as synth_audio
from mesm_core.types import ClipRecord

# A crop pixel is a cue pixel when at least this fraction of its source area is (area resampling,
# so thin regions do not vanish or grow with the crop scale).
CROP_COVERAGE = 0.5


@dataclass
class ClipCues:
    """The contents of one ``cues/<id>.npz``."""

    labels: list[str]
    canonical_masks: np.ndarray   # bool (k, C, C)
    poses: np.ndarray             # float32 (n_frames, 2, 3) canonical → frame
    active: np.ndarray            # bool (n_frames, k)
    intensity: np.ndarray         # float32 (n_frames, k)
    mel_boxes: np.ndarray         # float32 (m, 4) t0, t1 (s), f_lo, f_hi (Hz)
    mel_box_labels: list[str]
    fps: int
    frame_size: tuple[int, int]   # (H, W)
    sample_rate: int
    modality_cues: dict[str, bool]

    @property
    def n_frames(self) -> int:
        return int(self.poses.shape[0])

    def frame_index(self, time_s: float) -> int:
        """The video frame shown at ``time_s`` (nearest frame start), clipped to the clip."""
        return int(np.clip(np.floor(time_s * self.fps + 0.5), 0, self.n_frames - 1))

    def frame_mask(self, frame: int) -> np.ndarray:
        """bool (H, W): cue pixels of video frame ``frame`` in frame coordinates."""
        import cv2

        height, width = self.frame_size
        mask = np.zeros((height, width), dtype=bool)
        for j in np.flatnonzero(self.active[frame]):
            warped = cv2.warpAffine(self.canonical_masks[j].astype(np.uint8), self.poses[frame].astype(np.float64),
                                    (width, height), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
            mask |= warped.astype(bool)
        return mask

    def mel_mask(self, n_frames: int, config: DataConfig | None = None) -> np.ndarray:
        """bool (n_mels, n_frames) on the grid of ``mesm_core.data.audio.melspectrogram``."""
        config = config or DataConfig()
        return synth_audio.mel_cue_mask(self.mel_boxes, n_frames, n_mels=config.n_mels,
                                        sample_rate=config.sample_rate, hop_length=config.hop_length,
                                        fmax=config.sample_rate / 2)


def cue_path(source_dir: str | Path, clip_id: str) -> Path:
    return Path(source_dir) / "cues" / f"{clip_id}.npz"


def load_cues(path: str | Path) -> ClipCues:
    """Read one ``cues/<id>.npz``. Raises FileNotFoundError / ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no cue file (is this a synthetic dataset made by "
                                "mesm_core.data.synthetic?)")
    try:
        with np.load(path, allow_pickle=False) as data:
            labels = [str(x) for x in data["labels"]]
            size = int(data["canon_size"])
            packed = data["face_masks"]
            masks = np.unpackbits(packed, axis=1, count=size * size).reshape(len(labels), size, size).astype(bool)
            return ClipCues(
                labels=labels,
                canonical_masks=masks,
                poses=data["face_poses"].astype(np.float32),
                active=data["face_active"].astype(bool),
                intensity=data["face_intensity"].astype(np.float32),
                mel_boxes=data["mel_boxes"].astype(np.float32).reshape(-1, 4),
                mel_box_labels=[str(x) for x in data["mel_box_labels"]],
                fps=int(data["fps"]),
                frame_size=(int(data["frame_size"][0]), int(data["frame_size"][1])),
                sample_rate=int(data["sample_rate"]),
                modality_cues={m: bool(data[f"{m}_cue"]) for m in ("visual", "audio", "text")},
            )
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{path}: unreadable cue file ({exc})") from exc


def _record_regions(record: ClipRecord, frame_hw: tuple[int, int], config: DataConfig) -> list[tuple[int, int, int, int]]:
    """The pixel region resized into each face crop: from ``meta.face_regions`` when the
    pipeline recorded it, else recomputed from the boxes (centre fallback where there is none)."""
    regions = record.meta.face_regions
    if regions is not None and len(regions) == len(record.faces):
        return [tuple(int(v) for v in r) for r in regions]
    out = []
    for box in np.asarray(record.face_boxes, dtype=np.float64).reshape(-1, 4):
        if np.all(np.isfinite(box)):
            out.append(crop_box(box, frame_hw, config.face_size, config.face_margin))
        else:
            out.append(center_region(frame_hw))
    return out


def face_cue_crops(cues: ClipCues, record: ClipRecord, config: DataConfig | None = None) -> np.ndarray:
    """bool (F, S, S): each sampled frame's cue mask cropped like the record's face crop."""
    import cv2

    config = config or DataConfig()
    size = config.face_size
    frame_hw = tuple(record.frame_size) if record.frame_size else cues.frame_size
    if tuple(frame_hw) != tuple(cues.frame_size):
        raise ValueError(f"{record.source or record.id}: record frames are {frame_hw}, the cue file says "
                         f"{cues.frame_size} (were the videos cropped or resized?)")
    regions = _record_regions(record, frame_hw, config)
    out = np.zeros((len(record.faces), size, size), dtype=bool)
    for f, (time_s, region) in enumerate(zip(np.asarray(record.frame_times, np.float64), regions)):
        mask = cues.frame_mask(cues.frame_index(float(time_s)))
        if not mask.any() or region[2] <= region[0] or region[3] <= region[1]:
            continue
        coverage = resize_region(mask.astype(np.float32), region, size, interpolation=cv2.INTER_AREA)
        out[f] = coverage >= CROP_COVERAGE
    return out


def attach_cues(record: ClipRecord, source_dir: str | Path, config: DataConfig | None = None) -> ClipRecord:
    """Set ``record.face_cues`` (F, S, S) bool and ``record.mel_cues`` (n_mels, T) bool from
    ``source_dir/cues/<id>.npz`` and return the record (modified in place).

    The clip is found by ``record.id``, else by the stem of ``record.source``. Face masks follow the
    record's own crop regions (the data pipeline's MTCNN boxes, or its no-face fallback region), so a
    cue pixel and a face pixel at the same crop position show the same image point.
    """
    path = cue_path(source_dir, record.id)
    if not path.is_file() and record.source:
        path = cue_path(source_dir, Path(record.source).stem)
    return attach_cue_file(record, path, config)


def attach_cue_file(record: ClipRecord, path: str | Path, config: DataConfig | None = None) -> ClipRecord:
    """:func:`attach_cues` from one cue file (``cues/<id>.npz``) given by path.

    Raises ValueError naming the file when the cue file describes another clip (other frame size,
    or a length that differs from the record's by more than one video frame).
    """
    config = config or DataConfig()
    path = Path(path)
    cues = load_cues(path)
    duration = record.meta.duration_s
    if duration is not None and abs(cues.n_frames / cues.fps - float(duration)) > 1.5 / cues.fps:
        raise ValueError(f"{path}: the cue file describes a {cues.n_frames / cues.fps:.2f} s clip, this clip is "
                         f"{float(duration):.2f} s (a cue file of another clip?)")
    record.face_cues = face_cue_crops(cues, record, config)
    record.mel_cues = cues.mel_mask(int(record.mel.shape[1]), config)
    if record.mel_cues.shape != record.mel.shape:
        raise ValueError(f"{path}: mel cue mask {record.mel_cues.shape} does not match the record's mel "
                         f"{record.mel.shape} (config.n_mels differs from the record's?)")
    record.meta = record.meta.copy()
    record.meta.cue_modalities = dict(cues.modality_cues)
    return record
