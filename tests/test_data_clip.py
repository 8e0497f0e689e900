"""preprocess_clip / preprocess_frames: frame sampling, windows, crops, faces, transcripts, errors."""

from __future__ import annotations

import numpy as np
import pytest

from mesm_core.config import DataConfig
from mesm_core.data import (
    ClipError,
    ClipTooLongError,
    Crop,
    EmptyClipError,
    EmptyTranscriptError,
    FaceDetector,
    FileTooLargeError,
    NoAudioStreamError,
    NoFaceError,
    NoVideoStreamError,
    Requirements,
    SilentAudioError,
    UnreadableMediaError,
    Window,
    preprocess_clip,
    preprocess_frames,
)
from mesm_core.data.faces import center_region, crop_box, crop_region, points_to_crop
from mesm_core.data.video import nearest_indices, sample_times


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def counting_video(media, tmp_path_factory):
    """3 s at 10 fps; frame i has brightness 10 + 8i; stereo audio (tone | silence)."""
    path = tmp_path_factory.mktemp("clip") / "count.mkv"
    return media.write_video(path, 30, fps=10, audio=np.stack([media.tone(3.0), np.zeros(48000, np.float32)]))


@pytest.mark.parametrize("duration,expected", [
    (3.0, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]),
    (2.9, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]),
    (2.5, [0.0, 0.5, 1.0, 1.5, 2.0]),
    (0.2, [0.0]),
    (0.0, []),
])
def test_sample_times_every_500ms(duration, expected):
    np.testing.assert_allclose(sample_times(duration, 0.5, 240), expected)


def test_sample_times_spread_when_above_max_frames():
    times = sample_times(10.0, 0.5, 4)
    np.testing.assert_allclose(times, [0.0, 2.5, 5.0, 7.5])


def test_nearest_indices_ties_go_to_the_earlier_frame():
    available = np.array([0.0, 0.1, 0.2, 0.3])
    np.testing.assert_array_equal(nearest_indices(available, np.array([0.0, 0.05, 0.16, 0.9])), [0, 0, 2, 3])


