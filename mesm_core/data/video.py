"""Video frames for the data pipeline: when to sample, which decoded frame answers each time, and the crop.

* :func:`sample_times`: the sampling times of a window (one every ``frame_interval_ms``);
* :func:`probe` and :func:`media_origin`: what a container declares (length, first timestamp, audio);
* :func:`scan_nearest_frames`: the one nearest-frame decoder (the pipeline samples with it and the
  studio decodes the same frames again for display);
* :class:`SampledDecoder`: an open video file whose :meth:`~SampledDecoder.sample` returns the frames
  nearest the sampling times as cropped RGB arrays (:class:`SampledFrames`), with truncation checks;
* :data:`CropSpec` / :func:`resolve_crop`: the region of every frame a clip keeps.

Every error is a :class:`~mesm_core.data.errors.ClipError` naming the file and the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np

from mesm_core.data.errors import EmptyClipError, FileTooLargeError, NoVideoStreamError, UnreadableMediaError
from mesm_core.data.faces import Box

__all__ = ["CropSpec", "resolve_crop", "apply_crop", "sample_times", "nearest_indices", "check_file",
           "open_container", "VideoProbe", "probe", "media_origin", "NearestFrames", "scan_nearest_frames",
           "SampledFrames", "SampledDecoder"]

# crop: None (whole frame), "left"/"right" half, a pixel box (x1, y1, x2, y2), or a callable (H, W) → box.
CropSpec = Union[None, str, Sequence[int], Callable[[int, int], Box]]

# A video that stops this long before its declared end is treated as truncated.
_TRUNCATION_TOLERANCE_S = 1.0


# --- where to sample ---------------------------------------------------------------------------

def sample_times(duration_s: float, interval_s: float, max_frames: int) -> np.ndarray:
    """Sampling times (s from the window start): 0, interval, 2·interval, … < duration.

    When that gives more than ``max_frames`` times, they are spread evenly over the clip instead
    (step duration / max_frames), so long clips stay covered end to end. float64 (F,).
    """
    if duration_s <= 0:
        return np.zeros(0)
    count = int(math.ceil(duration_s / interval_s - 1e-9))
    if max_frames > 0 and count > max_frames:
        return np.arange(max_frames) * (duration_s / max_frames)
    return np.arange(count) * interval_s


def nearest_indices(available_times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the available time nearest each target (ties → the earlier one). int64 (len(targets),)."""
    available_times = np.asarray(available_times, dtype=np.float64)
    if len(available_times) == 0:
        return np.zeros(0, np.int64)
    right = np.searchsorted(available_times, targets, side="left").clip(0, len(available_times) - 1)
    left = (right - 1).clip(0)
    pick_left = np.abs(targets - available_times[left]) <= np.abs(available_times[right] - targets)
    return np.where(pick_left, left, right).astype(np.int64)


# --- the crop ----------------------------------------------------------------------------------

