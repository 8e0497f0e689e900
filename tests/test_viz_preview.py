"""mesm_viz.preview: a browser-playable preview of any upload, or a plain note when there can be none."""

from __future__ import annotations

import av
import numpy as np

from mesm_viz.preview import browser_playable, make_preview


def _codecs(path: str) -> list[tuple[str, str]]:
    with av.open(path) as container:
        return [(s.type, s.codec_context.name) for s in container.streams]


def test_an_avi_gets_an_h264_aac_copy(media, tmp_path):
    avi = media.write_video(tmp_path / "film.avi", 20, fps=10, frame=media.face_image(96, 128),
                            audio=media.speechy_audio(2.0))
    assert not browser_playable(avi)
    preview = make_preview(avi, tmp_path / "out")
    assert preview.transcoded and preview.note == "" and preview.path.endswith(".mp4")
    assert _codecs(preview.path) == [("video", "h264"), ("audio", "aac")] and browser_playable(preview.path)
    with av.open(preview.path) as container:
        assert abs(float(container.duration) / 1e6 - 2.0) < 0.2


def test_a_browser_playable_mp4_is_shown_as_it_is(media, tmp_path):
    clip = media.make_face_clip(tmp_path / "face.mp4", seconds=1.0)
    preview = make_preview(clip, tmp_path / "out")
    assert preview.path == str(clip) and not preview.transcoded


def test_no_sound_is_said_and_no_video_is_no_preview(media, tmp_path):
    mute = media.write_video(tmp_path / "mute.mkv", 10, fps=10, frame=np.full((64, 64, 3), 90, np.uint8))
    preview = make_preview(mute, tmp_path / "out")
    assert preview.path and preview.note == "“mute.mkv” has no sound track."
    # A soundless MP4 the browser plays as it is says so too (issue 17: it did not).
    silent_mp4 = media.write_video(tmp_path / "mute.mp4", 10, fps=10, frame=np.full((64, 64, 3), 90, np.uint8))
    assert browser_playable(silent_mp4)
    shown = make_preview(silent_mp4, tmp_path / "out")
    assert shown.path == str(silent_mp4) and not shown.transcoded and shown.note == "“mute.mp4” has no sound track."
    wav = media.write_wav(tmp_path / "voice.wav", media.tone(1.0))
    assert make_preview(wav, tmp_path / "out").note == "No preview: “voice.wav” has no picture track."


def test_a_text_file_named_mp4_gets_a_plain_note(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video " * 50)
    preview = make_preview(fake, tmp_path / "out")
    assert preview.path is None
    assert preview.note.startswith("No preview: “notes.mp4” could not be read as a video")
    assert str(tmp_path) not in preview.note
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert make_preview(empty, tmp_path / "out").note == "No preview: “empty.mp4” is empty or missing."
