"""One clip → model inputs (:class:`~mesm_core.types.ClipRecord`).

``preprocess_clip`` serves training data, ``predict`` and the app alike:

1. open the video with PyAV and stream-decode it (only the sampled frames are kept; :mod:`.video`),
2. sample one frame every ``frame_interval_ms`` (times 0, 0.5, 1.0, … s of the utterance window; the
   decoded frame nearest each time),
3. detect the largest face per frame with MTCNN (reference settings) and crop it to 48×48,
4. decode the audio (from the video or a separate file), 16 kHz mono or one chosen channel,
5. compute the 128-mel power spectrogram,
6. attach the transcript (given, or a ``.txt`` / ``.srt`` file beside the video; :mod:`.transcript`).

Image sequences (the authors' processed layouts store frames as JPEGs) go through
:func:`preprocess_frames`, which shares steps 2–6 (:func:`build_record`). What a clip takes of its source
is said by three small values: :class:`Window` (the span), :class:`Crop` (the speaker's part of the
picture and of the sound) and :class:`Requirements` (which soft problems are errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mesm_core.config import DataConfig
from mesm_core.data.audio import Waveform, decode_audio_stream, load_audio, melspectrogram
from mesm_core.data.errors import (
    ClipTooLongError,
    EmptyClipError,
    EmptyTranscriptError,
    NoAudioStreamError,
    NoFaceError,
    SilentAudioError,
    UnreadableMediaError,
)
from mesm_core.data.faces import FaceDetector, extract_faces
from mesm_core.data.transcript import Transcript, resolve_transcript
from mesm_core.data.video import (
    CropSpec,
    SampledDecoder,
    SampledFrames,
    VideoProbe,
    apply_crop,
    check_file,
    nearest_indices,
    open_container,
    resolve_crop,
    sample_times,
)
from mesm_core.types import ClipMeta, ClipRecord

__all__ = ["Window", "Crop", "Requirements", "Progress", "preprocess_clip", "preprocess_frames", "build_record"]

# progress(fraction done in [0, 1], what runs now): how a long clip tells a caller (the studio's progress
# bar) where it is. Called a handful of times per clip, so it may be slow-ish.
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Window:
    """The utterance's span in the source file, in seconds from its first sample (``video.media_origin``).

    None: from the start / to the end of the media. An end past the media is clipped to it (and
    ``meta.end_clipped_from_s`` records the asked end).
    """

    start: float | None = None
    end: float | None = None

    @property
    def is_whole(self) -> bool:
        """True when no bound is set: the whole file is the clip (the upload size limit applies)."""
        return self.start is None and self.end is None


@dataclass(frozen=True)
class Crop:
    """The part of a shared recording that belongs to the clip's speaker: a region of every frame and one
    audio channel (IEMOCAP films two actors side by side, each on their own microphone channel)."""

    frame: CropSpec = None             # None (whole frame), "left"/"right" half, a pixel box, or callable(H, W) → box
    audio_channel: int | None = None   # keep this channel (0-based); None: the mean of all channels


@dataclass(frozen=True)
class Requirements:
    """Which soft problems are errors. Otherwise each is only flagged in ``record.meta``."""

    transcript: bool = False   # an empty transcript → EmptyTranscriptError (flag: ``transcript_empty``)
    face: bool = False         # no face in any sampled frame → NoFaceError (flag: ``no_face``)
    sound: bool = False        # all-zero audio → SilentAudioError (flag: ``audio_silent``)


def _report(progress: Progress | None, fraction: float, stage: str) -> None:
    if progress is not None:
        progress(fraction, stage)


# --- video input -------------------------------------------------------------------------------

def preprocess_clip(video: str | Path, transcript: str | None = None, *, audio: str | Path | None = None,
                    config: DataConfig | None = None, detector: FaceDetector | None = None,
                    window: Window | None = None, crop: Crop | None = None, require: Requirements | None = None,
                    clip_id: str | None = None, progress: Progress | None = None) -> ClipRecord:
    """Decode a video (optionally only its :class:`Window`) into a :class:`ClipRecord`.

    Args:
        video: any container PyAV reads (mp4, avi, mkv, webm, …).
        transcript: the text; None → ``<stem>.txt``/``<stem>.srt`` beside the video, else "".
        audio: a separate audio file (wav/flac via soundfile, else PyAV); None → the video's audio.
        detector: a reusable :class:`FaceDetector` (built from ``config`` when None).
        window: the span of the source to take (default: all of it).
        crop: the speaker's region of each frame (kept before detection) and audio channel.
        require: which of an empty transcript, no face, silent audio is an error (default: none).
        clip_id: the record's id (default: the video's stem).
        progress: called with (fraction, stage) as decoding, faces, audio and the mel begin.

    Returns a ClipRecord with F sampled frames (faces uint8 (F, 48, 48, 3), ...), mel (128, T)
    with T = 1 + n_samples // 200; ``meta`` (:class:`~mesm_core.types.ClipMeta`) holds the window,
    audio facts and flags, plus counts in ``meta.extra`` (n_faces, n_fallback, n_skipped, no_frames,
    transcript_empty, decode_errors, ...).

    Raises ClipError subclasses naming the file and the reason.
    """
    config, window, crop = config or DataConfig(), window or Window(), crop or Crop()
    require = require or Requirements()
    path = Path(video)
    # Windowed cuts stream a long source file; the size limit guards whole uploads.
    check_file(path, config.max_file_mb if window.is_whole else None)
    found = resolve_transcript(path, transcript)
    meta = _transcript_meta(found, path, require)

    with SampledDecoder(path) as decoder:
        start, duration = _window_span(decoder.probe, path, window, config, meta)
        interval = config.frame_interval_ms / 1000.0
        # Unknown duration: sample up to just past the limit, so a too-long clip is still caught.
        horizon = duration if duration is not None else (config.max_duration_s or 3600.0) + 2 * interval
        _report(progress, 0.05, "Decoding the video")
        sampled = decoder.sample(sample_times(horizon, interval, config.max_frames), decoder.probe.origin + start,
                                 crop.frame, open_ended=duration is None)
    if duration is None:
        duration = (sampled.last_time or 0.0) + 1.0 / (sampled.frame_rate or 25.0)
        _check_duration(path, duration, config)

    _report(progress, 0.35, "Decoding the audio")
    waveform = _clip_audio(path, audio, decoder.probe, window, (start, duration), crop.audio_channel, config)
    meta.audio_path = str(audio) if audio is not None else str(path)
    meta.media_origin_s = decoder.probe.origin
    meta.start_s, meta.end_s, meta.duration_s = start, start + duration, round(duration, 4)
    targets = sampled.targets
    meta.extra.update(_frames_meta(sampled, float(targets[1] - targets[0]) if len(targets) > 1 else interval))
    meta.extra["sampled_times"] = [round(float(t), 4) for t in targets]
    return build_record(clip_id or path.stem, path, sampled, waveform, found.text, meta, config=config,
                        detector=detector, require=require, progress=progress)


def _window_span(probe: VideoProbe, path: Path, window: Window, config: DataConfig,
                 meta: ClipMeta) -> tuple[float, float | None]:
    """(start, duration) of the window in seconds from the media origin; duration None when the file does
    not declare its length (decoding finds it). Raises on a window outside the media or too long."""
    media_duration = probe.duration
    start = float(window.start or 0.0)
    if start < 0:
        raise ValueError(f"{path}: start {start} s is negative")
    end = None if window.end is None else float(window.end)
    if media_duration is not None and start >= media_duration > 0:
        raise EmptyClipError(path, f"the window starts at {start:.2f} s, at or after the end of the media "
                                   f"({media_duration:.2f} s)")
    if end is not None and media_duration is not None and end > media_duration:
        meta.extra["end_clipped_from_s"] = end
        end = media_duration
    if end is None:
        end = media_duration
    duration = None if end is None else end - start
    if media_duration is not None and media_duration <= 0:
        raise EmptyClipError(path, "zero duration")
    _check_duration(path, duration, config)
    return start, duration


def _clip_audio(path: Path, audio: str | Path | None, probe: VideoProbe, window: Window,
                span: tuple[float, float], channel: int | None, config: DataConfig) -> Waveform:
    """The window's audio: from the separate file when given, else from the video's own stream."""
    start, duration = span
    if audio is not None:
        return load_audio(audio, sample_rate=config.sample_rate, channel=channel,
                          start=window.start, end=None if window.end is None else start + duration)
    if not probe.has_audio:
        raise NoAudioStreamError(path, "no audio stream in the file and no separate audio file given")
    with open_container(path) as container:
        return decode_audio_stream(container, path, sample_rate=config.sample_rate, channel=channel,
                                   start=probe.origin + start, end=probe.origin + start + duration)


# --- image-sequence input ----------------------------------------------------------------------

def preprocess_frames(images: Sequence[str | Path], audio: str | Path, transcript: str = "", *,
                      frame_rate: float, duration: float | None = None, config: DataConfig | None = None,
                      detector: FaceDetector | None = None, crop: Crop | None = None,
                      require: Requirements | None = None, clip_id: str | None = None) -> ClipRecord:
    """An image sequence (frame i at time i / frame_rate) + an audio file → ClipRecord.

    Sampling is the same as for video: times 0, interval, … < duration (default
    len(images) / frame_rate, else the audio's length), each answered by the nearest image. At 30 fps and
    500 ms that is every 15th image (the reference's IEMOCAP rule); at 2 fps it is every image (MOSEI's
    processed frames, which the reference wrongly subsampled again). ``clip_id`` defaults to the
    images' folder name.
    """
    config, crop, require = config or DataConfig(), crop or Crop(), require or Requirements()
    images = [Path(p) for p in images]
    where = images[0].parent if images else Path(audio).parent
    found = resolve_transcript(None, transcript or "")
    meta = _transcript_meta(found, where, require)
    if duration is None:
        duration = len(images) / float(frame_rate) if images else None
    interval = config.frame_interval_ms / 1000.0
    waveform = load_audio(audio, sample_rate=config.sample_rate, channel=crop.audio_channel)
    if duration is None:
        duration = waveform.duration_s
    _check_duration(where, duration, config)
    targets = sample_times(duration, interval, config.max_frames)
    picks = nearest_indices(np.arange(len(images)) / float(frame_rate), targets) if images else np.zeros(0, np.int64)
    sampled = _load_images(images, picks, frame_rate, targets, crop.frame)
    meta.audio_path, meta.start_s, meta.end_s, meta.duration_s = str(audio), 0.0, duration, round(duration, 4)
    meta.extra.update(_frames_meta(sampled, interval), n_images=len(images),
                      sampled_times=[round(float(t), 4) for t in sampled.targets],
                      image_indices=[int(i) for i in picks])
    return build_record(clip_id or where.name, where, sampled, waveform, found.text, meta, config=config,
                        detector=detector, require=require)


def _load_images(images: list[Path], picks: np.ndarray, frame_rate: float, targets: np.ndarray,
                 crop: CropSpec) -> SampledFrames:
    """The picked images as cropped RGB arrays (an image picked twice is read once)."""
    frames, cache, frame_hw, crop_box = [], {}, None, None
    for index in picks:
        if index not in cache:
            rgb = _load_rgb(images[index])
            if frame_hw is None:
                frame_hw = rgb.shape[:2]
                crop_box = resolve_crop(crop, frame_hw)
            cache[index] = apply_crop(rgb, crop_box)
        frames.append(cache[index])
    times = np.arange(len(images))[picks] / float(frame_rate) if len(picks) else np.zeros(0)
    return SampledFrames(frames, times, targets[:len(frames)], frame_hw, crop_box, frame_rate=float(frame_rate))


def _load_rgb(path: str | Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise UnreadableMediaError(path, f"cannot read image ({exc})") from exc


# --- record building (shared by video and image-sequence input) ----------------------------------

def build_record(clip_id: str, source: str | Path, sampled: SampledFrames, waveform: Waveform, transcript: str,
                 meta: ClipMeta, *, config: DataConfig, detector: FaceDetector | None,
                 require: Requirements | None = None, progress: Progress | None = None) -> ClipRecord:
    """Faces (MTCNN + no-face policy) + mel + transcript → ClipRecord. Shared by every input kind.

    ``sampled``: the F frames kept (RGB uint8 after the crop) and their times; ``source``: the file or
    folder the record names (errors too); ``meta``: what the caller recorded so far, completed here
    with the face counts and the audio facts (the record owns it). Raises NoFaceError / SilentAudioError
    when ``require`` says so.
    """
    require = require or Requirements()
    detector = detector or FaceDetector.from_config(config)
    _report(progress, 0.45, f"Finding faces in {len(sampled.frames)} sampled frames")
    track = extract_faces(list(sampled.frames), detector, config)
    n_detected = int(track.detected.sum())
    meta.extra.update(n_sampled=int(track.n_input), n_frames=int(len(track.faces)), n_faces=n_detected,
                      n_fallback=int(track.n_fallback), n_skipped=int(track.n_skipped),
                      no_frames=bool(len(track.faces) == 0))
    meta.no_face, meta.face_regions = bool(n_detected == 0), track.regions.tolist()
    if require.face and n_detected == 0:
        raise NoFaceError(source, f"no face detected in any of the {track.n_input} sampled frame(s)")
    meta.audio_silent, meta.audio_duration_s = bool(waveform.silent), round(waveform.duration_s, 4)
    meta.audio_channel = waveform.channel
    meta.extra.update(audio_source_rate=int(waveform.source_rate), audio_source_channels=int(waveform.source_channels))
    if require.sound and waveform.silent:
        raise SilentAudioError(source, "the audio is silent (all samples are zero)")
    _report(progress, 0.75, "Mel spectrogram")
    frame_size = sampled.frame_size
    return ClipRecord(
        id=clip_id,
        faces=track.faces,
        face_boxes=track.boxes,
        landmarks=track.landmarks,
        face_probs=track.probs,
        face_detected=track.detected,
        frame_times=np.asarray(sampled.times, np.float64)[track.kept].astype(np.float32),
        mel=melspectrogram(waveform.samples, config),
        transcript=transcript,
        frame_size=None if frame_size is None else (int(frame_size[0]), int(frame_size[1])),
        source=str(source),
        meta=meta,
    )


# --- shared checks and meta ----------------------------------------------------------------------

def _transcript_meta(found: Transcript, path: Path, require: Requirements) -> ClipMeta:
    """A clip's meta, begun with where its transcript came from; an empty one is an error when required."""
    if require.transcript and not found.text:
        raise EmptyTranscriptError(path, "the transcript is empty")
    return ClipMeta(extra={"transcript_source": found.source, "transcript_empty": not found.text})


def _frames_meta(sampled: SampledFrames, frame_interval_s: float) -> dict:
    """What the sampling recorded: the spacing, the source's rate and size, the crop, corrupt packets."""
    return dict(frame_interval_s=frame_interval_s, source_frame_rate=sampled.frame_rate,
                source_frame_size=list(sampled.frame_hw) if sampled.frame_hw else None,
                crop_box=list(sampled.crop_box) if sampled.crop_box else None, decode_errors=sampled.decode_errors)


def _check_duration(path, duration: float | None, config: DataConfig) -> None:
    if duration is not None and duration <= 0:
        raise EmptyClipError(path, f"zero duration ({duration:.3f} s)")
    if duration is not None and config.max_duration_s and duration > config.max_duration_s:
        raise ClipTooLongError(path, f"clip is {duration:.1f} s, above the limit of {config.max_duration_s:g} s "
                                     "(DataConfig.max_duration_s)")
