"""Face detection (facenet-pytorch MTCNN, reference settings) and the exact face-crop geometry.

Geometry (facenet-pytorch ``extract_face``, which the reference's ``MTCNN(image_size=48, margin=2)``
uses): the margin is given in *output* pixels and converted to image pixels per axis,
``m = margin * (x2 - x1) / (size - margin)``; the box grows by m/2 on each side, is truncated to
int and clipped to the image, and that region is resized to size×size with ``cv2.INTER_AREA``.
:func:`crop_box`, :func:`crop_region` and :func:`points_to_crop` expose this so masks, cue maps
and landmarks can be carried into crop coordinates exactly like the face pixels.

Crop coordinates are continuous: pixel i of the crop covers [i, i+1). A point at image
coordinate x lands at ``(x - x1) * size / (x2 - x1)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mesm_core.config import DataConfig

Box = tuple[int, int, int, int]

# MTCNN's smallest pyramid input is 12 px; smaller frames cannot contain a detectable face.
_MIN_DETECTABLE_SIDE = 12

# Frames whose longer side exceeds this are shrunk before detection (boxes and landmarks are mapped back,
# and the crop is still cut from the full frame). MTCNN's cost grows with the pixel count: on one shared CPU
# core a 3840×2160 frame took 2.4 s, shrunk to 1280×720 0.22 s, and a 3 s 4K clip (6 sampled frames)
# preprocessed in 22 s instead of 1.6 s. At 1280 px the smallest face found (min_face_size 20 px) is 60 px
# on a 4K frame, still above the 48 px crop. Frames up to 1280 px are detected as they are.
DETECT_MAX_SIDE = 1280


def crop_box(box: Sequence[float], image_hw: tuple[int, int], size: int = 48, margin: float = 2) -> Box:
    """Detection box (x1, y1, x2, y2) in image pixels → the integer pixel region that is cropped.

    Same arithmetic as facenet-pytorch ``extract_face`` (margin in output pixels, clipped to the image).
    """
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    height, width = int(image_hw[0]), int(image_hw[1])
    margin_x = margin * (x2 - x1) / (size - margin)
    margin_y = margin * (y2 - y1) / (size - margin)
    return (
        int(max(x1 - margin_x / 2, 0)),
        int(max(y1 - margin_y / 2, 0)),
        int(min(x2 + margin_x / 2, width)),
        int(min(y2 + margin_y / 2, height)),
    )


def resize_region(array: np.ndarray, region: Box, size: int, interpolation: int | None = None) -> np.ndarray:
    """Crop ``array[y1:y2, x1:x2]`` (H×W or H×W×C) and resize it to size×size.

    Bool arrays (masks) are resized with nearest-neighbour and come back as bool; other arrays
    keep their dtype and use ``interpolation`` (default ``cv2.INTER_AREA``, as facenet-pytorch).
    """
    import cv2

    x1, y1, x2, y2 = (int(v) for v in region)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"empty crop region {region} for an array of shape {array.shape}")
    patch = np.ascontiguousarray(array[y1:y2, x1:x2])
    is_bool = patch.dtype == np.bool_
    if is_bool:
        patch = patch.astype(np.uint8)
        interpolation = cv2.INTER_NEAREST if interpolation is None else interpolation
    elif interpolation is None:
        interpolation = cv2.INTER_AREA
    out = cv2.resize(patch, (size, size), interpolation=interpolation)
    if out.ndim == 2 and array.ndim == 3:  # cv2 drops a trailing channel axis of size 1
        out = out[:, :, None]
    return out.astype(bool) if is_bool else out


def crop_region(array: np.ndarray, box: Sequence[float], size: int = 48, margin: float = 2,
                interpolation: int | None = None) -> np.ndarray:
    """Crop any H×W[×C] array (image, mask, cue map) exactly like the face crop of detection ``box``.

    Returns (size, size[, C]) with the input dtype (bool masks use nearest-neighbour).
    """
    return resize_region(array, crop_box(box, array.shape[:2], size, margin), size, interpolation)


def region_points_to_crop(points: np.ndarray, region: Box, size: int = 48) -> np.ndarray:
    """Image-pixel points (..., 2) as x, y → crop-pixel points for the pixel ``region`` resized to size."""
    x1, y1, x2, y2 = region
    points = np.asarray(points, dtype=np.float32)
    scale = np.array([size / (x2 - x1), size / (y2 - y1)], np.float32)
    return (points - np.array([x1, y1], np.float32)) * scale


def points_to_crop(points: np.ndarray, box: Sequence[float], image_hw: tuple[int, int], size: int = 48,
                   margin: float = 2) -> np.ndarray:
    """MTCNN landmarks (or any points) (..., 2) in image pixels → crop pixels of detection ``box``."""
    return region_points_to_crop(points, crop_box(box, image_hw, size, margin), size)


def center_region(image_hw: tuple[int, int]) -> Box:
    """The no-face fallback region: a centred square of side ``min(H, W) // 2`` (at least 1 px).

    The reference took a raw 48×48 patch with a column offset reusing the height and shifted 24 px
    left (see docs/deviations.md); we take a face-scale centred square and resize it like a face.
    """
    height, width = int(image_hw[0]), int(image_hw[1])
    side = max(1, min(height, width) // 2)
    x1 = (width - side) // 2
    y1 = (height - side) // 2
    return (x1, y1, x1 + side, y1 + side)


@dataclass
class Detection:
    """The largest face of one frame: box (4,) x1,y1,x2,y2 image px; prob; points (5, 2) image px."""

    box: np.ndarray
    prob: float
    points: np.ndarray


class FaceDetector:
    """Reusable MTCNN wrapper with the reference settings (image_size 48, margin 2, select_largest).

    The network is built lazily on first use, so constructing a detector is free and it can be
    created in each worker process. ``detect`` runs batched over frames of equal size.
    """

    def __init__(self, device: str = "cpu", batch_size: int = 16, image_size: int = 48, margin: float = 2,
                 min_face_size: int = 20, thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709,
                 max_side: int | None = DETECT_MAX_SIDE):
        self.device = device
        self.max_side = None if not max_side else int(max_side)
        self.batch_size = int(batch_size)
        self.image_size = int(image_size)
        self.margin = margin
        self.min_face_size = int(min_face_size)
        self.thresholds = list(thresholds)
        self.factor = float(factor)
        self._mtcnn = None

    @classmethod
    def from_config(cls, config: DataConfig, device: str = "cpu", batch_size: int = 16) -> "FaceDetector":
        return cls(device=device, batch_size=batch_size, image_size=config.face_size, margin=config.face_margin)

    @property
    def mtcnn(self):
        if self._mtcnn is None:
            from facenet_pytorch import MTCNN

            self._mtcnn = MTCNN(image_size=self.image_size, margin=self.margin, post_process=False,
                                select_largest=True, keep_all=False, min_face_size=self.min_face_size,
                                thresholds=self.thresholds, factor=self.factor, device=self.device).eval()
        return self._mtcnn

    def detection_scale(self, shape: Sequence[int]) -> float:
        """The factor a frame of ``shape`` (H, W, ...) is resized by before detection (1.0: as it is)."""
        longest = max(int(shape[0]), int(shape[1]))
        return self.max_side / longest if self.max_side and longest > self.max_side else 1.0

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detection | None]:
        """RGB uint8 frames (each H×W×3) → the largest face per frame, or None.

        Frames larger than ``max_side`` are detected on a shrunk copy (``cv2.INTER_AREA``); the boxes
        and landmarks come back in the coordinates of the frame as given.
        """
        import cv2

        results: list[Detection | None] = [None] * len(frames)
        index = 0
        while index < len(frames):
            shape = frames[index].shape
            stop = index
            while stop < len(frames) and stop - index < self.batch_size and frames[stop].shape == shape:
                stop += 1
            scale = self.detection_scale(shape)
            size = (max(1, round(shape[1] * scale)), max(1, round(shape[0] * scale)))  # (W, H) for cv2
            if min(size) >= _MIN_DETECTABLE_SIDE:
                batch = np.stack([np.asarray(f, dtype=np.uint8) if scale == 1.0 else
                                  cv2.resize(np.asarray(f, dtype=np.uint8), size, interpolation=cv2.INTER_AREA)
                                  for f in frames[index:stop]])
                boxes, probs, points = self.mtcnn.detect(batch, landmarks=True)
                # Back to the given frame's pixels (per axis: rounding the size changes the ratio slightly).
                back = np.array([shape[1] / size[0], shape[0] / size[1]], np.float32)
                for offset in range(stop - index):
                    if boxes[offset] is None:
                        continue
                    # detect() returns object-dtype arrays; the first row is the largest face.
                    box = np.asarray(boxes[offset], dtype=np.float32).reshape(-1, 4)[0]
                    prob = float(np.asarray(probs[offset], dtype=np.float64).reshape(-1)[0])
                    pts = np.asarray(points[offset], dtype=np.float32).reshape(-1, 5, 2)[0]
                    if scale != 1.0:
                        box, pts = box * np.tile(back, 2), pts * back
                    results[index + offset] = Detection(box, prob, pts)
            index = stop
        return results


@dataclass
class FaceTrack:
    """Per-frame face crops of one clip after the no-face policy (arrays as in ClipRecord)."""

    faces: np.ndarray          # uint8 (F, S, S, 3)
    boxes: np.ndarray          # float32 (F, 4), NaN where no face
    landmarks: np.ndarray      # float32 (F, 5, 2) crop pixels, NaN where no face
    probs: np.ndarray          # float32 (F,)
    detected: np.ndarray       # bool (F,)
    kept: np.ndarray           # int64 (F,) indices into the input frames
    regions: np.ndarray        # int32 (F, 4) the pixel region that was resized into each crop
    n_input: int = 0
    n_skipped: int = 0
    n_fallback: int = 0
    extra: dict = field(default_factory=dict)


def extract_faces(frames: Sequence[np.ndarray], detector: FaceDetector, config: DataConfig | None = None) -> FaceTrack:
    """Detect the largest face in each RGB frame and crop it (S = config.face_size).

    Frames without a face follow ``config.no_face_policy``: "center" fills a centred crop
    (``face_detected`` False), "skip" drops the frame.
    """
    config = config or DataConfig()
    if config.no_face_policy not in ("center", "skip"):
        raise ValueError(f"unknown no_face_policy {config.no_face_policy!r} (expected 'center' or 'skip')")
    size, margin = config.face_size, config.face_margin
    detections = detector.detect(frames) if len(frames) else []
    faces, boxes, marks, probs, detected, kept, regions = [], [], [], [], [], [], []
    n_skipped = n_fallback = 0
    for index, (frame, det) in enumerate(zip(frames, detections)):
        hw = frame.shape[:2]
        if det is not None:
            region = crop_box(det.box, hw, size, margin)
            if region[2] > region[0] and region[3] > region[1]:
                faces.append(resize_region(frame, region, size))
                boxes.append(det.box)
                marks.append(region_points_to_crop(det.points, region, size))
                probs.append(det.prob)
                detected.append(True)
                kept.append(index)
                regions.append(region)
                continue
        if config.no_face_policy == "skip":
            n_skipped += 1
            continue
        region = center_region(hw)
        faces.append(resize_region(frame, region, size))
        boxes.append(np.full(4, np.nan, np.float32))
        marks.append(np.full((5, 2), np.nan, np.float32))
        probs.append(0.0)
        detected.append(False)
        kept.append(index)
        regions.append(region)
        n_fallback += 1
    n = len(faces)
    return FaceTrack(
        faces=np.stack(faces).astype(np.uint8) if n else np.zeros((0, size, size, 3), np.uint8),
        boxes=np.asarray(boxes, np.float32).reshape(n, 4),
        landmarks=np.asarray(marks, np.float32).reshape(n, 5, 2),
        probs=np.asarray(probs, np.float32).reshape(n),
        detected=np.asarray(detected, bool).reshape(n),
        kept=np.asarray(kept, np.int64).reshape(n),
        regions=np.asarray(regions, np.int32).reshape(n, 4),
        n_input=len(frames),
        n_skipped=n_skipped,
        n_fallback=n_fallback,
    )


__all__ = ["Box", "crop_box", "crop_region", "resize_region", "points_to_crop", "region_points_to_crop",
           "center_region", "Detection", "FaceDetector", "FaceTrack", "extract_faces"]
