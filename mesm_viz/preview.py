"""A browser-playable preview of any upload, made on the server with PyAV.

The studio takes uploads as plain files (any container PyAV reads: AVI, MKV, MOV, WebM, MPEG-TS, …),
because a browser's video element refuses what it cannot play and would keep the previous clip on
screen. What the page shows is this preview: the upload itself when it is already H.264 (+ AAC) in
MP4, else a small H.264/AAC MP4 copy. When no preview can be made the note says so in plain words;
the analysis does not depend on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

__all__ = ["PREVIEW_HEIGHT", "PREVIEW_SECONDS", "Preview", "browser_playable", "make_preview"]

PREVIEW_HEIGHT = 360     # px; the page shows it about 240 px high
PREVIEW_SECONDS = 120.0  # longer uploads get the first two minutes (the analysis refuses them anyway)
_PLAYABLE_VIDEO = {"h264"}
_PLAYABLE_AUDIO = {"aac", "mp3"}


@dataclass(frozen=True)
class Preview:
    """What the preview box shows: ``path`` (None when there is no preview) and a note for people."""

    path: str | None
    note: str = ""
    transcoded: bool = False


def _playable(path: str | os.PathLike) -> tuple[bool, bool]:
    """(browser plays it as it is, it has a sound track): an MP4 whose video is H.264 in yuv420p and whose
    audio (if any) is AAC or MP3 plays everywhere."""
    import av

    try:
        with av.open(str(path)) as container:
            sound = bool(container.streams.audio)
            if "mp4" not in container.format.name or not container.streams.video:
                return False, sound
            video = container.streams.video[0].codec_context
            if video.name not in _PLAYABLE_VIDEO or (video.pix_fmt or "yuv420p") != "yuv420p":
                return False, sound
            return all(a.codec_context.name in _PLAYABLE_AUDIO for a in container.streams.audio), sound
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return False, False


def browser_playable(path: str | os.PathLike) -> bool:
    """True for an MP4 whose video is H.264 in yuv420p and whose audio (if any) is AAC or MP3: what
    every browser plays as it is."""
    return _playable(path)[0]


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def make_preview(video: str | os.PathLike, out_dir: str | os.PathLike, *, height: int = PREVIEW_HEIGHT,
                 max_seconds: float = PREVIEW_SECONDS) -> Preview:
    """The preview of ``video``: the file itself when the browser plays it, else an H.264/AAC MP4 in
    ``out_dir`` (at most ``height`` px high, the first ``max_seconds``). Never raises for bad media:
    the note explains why there is no preview."""
    import av

    video = Path(video)
    name = video.name
    if not video.is_file() or video.stat().st_size == 0:
        return Preview(None, f"No preview: “{name}” is empty or missing.")
    playable, sound = _playable(video)
    if playable:   # shown as it is; a clip without sound says so either way
        return Preview(str(video), "" if sound else f"“{name}” has no sound track.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{video.stem[:60]}.preview.mp4"
    try:
        with av.open(str(video)) as source:
            if not source.streams.video:
                return Preview(None, f"No preview: “{name}” has no picture track.")
            note = "" if source.streams.audio else f"“{name}” has no sound track."
            _transcode(source, target, height, max_seconds)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError, IndexError, RuntimeError) as exc:
        target.unlink(missing_ok=True)
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        return Preview(None, f"No preview: “{name}” could not be read as a video ({reason}).")
    if not target.is_file() or target.stat().st_size == 0:
        return Preview(None, f"No preview: “{name}” has no frame that could be decoded.")
    return Preview(str(target), note, transcoded=True)


def _transcode(source, target: Path, height: int, max_seconds: float) -> None:
    """Re-encode the first video and audio streams of an open container as H.264 + AAC in MP4."""
    import av

    vin = source.streams.video[0]
    vin.thread_type = "AUTO"
    ain = source.streams.audio[0] if source.streams.audio else None
    rate = Fraction(vin.average_rate or 25).limit_denominator(1001)
    if rate <= 0 or rate > 120:
        rate = Fraction(25)
    origin = float(source.start_time) / 1_000_000.0 if source.start_time else 0.0
    src_w, src_h = int(vin.codec_context.width or 0), int(vin.codec_context.height or 0)
    if src_w <= 0 or src_h <= 0:
        raise ValueError("the video stream does not say its frame size")
    with av.open(str(target), mode="w", format="mp4") as sink:
        vout = sink.add_stream("libx264", rate=rate)
        vout.pix_fmt = "yuv420p"
        # The size is set before anything is muxed: the first packet opens every encoder.
        vout.height = _even(min(height, src_h))
        vout.width = _even(src_w * vout.height / src_h)
        vout.options = {"preset": "veryfast", "crf": "26", "movflags": "+faststart"}
        aout = resampler = None
        if ain is not None and ain.codec_context.sample_rate:
            rate_hz = int(ain.codec_context.sample_rate)
            aout = sink.add_stream("aac", rate=rate_hz, layout="stereo" if ain.codec_context.channels > 1 else "mono")
            resampler = av.AudioResampler(format="fltp", layout=aout.codec_context.layout, rate=rate_hz)
        wrote_video = False
        last_pts = -1
        streams = [vin] if ain is None else [vin, ain]
        for packet in source.demux(*streams):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue  # a corrupt packet: skip it, as the data pipeline does
            for frame in frames:
                t = (float(frame.time) if frame.time is not None else 0.0) - origin
                if t > max_seconds:
                    continue
                if packet.stream.type == "video":
                    pts = int(round(t * rate))
                    if pts <= last_pts:  # duplicate or out-of-order timestamp: keep the stream monotonic
                        continue
                    last_pts = pts
                    out = frame.reformat(width=vout.width, height=vout.height, format="yuv420p")
                    out.pts, out.time_base = pts, Fraction(1) / rate
                    for encoded in vout.encode(out):
                        sink.mux(encoded)
                    wrote_video = True
                elif aout is not None and t >= 0:
                    for chunk in resampler.resample(frame):
                        chunk.pts = None
                        for encoded in aout.encode(chunk):
                            sink.mux(encoded)
        if not wrote_video:
            raise ValueError("no video frame could be decoded")
        for encoded in vout.encode():
            sink.mux(encoded)
        if aout is not None:
            for encoded in aout.encode():
                sink.mux(encoded)