def resolve_crop(crop: CropSpec, image_hw: tuple[int, int]) -> Box | None:
    """Turn a crop spec into a pixel box (x1, y1, x2, y2) inside an H×W frame (None = whole frame).

    Raises ``ValueError`` for an unknown name or a box that is empty inside the frame.
    """
    height, width = image_hw
    if crop is None:
        return None
    if callable(crop):
        box = crop(height, width)
    elif isinstance(crop, str):
        if crop == "left":
            box = (0, 0, width // 2, height)
        elif crop == "right":
            box = (width // 2, 0, width, height)
        else:
            raise ValueError(f"unknown crop {crop!r} (expected 'left', 'right', a box or a callable)")
    else:
        box = tuple(int(v) for v in crop)
    x1, y1, x2, y2 = (int(v) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"crop {crop!r} is empty for a {height}×{width} frame")
    return (x1, y1, x2, y2)


def apply_crop(frame: np.ndarray, box: Box | None) -> np.ndarray:
    """``frame`` (H, W, 3) cut to ``box`` (a contiguous copy), or unchanged for None."""
    if box is None:
        return frame
    x1, y1, x2, y2 = box
    return np.ascontiguousarray(frame[y1:y2, x1:x2])


# --- the file and its container ----------------------------------------------------------------

def check_file(path: str | Path, max_file_mb: float | None) -> Path:
    """``path`` when it is a non-empty file within ``max_file_mb`` (None or 0: no limit); else a ClipError."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableMediaError(path, "file does not exist")
    size = path.stat().st_size
    if size == 0:
        raise UnreadableMediaError(path, "file is empty (0 bytes)")
    if max_file_mb and size > max_file_mb * 1024 * 1024:
        raise FileTooLargeError(path, f"file is {size / 1024 / 1024:.1f} MiB, above the limit of {max_file_mb:g} MiB "
                                      "(DataConfig.max_file_mb)")
    return path


def open_container(path: Path):
    """``av.open(path)``; a file PyAV cannot open is an UnreadableMediaError naming it."""
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise UnreadableMediaError(path, f"cannot open media container ({exc})") from exc


def media_origin(container) -> float:
    """Time (s) of the container's first sample: MPEG-TS and some MP4s do not start at 0. Window
    times (``start``/``end``) count from here, for the video and the audio alike."""
    return float(container.start_time) / 1_000_000.0 if container.start_time else 0.0


@dataclass(frozen=True)
class VideoProbe:
    """What an open container declares, before any decoding."""

    duration: float | None   # length of the first video stream (s); None when the file does not say reliably
    origin: float            # :func:`media_origin`
    has_audio: bool          # the container has an audio stream


def probe(container, path: Path) -> VideoProbe:
    """Read what ``container`` declares. Raises NoVideoStreamError naming ``path`` when it has no video."""
    if not container.streams.video:
        raise NoVideoStreamError(path, "no video stream in the file")
    return VideoProbe(_video_duration(container, container.streams.video[0]), media_origin(container),
                      bool(container.streams.audio))


def _video_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        if container.start_time:
            return None  # some muxers store the end time here, others the length: decode to find out
        return float(container.duration) / 1_000_000.0
    if stream.frames and stream.average_rate:
        return float(stream.frames / stream.average_rate)
    return None


# --- nearest frames ----------------------------------------------------------------------------

@dataclass
class NearestFrames:
    """What :func:`scan_nearest_frames` found: PyAV frames, not yet converted to arrays."""

    picks: list[tuple[float, Any]]    # (time from the window start, av.VideoFrame) per answered target, in order
    last: tuple[float, Any] | None    # the last frame decoded (answers targets past the end of the stream)
    decode_errors: int                # corrupt packets skipped
    frame_rate: float | None          # the stream's average rate, when it declares one


def scan_nearest_frames(container, targets: np.ndarray, start: float) -> NearestFrames:
    """Stream-decode the first video stream of an open container once, keeping the frame nearest each
    target time. The one nearest-frame decoder: the data pipeline samples its frames with it and the
    studio decodes the same frames again for display.

    ``targets``: float64 (N,) ascending seconds from ``start``; ``start``: absolute seconds, media
    origin included (:func:`media_origin`). Ties go to the earlier frame. Decoding stops once every
    target is answered; targets after the last frame stay unanswered (``len(picks) < N``).
    """
    import av

    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = float(stream.average_rate) if stream.average_rate else None
    if start > 2.0:
        try:
            container.seek(int((start - 1.0) / stream.time_base), stream=stream, backward=True)
        except (av.error.FFmpegError, ZeroDivisionError, TypeError):
            container.seek(0)
    picks: list[tuple[float, Any]] = []
    prev: tuple[float, Any] | None = None
    decode_errors = 0
    frame_counter = 0
    n_targets = len(targets)
    if n_targets == 0:
        return NearestFrames(picks, None, 0, rate)
    for packet in container.demux(stream):
        try:
            decoded = packet.decode()
        except av.error.FFmpegError:
            decode_errors += 1
            continue
        for frame in decoded:
            t = float(frame.time) - start if frame.time is not None else frame_counter / (rate or 25.0) - start
            frame_counter += 1
            while len(picks) < n_targets and t >= targets[len(picks)]:
                target = targets[len(picks)]
                nearer_prev = prev is not None and (target - prev[0]) <= (t - target)
                picks.append(prev if nearer_prev else (t, frame))
            prev = (t, frame)
            if len(picks) >= n_targets:
                return NearestFrames(picks, prev, decode_errors, rate)
    return NearestFrames(picks, prev, decode_errors, rate)


# --- the sampled decoder -----------------------------------------------------------------------

@dataclass
class SampledFrames:
    """The frames a clip keeps, from a video or an image sequence."""

    frames: list[np.ndarray]          # RGB uint8 (H', W', 3), after the crop
    times: np.ndarray                 # float64 (F,) actual frame times from the window start
    targets: np.ndarray               # float64 (F,) the sampling times these frames answer
    frame_hw: tuple[int, int] | None  # (H, W) of the source frames, before the crop (None: no frame)
    crop_box: Box | None              # the pixel box kept (None: the whole frame)
    decode_errors: int = 0            # corrupt packets skipped
    last_time: float | None = None    # time of the last frame decoded (from the window start)
    frame_rate: float | None = None   # the source's frame rate, when known

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(H', W') of the kept frames: the crop box's size, else the source frame's."""
        if self.frame_hw is None:
            return None
        box = self.crop_box
        return (box[3] - box[1], box[2] - box[0]) if box else self.frame_hw


class SampledDecoder:
    """One video file, opened once: :attr:`probe` holds what it declares, :meth:`sample` decodes the frames
    nearest a list of sampling times. Use it as a context manager (it closes the container).

    Raises UnreadableMediaError / NoVideoStreamError naming the file when it cannot be opened or has no video.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.container = open_container(self.path)
        try:
            self.probe = probe(self.container, self.path)
        except Exception:
            self.container.close()
            raise

    def __enter__(self) -> "SampledDecoder":
        return self

    def __exit__(self, *exc_info) -> None:
        self.container.close()

    def sample(self, targets: np.ndarray, start: float, crop: CropSpec = None, *,
               open_ended: bool = False) -> SampledFrames:
        """The frames nearest each target (:func:`scan_nearest_frames`), as cropped RGB arrays.

        ``targets``: float64 (N,) seconds from ``start`` (absolute, media origin included). Targets after
        the last decoded frame take that frame within a tolerance (window end ≈ video end); further out the
        file is truncated (an UnreadableMediaError) unless the duration was unknown (``open_ended``), where
        they are dropped. No frame at all is an EmptyClipError (or UnreadableMediaError after corrupt packets).
        """
        scan = scan_nearest_frames(self.container, targets, start)
        chosen = list(scan.picks)
        if len(chosen) < len(targets) and scan.last is not None:
            chosen += self._past_the_end(scan, targets[len(chosen):], start, open_ended)
        if not chosen and len(targets):
            if scan.decode_errors:
                raise UnreadableMediaError(self.path, f"no video frame could be decoded "
                                                      f"({scan.decode_errors} corrupt packet(s))")
            raise EmptyClipError(self.path, "the video stream has no frames in the requested window")
        frames: list[np.ndarray] = []
        frame_hw = crop_box = None
        converted: tuple[Any, np.ndarray] | None = None  # a frame answering two targets is converted once
        for _, frame in chosen:
            if converted is None or converted[0] is not frame:
                rgb = frame.to_ndarray(format="rgb24")
                if frame_hw is None:
                    frame_hw = rgb.shape[:2]
                    crop_box = resolve_crop(crop, frame_hw)
                converted = (frame, apply_crop(rgb, crop_box))
            frames.append(converted[1])
        last_time = scan.last[0] if scan.last is not None else None
        return SampledFrames(frames, np.asarray([t for t, _ in chosen], np.float64), targets[:len(chosen)], frame_hw,
                             crop_box, scan.decode_errors, last_time, scan.frame_rate)

    def _past_the_end(self, scan: NearestFrames, missing: np.ndarray, start: float,
                      open_ended: bool) -> list[tuple[float, Any]]:
        """The last frame for each target it still covers; raises where the file stops short."""
        out = []
        for target in missing:
            gap = target - scan.last[0]
            if gap > _TRUNCATION_TOLERANCE_S and not open_ended:
                raise UnreadableMediaError(
                    self.path, f"video stream ends at {scan.last[0] + start:.2f} s, before the sampled time "
                               f"{target + start:.2f} s (truncated or corrupt file; "
                               f"{scan.decode_errors} corrupt packet(s))")
            if open_ended and gap >= 1.0 / (scan.frame_rate or 25.0) - 1e-6:  # past the last frame's span
                break
            out.append(scan.last)
        return out
