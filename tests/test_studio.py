"""The studio's callbacks (mesm_viz.studio.Studio) without a server: views, caching, state, errors, clamped
numbers, transcript coverage, the checkpoint's training data, progress, and the ground truth of clips with cues."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest

from mesm_core.checkpoint import CheckpointError
from mesm_core.cues import clip_cue_rows
from mesm_core.data.errors import ClipError
from mesm_core.errors import InputError
from mesm_core.inference import Predictor
from mesm_viz import catalog, frames, views
from mesm_viz.studio import TOP_P_GRID, AppSettings, Studio, StudioState, UserInputError, describe_error

SAMPLE = catalog.SAMPLES_DIR / "happy.mp4"


def _titles(figure: dict) -> list[str]:
    return [a["text"] for a in figure["layout"].get("annotations", [])]


def _heatmaps(figure: dict) -> list[dict]:
    return [t for t in figure["data"] if t["type"] == "heatmap"]

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
    assert set(state.to_dict()) == {"key", "video", "transcript", "checkpoint", "top_p", "frame", "cue_file",
                                    "keep_floor", "shown"}
    entry = studio.entries[state.key]
    record = entry.record
    n = record.faces.shape[0]
    assert clip.n_frames == n == len(clip.strip) == len(entry.frames)
    assert clip.frame == state.frame == frame.frame  # the strip opens on the frame the face views show
    assert all(thumb.shape[0] == frames.STRIP_HEIGHT and thumb.dtype == np.uint8 for thumb, _ in clip.strip)
    assert frame.frame_image.shape[0] == frames.FRAME_HEIGHT
    # Layer grid: {attention, kept} × 3 sparse layers, the captions as text (legible at any size).
    titles = _titles(frame.layer_fig)   # per layer (column): attention above, kept below
    assert titles[0::2] == ["L1 attention · 24×24 cells", "L2 attention · 12×12 cells", "L3 attention · 6×6 cells"]
    assert all(t.startswith(f"L{i} kept · ") for i, t in zip((1, 2, 3), titles[1::2]))
    assert [len(h["z"]) for h in _heatmaps(frame.layer_fig)] == [24, 24, 12, 12, 6, 6]
    first = _heatmaps(frame.layer_fig)[0]   # hover: the cell's own value, its rank and its fate
    assert "attention %{customdata[2]:.4f}" in first["hovertemplate"] and len(first["customdata"][0][0]) == 4
    assert first["text"][0][0] in ("kept", "dropped")
    assert len(frame.facs_headers) == 3 + 2 * 3 and all(len(r) == len(frame.facs_headers) for r in frame.facs_rows)
    assert "not ground truth" in frame.facs_note
    assert set(pview.label) == set(studio.predictor(state.checkpoint).classes)
    mel = pview.mel_fig["layout"]
    # mel + per layer the grey spectrogram and its kept-cell mask (a small overlay), on real axes
    assert len(mel["images"]) == 7 and mel["xaxis4"]["title"]["text"] == "time (s)"
    assert mel["images"][1]["source"] == mel["images"][3]["source"]   # one grey picture, served once
    assert "kHz" in " ".join(mel["yaxis"]["ticktext"])
    assert pview.numbers["top_p"] == 0.5 and pview.numbers["flops_actual"] < pview.numbers["flops_dense"]
    assert pview.numbers["cues"] == [] and pview.cue_fig is None  # a clip without known cues
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
    kept = [h["z"] for h in _heatmaps(f_low.layer_fig)[1::2]], [h["z"] for h in _heatmaps(f_high.layer_fig)[1::2]]
    assert kept[0] != kept[1]
    assert p_low.mel_fig["layout"]["images"][2]["source"] != p_high.mel_fig["layout"]["images"][2]["source"]
    assert p_low.numbers["flops_dense"] == p_high.numbers["flops_dense"]


@pytest.mark.parametrize("typed, applied", [(2.0, 1.0), (0.0, 0.05), (-3, 0.05), (0.7, 0.7)])
def test_typed_top_p_is_clamped_applied_and_named(analysed, studio, typed, applied):
    state, _, pview, status = studio.set_top_p(analysed[0], typed)
    assert state.top_p == applied and pview.numbers["top_p"] == applied  # applied, not only shown
    assert status.startswith("**Done:**")
    if typed != applied:
        assert f"{typed:g} was applied as {applied:g}" in status
    else:
        assert "applied as" not in status


def test_cost_curve_is_the_predictors_sweep(analysed, studio, monkeypatch):
    state = analysed[0]
    entry = studio.entries[state.key]
    calls = []
    sweep = Predictor.sweep
    monkeypatch.setattr(Predictor, "sweep", lambda self, *a, **kw: calls.append(a) or sweep(self, *a, **kw))
    fig, text = studio.cost_curve(state)
    assert len(calls) == 1  # the one sweep implementation
    points = entry.sweeps[True]
    assert [p.top_p for p in points] == list(TOP_P_GRID)   # every slider position
    actual = [p.flops_actual for p in points]
    assert actual[0] <= actual[-1] and actual[-1] <= points[-1].flops_dense * (1 + 1e-9)
    assert fig["data"] and "FLOPs" in text
    assert any(shape.get("x0") == 0.5 and shape["type"] == "line" for shape in fig["layout"]["shapes"])  # p marked
    # Every slider position is cached, the one shown reused: a slider move afterwards needs no new run.
    assert studio.prediction(entry, 0.7) is points[13].prediction
    assert points[9].prediction is studio.prediction(entry, 0.5)
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


def test_select_frame_clamps_and_says_so(analysed, studio):
    state = analysed[0]
    n = studio.entries[state.key].record.faces.shape[0]
    new_state, view, note = studio.select_frame(state, 99)
    assert new_state.frame == view.frame == n - 1 and view.frame_image is not None
    assert note == f"Frame 99 does not exist: this clip has {n} sampled frames (0–{n - 1}); frame {n - 1} is shown."
    new_state, view, note = studio.select_frame(state, 0)
    assert new_state.frame == 0 and view.layer_fig is not None and note == ""


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
    assert pview.mel_fig is not None and len(pview.numbers["kept_cells"]["audio"]) == 3


def test_fe2e_checkpoint_disables_top_p(studio, world):
    control = studio.top_p_control(str(world["fe2e"]))
    assert control.interactive is False and control.default_p is None and "FE2E" in control.note
    assert control.floors == {}                     # no floor switch for a dense model
    state, clip, frame, pview, status = studio.analyze(str(world["face"]), "", str(world["fe2e"]), 0.3)
    assert state.top_p is None and pview.numbers["kept_cells"] == {}
    assert pview.numbers["flops_actual"] == pview.numbers["flops_dense"]
    fig, text = studio.cost_curve(state)  # the Cost tab's p-curve panel says why it is flat
    assert "FE2E is dense" in fig["layout"]["annotations"][0]["text"] and "does not apply" in text
    assert "FE2E" in status
    assert _titles(frame.layer_fig) == ["face crop (dense model: no attention to show)"]


def test_checkpoint_choices(studio, world):
    paths = [path for _, path in studio.checkpoint_choices()]
    assert str(world["mesm"].resolve()) in paths and str(world["fe2e"].resolve()) in paths
    control = studio.top_p_control(str(world["mesm"]))
    assert control.interactive and control.default_p == pytest.approx(0.7)   # mesm_small is deployed at p = 0.7


@pytest.mark.parametrize("case", ["no_video", "garbage", "no_audio", "empty_transcript", "bad_checkpoint", "no_state",
                                  "too_long", "too_large"])
def test_bad_input_gives_clear_errors_in_the_users_terms(studio, world, media, tmp_path, case):
    """Each bad input is an InputError whose text leads with what to do, names the user's file (never a
    server path), and carries no errno, config field name or 'separate audio file'."""
    upload = tmp_path / "gradio" / "0f3c9e2b7a" / "clip.mp4"   # where Gradio keeps an upload
    upload.parent.mkdir(parents=True)
    video, text, checkpoint = str(world["face"]), media.TRANSCRIPT, None
    expected: type[Exception] = ClipError
    if case == "no_video":
        video, expected = None, UserInputError
    elif case == "garbage":
        upload.write_bytes(b"\x00" * 4096)
        video = str(upload)
    elif case == "no_audio":
        video = str(media.write_video(upload, 10, fps=10, frame=media.blank_image(64, 64)))
    elif case == "empty_transcript":
        text = "  "
    elif case == "bad_checkpoint":
        checkpoint, expected = str(tmp_path), CheckpointError
    elif case == "too_long":
        video = str(media.make_face_clip(upload, seconds=2.0, fps=5))
        studio = Studio(AppSettings(checkpoint=str(world["mesm"]), max_seconds=1.0))
    elif case == "too_large":
        video = str(media.make_face_clip(upload, seconds=2.0, fps=5))
        studio = Studio(AppSettings(checkpoint=str(world["mesm"]), max_upload_mb=0.001))
    if case == "no_state":
        with pytest.raises(UserInputError) as info:
            studio.set_top_p(None, 0.5)
    else:
        with pytest.raises(expected) as info:
            studio.analyze(video, text, checkpoint, 0.5)
    assert isinstance(info.value, InputError)  # what the app shows as a problem, not an internal error
    message = studio.explain(info.value)
    shown = message.markdown()
    assert not message.headline.startswith("Something went wrong")
    assert str(tmp_path) not in shown and "/tmp" not in shown and "gradio" not in shown
    for jargon in ("Errno", "1094995529", "DataConfig", "max_duration_s", "separate audio"):
        assert jargon not in shown, (jargon, shown)
    assert str(tmp_path) not in describe_error(info.value)  # the one-line form (logs) is as clean
    if case in ("garbage", "no_audio", "too_long", "too_large"):
        assert message.headline.startswith("“clip.mp4”")
    advice = {"garbage": "Upload a video file", "no_audio": "upload the clip with its audio",
              "too_long": "limit of 1 s. Trim it", "too_large": "Trim or compress it",
              "empty_transcript": "Transcript needed: type the words", "bad_checkpoint": "Pick one from the list",
              "no_state": "Analyze a video first", "no_video": "Upload a video first"}[case]
    assert advice in message.headline
    if case in ("garbage", "too_long"):
        assert "<details><summary>Technical detail</summary>" in shown  # the detail, one click away


def test_a_50_ms_clip_gets_a_caution(studio, media, tmp_path):
    """The model sees one frame and one (mostly padded) mel chunk of a 50 ms clip: the status says so."""
    clip = media.write_video(tmp_path / "blink.mp4", 1, fps=20, frame=media.face_image(96, 96),
                             audio=media.speechy_audio(0.05))
    state, clip_view, frame, pview, status = studio.analyze(str(clip), media.TRANSCRIPT, None, 0.5)
    assert "Caution: the clip is 50 ms long" in status and "1 face frame and 1 mel chunk" in status
    long_enough = studio.analyze(str(media.make_face_clip(tmp_path / "long.mp4", seconds=2.0)), media.TRANSCRIPT,
                                 None, 0.5).status
    assert "Caution" not in long_enough


def test_silent_audio_is_flagged_not_fatal(studio, media, tmp_path):
    video = media.write_video(tmp_path / "silent.mp4", 10, fps=10, frame=media.face_image(96, 96),
                              audio=np.zeros(16000, np.float32))
    state, clip, frame, pview, status = studio.analyze(str(video), "quiet words", None, 0.5)
    assert "silent" in status and pview.mel_fig is not None


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
    predictor = studio.pool.predictors[studio.default_checkpoint()]
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


def test_long_transcripts_say_what_the_model_did_not_read(studio, world):
    """The checkpoint reads text_max_len tokens (48 here): the words past that point are named."""
    words = " ".join(f"word{i}" for i in range(80))
    state, clip, frame, pview, status = studio.analyze(str(world["face"]), words, None, 0.5)
    entry = studio.entries[state.key]
    coverage = entry.prepared.text_coverage
    assert coverage.truncated and coverage.used_tokens == coverage.max_tokens == 48
    assert coverage.dropped_words[-1] == "word79" and "word0" in coverage.read_text
    note = studio.text_note(state)
    assert "48 of 48 tokens used" in note and "word79" in note and "no effect" in note
    assert "Transcript cut at the model's limit" in status
    assert pview.numbers["text_tokens"]["dropped_words"] == coverage.dropped_words
    short = studio.analyze(str(world["face"]), "a few words", None, 0.5)[0]
    assert "the whole transcript was read" in studio.text_note(short)


def test_model_info_says_what_the_checkpoint_learned_from(studio, world):
    bundled = next(c for c in catalog.bundled_checkpoints() if c.endswith("mesm_small"))
    info = studio.model_info(bundled)
    assert info.synthetic and "synthetic" in info.trained_on and info.source == "model card"
    assert info.classes == ("anger", "disgust", "fear", "happy", "sad", "surprise")
    text = info.markdown("/gradio_api/file=/x/README.md")
    assert text.startswith("⚠️ **Trained on synthetic clips only.**")
    assert "[Model card](/gradio_api/file=/x/README.md)" in text and "anger, disgust" in text
    random_weights = studio.model_info(str(world["mesm"]))  # a checkpoint that records nothing about its data
    assert not random_weights.synthetic and random_weights.source == "not recorded"
    assert "does not record its training data" in random_weights.markdown()
    assert studio.model_info(str(world["root"])) is None  # not a checkpoint


def test_a_checkpoint_you_train_says_what_it_learned_from(studio, world, tmp_path):
    """A checkpoint written by the trainer records its data (mesm_core.training.checkpointing); the page shows
    it, and a synthetic-data checkpoint keeps the synthetic notice."""
    import shutil

    folder = tmp_path / "trained"
    shutil.copytree(world["mesm"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["metadata"] = {"training_data": {
        "kind": "synthetic", "source": "data/synthetic", "source_seed": 0, "train_seed": 1,
        "splits": {"train": 840, "valid": 120, "test": 240},
        "description": "the synthetic dataset (data/synthetic, dataset seed 0; cache synthetic_cache): train 840 / "
                       "valid 120 / test 240 clips; training seed 1"}}
    (folder / "config.json").write_text(json.dumps(config))
    info = studio.model_info(str(folder))
    assert info.synthetic and info.source == "config.json" and "train 840" in info.trained_on
    text = info.markdown()
    assert text.startswith("⚠️ **Trained on synthetic clips only.**")
    assert "kind synthetic · source `data/synthetic` · dataset seed 0 · training seed 1" in text
    assert "Trained on (not recorded)" not in text


def test_analysis_reports_progress_by_stage(studio, world, media, tmp_path):
    video = media.make_face_clip(tmp_path / "fresh.mp4", seconds=1.0)
    stages = []
    studio.analyze(str(video), media.TRANSCRIPT, None, 0.5, progress=lambda f, s: stages.append((f, s)))
    names = " | ".join(s for _, s in stages)
    for stage in ("Decoding the video", "Decoding the audio", "Finding faces", "Mel spectrogram",
                  "Text encoder and dense CNN layers", "Sparse layers"):
        assert stage in names
    fractions = [f for f, _ in stages]
    assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] < 1


def test_sample_clips_show_their_true_cues(studio, world):
    """A sample clip (recognised by content, under any name) gets its cue regions on the face and the
    spectrogram, and per layer the evaluation's attention-in-cue numbers, which move with the slider."""
    state, clip, frame, pview, status = studio.analyze(str(SAMPLE), "That test drive made me feel delighted.",
                                                       None, 0.5)
    entry = studio.entries[state.key]
    assert entry.cue_file.endswith("cues/demo-happy.npz") and "true cue regions known" in clip.summary
    record = entry.record
    assert record.face_cues[state.frame].any()  # it opens on a frame that shows its cue
    pred = studio.prediction(entry, 0.5)
    rows = clip_cue_rows(record, pred.trace, pred.chunk_frames)  # the one function the evaluation uses
    assert pview.numbers["cues"] == [r.to_dict() for r in rows]
    assert {(r["modality"], r["block"]) for r in pview.numbers["cues"]} == {(m, b) for m in ("visual", "audio")
                                                                             for b in (1, 2, 3)}
    assert pview.cue_fig is not None and "vs chance" in pview.cue_fig["layout"]["title"]["text"] and pview.cue_text
    cue_legend = "true cue region (ground truth)"
    assert any(t.get("name") == cue_legend for t in frame.layer_fig["data"])
    assert any(t.get("name") == cue_legend for t in frame.facs_fig["data"])
    assert any(t.get("name") == cue_legend for t in pview.mel_fig["data"])
    _, _, moved, _ = studio.set_top_p(state, 0.9)
    assert [r["kept_in_cue"] for r in moved.numbers["cues"]] != [r["kept_in_cue"] for r in pview.numbers["cues"]]


def test_a_cue_file_of_another_clip_is_refused(studio, world, media):
    other = catalog.SAMPLES_DIR / "cues" / "demo-sad_10s.npz"   # a 10 s clip's cues on a 3 s clip
    state, clip, frame, pview, status = studio.analyze(str(world["face"]), media.TRANSCRIPT, None, 0.5,
                                                       cue_file=str(other))
    assert studio.entries[state.key].cue_file is None and pview.numbers["cues"] == []
    assert "does not fit this clip" in status and "demo-sad_10s.npz" in status and str(catalog.SAMPLES_DIR) not in status