def test_frames_sampled_every_500ms(media, counting_video):
    record = preprocess_clip(counting_video, "hello there", detector=media.NoFaceDetector())
    indices = [media.frame_index_from_brightness(face) for face in record.faces]
    assert indices == [0, 5, 10, 15, 20, 25]
    np.testing.assert_allclose(record.frame_times, [0, 0.5, 1.0, 1.5, 2.0, 2.5], atol=1e-6)
    assert record.faces.shape == (6, 48, 48, 3) and record.faces.dtype == np.uint8
    assert record.mel.shape == (128, 1 + 48000 // 200)
    assert not record.face_detected.any() and np.isnan(record.face_boxes).all()
    assert record.meta["n_fallback"] == 6 and record.meta["no_face"]
    assert record.transcript == "hello there" and record.frame_size == (48, 64)


def test_window_cut_by_start_end(media, counting_video):
    record = preprocess_clip(counting_video, "x", detector=media.NoFaceDetector(), window=Window(1.02, 2.5))
    assert [media.frame_index_from_brightness(face) for face in record.faces] == [10, 15, 20]
    audio_samples = (record.mel.shape[1] - 1) * 200
    assert abs(audio_samples - 1.48 * 16000) <= 200
    assert record.meta["start_s"] == pytest.approx(1.02) and record.meta["duration_s"] == pytest.approx(1.48)


def test_audio_channel_choice(media, counting_video):
    loud = preprocess_clip(counting_video, "x", detector=media.NoFaceDetector(), crop=Crop(audio_channel=0))
    quiet = preprocess_clip(counting_video, "x", detector=media.NoFaceDetector(), crop=Crop(audio_channel=1))
    assert not loud.meta["audio_silent"] and quiet.meta["audio_silent"]
    assert quiet.mel.max() == 0


def test_skip_policy_can_leave_zero_frames(media, counting_video):
    record = preprocess_clip(counting_video, "x", config=DataConfig(no_face_policy="skip"),
                             detector=media.NoFaceDetector())
    assert record.faces.shape == (0, 48, 48, 3) and record.frame_times.shape == (0,)
    assert record.meta["no_frames"] and record.meta["n_skipped"] == 6


def test_transcript_sidecars(media, tmp_path):
    video = media.write_video(tmp_path / "talk.mkv", 5, audio=media.tone(0.5))
    (tmp_path / "talk.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\nworld\n\n2\n00:00:01,000 --> "
                                       "00:00:02,000\nagain\n")
    assert preprocess_clip(video, detector=media.NoFaceDetector()).transcript == "Hello world again"
    (tmp_path / "talk.txt").write_text("  plain\ntext ")
    assert preprocess_clip(video, detector=media.NoFaceDetector()).transcript == "plain text"
    assert preprocess_clip(video, "given", detector=media.NoFaceDetector()).transcript == "given"


def test_separate_audio_file(media, tmp_path):
    video = media.write_video(tmp_path / "mute.mp4", 10, fps=10)
    wav = media.write_wav(tmp_path / "speech.wav", np.stack([np.zeros(16000), media.tone(1.0)], axis=1))
    record = preprocess_clip(video, "x", audio=wav, crop=Crop(audio_channel=1), detector=media.NoFaceDetector())
    assert not record.meta["audio_silent"] and record.meta["audio_path"] == str(wav)


# --- faces (real MTCNN on a few frames) ----------------------------------------------------------

@pytest.fixture(scope="module")
def face_video(media, tmp_path_factory):
    path = tmp_path_factory.mktemp("face") / "face.mp4"
    return media.write_video(path, 8, fps=4, frame=media.two_person_frame(96, 192, "left"), audio=media.tone(2.0))


def test_face_found_on_the_cropped_half_only(face_video, detector):
    left = preprocess_clip(face_video, "x", detector=detector, crop=Crop("left"))
    right = preprocess_clip(face_video, "x", detector=detector, crop=Crop("right"))
    assert left.face_detected.all() and len(left.faces) == 4
    assert (left.face_probs > 0.9).all()
    assert not right.face_detected.any() and right.meta["n_fallback"] == 4
    assert left.frame_size == (96, 96) and left.meta["crop_box"] == [0, 0, 96, 96]
    assert right.meta["crop_box"] == [96, 0, 192, 96]
    # Landmarks in crop pixels: inside the crop, eyes above the mouth, image-left eye first.
    marks = left.landmarks[0]
    assert np.all((marks >= 0) & (marks <= 48))
    assert marks[0, 0] < marks[1, 0] and marks[:2, 1].max() < marks[3:, 1].min()


def test_big_frames_are_shrunk_for_detection_and_boxes_mapped_back(media, detector):
    """A 1920×1080 frame is detected at 1280×720 (MTCNN's cost follows the pixel count); the box and
    landmarks come back in the frame's own pixels, where full-size detection puts them."""
    frame = media.blank_image(1080, 1920)
    frame[200:800, 700:1275] = media.face_image(600, 575)
    seen = []
    real = detector.mtcnn.detect

    def spy(batch, **kwargs):
        seen.append(np.asarray(batch).shape)
        return real(batch, **kwargs)

    detector.mtcnn.detect = spy
    try:
        small = detector.detect([frame])[0]
    finally:
        del detector.mtcnn.detect
    assert seen == [(1, 720, 1280, 3)] and detector.detection_scale(frame.shape) == pytest.approx(2 / 3)
    full = FaceDetector(max_side=None).detect([frame])[0]
    assert np.abs(small.box - full.box).max() < 12          # a few pixels at the shrunk scale
    assert np.abs(small.points - full.points).max() < 12
    assert 700 <= small.box[0] < small.box[2] <= 1280 and 200 <= small.box[1] < small.box[3] <= 810
    assert FaceDetector().detection_scale((720, 1280, 3)) == 1.0   # frames up to 1280 px: as they are


def test_require_face_raises_when_none_found(face_video, detector):
    with pytest.raises(NoFaceError, match="no face"):
        preprocess_clip(face_video, "x", detector=detector, crop=Crop("right"), require=Requirements(face=True))


def test_crop_geometry_matches_facenet_extract_face(media):
    from facenet_pytorch.models.utils.detect_face import extract_face

    image = media.face_image(160, 150)
    box = np.array([37.3, 21.8, 109.6, 118.2], np.float32)
    ours = crop_region(image, box, 48, 2)
    theirs = extract_face(image.astype(np.float32), box, image_size=48, margin=2).permute(1, 2, 0).numpy()
    assert ours.shape == (48, 48, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(np.float32) - theirs).max() <= 1.0
    m = 2 * (109.6 - 37.3) / 46
    assert crop_box(box, image.shape[:2]) == (int(37.3 - m / 2), int(21.8 - 2 * (118.2 - 21.8) / 46 / 2),
                                             int(109.6 + m / 2), int(118.2 + 2 * (118.2 - 21.8) / 46 / 2))


def test_crop_box_is_clipped_to_the_image():
    assert crop_box([-5, -5, 40, 31.5], (32, 36)) == (0, 0, 36, 32)
    assert crop_box([-5, -5, 40, 30], (32, 36)) == (0, 0, 36, 30)  # 30 + 0.76 truncates to 30


def test_points_and_masks_follow_the_face_crop():
    height, width = 120, 100
    box = np.array([20.0, 30.0, 80.0, 100.0])
    point = np.array([50.5, 70.5])
    mask = np.zeros((height, width), bool)
    mask[68:73, 48:53] = True  # a 5×5 blob centred on the point
    crop_mask = crop_region(mask, box, 48, 2)
    assert crop_mask.dtype == np.bool_ and crop_mask.shape == (48, 48)
    ys, xs = np.nonzero(crop_mask)
    mapped = points_to_crop(point, box, (height, width), 48, 2)
    assert abs(xs.mean() + 0.5 - mapped[0]) < 1.0 and abs(ys.mean() + 0.5 - mapped[1]) < 1.0
    rgb_mask = crop_region(np.repeat(mask[:, :, None], 3, axis=2).astype(np.uint8) * 255, box, 48, 2)
    assert rgb_mask.shape == (48, 48, 3)


def test_center_fallback_region():
    assert center_region((96, 192)) == (72, 24, 120, 72)
    assert center_region((480, 360)) == (90, 150, 270, 330)


# --- image sequences ---------------------------------------------------------------------------

@pytest.mark.parametrize("fps,n_images,expected", [(30, 45, [0, 15, 30]), (2, 4, [0, 1, 2, 3])])
def test_image_sequence_sampling(media, tmp_path, fps, n_images, expected):
    frames = [np.full((40, 40, 3), 10 + 8 * (i % 30), np.uint8) for i in range(n_images)]
    images = media.write_jpegs(tmp_path / "utt", frames)
    wav = media.write_wav(tmp_path / "utt" / "audio.wav", media.tone(n_images / fps))
    record = preprocess_frames(images, wav, "words", frame_rate=fps, detector=media.NoFaceDetector())
    assert record.meta["image_indices"] == expected
    assert [media.frame_index_from_brightness(f) for f in record.faces] == [i % 30 for i in expected]
    np.testing.assert_allclose(record.frame_times, np.array(expected) / fps, atol=1e-6)


# --- errors --------------------------------------------------------------------------------------

def _truncated_mkv(media, tmp_path):
    source = media.write_video(tmp_path / "full.mkv", 40, fps=10, audio=media.tone(4.0))
    return media.truncate_file(source, tmp_path / "cut.mkv", 0.4), {}


def _truncated_mp4(media, tmp_path):
    source = media.write_video(tmp_path / "full.mp4", 20, fps=10, audio=media.tone(2.0))
    return media.truncate_file(source, tmp_path / "cut.mp4", 0.7), {}


def _not_media(media, tmp_path):
    path = tmp_path / "fake.mp4"
    path.write_text("this is not a video " * 20)
    return path, {}


def _missing(media, tmp_path):
    return tmp_path / "nothing.mp4", {}


def _no_audio(media, tmp_path):
    return media.write_video(tmp_path / "mute.mp4", 10), {}


def _no_video(media, tmp_path):
    return media.write_wav(tmp_path / "sound.wav", media.tone(1.0)), {}


def _zero_window(media, tmp_path):
    return media.write_video(tmp_path / "v.mkv", 10, audio=media.tone(1.0)), {"window": Window(0.5, 0.5)}


def _window_after_end(media, tmp_path):
    return media.write_video(tmp_path / "v.mkv", 10, audio=media.tone(1.0)), {"window": Window(5.0, 6.0)}


def _too_long(media, tmp_path):
    video = media.write_video(tmp_path / "v.mkv", 30, fps=10, audio=media.tone(3.0))
    return video, {"config": DataConfig(max_duration_s=2.0)}


def _too_big(media, tmp_path):
    return media.write_video(tmp_path / "v.mkv", 10, audio=media.tone(1.0)), {"config": DataConfig(max_file_mb=0.001)}


def _empty_transcript(media, tmp_path):
    video = media.write_video(tmp_path / "v.mkv", 10, audio=media.tone(1.0))
    return video, {"transcript": "  ", "require": Requirements(transcript=True)}


def _silent(media, tmp_path):
    return media.write_video(tmp_path / "v.mkv", 10, audio=np.zeros(16000, np.float32)), {"require": Requirements(sound=True)}


@pytest.mark.parametrize("make,error", [
    (_truncated_mkv, UnreadableMediaError),
    (_truncated_mp4, UnreadableMediaError),
    (_not_media, UnreadableMediaError),
    (_missing, UnreadableMediaError),
    (_no_audio, NoAudioStreamError),
    (_no_video, NoVideoStreamError),
    (_zero_window, EmptyClipError),
    (_window_after_end, EmptyClipError),
    (_too_long, ClipTooLongError),
    (_too_big, FileTooLargeError),
    (_empty_transcript, EmptyTranscriptError),
    (_silent, SilentAudioError),
], ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) and v.__name__.startswith("_") else None)
def test_bad_input_raises_a_clip_error_naming_the_file(media, tmp_path, make, error):
    path, kwargs = make(media, tmp_path)
    kwargs = {"transcript": "words", **kwargs}
    with pytest.raises(error) as info:
        preprocess_clip(path, kwargs.pop("transcript"), detector=media.NoFaceDetector(), **kwargs)
    assert isinstance(info.value, ClipError) and isinstance(info.value, ValueError)
    assert info.value.path == str(path)
    assert str(info.value) == f"{path}: {info.value.reason}" and info.value.reason


