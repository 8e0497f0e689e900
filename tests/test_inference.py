"""mesm_core.inference: the one inference path (Predictor: two stages, sweep, report writer) and the CLIs.

Clips are made on the fly (astronaut face + tone, PyAV), checkpoints are random-weight small presets
with the 2-layer random text encoder, so nothing here depends on the bundled demo checkpoints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mesm_core import predict as cli
from mesm_core.data.transcript import Transcript, resolve_transcript
from mesm_core.io import file_sha1
from mesm_core.inference import (
    Prediction,
    Predictor,
    PreparedClip,
    SweepPoint,
    predict,
    write_report,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The reference path; every sparse path gives the same numbers (tests/test_sparse_backends.py).
BACKEND = "masked"


@pytest.fixture(scope="module")
def clips(media, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict_media")
    garbage = root / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    return {"face": media.make_face_clip(root / "face.mp4", seconds=2.0),
            "noface": media.make_noface_clip(root / "noface.mp4"), "garbage": garbage}


@pytest.fixture(scope="module")
def mesm_dir(models, tmp_path_factory) -> Path:
    return models.make_checkpoint(tmp_path_factory.mktemp("ckpt") / "mesm")


@pytest.fixture(scope="module")
def mesm(mesm_dir) -> Predictor:
    return Predictor.load(mesm_dir, sparse_backend=BACKEND)


@pytest.fixture(scope="module")
def prepared(mesm, clips, media) -> PreparedClip:
    return mesm.prepare(clips["face"], media.TRANSCRIPT)


# --- prediction -----------------------------------------------------------------------------------

def test_prediction_contents(mesm, prepared):
    pred = mesm.run(prepared, 0.5)
    classes = mesm.classes
    assert pred.classes == classes and set(pred.probabilities) == set(classes)
    probs = np.array([pred.probabilities[c] for c in classes])
    assert np.all((probs > 0) & (probs < 1))
    logits = np.array([pred.logits[c] for c in classes])
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-logits)), rtol=1e-6)
    # No thresholds stored: 0.5 for every class, and the prediction says so.
    assert pred.thresholds == {c: 0.5 for c in classes}
    assert "default" in pred.threshold_source and any("threshold" in n for n in pred.notes)
    assert pred.predicted == [c for c in classes if pred.probabilities[c] >= 0.5]
    assert set(pred.modality_logits) == set(pred.fusion_weights) == {"text", "audio", "visual"}
    # Trace: three sparse blocks per signal modality, numpy, shapes matching the clip.
    n_frames = prepared.record.faces.shape[0]
    n_chunks = prepared.batch.chunks.shape[0]
    assert [t.grid for t in pred.trace["visual"]] == [(24, 24), (12, 12), (6, 6)]
    for modality, n in (("visual", n_frames), ("audio", n_chunks)):
        for block in pred.trace[modality]:
            assert isinstance(block.attention, np.ndarray) and block.kept.dtype == np.bool_
            assert block.attention.shape == block.kept.shape == (n, *block.grid)
            assert not np.any(block.kept & ~block.active_in)
        assert len(pred.kept_fraction[modality]) == 3
    assert pred.top_p == 0.5 and pred.arch == "mesm"
    assert 0 < pred.flops.actual < pred.flops.dense
    assert pred.record is prepared.record and pred.record.face_detected.all()


def test_two_stages_equal_full_predict(mesm, clips, media, prepared):
    full = mesm.predict(clips["face"], media.TRANSCRIPT, top_p=0.4)
    staged = mesm.run(prepared, 0.4)
    assert full.probabilities == pytest.approx(staged.probabilities, abs=1e-5)
    assert full.flops.actual == pytest.approx(staged.flops.actual)
    for a, b in zip(full.trace["visual"], staged.trace["visual"]):
        np.testing.assert_array_equal(a.kept, b.kept)
    # Running the cheap stage again from the same prepared clip is deterministic.
    again = mesm.run(prepared, 0.4)
    assert again.logits == staged.logits


def test_one_call_predict_loads_and_runs_like_a_predictor(mesm_dir, mesm, clips, media, prepared):
    pred = predict(mesm_dir, clips["face"], media.TRANSCRIPT, top_p=0.4, sparse_backend=BACKEND)
    assert isinstance(pred, Prediction)
    assert pred.probabilities == pytest.approx(mesm.run(prepared, 0.4).probabilities, abs=1e-5)


def test_higher_p_keeps_more_cells_and_costs_more(mesm, prepared):
    preds = {p: mesm.run(prepared, p) for p in (0.2, 0.6, 1.0)}
    dense = {pred.flops.dense for pred in preds.values()}
    assert len(dense) == 1, "dense FLOPs must not depend on p"
    actual = [preds[p].flops.actual for p in (0.2, 0.6, 1.0)]
    assert actual[0] < actual[1] < actual[2] <= preds[1.0].flops.dense * (1 + 1e-9)
    for modality in ("visual", "audio"):
        first = [int(preds[p].trace[modality][0].kept.sum()) for p in (0.2, 0.6, 1.0)]
        assert first[0] <= first[1] < first[2]   # ≤: mesm_small's keep floor can hold both low p
        assert preds[1.0].kept_fraction[modality] == pytest.approx([1.0, 1.0, 1.0])


@pytest.mark.parametrize("top_ps", [[0.3, 0.7], [0.1, 0.5, 1.0]])
def test_sweep_matches_single_runs(mesm, prepared, top_ps):
    points = mesm.sweep(prepared, top_ps)
    assert all(isinstance(p, SweepPoint) for p in points)
    assert [p.top_p for p in points] == top_ps
    for point in points:
        single = mesm.run(prepared, point.top_p)
        assert point.flops_actual == pytest.approx(single.flops.actual)
        assert point.kept_fraction == single.kept_fraction  # deterministic: the same run twice
        assert point.probabilities == pytest.approx(single.probabilities)
        assert point.prediction.top_p == point.top_p and 0 < point.mean_kept <= 1
    actual = [p.flops_actual for p in points]
    assert actual == sorted(actual) and len(set(actual)) == len(actual)
    assert set(points[0].to_dict()) == {"top_p", "flops_dense", "flops_actual", "kept_fraction", "probabilities"}


def test_sweep_reuses_known_predictions(mesm, prepared, monkeypatch):
    known = {0.5: mesm.run(prepared, 0.5)}
    ran = []
    original = mesm.run
    monkeypatch.setattr(mesm, "run", lambda prep, p, **kw: ran.append(p) or original(prep, p, **kw))
    points = mesm.sweep(prepared, [0.3, 0.5], known=known)
    assert ran == [0.3] and points[1].prediction is known[0.5]


def test_retext_reuses_dense_features_and_moves_attention(mesm, prepared, media):
    other = mesm.retext(prepared, "the rain will not stop and nobody came")
    assert other.dense is prepared.dense and other.record.faces is prepared.record.faces
    assert other.transcript != prepared.transcript
    assert not torch.equal(other.text_cls, prepared.text_cls)
    before, after = mesm.run(prepared, 0.5), mesm.run(other, 0.5)
    # Random weights: the attention is near uniform, so the shift is small but must exist.
    for modality in ("visual", "audio"):
        shift = np.abs(before.trace[modality][0].attention - after.trace[modality][0].attention).max()
        assert shift > 0, modality
    assert before.probabilities != after.probabilities
    # Retexting back gives the original result exactly.
    back = mesm.run(mesm.retext(other, media.TRANSCRIPT), 0.5)
    assert back.probabilities == pytest.approx(before.probabilities, abs=1e-6)


def test_sidecar_transcript_is_used(clips, media):
    found = resolve_transcript(clips["face"])
    assert found.text == media.TRANSCRIPT and found.source == str(clips["face"].with_suffix(".txt"))
    assert resolve_transcript(clips["noface"]) == Transcript("", "none")


def test_prepare_attaches_a_cue_file_that_fits_and_says_why_one_does_not(mesm, clips, media):
    from mesm_core.resources import SAMPLES_DIR

    happy = mesm.prepare(SAMPLES_DIR / "happy.mp4", cue_file=SAMPLES_DIR / "cues" / "demo-happy.npz",
                         video_sha1="given")
    record = happy.record
    assert happy.cue_file.endswith("demo-happy.npz") and happy.cue_error == "" and happy.video_sha1 == "given"
    assert record.face_cues.shape == record.faces.shape[:3] and record.face_cues.any()
    assert record.mel_cues.shape == record.mel.shape and record.meta.cue_modalities["visual"]
    other = SAMPLES_DIR / "cues" / "demo-sad_10s.npz"   # a 10 s clip's cues on a 2 s clip
    refused = mesm.prepare(clips["face"], media.TRANSCRIPT, cue_file=other)
    assert refused.cue_file is None and str(other) in refused.cue_error and "describes a 10.00 s clip" in refused.cue_error
    assert refused.record.face_cues is None and refused.record.mel_cues is None
    assert refused.video_sha1 == file_sha1(clips["face"])  # hashed here when the caller did not


def test_checkpoint_thresholds_are_used(tmp_path, clips, media, models):
    folder = models.make_checkpoint(tmp_path / "thr", thresholds=[0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    predictor = Predictor.load(folder, sparse_backend=BACKEND)
    pred = predictor.run(predictor.prepare(clips["face"], media.TRANSCRIPT), 0.5)
    assert pred.threshold_source == "checkpoint"
    assert pred.thresholds["anger"] == 0.0 and "anger" in pred.predicted
    assert "disgust" not in pred.predicted


def test_thresholds_chosen_at_each_p_decide_at_the_nearest_p(tmp_path, clips, media, models):
    table = {0.3: [0.0] * 6, 0.7: [1.0] * 6}
    folder = models.make_checkpoint(tmp_path / "table", thresholds=[0.5] * 6, thresholds_by_top_p=table)
    predictor = Predictor.load(folder, sparse_backend=BACKEND)
    prepared = predictor.prepare(clips["face"], media.TRANSCRIPT)
    low, high = predictor.run(prepared, 0.35), predictor.run(prepared, 0.9)
    assert low.threshold_source == "checkpoint, chosen on validation at p = 0.3" and len(low.predicted) == 6
    assert high.threshold_source == "checkpoint, chosen on validation at p = 0.7" and not high.predicted


def test_fe2e_ignores_top_p_and_has_no_trace(tmp_path, clips, models):
    predictor = Predictor.load(models.make_checkpoint(tmp_path / "fe2e", preset="fe2e_small"))
    prepared = predictor.prepare(clips["face"], None)  # FE2E accepts the sidecar (or no) text
    a, b = predictor.run(prepared, 0.2), predictor.run(prepared, 0.9)
    assert a.top_p is None and a.trace == {} and a.kept_fraction == {}
    assert a.flops.actual == a.flops.dense == b.flops.dense
    assert a.probabilities == b.probabilities
    assert predictor.sweep(prepared, [0.2, 0.9]) == []


def test_a_module_without_checkpoint_works_too(models, tmp_path, clips, media):
    from mesm_core import load_checkpoint

    model, _ = load_checkpoint(models.make_checkpoint(tmp_path / "m"), sparse_backend=BACKEND)
    pred = Predictor(model).predict(clips["face"], media.TRANSCRIPT, 0.5)
    assert pred.checkpoint == str(tmp_path / "m") and pred.top_p == 0.5


def test_a_binding_keep_floor_is_named_in_the_notes(clips, media):
    """Where the floor, not p, decides the faces' masks, the prediction says so (the slider would seem dead)."""
    import mesm_core

    torch.manual_seed(0)
    model = mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random",
                                   sparse_backend=BACKEND, min_keep_visual=0.9, min_keep_audio=0.0)
    predictor = Predictor(model)
    prepared = predictor.prepare(clips["face"], media.TRANSCRIPT)
    low = predictor.run(prepared, 0.3)
    floor_notes = [n for n in low.notes if "keep floor" in n]
    assert len(floor_notes) == 1 and "faces" in floor_notes[0] and "min_keep_visual" in floor_notes[0]
    assert low.kept_fraction["visual"][0] >= 0.9
    assert "layer 1" in floor_notes[0] and low.trace["visual"][0].floor_share > 0.5
    assert not [n for n in predictor.run(prepared, 1.0).notes if "keep floor" in n]
    paper = predictor.run(prepared, 0.3, keep_floor=False)   # the paper's rule: the nucleus alone
    assert not [n for n in paper.notes if "keep floor" in n]
    assert paper.kept_fraction["visual"][0] < low.kept_fraction["visual"][0]
    assert all(t.floor_share == 0.0 for t in paper.trace["visual"])


