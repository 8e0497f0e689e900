"""Dataset sources on tiny fixture trees mimicking the raw and processed IEMOCAP / CMU-MOSEI layouts."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

from mesm_core.config import IEMOCAP_CLASSES, MOSEI_CLASSES, DataConfig
from mesm_core.data import DataSourceError, UnsafePickleError, build_source, load_safe_pickle, parse_mosei_id
from mesm_core.data.iemocap import parse_emo_evaluation, parse_transcription, reference_half_crop, speaker_side
from mesm_core.data.mosei import read_label_csvs

LEFT_VALUE, RIGHT_VALUE = 40, 200


def _split_screen(height=96, width=192):
    frame = np.full((height, width, 3), LEFT_VALUE, np.uint8)
    frame[:, width // 2:] = RIGHT_VALUE
    return frame


def _side_of(record) -> str:
    value = float(np.median(record.faces))
    return "left" if abs(value - LEFT_VALUE) < abs(value - RIGHT_VALUE) else "right"


@pytest.fixture(scope="module")
def iemocap_raw(media, tmp_path_factory):
    root = tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release"
    dialogs = {
        "Ses01F_impro01": [("[0.5000 - 1.6000]", "Ses01F_impro01_F000", "ang", "Hello: there."),
                           ("[1.7000 - 3.1000]", "Ses01F_impro01_M000", "neu", "Hi."),
                           ("[3.2000 - 3.9000]", "Ses01F_impro01_F001", "xxx", "Bye.")],
        "Ses01M_script01_1": [("[0.0000 - 1.0000]", "Ses01M_script01_1_F003", "sad", "Oh no.")],
    }
    stereo = np.stack([media.tone(4.0, freq=300), np.zeros(64000, np.float32)], axis=1)  # ch0 loud, ch1 silent
    for dialog, rows in dialogs.items():
        base = root / "Session1" / "dialog"
        media.write_video(base / "avi" / "DivX" / f"{dialog}.avi", 40, fps=10, frame=_split_screen())
        media.write_wav(base / "wav" / f"{dialog}.wav", stereo)
        (base / "transcriptions").mkdir(parents=True, exist_ok=True)
        (base / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
        (base / "transcriptions" / f"{dialog}.txt").write_text(
            "".join(f"{u} [{t[1:7]}-{t[10:16]}]: {text}\n" for t, u, _, text in rows) + "M: [BREATHING]\n")
        emo = "% header\n\n" + "".join(f"{t}\t{u}\t{lab}\t[2.5000, 3.0000, 3.5000]\nC-E1:\tAnger;\t()\n\n"
                                       for t, u, lab, _ in rows)
        (base / "EmoEvaluation" / f"{dialog}.txt").write_text(emo)
    return root


def test_iemocap_parsers(iemocap_raw):
    rows = parse_emo_evaluation(iemocap_raw / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt")
    assert rows[0] == (0.5, 1.6, "Ses01F_impro01_F000", "ang", (2.5, 3.0, 3.5)) and len(rows) == 3
    texts = parse_transcription(iemocap_raw / "Session1/dialog/transcriptions/Ses01F_impro01.txt")
    assert texts["Ses01F_impro01_F000"] == "Hello: there."  # a colon inside the text survives
    assert "M:" not in texts


@pytest.mark.parametrize("utt,expected", [
    ("Ses01F_impro01_F000", ("left", 0)), ("Ses01F_impro01_M000", ("right", 1)),
    ("Ses01M_script01_1_F003", ("right", 1)), ("Ses05M_impro06_M004", ("left", 0)),
])
def test_speaker_rule(utt, expected):
    assert speaker_side(utt) == expected


def test_reference_half_crop_on_full_size_frames():
    assert reference_half_crop(480, 720, "left") == (68, 128, 292, 352)
    assert reference_half_crop(480, 720, "right") == (428, 128, 652, 352)


def test_iemocap_raw_jobs_cut_label_and_pick_the_speaker(media, iemocap_raw):
    scan = build_source("iemocap", iemocap_raw.parent)  # the parent of IEMOCAP_full_release works too
    jobs = {job.id: job for job in scan.jobs}
    assert sorted(jobs) == ["Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01M_script01_1_F003"]
    assert scan.skipped["label 'xxx' not in the classes"] == 1
    assert scan.classes == IEMOCAP_CLASSES
    np.testing.assert_array_equal(jobs["Ses01F_impro01_F000"].labels, [1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(jobs["Ses01M_script01_1_F003"].labels, [0, 0, 0, 0, 0, 1])
    detector = media.NoFaceDetector()
    expectations = {"Ses01F_impro01_F000": ("left", False, 0.5, 1.6),
                    "Ses01F_impro01_M000": ("right", True, 1.7, 3.1),
                    "Ses01M_script01_1_F003": ("right", True, 0.0, 1.0)}
    for utt, (side, silent, start, end) in expectations.items():
        record = jobs[utt].run(DataConfig(), detector)
        assert _side_of(record) == side, utt
        assert record.meta["audio_silent"] is silent, utt  # channel 0 carries the tone, channel 1 is silent
        assert record.meta["start_s"] == pytest.approx(start) and record.meta["end_s"] == pytest.approx(end)
        assert len(record.faces) == int(np.ceil((end - start) / 0.5 - 1e-9))
        assert record.frame_size == (96, 96)
        np.testing.assert_array_equal(record.labels, jobs[utt].labels)
    assert jobs["Ses01F_impro01_F000"].run(DataConfig(), detector).transcript == "Hello: there."


@pytest.fixture(scope="module")
def iemocap_processed(media, tmp_path_factory):
    root = tmp_path_factory.mktemp("iemocap_proc") / "IEMOCAP_RAW_PROCESSED"
    meta = {}
    for utt, label in [("Ses01F_impro01_F000", "hap"), ("Ses01F_impro01_M000", "fru"), ("Ses01F_impro01_M001", "oth")]:
        folder = root / "Ses01F_impro01" / utt
        media.write_jpegs(folder, [np.full((32, 32, 3), LEFT_VALUE, np.uint8)] * 45, "image_L_{i}.jpg")
        media.write_jpegs(folder, [np.full((32, 32, 3), RIGHT_VALUE, np.uint8)] * 45, "image_R_{i}.jpg")
        media.write_wav(folder / "audio_L.wav", media.tone(1.5))
        media.write_wav(folder / "audio_R.wav", np.zeros(24000, np.float32))
        media.write_wav(folder / "audio.wav", np.stack([media.tone(1.5), np.zeros(24000)], axis=1))
        meta[utt] = {"start_time": 1.0, "end_time": 2.5, "label": label, "text": f"text of {utt}", "sr": 16000,
                     "fps": 30.0}
    meta["Ses01F_impro02_F000"] = {"label": "neu", "text": "no folder"}
    (root / "meta.pkl").write_bytes(pickle.dumps(meta))
    return root


def test_iemocap_processed_jobs(media, iemocap_processed):
    scan = build_source("iemocap-processed", iemocap_processed)
    jobs = {job.id: job for job in scan.jobs}
    assert sorted(jobs) == ["Ses01F_impro01_F000", "Ses01F_impro01_M000"]
    assert scan.skipped["label 'oth' not in the classes"] == 1 and scan.skipped["meta.pkl entry without a folder"] == 1
    left = jobs["Ses01F_impro01_F000"].run(DataConfig(), media.NoFaceDetector())
    right = jobs["Ses01F_impro01_M000"].run(DataConfig(), media.NoFaceDetector())
    assert left.meta["image_indices"] == [0, 15, 30]  # every 15th of ~30 fps frames = 2 fps
    assert _side_of(left) == "left" and not left.meta["audio_silent"]
    assert _side_of(right) == "right" and right.meta["audio_silent"]
    assert left.transcript == "text of Ses01F_impro01_F000"
    np.testing.assert_array_equal(left.labels, [0, 0, 0, 1, 0, 0])


@pytest.fixture(scope="module")
def mosei_processed(media, tmp_path_factory):
    root = tmp_path_factory.mktemp("mosei_proc") / "MOSEI_RAW_PROCESSED"
    meta = {}
    for utt, label in [("-3g5yACwYnA_10", [0, 1, 0, 0.33, 0, 0]), ("a_b_c_2", [0, 0, 0, 0, 0, 0])]:
        media.write_jpegs(root / utt, [np.full((32, 32, 3), 10 + 8 * i, np.uint8) for i in range(5)])
        media.write_wav(root / utt / "audio.wav", media.tone(2.5))
        meta[utt] = {"text": f"words {utt}", "label": np.array(label)}
    (root / "meta.pkl").write_bytes(pickle.dumps(meta))
    return root


def test_mosei_processed_uses_every_2fps_frame(media, mosei_processed):
    scan = build_source("mosei-processed", mosei_processed.parent)
    jobs = {job.id: job for job in scan.jobs}
    assert sorted(jobs) == ["-3g5yACwYnA_10", "a_b_c_2"]
    np.testing.assert_array_equal(jobs["-3g5yACwYnA_10"].labels, [0, 1, 0, 1, 0, 0])
    record = jobs["-3g5yACwYnA_10"].run(DataConfig(), media.NoFaceDetector())
    assert record.meta["image_indices"] == [0, 1, 2, 3, 4]  # not subsampled again (reference bug)
    assert record.id == "-3g5yACwYnA_10"


@pytest.fixture(scope="module")
def mosei_raw(media, tmp_path_factory):
    root = tmp_path_factory.mktemp("mosei_raw") / "MOSEI_Raw"
    vid = "-ab_cd"
    media.write_video(root / "Videos/Full/Combined" / f"{vid}.mp4", 40, fps=10, audio=media.tone(4.0))
    media.write_wav(root / "Audio/WAV_16000" / f"{vid}.wav", media.tone(4.0, freq=200))
    (root / "Transcript/Combined").mkdir(parents=True)
    (root / "Transcript/Combined" / f"{vid}.txt").write_text(
        f"{vid}___0___0.0___1.2___first words\n{vid}___1___1.5___3.0___second___part\n{vid}___2___3.0___3.5___x\n")
    (root / "Labels").mkdir(parents=True)
    header = "Input.VIDEO_ID,Input.CLIP," + ",".join(
        f"Answer.{e}" for e in ("anger", "disgust", "fear", "happiness", "sadness", "surprise"))
    (root / "Labels/batch1.csv").write_text(
        header + f"\n{vid},0,0,0,0,1,0,0\n{vid},0,0,0,0,0,0,2\n{vid},1,0,0,0,0,0,0\n{vid},1,,0,0,0,0,0\n")
    (root / "Labels/other.csv").write_text("foo,bar\n1,2\n")
    return root


def test_mosei_ids_parse():
    assert parse_mosei_id("-3g5yACwYnA_10") == ("-3g5yACwYnA", "10")
    assert parse_mosei_id("a_b_c_2") == ("a_b_c", "2")
    with pytest.raises(ValueError):
        parse_mosei_id("noclip")


def test_mosei_labels_present_iff_sum_positive(mosei_raw):
    labels = read_label_csvs(mosei_raw / "Labels")
    np.testing.assert_array_equal(labels["-ab_cd_0"], [0, 0, 0, 1, 0, 1])
    np.testing.assert_array_equal(labels["-ab_cd_1"], [0, 0, 0, 0, 0, 0])


def test_mosei_raw_jobs(media, mosei_raw):
    scan = build_source("mosei", mosei_raw.parent)
    jobs = {job.id: job for job in scan.jobs}
    assert sorted(jobs) == ["-ab_cd_0", "-ab_cd_1"]
    assert scan.skipped["segment without labels"] == 1 and scan.classes == MOSEI_CLASSES
    assert jobs["-ab_cd_1"].transcript == "second___part"
    record = jobs["-ab_cd_0"].run(DataConfig(), media.NoFaceDetector())
    assert record.meta["start_s"] == 0.0 and record.meta["end_s"] == pytest.approx(1.2)
    assert record.meta["audio_path"].endswith("-ab_cd.wav") and len(record.faces) == 3


def test_folder_source(media, tmp_path):
    media.write_video(tmp_path / "clips" / "a.mkv", 10, audio=media.tone(1.0))
    (tmp_path / "clips" / "a.txt").write_text("from sidecar")
    media.write_video(tmp_path / "clips" / "b.mkv", 10, audio=media.tone(1.0))
    (tmp_path / "labels.csv").write_text("id,video,transcript,split,happy,sad\n"
                                         "a,clips/a.mkv,,train,1,0\nb,clips/b.mkv,said b,dev,0,1\n"
                                         "c,clips/missing.mkv,x,test,0,0\n")
    scan = build_source("folder", tmp_path)
    assert scan.classes == ("happy", "sad") and scan.has_splits
    jobs = {job.id: job for job in scan.jobs}
    assert jobs["a"].split == "train" and jobs["b"].split == "valid"
    assert scan.skipped["video file missing"] == 1
    assert jobs["a"].run(DataConfig(), media.NoFaceDetector()).transcript == "from sidecar"


def test_folder_source_rejects_bad_tables(tmp_path):
    (tmp_path / "labels.csv").write_text("id,video,transcript\na,a.mp4,x\n")
    with pytest.raises(DataSourceError, match="no class columns"):
        build_source("folder", tmp_path)
    (tmp_path / "labels.csv").write_text("id,video,happy\na,a.mp4,yes\n")
    with pytest.raises(DataSourceError, match="labels.csv:2"):
        build_source("folder", tmp_path)


@pytest.mark.parametrize("name", ["iemocap", "iemocap-processed", "mosei", "mosei-processed", "folder"])
def test_missing_source_is_a_clear_error(tmp_path, name):
    with pytest.raises(DataSourceError, match=str(tmp_path / "absent")):
        build_source(name, tmp_path / "absent")


def test_safe_pickle_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    path = tmp_path / "meta.pkl"
    path.write_bytes(pickle.dumps({"utt": {"text": Evil()}}))
    with pytest.raises(UnsafePickleError, match="shutil.rmtree") as info:
        load_safe_pickle(path)
    assert info.value.path == str(path) and (tmp_path / "victim").is_dir()


def test_safe_pickle_reads_plain_data_and_numpy(tmp_path):
    data = {"a": {"text": "hi", "label": np.array([0.0, 1.5]), "n": np.int64(3), "ok": True, "x": None,
                  "t": (1, 2.5), "l": [1, "two"]}}
    path = tmp_path / "meta.pkl"
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        loaded = load_safe_pickle(path)
        np.testing.assert_array_equal(loaded["a"]["label"], [0.0, 1.5])
        assert loaded["a"]["n"] == 3 and loaded["a"]["t"] == (1, 2.5) and loaded["a"]["l"] == [1, "two"]
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(UnsafePickleError, match="not a readable pickle"):
        load_safe_pickle(path)
