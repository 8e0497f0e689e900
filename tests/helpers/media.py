"""Tiny media made on the fly (PyAV for video, soundfile for wav, numpy signals); the ``media`` fixture.

Faces come from ``skimage.data.astronaut()`` (public domain, bundled with scikit-image), which
MTCNN detects reliably even at ~48 px. :func:`make_face_clip` / :func:`make_noface_clip` are the
talking clips of the inference and studio tests.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


@functools.lru_cache(maxsize=None)
def _astronaut_head() -> np.ndarray:
    from skimage import data

    image = data.astronaut()  # 512×512; the face box is about x 181–268, y 62–172
    return np.ascontiguousarray(image[20:260, 110:340])  # head and shoulders, 240×230


def face_image(height: int = 96, width: int = 96) -> np.ndarray:
    """An RGB uint8 (H, W, 3) picture with one frontal face filling most of it."""
    import cv2

    return cv2.resize(_astronaut_head(), (width, height), interpolation=cv2.INTER_AREA)


def blank_image(height: int, width: int, value: int = 90) -> np.ndarray:
    """A flat grey frame (no face), with a faint gradient so codecs have something to encode."""
    ramp = np.linspace(0, 20, width, dtype=np.float32)[None, :, None]
    return np.clip(value + ramp + np.zeros((height, width, 3), np.float32), 0, 255).astype(np.uint8)


def two_person_frame(height: int = 96, width: int = 192, face_side: str = "left") -> np.ndarray:
    """A frame whose left or right half holds a face and the other half is blank."""
    frame = blank_image(height, width)
    half = width // 2
    face = face_image(height, half)
    if face_side == "left":
        frame[:, :half] = face
    else:
        frame[:, half:half * 2] = face
    return frame


def tone(duration_s: float, sample_rate: int = 16000, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    """A float32 (N,) sine wave."""
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write float samples (N,) or (N, C) as 16-bit PCM wav."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(samples, np.float32), sample_rate, subtype="PCM_16")
    return path


def write_video(path: str | Path, n_frames: int, fps: int = 10,
                frame: Callable[[int], np.ndarray] | np.ndarray | Sequence[np.ndarray] | None = None,
                size: tuple[int, int] = (48, 64), audio: np.ndarray | None = None, sample_rate: int = 16000,
                codec: str | None = None) -> Path:
    """Write a small video with PyAV.

    frame: a callable i → RGB frame, one array for every frame, or a list; default a grey frame whose
    brightness encodes the frame index (value = 10 + 8·i, readable back after compression).
    audio: float (N,) mono or (C, N) planar, written as pcm_s16le (mkv/avi/mov) or aac (mp4).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = size
    if frame is None:
        frame = lambda i: np.full((height, width, 3), min(10 + 8 * i, 250), np.uint8)  # noqa: E731
    suffix = path.suffix.lower()
    video_codec = codec or ("mpeg4" if suffix == ".avi" else "libx264")
    audio_codec = "aac" if suffix in (".mp4", ".ts") else "pcm_s16le"
    with av.open(str(path), mode="w") as container:
        if n_frames > 0 or audio is None:
            first = frame(0) if callable(frame) else (frame if isinstance(frame, np.ndarray) else frame[0])
            height, width = first.shape[:2]
        vstream = container.add_stream(video_codec, rate=fps)
        vstream.width, vstream.height = width, height
        vstream.pix_fmt = "yuv420p"
        if video_codec == "libx264":
            vstream.options = {"crf": "18", "preset": "ultrafast", "tune": "zerolatency"}
        astream = None
        planar = None
        if audio is not None:
            planar = np.atleast_2d(np.asarray(audio, np.float32))
            layout = "mono" if planar.shape[0] == 1 else "stereo"
            astream = container.add_stream(audio_codec, rate=sample_rate, layout=layout)
        for i in range(n_frames):
            image = frame(i) if callable(frame) else (frame if isinstance(frame, np.ndarray) else frame[i])
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in vstream.encode(video_frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            _encode_audio(container, astream, planar, sample_rate, audio_codec)
    return path


def _encode_audio(container, astream, planar: np.ndarray, sample_rate: int, audio_codec: str) -> None:
    import av

    n_channels = planar.shape[0]
    layout = "mono" if n_channels == 1 else "stereo"
    block = 1024
    for offset in range(0, planar.shape[1], block):
        piece = planar[:, offset:offset + block]
        if audio_codec == "aac":
            chunk, fmt = np.ascontiguousarray(piece), "fltp"
        else:  # packed 16-bit PCM: one row of interleaved samples
            chunk, fmt = (np.clip(piece, -1, 1) * 32767).astype(np.int16).T.reshape(1, -1), "s16"
        audio_frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout=layout)
        audio_frame.sample_rate = sample_rate
        audio_frame.pts = offset
        audio_frame.time_base = Fraction(1, sample_rate)
        for packet in astream.encode(audio_frame):
            container.mux(packet)
    for packet in astream.encode():
        container.mux(packet)


