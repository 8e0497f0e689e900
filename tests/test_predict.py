"""mesm_core.predict: the one inference path (two stages, report writer, CLI, errors).

Clips are made on the fly (astronaut face + tone, PyAV), checkpoints are random-weight small presets
with the 2-layer random text encoder, so nothing here depends on the bundled demo checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mesm_core import predict as P
from tests.conftest import tiny_text
from tests.fixtures_media import blank_image, face_image, tone, write_video

TRANSCRIPT = "I am so happy today, this is wonderful"


# --- helpers shared with the app tests ------------------------------------------------------------

def _speechy_audio(seconds: float, seed: int = 0) -> np.ndarray:
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

    write_video(path, int(seconds * fps), fps=fps, frame=frame, audio=_speechy_audio(seconds))
    if transcript is not None:
        Path(path).with_suffix(".txt").write_text(transcript + "\n", encoding="utf-8")
    return Path(path)


def make_noface_clip(path: Path, seconds: float = 2.0, fps: int = 10) -> Path:
    write_video(path, int(seconds * fps), fps=fps, frame=blank_image(120, 160), audio=_speechy_audio(seconds, 1))
    return Path(path)


def make_checkpoint(folder: Path, preset: str = "mesm_small", thresholds: list[float] | None = None) -> Path:
    from mesm_core import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model(preset, **tiny_text())
    save_checkpoint(model, folder, thresholds=thresholds)
    return folder


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread, as the app runs: much faster on shared cores (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict_media")
    return {"face": make_face_clip(root / "face.mp4", seconds=2.0), "noface": make_noface_clip(root / "noface.mp4"),
            "garbage": _garbage(root / "garbage.mp4")}


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is not a video" * 100)
    return path


@pytest.fixture(scope="module")
def mesm_dir(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "mesm")


# The pure-torch backend: same numbers as spconv (tests/test_sparse_backends.py), no slow first calls on CPU.
BACKEND = "masked"


@pytest.fixture(scope="module")
def mesm(mesm_dir) -> P.LoadedModel:
    return P.load_model(mesm_dir, sparse_backend=BACKEND)


@pytest.fixture(scope="module")
def prepared(mesm, media) -> P.PreparedClip:
    return P.prepare(mesm, media["face"], TRANSCRIPT)


# --- prediction -----------------------------------------------------------------------------------

def test_prediction_contents(mesm, prepared):
    pred = P.run(mesm, prepared, 0.5)
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


def test_two_stages_equal_full_predict(mesm, media, prepared):
    full = P.predict(mesm, media["face"], TRANSCRIPT, top_p=0.4)
    staged = P.run(mesm, prepared, 0.4)
    assert full.probabilities == pytest.approx(staged.probabilities, abs=1e-5)
    assert full.flops.actual == pytest.approx(staged.flops.actual)
    for a, b in zip(full.trace["visual"], staged.trace["visual"]):
        np.testing.assert_array_equal(a.kept, b.kept)
    # Running the cheap stage again from the same prepared clip is deterministic.
    again = P.run(mesm, prepared, 0.4)
    assert again.logits == staged.logits


def test_higher_p_keeps_more_cells_and_costs_more(mesm, prepared):
    preds = {p: P.run(mesm, prepared, p) for p in (0.2, 0.6, 1.0)}
    dense = {pred.flops.dense for pred in preds.values()}
    assert len(dense) == 1, "dense FLOPs must not depend on p"
    actual = [preds[p].flops.actual for p in (0.2, 0.6, 1.0)]
    assert actual[0] < actual[1] < actual[2] <= preds[1.0].flops.dense * (1 + 1e-9)
    for modality in ("visual", "audio"):
        first = [int(preds[p].trace[modality][0].kept.sum()) for p in (0.2, 0.6, 1.0)]
        assert first[0] < first[1] < first[2]
        assert preds[1.0].kept_fraction[modality] == pytest.approx([1.0, 1.0, 1.0])


def test_sweep_matches_single_runs(mesm, prepared):
    rows = P.sweep_top_p(mesm, prepared, [0.3, 0.7])
    assert [r["top_p"] for r in rows] == [0.3, 0.7]
    assert rows[1]["actual"] == pytest.approx(P.run(mesm, prepared, 0.7).flops.actual)
    assert rows[0]["actual"] < rows[1]["actual"]


def test_retext_reuses_dense_features_and_moves_attention(mesm, prepared):
    other = P.retext(mesm, prepared, "the rain will not stop and nobody came")
    assert other.dense is prepared.dense and other.record.faces is prepared.record.faces
    assert other.transcript != prepared.transcript
    assert not torch.equal(other.text_cls, prepared.text_cls)
    before, after = P.run(mesm, prepared, 0.5), P.run(mesm, other, 0.5)
    # Random weights: the attention is near uniform, so the shift is small but must exist.
    for modality in ("visual", "audio"):
        shift = np.abs(before.trace[modality][0].attention - after.trace[modality][0].attention).max()
        assert shift > 0, modality
    assert before.probabilities != after.probabilities
    # Retexting back gives the original result exactly.
    back = P.run(mesm, P.retext(mesm, other, TRANSCRIPT), 0.5)
    assert back.probabilities == pytest.approx(before.probabilities, abs=1e-6)


def test_sidecar_transcript_is_used(mesm, media):
    assert P.resolve_transcript(media["face"], None) == TRANSCRIPT
    assert P.resolve_transcript(media["noface"], None) == ""


def test_checkpoint_thresholds_are_used(tmp_path, media):
    folder = make_checkpoint(tmp_path / "thr", thresholds=[0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    loaded = P.load_model(folder, sparse_backend=BACKEND)
    pred = P.run(loaded, P.prepare(loaded, media["face"], TRANSCRIPT), 0.5)
    assert pred.threshold_source == "checkpoint"
    assert pred.thresholds["anger"] == 0.0 and "anger" in pred.predicted
    assert "disgust" not in pred.predicted


def test_fe2e_ignores_top_p_and_has_no_trace(tmp_path, media):
    loaded = P.load_model(make_checkpoint(tmp_path / "fe2e", preset="fe2e_small"))
    prepared = P.prepare(loaded, media["face"], None)  # FE2E accepts the sidecar (or no) text
    a, b = P.run(loaded, prepared, 0.2), P.run(loaded, prepared, 0.9)
    assert a.top_p is None and a.trace == {} and a.kept_fraction == {}
    assert a.flops.actual == a.flops.dense == b.flops.dense
    assert a.probabilities == b.probabilities


def test_no_face_clip_still_predicts(mesm, media):
    pred = P.predict(mesm, media["noface"], "nothing to see here", top_p=0.5)
    assert not pred.record.face_detected.any()
    assert pred.face_note and "No face detected" in pred.face_note
    assert any("No face" in n for n in pred.notes)
    assert len(pred.trace["audio"]) == 3 and np.isfinite(list(pred.probabilities.values())).all()


def test_skip_policy_gives_zero_face_frames(mesm, media, tmp_path):
    from mesm_core.config import DataConfig
    from mesm_viz.logic import layer_grid_image, report_artefacts

    pred = P.predict(mesm, media["noface"], "hello there", 0.5, data_config=DataConfig(no_face_policy="skip"))
    assert pred.record.faces.shape[0] == 0 and "face view is empty" in pred.face_note
    assert pred.kept_fraction["visual"] == [0.0, 0.0, 0.0] and pred.kept_fraction["audio"][0] > 0
    assert layer_grid_image(pred, 0) is None
    body = json.loads(P.write_report(pred, tmp_path, artefacts=report_artefacts).read_text())
    assert body["facs"]["frame"] is None and "mel_masks.png" in body["files"]


# --- report and CLI --------------------------------------------------------------------------------

def test_report_folder(mesm, prepared, tmp_path):
    from mesm_viz.logic import report_artefacts

    pred = P.run(mesm, prepared, 0.5)
    path = P.write_report(pred, tmp_path / "rep", artefacts=report_artefacts)
    body = json.loads(path.read_text())
    for key in ("probabilities", "top_p", "flops", "kept_fraction", "predicted", "thresholds", "checkpoint",
                "clip", "facs", "files"):
        assert key in body, key
    assert set(body["probabilities"]) == set(mesm.classes) and body["top_p"] == 0.5
    assert body["flops"]["dense"] > body["flops"]["actual"] > 0
    assert [len(v) for v in body["kept_fraction"].values()] == [3, 3]
    assert body["facs"]["rows"] and body["facs"]["prototype"]["class"] in mesm.classes
    for name in ("report.json", "flops.csv", "face_layers.png", "facs_overlay.png", "mel_masks.png"):
        assert (tmp_path / "rep" / name).is_file(), name
        assert name in body["files"]
    rows = (tmp_path / "rep" / "flops.csv").read_text().strip().splitlines()
    assert rows[0] == "modality,layer,dense,actual,ratio" and len(rows) == len(pred.flops.layers) + 2


def test_cli_prints_and_writes_report(mesm_dir, media, tmp_path, capsys):
    code = P.main([str(media["face"]), "--checkpoint", str(mesm_dir), "--top-p", "0.6",
                   "--report", str(tmp_path / "cli")])
    out = capsys.readouterr().out
    assert code == 0
    assert "FLOPs: dense" in out and "predicted:" in out and "happy" in out
    body = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert body["top_p"] == 0.6 and body["clip"]["transcript"] == TRANSCRIPT  # from the sidecar


# --- errors ------------------------------------------------------------------------------------

def test_garbage_video_raises_clip_error(mesm, media):
    from mesm_core.data.errors import ClipError, UnreadableMediaError

    with pytest.raises(UnreadableMediaError) as info:
        P.predict(mesm, media["garbage"], TRANSCRIPT)
    assert isinstance(info.value, ClipError) and "garbage.mp4" in str(info.value)


@pytest.mark.parametrize("transcript", ["", "   "])
def test_mesm_needs_a_transcript(mesm, media, transcript):
    from mesm_core.data.errors import EmptyTranscriptError

    with pytest.raises(EmptyTranscriptError, match="MESM needs"):
        P.prepare(mesm, media["noface"], transcript)


def test_wrong_checkpoint_raises_checkpoint_error(tmp_path, media):
    from mesm_core.checkpoint import CheckpointError

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError):
        P.predict(bad, media["face"], TRANSCRIPT)
    with pytest.raises(CheckpointError):
        P.load_model(tmp_path / "missing")


def test_cli_reports_bad_input_with_exit_code(mesm_dir, media, capsys):
    code = P.main([str(media["garbage"]), "--checkpoint", str(mesm_dir), "--transcript", "hello"])
    assert code == 2 and "garbage.mp4" in capsys.readouterr().err


def test_top_p_out_of_range(mesm, prepared):
    with pytest.raises(ValueError, match="top_p"):
        P.run(mesm, prepared, 0.0)