def test_no_face_clip_still_predicts(mesm, clips):
    pred = mesm.predict(clips["noface"], "nothing to see here", top_p=0.5)
    assert not pred.record.face_detected.any()
    assert pred.face_note and "No face detected" in pred.face_note
    assert any("No face" in n for n in pred.notes)
    assert len(pred.trace["audio"]) == 3 and np.isfinite(list(pred.probabilities.values())).all()


def test_skip_policy_gives_zero_face_frames(mesm, clips, tmp_path):
    from mesm_core.config import DataConfig

    pred = mesm.predict(clips["noface"], "hello there", 0.5, data_config=DataConfig(no_face_policy="skip"))
    assert pred.record.faces.shape[0] == 0 and "face view is empty" in pred.face_note
    assert pred.kept_fraction["visual"] == [0.0, 0.0, 0.0] and pred.kept_fraction["audio"][0] > 0
    body = json.loads(write_report(pred, tmp_path).read_text())
    assert body["clip"]["n_frames"] == 0 and "face view is empty" in body["face_note"]


# --- report (data only) and CLI ------------------------------------------------------------------

def test_report_folder_holds_data_only(mesm, prepared, tmp_path):
    pred = mesm.run(prepared, 0.5)
    path = write_report(pred, tmp_path / "rep", extra={"files": ["extra.bin"], "note": "from the caller"})
    body = json.loads(path.read_text())
    for key in ("probabilities", "top_p", "flops", "kept_fraction", "predicted", "thresholds", "checkpoint",
                "clip", "face_note", "files"):
        assert key in body, key
    assert set(body["probabilities"]) == set(mesm.classes) and body["top_p"] == 0.5
    assert body["flops"]["dense"] > body["flops"]["actual"] > 0
    assert body["flops"]["ratio"] == pytest.approx(pred.flops_ratio)
    assert [len(v) for v in body["kept_fraction"].values()] == [3, 3]
    assert body["files"] == ["report.json", "flops.csv", "extra.bin"] and body["note"] == "from the caller"
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["flops.csv", "report.json"]
    rows = (tmp_path / "rep" / "flops.csv").read_text().strip().splitlines()
    assert rows[0] == "modality,layer,dense,actual,ratio" and len(rows) == len(pred.flops.layers) + 2
    assert rows[-1].startswith("total,all,")


