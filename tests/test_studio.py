"""The studio's callbacks (mesm_viz.studio.Studio) without a server: views, caching, state, errors."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest

from mesm_core.checkpoint import CheckpointError
from mesm_core.data.errors import ClipError
from mesm_core.errors import InputError
from mesm_core.inference import Predictor
from mesm_viz import catalog, frames, views
from mesm_viz.studio import TOP_P_GRID, AppSettings, Studio, StudioState, UserInputError, describe_error

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(media, models, tmp_path_factory):
    root = tmp_path_factory.mktemp("studio")
    return {
        "root": root,
        "mesm": models.make_checkpoint(root / "checkpoints" / "mesm"),
        "fe2e": models.make_checkpoint(root / "checkpoints" / "fe2e", preset="fe2e_small"),
        "face": media.make_face_clip(root / "face.mp4", seconds=3.0),
        "noface": media.make_noface_clip(root / "noface.mp4"),
    }


@pytest.fixture(scope="module")
def studio(world):
    return Studio(AppSettings(checkpoint=str(world["mesm"]), checkpoint_dirs=[str(world["root"] / "checkpoints")],
                              export_dir=str(world["root"] / "exports"), max_seconds=20, max_upload_mb=5))


@pytest.fixture(scope="module")
def analysed(studio, world, media):
    return studio.analyze(str(world["face"]), media.TRANSCRIPT, None, 0.5)


def test_analyze_views(analysed, studio):
    state, clip, frame, pview, status = analysed
    assert isinstance(state, StudioState)
    json.dumps(state.to_dict())  # the session state is small and JSON-able: no tensors
    assert set(state.to_dict()) == {"key", "video", "transcript", "checkpoint", "top_p", "frame"}
    entry = studio.entries[state.key]
    record = entry.record
    n = record.faces.shape[0]
    assert clip.n_frames == n == len(clip.strip) == len(entry.frames)
    assert all(thumb.shape[0] == frames.STRIP_HEIGHT and thumb.dtype == np.uint8 for thumb, _ in clip.strip)
    assert frame.frame_image.shape[0] == frames.FRAME_HEIGHT
    # Layer grid: {attention, kept} × 3 sparse layers, tiles of 48·4 px plus label strips.
    tile = record.faces.shape[1] * views.CROP_SCALE
    assert frame.layer_grid.shape[1] == 3 * (tile + 2) + 2
    assert frame.layer_grid.shape[0] == 2 * (tile + 14 + 2) + 2
    assert frame.facs_image.shape == (record.faces.shape[1] * views.FACS_SCALE,) * 2 + (3,)
    assert len(frame.facs_headers) == 3 + 2 * 3 and all(len(r) == len(frame.facs_headers) for r in frame.facs_rows)
    assert "not ground truth" in frame.facs_note
    assert set(pview.label) == set(studio.predictor(state.checkpoint).classes)
    stretch = max(1, views.MEL_MIN_WIDTH // record.mel.shape[1])  # short clips are stretched in time
    assert pview.mel_image.shape[1] == record.mel.shape[1] * stretch + 4
    assert pview.numbers["top_p"] == 0.5 and pview.numbers["flops_actual"] < pview.numbers["flops_dense"]
    assert pview.probabilities_fig is not None and pview.flops_fig is not None
    assert status.startswith("**Done:**")


def test_display_frames_are_the_frames_the_model_saw(analysed, studio):
    """The strip's frames come from the data pipeline's own nearest-frame decoder: the face the model
    cropped sits inside the display frame at its box."""
    entry = studio.entries[analysed[0].key]
    record = entry.record
    for i, big in enumerate(entry.frames):
        assert big.shape == entry.frames[0].shape and big.shape[0] == frames.FRAME_HEIGHT
        scale = frames.box_scale(record, big)
        x1, y1, x2, y2 = (int(round(v * scale)) for v in record.face_boxes[i])
        crop = big[max(y1, 0):y2, max(x1, 0):x2].mean(axis=(0, 1))
        assert np.abs(crop - record.faces[i].mean(axis=(0, 1))).max() < 25, i


def test_top_p_change_reuses_prepared_clip(analysed, studio, monkeypatch):
    state = analysed[0]
    entry = studio.entries[state.key]

    def no_prepare(*args, **kwargs):
        raise AssertionError("a slider move must not redo the p-independent stage")

    monkeypatch.setattr(Predictor, "prepare", no_prepare)
    s_low, f_low, p_low, _ = studio.set_top_p(state, 0.3)
    s_high, f_high, p_high, _ = studio.set_top_p(s_low, 0.9)
    assert s_high.key == state.key and studio.entries[state.key] is entry
    assert s_low.top_p == 0.3 and s_high.top_p == 0.9 and state.top_p == 0.5  # states are immutable
    assert p_low.numbers["flops_actual"] < p_high.numbers["flops_actual"]
    for modality in ("visual", "audio"):
        assert p_low.numbers["kept_cells"][modality][0] < p_high.numbers["kept_cells"][modality][0]
    assert not np.array_equal(f_low.layer_grid, f_high.layer_grid)
    assert not np.array_equal(p_low.mel_image, p_high.mel_image)
    assert p_low.numbers["flops_dense"] == p_high.numbers["flops_dense"]


def test_cost_curve_is_the_predictors_sweep(analysed, studio, monkeypatch):
    state = analysed[0]
    entry = studio.entries[state.key]
    calls = []
    sweep = Predictor.sweep
    monkeypatch.setattr(Predictor, "sweep", lambda self, *a, **kw: calls.append(a) or sweep(self, *a, **kw))
    fig, text = studio.cost_curve(state)
    assert len(calls) == 1  # the one sweep implementation
    assert [p.top_p for p in entry.sweep] == list(TOP_P_GRID)
    actual = [p.flops_actual for p in entry.sweep]
    assert actual[0] < actual[-1] and actual[-1] <= entry.sweep[-1].flops_dense * (1 + 1e-9)
    assert fig["data"] and "FLOPs" in text
    assert fig["layout"]["shapes"][-1]["x0"] == 0.5  # the current p is marked
    # Grid predictions are cached, the one shown already reused: a move onto the grid needs no new run.
    assert entry.grid[0.7] is entry.sweep[6].prediction
    assert entry.sweep[4].prediction is studio.prediction(entry, 0.5)
    studio.cost_curve(state)
    assert len(calls) == 1  # once per clip


def test_transcript_edit_reencodes_text_only(analysed, studio):
    state = analysed[0]
    old = studio.entries[state.key]
    new_state, frame, pview, status = studio.set_transcript(state, "nothing good ever happens to me")
    new = studio.entries[new_state.key]
    assert new_state.key != state.key and new_state.transcript.startswith("nothing good")
    assert new.prepared.dense is old.prepared.dense and new.frames is old.frames
    assert "re-encoded" in status
    before = studio.prediction(old, 0.5).trace["visual"][0].attention
    after = studio.prediction(new, 0.5).trace["visual"][0].attention
    assert np.abs(before - after).max() > 0


def test_select_frame_clamps(analysed, studio):
    state = analysed[0]
    n = studio.entries[state.key].record.faces.shape[0]
    new_state, view = studio.select_frame(state, 99)
    assert new_state.frame == n - 1 and view.frame_image is not None
    new_state, view = studio.select_frame(state, 0)
    assert new_state.frame == 0 and view.layer_grid is not None


def test_export_zip(analysed, studio):
    path = studio.export(analysed[0])
    with zipfile.ZipFile(path) as archive:
        names = {name.split("/", 1)[1] for name in archive.namelist()}
        assert {"report.json", "flops.csv", "face_layers.png", "facs_overlay.png", "mel_masks.png"} <= names
        report = json.loads(archive.read(next(n for n in archive.namelist() if n.endswith("report.json"))))
    assert report["top_p"] == 0.5 and report["facs"]["frame"] == analysed[0].frame


def test_evicted_entry_is_rebuilt_from_state(world, media):
    studio = Studio(AppSettings(checkpoint=str(world["mesm"]), cache_size=1))
    state_a = studio.analyze(str(world["face"]), media.TRANSCRIPT, None, 0.5)[0]
    studio.analyze(str(world["noface"]), "hello there", None, 0.5)
    assert state_a.key not in studio.entries
    state, _, pview, _ = studio.set_top_p(state_a, 0.8)
    assert state.key == state_a.key and pview.numbers["top_p"] == 0.8


def test_no_face_clip_keeps_audio_and_text_views(studio, world):
    state, clip, frame, pview, status = studio.analyze(str(world["noface"]), "just the room", None, 0.5)
    assert all("no face" in caption for _, caption in clip.strip)
    assert "No face detected" in status and "No face detected in this frame" in frame.facs_note
    assert pview.mel_image is not None and len(pview.numbers["kept_cells"]["audio"]) == 3


def test_fe2e_checkpoint_disables_top_p(studio, world):
    active, default, note = studio.top_p_control(str(world["fe2e"]))
    assert active is False and default is None and "FE2E" in note
    state, clip, frame, pview, status = studio.analyze(str(world["face"]), "", str(world["fe2e"]), 0.3)
    assert state.top_p is None and pview.numbers["kept_cells"] == {}
    assert pview.numbers["flops_actual"] == pview.numbers["flops_dense"]
    fig, text = studio.cost_curve(state)
    assert fig is None and "does not apply" in text
    assert "FE2E" in status


def test_checkpoint_choices(studio, world):
    paths = [path for _, path in studio.checkpoint_choices()]
    assert str(world["mesm"].resolve()) in paths and str(world["fe2e"].resolve()) in paths
    active, default, _ = studio.top_p_control(str(world["mesm"]))
    assert active and default == pytest.approx(0.5)


@pytest.mark.parametrize("case", ["no_video", "garbage", "no_audio", "empty_transcript", "bad_checkpoint", "no_state",
                                  "too_long"])
def test_bad_input_gives_clear_errors(studio, world, media, tmp_path, case):
    video, text, checkpoint = str(world["face"]), media.TRANSCRIPT, None
    expected: type[Exception] = ClipError
    if case == "no_video":
        video, expected = None, UserInputError
    elif case == "garbage":
        video = str(tmp_path / "clip.mp4")
        (tmp_path / "clip.mp4").write_bytes(b"\x00" * 4096)
    elif case == "no_audio":
        video = str(media.write_video(tmp_path / "mute.mp4", 10, fps=10, frame=media.blank_image(64, 64)))
    elif case == "empty_transcript":
        text = "  "
    elif case == "bad_checkpoint":
        checkpoint, expected = str(tmp_path), CheckpointError
    elif case == "too_long":
        video = str(media.make_face_clip(tmp_path / "long.mp4", seconds=2.0, fps=5))
        studio = Studio(AppSettings(checkpoint=str(world["mesm"]), max_seconds=1.0))
    if case == "no_state":
        with pytest.raises(UserInputError) as info:
            studio.set_top_p(None, 0.5)
    else:
        with pytest.raises(expected) as info:
            studio.analyze(video, text, checkpoint, 0.5)
    assert isinstance(info.value, InputError)  # what the app shows as a problem, not an internal error
    message = describe_error(info.value)
    assert message and not message.startswith("Internal error")
    if case == "garbage":
        assert "clip.mp4" in message
    if case == "empty_transcript":
        assert message.startswith("Transcript needed")
    if case == "too_long":
        assert "1 s" in message
    if case == "no_audio":
        assert "audio" in message and "mute.mp4" in message


def test_silent_audio_is_flagged_not_fatal(studio, media, tmp_path):
    video = media.write_video(tmp_path / "silent.mp4", 10, fps=10, frame=media.face_image(96, 96),
                              audio=np.zeros(16000, np.float32))
    state, clip, frame, pview, status = studio.analyze(str(video), "quiet words", None, 0.5)
    assert "silent" in status and pview.mel_image is not None


def test_sample_clips_read_sidecars(media, tmp_path):
    media.make_face_clip(tmp_path / "a.mp4", seconds=1.0, transcript="first words")
    media.make_noface_clip(tmp_path / "b.mp4", seconds=1.0)
    assert catalog.sample_clips(tmp_path) == [(str(tmp_path / "a.mp4"), "first words"), (str(tmp_path / "b.mp4"), "")]


def test_discover_checkpoints(world, tmp_path):
    assert catalog.discover_checkpoints(world["mesm"]) == [str(world["mesm"].resolve())]
    assert len(catalog.discover_checkpoints(world["root"] / "checkpoints")) == 2
    assert catalog.discover_checkpoints(tmp_path / "nothing") == []


def test_warm_up_loads_model_and_detector(world, tmp_path):
    studio = Studio(AppSettings(checkpoint=str(world["mesm"])))
    studio.warm_up()
    predictor = studio.predictors[studio.default_checkpoint()]
    assert predictor.detector._mtcnn is not None  # MTCNN built before the first upload
    Studio(AppSettings(checkpoint=str(tmp_path / "missing"))).warm_up()  # logs, never raises


def test_predictors_share_one_face_detector(studio, world):
    assert studio.predictor(str(world["mesm"])).detector is studio.predictor(str(world["fe2e"])).detector


def test_state_replace_keeps_the_rest(analysed):
    state = analysed[0]
    moved = state.replace(frame=1)
    assert moved.frame == 1 and dataclasses.replace(moved, frame=state.frame) == state
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.frame = 3
