"""One clip → model inputs (:class:`~mesm_core.types.ClipRecord`).

``preprocess_clip`` serves training data, ``predict`` and the app alike:

1. open the video with PyAV and stream-decode it (only the sampled frames are kept),
2. sample one frame every ``frame_interval_ms`` (times 0, 0.5, 1.0, … s of the utterance window; the
   decoded frame nearest each time),
3. detect the largest face per frame with MTCNN (reference settings) and crop it to 48×48,
4. decode the audio (from the video or a separate file), 16 kHz mono or one chosen channel,
5. compute the 128-mel power spectrogram,
6. attach the transcript (given, or a ``.txt`` / ``.srt`` file beside the video).

Image sequences (the authors' processed layouts store frames as JPEGs) go through
:func:`preprocess_frames`, which shares steps 2–6.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np

from mesm_core.config import DataConfig
from mesm_core.data.audio import Waveform, decode_audio_stream, load_audio, melspectrogram
from mesm_core.data.errors import (
    ClipTooLongError,
    EmptyClipError,
    EmptyTranscriptError,
    FileTooLargeError,
    NoAudioStreamError,
    NoFaceError,
    NoVideoStreamError,
    SilentAudioError,
    UnreadableMediaError,
)
from mesm_core.data.faces import Box, FaceDetector, extract_faces
from mesm_core.types import ClipRecord

# crop: None (whole frame), "left"/"right" half, a pixel box (x1, y1, x2, y2), or a callable (H, W) → box.
CropSpec = Union[None, str, Sequence[int], Callable[[int, int], Box]]

# progress(fraction done in [0, 1], what runs now): how a long clip tells a caller (the studio's progress
# bar) where it is. Called a handful of times per clip, so it may be slow-ish.
Progress = Callable[[float, str], None]


def _report(progress: Progress | None, fraction: float, stage: str) -> None:
    if progress is not None:
        progress(fraction, stage)

# A video that stops this long before its declared end is treated as truncated.
_TRUNCATION_TOLERANCE_S = 1.0


# --- small helpers -----------------------------------------------------------------------------

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


def resolve_crop(crop: CropSpec, image_hw: tuple[int, int]) -> Box | None:
    """Turn a crop spec into a pixel box (x1, y1, x2, y2) inside an H×W frame (None = whole frame)."""
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


def _apply_crop(frame: np.ndarray, box: Box | None) -> np.ndarray:
    if box is None:
        return frame
    x1, y1, x2, y2 = box
    return np.ascontiguousarray(frame[y1:y2, x1:x2])


_SRT_TIMING = re.compile(r"^\d\d:\d\d:\d\d[,.]\d+\s*-->\s*\d\d:\d\d:\d\d[,.]\d+")


def read_transcript_file(path: str | Path) -> str:
    """Text of a ``.txt`` (as is) or ``.srt`` (cue numbers and timings removed) file, on one line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise UnreadableMediaError(path, f"cannot read transcript ({exc})") from exc
    if path.suffix.lower() == ".srt":
        lines = [ln for ln in text.splitlines()
                 if ln.strip() and not ln.strip().isdigit() and not _SRT_TIMING.match(ln.strip())]
        text = " ".join(lines)
    return normalise_text(text)


def normalise_text(text: str) -> str:
    """Collapse whitespace (newlines included) to single spaces."""
    return " ".join(str(text).split())


def find_transcript(video: str | Path) -> Path | None:
    """``<stem>.txt`` or ``<stem>.srt`` beside the video, if present."""
    video = Path(video)
    for suffix in (".txt", ".srt"):
        candidate = video.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def check_file(path: str | Path, max_file_mb: float | None) -> Path:
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