def test_cli_prints_and_writes_report(mesm_dir, clips, media, tmp_path, capsys):
    code = cli.main([str(clips["face"]), "--checkpoint", str(mesm_dir), "--top-p", "0.6",
                     "--report", str(tmp_path / "cli")])
    captured = capsys.readouterr()
    assert code == 0
    assert "FLOPs: dense" in captured.out and "predicted:" in captured.out and "happy" in captured.out
    assert "mesm_viz.report" in captured.err  # where the images come from
    body = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert body["top_p"] == 0.6 and body["clip"]["transcript"] == media.TRANSCRIPT  # from the sidecar


@pytest.mark.slow
def test_cli_runs_as_a_module_and_core_never_imports_viz(mesm_dir, clips, repo_root, tmp_path):
    code = ("import runpy, sys; sys.argv = ['predict', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('mesm_core.predict', run_name='__main__')\n"
            "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "assert not [m for m in sys.modules if m.startswith('mesm_viz')], 'core imported mesm_viz'\n")
    result = subprocess.run([sys.executable, "-c", code, str(clips["face"]), "--checkpoint", str(mesm_dir),
                             "--report", str(tmp_path / "out"), "--threads", "1"],
                            cwd=repo_root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "report.json").is_file() and "report:" in result.stdout


# --- errors ------------------------------------------------------------------------------------

def test_garbage_video_raises_clip_error(mesm, clips, media):
    from mesm_core.data.errors import ClipError, UnreadableMediaError
    from mesm_core.errors import InputError

    with pytest.raises(UnreadableMediaError) as info:
        mesm.predict(clips["garbage"], media.TRANSCRIPT)
    assert isinstance(info.value, ClipError) and isinstance(info.value, InputError)
    assert "garbage.mp4" in str(info.value)


@pytest.mark.parametrize("transcript", ["", "   "])
def test_mesm_needs_a_transcript(mesm, clips, transcript):
    from mesm_core.data.errors import EmptyTranscriptError

    with pytest.raises(EmptyTranscriptError, match="MESM needs"):
        mesm.prepare(clips["noface"], transcript)


def test_wrong_checkpoint_raises_checkpoint_error(tmp_path, clips, media):
    from mesm_core.checkpoint import CheckpointError

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError):
        predict(bad, clips["face"], media.TRANSCRIPT)
    with pytest.raises(CheckpointError):
        Predictor.load(tmp_path / "missing")


def test_cli_reports_bad_input_with_exit_code(mesm_dir, clips, capsys):
    code = cli.main([str(clips["garbage"]), "--checkpoint", str(mesm_dir), "--transcript", "hello"])
    assert code == 2 and "garbage.mp4" in capsys.readouterr().err


def test_default_checkpoint_outside_a_checkout_says_what_to_pass(clips, tmp_path, monkeypatch, capsys):
    from mesm_core import resources
    from mesm_core.errors import MissingResourceError

    assert resources.default_checkpoint() == resources.DEFAULT_CHECKPOINT  # this checkout has it
    monkeypatch.setattr(resources, "DEFAULT_CHECKPOINT", tmp_path / "absent")
    with pytest.raises(MissingResourceError, match="--checkpoint"):
        resources.default_checkpoint()
    assert cli.main([str(clips["face"]), "--transcript", "hello"]) == 2
    err = capsys.readouterr().err
    assert "default checkpoint is not here" in err and "--checkpoint DIR" in err


def test_top_p_out_of_range(mesm, prepared):
    with pytest.raises(ValueError, match="top_p"):
        mesm.run(prepared, 0.0)