def write_jpegs(folder: str | Path, frames: Sequence[np.ndarray], pattern: str = "image_{i}.jpg") -> list[Path]:
    """Save RGB frames as JPEGs named by ``pattern`` (``{i}`` = index)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(frames):
        path = folder / pattern.format(i=i)
        Image.fromarray(np.asarray(image, np.uint8)).save(path, quality=92)
        paths.append(path)
    return paths


def frame_index_from_brightness(face_or_frame: np.ndarray) -> int:
    """Inverse of the default ``write_video`` frame colour (value = 10 + 8·i)."""
    return int(round((float(np.median(face_or_frame)) - 10) / 8))


class NoFaceDetector:
    """Stands in for FaceDetector where faces do not matter (no MTCNN cost): never finds a face."""

    def __init__(self):
        self.calls = 0

    def detect(self, frames):
        self.calls += 1
        return [None] * len(frames)


def truncate_file(source: str | Path, target: str | Path, fraction: float) -> Path:
    """Copy the first ``fraction`` of a file's bytes (a download or copy cut short)."""
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[:int(len(data) * fraction)])
    return Path(target)


TRANSCRIPT = "I am so happy today, this is wonderful"


def speechy_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """A tone with a few bursts of noise, so the mel spectrogram has structure to attend to."""
    rng = np.random.default_rng(seed)
    audio = tone(seconds, freq=220.0, amplitude=0.2) + tone(seconds, freq=1250.0, amplitude=0.05)
    for start in rng.uniform(0, max(seconds - 0.3, 0.1), size=max(1, int(seconds))):
        a = int(start * 16000)
        audio[a:a + 3000] += rng.normal(0, 0.1, size=len(audio[a:a + 3000])).astype(np.float32)
    return np.clip(audio, -1, 1).astype(np.float32)


def make_face_clip(path: Path, seconds: float = 3.0, fps: int = 10, transcript: str | None = TRANSCRIPT) -> Path:
    """MP4 (H.264 + AAC) of a slightly moving frontal face with audio; optional .txt sidecar."""
    face = face_image(96, 96)

    def frame(i: int) -> np.ndarray:
        canvas = blank_image(120, 160)
        dx = int(8 * np.sin(i / 5.0))
        canvas[12:108, 32 + dx:128 + dx] = face
        return canvas

    write_video(path, int(seconds * fps), fps=fps, frame=frame, audio=speechy_audio(seconds))
    if transcript is not None:
        Path(path).with_suffix(".txt").write_text(transcript + "\n", encoding="utf-8")
    return Path(path)


def make_noface_clip(path: Path, seconds: float = 2.0, fps: int = 10) -> Path:
    """MP4 of a flat grey frame (no face) with the same kind of audio."""
    write_video(path, int(seconds * fps), fps=fps, frame=blank_image(120, 160), audio=speechy_audio(seconds, 1))
    return Path(path)
