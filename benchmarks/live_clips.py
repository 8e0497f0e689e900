"""The clips of the live-studio benchmark (``benchmarks/studio_live.py``), rendered once into a folder.

A talking-face clip, a film clip in AVI, a 4K clip and a short one: the kinds a new user uploads. The
face is ``skimage.data.astronaut()`` (public domain, bundled with scikit-image, the ``dev`` extra),
moving slowly over a textured background so that codecs and MTCNN have real work; the sound is a tone
with bursts of noise. Without scikit-image the bundled synthetic sample's first frame is the face.

    python benchmarks/live_clips.py OUT_DIR      # writes the clips (skips those already there)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TRANSCRIPT = "I honestly did not expect the results to come back this good today."


@dataclass(frozen=True)
class ClipSpec:
    """One benchmark clip: file name, size (W, H), seconds, frame rate, video codec and audio codec."""

    name: str
    size: tuple[int, int]
    seconds: float
    fps: int
    codec: str            # libx264 (MP4) or mpeg4 (AVI)
    audio_codec: str      # aac (MP4) or pcm_s16le (AVI)
    what: str
    crf: int = 18         # H.264 quality (the 4K clip: about a phone's 40 Mbit/s)


CLIPS = {
    "short": ClipSpec("short_1.2s.mp4", (320, 240), 1.2, 25, "libx264", "aac", "1.2 s, 320×240 H.264/AAC MP4"),
    "talk": ClipSpec("talk_5.7s.mp4", (640, 480), 5.7, 25, "libx264", "aac", "5.7 s talking face, 640×480 H.264/AAC MP4"),
    "film": ClipSpec("film_10s.avi", (720, 528), 10.0, 24, "mpeg4", "pcm_s16le", "10 s film clip, 720×528 MPEG-4 Part 2/PCM AVI"),
    "uhd": ClipSpec("uhd_3s.mp4", (3840, 2160), 3.0, 30, "libx264", "aac", "3 s 4K clip, 3840×2160 H.264/AAC MP4 at 30 fps", crf=21),
}


def _face() -> np.ndarray:
    try:
        from skimage import data

        return np.ascontiguousarray(data.astronaut()[20:260, 110:340])   # head and shoulders, 240×230
    except ImportError:
        import av

        with av.open(str(REPO / "assets" / "samples" / "happy.mp4")) as container:
            return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _audio(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 1250 * t)
    for start in rng.uniform(0, max(seconds - 0.3, 0.1), size=max(1, int(seconds * 2))):
        a = int(start * rate)
        audio[a:a + 3000] += rng.normal(0, 0.1, size=len(audio[a:a + 3000]))
    return np.clip(audio, -1, 1).astype(np.float32)


def _frames(spec: ClipSpec):
    """Yield RGB frames: the face (about 40 % of the frame height) drifting over a textured background."""
    import cv2

    width, height = spec.size
    side = max(48, int(height * 0.4))
    face = cv2.resize(_face(), (int(side * 230 / 240), side), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:height, 0:width]
    background = (90 + 30 * np.sin(xx / 37.0) * np.cos(yy / 23.0))[..., None].repeat(3, axis=2).astype(np.int16)
    rng = np.random.default_rng(0)
    for i in range(int(round(spec.seconds * spec.fps))):
        # A panning background with fresh sensor grain in every frame: a camera's bit rate, not a cartoon's.
        grain = rng.integers(-6, 7, size=(height, width, 1), dtype=np.int16)
        frame = np.clip(np.roll(background, 3 * i, axis=1) + grain, 0, 255).astype(np.uint8)
        x = int(width / 2 - face.shape[1] / 2 + width * 0.05 * np.sin(i / 15.0))
        y = int(height / 2 - face.shape[0] / 2 + height * 0.03 * np.cos(i / 11.0))
        frame[y:y + face.shape[0], x:x + face.shape[1]] = face
        yield frame


def write_clip(spec: ClipSpec, folder: Path) -> Path:
    """Render one clip (and its ``.txt`` transcript beside it) unless it is already there."""
    import av

    path = folder / spec.name
    if path.is_file() and path.stat().st_size > 0:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    rate = 16000
    with av.open(str(tmp), mode="w") as container:
        video = container.add_stream(spec.codec, rate=spec.fps)
        video.width, video.height = spec.size
        video.pix_fmt = "yuv420p"
        if spec.codec == "mpeg4":
            video.bit_rate = 4_000_000
        if spec.codec == "libx264":
            video.options = {"preset": "veryfast", "crf": str(spec.crf)}
        audio = container.add_stream(spec.audio_codec, rate=rate, layout="mono")
        for frame in _frames(spec):
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples = _audio(spec.seconds, rate)
        block = 1024
        fmt = "s16" if spec.audio_codec == "pcm_s16le" else "fltp"
        for start in range(0, len(samples), block):
            chunk = samples[start:start + block]
            data = (chunk * 32767).astype(np.int16)[None] if fmt == "s16" else chunk[None]
            out = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
            out.sample_rate, out.pts, out.time_base = rate, start, Fraction(1, rate)
            for packet in audio.encode(out):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    tmp.replace(path)
    path.with_suffix(".txt").write_text(TRANSCRIPT + "\n", encoding="utf-8")
    return path


def make_clips(folder: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Every benchmark clip (or those named) in ``folder``: name → path."""
    return {name: write_clip(CLIPS[name], Path(folder)) for name in (names or list(CLIPS))}


if __name__ == "__main__":
    for name, path in make_clips(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/mesm_live_clips")).items():
        print(name, path, f"{path.stat().st_size / 1e6:.1f} MB")