def _open_container(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise UnreadableMediaError(path, f"cannot open media container ({exc})") from exc


# --- video decoding ----------------------------------------------------------------------------

@dataclass
class _DecodedFrames:
    frames: list[np.ndarray]        # RGB uint8, after the crop
    times: np.ndarray               # float64, actual frame times relative to the window start
    targets: np.ndarray             # the sampling times these frames answer
    frame_hw: tuple[int, int] | None  # before the crop
    crop_box: Box | None
    decode_errors: int
    last_time: float | None
    frame_rate: float | None


def _video_duration(container, stream) -> float | None:
    """Length of the video stream in seconds, or None when the file does not say reliably."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        if container.start_time:
            return None  # some muxers store the end time here, others the length: decode to find out
        return float(container.duration) / 1_000_000.0
    if stream.frames and stream.average_rate:
        return float(stream.frames / stream.average_rate)
    return None


def media_origin(container) -> float:
    """Time (s) of the container's first sample: MPEG-TS and some MP4s do not start at 0. Window
    times (``start``/``end``) count from here, for the video and the audio alike."""
    return float(container.start_time) / 1_000_000.0 if container.start_time else 0.0


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


def _decode_sampled_frames(container, path: Path, targets: np.ndarray, start: float, crop: CropSpec,
                           open_ended: bool) -> _DecodedFrames:
    """The frames nearest each target (:func:`scan_nearest_frames`), as cropped RGB arrays.

    Targets after the last decoded frame take that frame within a tolerance (window end ≈ video
    end); further out the file is truncated (an error) unless the duration was unknown
    (``open_ended``), where they are dropped.
    """
    scan = scan_nearest_frames(container, targets, start)
    chosen = list(scan.picks)
    if len(chosen) < len(targets) and scan.last is not None:
        for target in targets[len(chosen):]:
            gap = target - scan.last[0]
            if gap > _TRUNCATION_TOLERANCE_S and not open_ended:
                raise UnreadableMediaError(
                    path, f"video stream ends at {scan.last[0] + start:.2f} s, before the sampled time "
                          f"{target + start:.2f} s (truncated or corrupt file; "
                          f"{scan.decode_errors} corrupt packet(s))")
            if open_ended and gap >= 1.0 / (scan.frame_rate or 25.0) - 1e-6:  # past the last frame's span
                break
            chosen.append(scan.last)
    if not chosen and len(targets):
        if scan.decode_errors:
            raise UnreadableMediaError(path, f"no video frame could be decoded ({scan.decode_errors} corrupt packet(s))")
        raise EmptyClipError(path, "the video stream has no frames in the requested window")
    frames: list[np.ndarray] = []
    frame_hw = crop_box = None
    converted: tuple[Any, np.ndarray] | None = None  # a frame answering two targets is converted once
    for _, frame in chosen:
        if converted is None or converted[0] is not frame:
            rgb = frame.to_ndarray(format="rgb24")
            if frame_hw is None:
                frame_hw = rgb.shape[:2]
                crop_box = resolve_crop(crop, frame_hw)
            converted = (frame, _apply_crop(rgb, crop_box))
        frames.append(converted[1])
    last_time = scan.last[0] if scan.last is not None else None
    return _DecodedFrames(frames, np.asarray([t for t, _ in chosen], np.float64), targets[:len(chosen)], frame_hw,
                          crop_box, scan.decode_errors, last_time, scan.frame_rate)


# --- record building (shared by video and image-sequence input) ----------------------------------

def _resolve_transcript(transcript: str | None, video: Path | None, meta: dict) -> str:
    if transcript is None and video is not None:
        found = find_transcript(video)
        if found is not None:
            meta["transcript_source"] = str(found)
            return read_transcript_file(found)
        meta["transcript_source"] = "none"
        return ""
    meta["transcript_source"] = "given" if transcript is not None else "none"
    return normalise_text(transcript or "")


def build_record(clip_id: str, frames: Sequence[np.ndarray], frame_times: np.ndarray, waveform: Waveform,
                 transcript: str, *, config: DataConfig, detector: FaceDetector | None, path: str | Path,
                 frame_size: tuple[int, int] | None = None, meta: dict | None = None,
                 require_face: bool = False, require_sound: bool = False,
                 labels: np.ndarray | None = None, progress: Progress | None = None) -> ClipRecord:
    """Faces (MTCNN + no-face policy) + mel + transcript → ClipRecord. Shared by every input kind."""
    meta = dict(meta or {})
    detector = detector or FaceDetector.from_config(config)
    _report(progress, 0.45, f"Finding faces in {len(frames)} sampled frames")
    track = extract_faces(list(frames), detector, config)
    n_detected = int(track.detected.sum())
    meta.update(
        n_sampled=int(track.n_input),
        n_frames=int(len(track.faces)),
        n_faces=n_detected,
        n_fallback=int(track.n_fallback),
        n_skipped=int(track.n_skipped),
        no_face=bool(n_detected == 0),
        no_frames=bool(len(track.faces) == 0),
        face_regions=track.regions.tolist(),
    )
    if require_face and n_detected == 0:
        raise NoFaceError(path, f"no face detected in any of the {track.n_input} sampled frame(s)")
    silent = waveform.silent
    meta.update(audio_silent=bool(silent), audio_duration_s=round(waveform.duration_s, 4),
                audio_source_rate=int(waveform.source_rate), audio_source_channels=int(waveform.source_channels),
                audio_channel=waveform.channel)
    if require_sound and silent:
        raise SilentAudioError(path, "the audio is silent (all samples are zero)")
    _report(progress, 0.75, "Mel spectrogram")
    mel = melspectrogram(waveform.samples, config)
    return ClipRecord(
        id=clip_id,
        faces=track.faces,
        face_boxes=track.boxes,
        landmarks=track.landmarks,
        face_probs=track.probs,
        face_detected=track.detected,
        frame_times=np.asarray(frame_times, np.float64)[track.kept].astype(np.float32),
        mel=mel,
        transcript=transcript,
        labels=None if labels is None else np.asarray(labels, np.float32),
        frame_size=None if frame_size is None else (int(frame_size[0]), int(frame_size[1])),
        source=str(path),
        meta=meta,
    )


def _check_transcript(text: str, path, require_transcript: bool, meta: dict) -> None:
    meta["transcript_empty"] = not text
    if require_transcript and not text:
        raise EmptyTranscriptError(path, "the transcript is empty")


def _check_window(path, duration: float | None, config: DataConfig) -> None:
    if duration is not None and duration <= 0:
        raise EmptyClipError(path, f"zero duration ({duration:.3f} s)")
    if duration is not None and config.max_duration_s and duration > config.max_duration_s:
        raise ClipTooLongError(path, f"clip is {duration:.1f} s, above the limit of {config.max_duration_s:g} s "
                                     "(DataConfig.max_duration_s)")


# --- public entry points -----------------------------------------------------------------------

def preprocess_clip(video: str | Path, transcript: str | None = None, *, audio: str | Path | None = None,
                    config: DataConfig | None = None, detector: FaceDetector | None = None,
                    start: float | None = None, end: float | None = None, crop: CropSpec = None,
                    audio_channel: int | None = None, clip_id: str | None = None,
                    labels: np.ndarray | None = None, require_transcript: bool = False,
                    require_face: bool = False, require_sound: bool = False,
                    progress: Progress | None = None) -> ClipRecord:
    """Decode a video (optionally the window [start, end) s) into a :class:`ClipRecord`.

    Args:
        video: any container PyAV reads (mp4, avi, mkv, webm, …).
        transcript: the text; None → ``<stem>.txt``/``<stem>.srt`` beside the video, else "".
        audio: a separate audio file (wav/flac via soundfile, else PyAV); None → the video's audio.
        detector: a reusable :class:`FaceDetector` (built from ``config`` when None).
        crop: region of each frame to keep before detection ("left", "right", box, callable(H, W)).
        audio_channel: keep one channel (0-based) instead of the mean of all channels.
        require_transcript / require_face / require_sound: turn an empty transcript, no detected
            face, or all-zero audio from a flag in ``record.meta`` into an error.
        progress: called with (fraction, stage) as decoding, faces, audio and the mel begin.

    Returns a ClipRecord with F sampled frames (faces uint8 (F, 48, 48, 3), ...), mel (128, T)
    with T = 1 + n_samples // 200; ``meta`` (:class:`~mesm_core.types.ClipMeta`) holds the window,
    audio facts and flags, plus counts in ``meta.extra`` (n_faces, n_fallback, n_skipped, no_frames,
    transcript_empty, decode_errors, ...).

    Raises ClipError subclasses naming the file and the reason.
    """
    config = config or DataConfig()
    path = Path(video)
    windowed = start is not None or end is not None
    # Windowed cuts stream a long source file; the size limit guards whole uploads.
    check_file(path, None if windowed else config.max_file_mb)
    meta: dict[str, Any] = {}
    text = _resolve_transcript(transcript, path, meta)
    _check_transcript(text, path, require_transcript, meta)

    container = _open_container(path)
    with container:
        if not container.streams.video:
            raise NoVideoStreamError(path, "no video stream in the file")
        stream = container.streams.video[0]
        media_duration = _video_duration(container, stream)
        start_s = float(start or 0.0)
        origin = media_origin(container)
        if start_s < 0:
            raise ValueError(f"{path}: start {start_s} s is negative")
        end_s = None if end is None else float(end)
        if media_duration is not None and start_s >= media_duration > 0:
            raise EmptyClipError(path, f"the window starts at {start_s:.2f} s, at or after the end of the media "
                                       f"({media_duration:.2f} s)")
        if end_s is not None and media_duration is not None and end_s > media_duration:
            meta["end_clipped_from_s"] = end_s
            end_s = media_duration
        if end_s is None:
            end_s = media_duration
        duration = None if end_s is None else end_s - start_s
        if media_duration is not None and media_duration <= 0:
            raise EmptyClipError(path, "zero duration")
        _check_window(path, duration, config)
        interval = config.frame_interval_ms / 1000.0
        open_ended = duration is None
        # Unknown duration: sample up to just past the limit, so a too-long clip is still caught.
        horizon = duration if duration is not None else (config.max_duration_s or 3600.0) + 2 * interval
        targets = sample_times(horizon, interval, config.max_frames)
        _report(progress, 0.05, "Decoding the video")
        decoded = _decode_sampled_frames(container, path, targets, origin + start_s, crop, open_ended)
        if open_ended:
            duration = (decoded.last_time or 0.0) + 1.0 / (decoded.frame_rate or 25.0)
            _check_window(path, duration, config)
        has_audio = bool(container.streams.audio)

    _report(progress, 0.35, "Decoding the audio")
    if audio is not None:
        waveform = load_audio(audio, sample_rate=config.sample_rate, channel=audio_channel,
                              start=start, end=None if end is None else start_s + duration)
    elif has_audio:
        with _open_container(path) as audio_container:
            waveform = decode_audio_stream(audio_container, path, sample_rate=config.sample_rate,
                                           channel=audio_channel, start=origin + start_s,
                                           end=origin + start_s + duration)
    else:
        raise NoAudioStreamError(path, "no audio stream in the file and no separate audio file given")

    frame_hw = decoded.frame_hw
    meta.update(
        audio_path=str(audio) if audio is not None else str(path),
        media_origin_s=origin,
        start_s=start_s, end_s=start_s + duration, duration_s=round(duration, 4),
        frame_interval_s=float(decoded.targets[1] - decoded.targets[0]) if len(decoded.targets) > 1 else interval,
        source_frame_rate=decoded.frame_rate, source_frame_size=list(frame_hw) if frame_hw else None,
        crop_box=list(decoded.crop_box) if decoded.crop_box else None, decode_errors=decoded.decode_errors,
        sampled_times=[round(float(t), 4) for t in decoded.targets],
    )
    frame_size = None
    if frame_hw is not None:
        box = decoded.crop_box
        frame_size = (box[3] - box[1], box[2] - box[0]) if box else frame_hw
    return build_record(clip_id or path.stem, decoded.frames, decoded.times, waveform, text, config=config,
                        detector=detector, path=path, frame_size=frame_size, meta=meta,
                        require_face=require_face, require_sound=require_sound, labels=labels, progress=progress)


def _load_rgb(path: str | Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise UnreadableMediaError(path, f"cannot read image ({exc})") from exc


def preprocess_frames(images: Sequence[str | Path], audio: str | Path, transcript: str = "", *,
                      frame_rate: float, config: DataConfig | None = None, detector: FaceDetector | None = None,
                      crop: CropSpec = None, audio_channel: int | None = None, clip_id: str | None = None,
                      labels: np.ndarray | None = None, duration: float | None = None,
                      require_transcript: bool = False, require_face: bool = False,
                      require_sound: bool = False) -> ClipRecord:
    """An image sequence (frame i at time i / frame_rate) + an audio file → ClipRecord.

    Sampling is the same as for video: times 0, interval, … < duration (default
    len(images) / frame_rate), each answered by the nearest image. At 30 fps and 500 ms that is
    every 15th image (the reference's IEMOCAP rule); at 2 fps it is every image (MOSEI's processed
    frames, which the reference wrongly subsampled again).
    """
    config = config or DataConfig()
    images = [Path(p) for p in images]
    where = images[0].parent if images else Path(audio).parent
    meta: dict[str, Any] = {}
    text = normalise_text(transcript or "")
    meta["transcript_source"] = "given"
    _check_transcript(text, where, require_transcript, meta)
    if duration is None:
        duration = len(images) / float(frame_rate) if images else None
    interval = config.frame_interval_ms / 1000.0
    waveform = load_audio(audio, sample_rate=config.sample_rate, channel=audio_channel)
    if duration is None:
        duration = waveform.duration_s
    _check_window(where, duration, config)
    targets = sample_times(duration, interval, config.max_frames)
    image_times = np.arange(len(images)) / float(frame_rate)
    picks = nearest_indices(image_times, targets) if images else np.zeros(0, np.int64)
    frames, cache, frame_hw, crop_box = [], {}, None, None
    for index in picks:
        if index not in cache:
            rgb = _load_rgb(images[index])
            if frame_hw is None:
                frame_hw = rgb.shape[:2]
                crop_box = resolve_crop(crop, frame_hw)
            cache[index] = _apply_crop(rgb, crop_box)
        frames.append(cache[index])
    meta.update(
        audio_path=str(audio), start_s=0.0, end_s=duration, duration_s=round(duration, 4), frame_interval_s=interval,
        source_frame_rate=float(frame_rate), source_frame_size=list(frame_hw) if frame_hw else None,
        crop_box=list(crop_box) if crop_box else None, decode_errors=0, n_images=len(images),
        sampled_times=[round(float(t), 4) for t in targets[:len(frames)]],
        image_indices=[int(i) for i in picks],
    )
    frame_size = None
    if frame_hw is not None:
        frame_size = (crop_box[3] - crop_box[1], crop_box[2] - crop_box[0]) if crop_box else frame_hw
    return build_record(clip_id or where.name, frames, image_times[picks] if len(picks) else np.zeros(0), waveform,
                        text, config=config, detector=detector, path=where, frame_size=frame_size, meta=meta,
                        require_face=require_face, require_sound=require_sound, labels=labels)


# --- jobs: one deferred utterance from any dataset source ----------------------------------------

@dataclass
class ClipJob:
    """One utterance to preprocess. Every dataset source yields these; the cache runs them.

    Either ``video`` (with optional ``start``/``end`` window, ``crop``, ``audio``) or ``images``
    (+ ``image_rate`` and ``audio``). ``postprocess(record, config) -> record`` (a module-level
    function, so jobs pickle into worker processes) runs after preprocessing, e.g. to attach
    synthetic cue masks.
    """

    id: str
    split: str | None = None
    labels: np.ndarray | None = None
    video: str | None = None
    images: list[str] | None = None
    image_rate: float | None = None
    audio: str | None = None
    transcript: str | None = None
    start: float | None = None
    end: float | None = None
    crop: CropSpec = None
    audio_channel: int | None = None
    duration: float | None = None
    postprocess: Callable[[ClipRecord, DataConfig], ClipRecord] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        if self.video:
            return str(self.video)
        if self.images:
            return str(Path(self.images[0]).parent)
        return str(self.audio or self.id)

    def run(self, config: DataConfig, detector: FaceDetector | None = None) -> ClipRecord:
        """Preprocess this utterance → ClipRecord (id, labels, split and source meta attached)."""
        if self.video is not None:
            record = preprocess_clip(self.video, self.transcript, audio=self.audio, config=config, detector=detector,
                                     start=self.start, end=self.end, crop=self.crop, audio_channel=self.audio_channel,
                                     clip_id=self.id, labels=self.labels)
        elif self.images is not None:
            if self.audio is None:
                raise NoAudioStreamError(self.source, "image-sequence clip without an audio file")
            record = preprocess_frames(self.images, self.audio, self.transcript or "", frame_rate=self.image_rate or 30.0,
                                       config=config, detector=detector, crop=self.crop,
                                       audio_channel=self.audio_channel, clip_id=self.id, labels=self.labels,
                                       duration=self.duration)
        else:
            raise ValueError(f"job {self.id!r} has neither a video nor images")
        record.meta.split = self.split
        record.meta.update(self.meta)  # the source's own fields (dataset, dialog, side...) land in extra
        if self.postprocess is not None:
            record = self.postprocess(record, config)
        return record


__all__ = ["CropSpec", "sample_times", "nearest_indices", "NearestFrames", "scan_nearest_frames", "media_origin",
           "resolve_crop", "read_transcript_file", "find_transcript",
           "normalise_text", "check_file", "build_record", "preprocess_clip", "preprocess_frames", "ClipJob"]
