"""Display frames: the sampled frames of a clip decoded again at display size, with their face boxes."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from mesm_core.types import ClipRecord

__all__ = ["STRIP_HEIGHT", "FRAME_HEIGHT", "FACE_BOX_COLOR", "FALLBACK_BOX_COLOR", "decode_display_frames",
           "frame_boxes", "draw_boxes", "resize", "box_scale"]

STRIP_HEIGHT = 96       # thumbnails of the frame strip
FRAME_HEIGHT = 320      # the selected frame, large
FACE_BOX_COLOR = (0, 200, 80)
FALLBACK_BOX_COLOR = (255, 140, 0)

Box = tuple[Sequence[float], tuple[int, int, int], str]   # (x1, y1, x2, y2), colour, label


def decode_display_frames(video: str | os.PathLike, times: np.ndarray, height: int,
                          start_s: float = 0.0) -> list[np.ndarray]:
    """RGB uint8 (height, W, 3) frames nearest each time, aspect kept.

    ``times`` are seconds from the utterance window start ``start_s`` (``record.frame_times`` and
    ``record.meta.start_s``): the frames the model saw, found by the data pipeline's own decoder
    (``mesm_core.data.video.scan_nearest_frames``). Scaling happens inside PyAV's conversion, so only
    the chosen frames are converted. A time past the end of the stream gets its last frame; a
    stream with no frame at all gives black frames.
    """
    import av

    from mesm_core.data.video import media_origin, scan_nearest_frames

    times = np.asarray(times, np.float64)
    if len(times) == 0:
        return []
    with av.open(str(video)) as container:
        scan = scan_nearest_frames(container, times, media_origin(container) + float(start_s))
        chosen = [frame for _, frame in scan.picks]
        if scan.last is not None:
            chosen += [scan.last[1]] * (len(times) - len(chosen))
        if not chosen:
            return [np.zeros((height, height, 3), np.uint8) for _ in times]
        first = chosen[0]
        width = max(2, int(round(first.width * height / first.height / 2)) * 2)
        converted: dict[int, np.ndarray] = {}  # a frame answering two times is converted once
        for frame in chosen:
            if id(frame) not in converted:
                converted[id(frame)] = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
        return [converted[id(frame)] for frame in chosen]


def frame_boxes(record: ClipRecord, index: int) -> list[Box]:
    """The face box of sampled frame ``index`` (green), or the centre-crop region used instead (orange)."""
    if bool(record.face_detected[index]):
        return [(record.face_boxes[index], FACE_BOX_COLOR, f"{float(record.face_probs[index]):.2f}")]
    regions = record.meta.face_regions
    if regions is not None and index < len(regions):
        return [(regions[index], FALLBACK_BOX_COLOR, "no face: centre crop")]
    return []


def draw_boxes(image: np.ndarray, boxes: list[Box], scale: float, width: int = 2) -> np.ndarray:
    """A copy of ``image`` with each box outlined (coordinates × ``scale``) and labelled above it."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for box, color, label in boxes:
        if box is None or not np.all(np.isfinite(box)):
            continue
        x1, y1, x2, y2 = (float(v) * scale for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        if label:
            draw.text((x1 + 3, max(0, y1 - 12)), label, fill=color)
    return np.asarray(canvas)


def resize(image: np.ndarray, height: int) -> np.ndarray:
    """Bilinear resize to ``height`` rows, aspect kept."""
    from PIL import Image

    h, w = image.shape[:2]
    width = max(1, int(round(w * height / h)))
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def box_scale(record: ClipRecord, image: np.ndarray) -> float:
    """Display pixels per source pixel (boxes are stored in source-frame pixels)."""
    if record.frame_size:
        return image.shape[0] / float(record.frame_size[0])
    return 1.0