def test_silence_is_a_flag_by_default(media, tmp_path):
    video = media.write_video(tmp_path / "v.mkv", 10, audio=np.zeros(16000, np.float32))
    record = preprocess_clip(video, "", detector=media.NoFaceDetector())
    assert record.meta["audio_silent"] and record.meta["transcript_empty"]


def test_clip_errors_survive_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(ClipTooLongError("/x/y.mp4", "too long")))
    assert isinstance(error, ClipTooLongError) and error.path == "/x/y.mp4" and str(error) == "/x/y.mp4: too long"


def test_media_whose_timeline_starts_late(media, counting_video, tmp_path):
    """Timestamps starting at 2 s (MPEG-TS, edited MP4s): window times count from the first sample."""
    import av

    shifted = tmp_path / "shifted.mkv"
    with av.open(str(counting_video)) as source, av.open(str(shifted), "w") as target:
        streams = {s.index: target.add_stream_from_template(s) for s in source.streams}
        for packet in source.demux():
            if packet.dts is None:
                continue
            offset = int(2.0 / packet.time_base)
            packet.pts += offset
            packet.dts += offset
            packet.stream = streams[packet.stream.index]
            target.mux(packet)
    record = preprocess_clip(shifted, "x", detector=media.NoFaceDetector())
    assert record.meta["media_origin_s"] == pytest.approx(2.0)
    assert [media.frame_index_from_brightness(face) for face in record.faces] == [0, 5, 10, 15, 20, 25]
    assert record.mel.shape == (128, 241) and not record.meta["audio_silent"]
    window = preprocess_clip(shifted, "x", detector=media.NoFaceDetector(), window=Window(1.02, 2.5))
    assert [media.frame_index_from_brightness(face) for face in window.faces] == [10, 15, 20]
