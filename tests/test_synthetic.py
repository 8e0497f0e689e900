"""The embedded synthetic dataset: determinism, balance, cue regions, media format, detection, cue mapping."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from mesm_core.config import MOSEI_CLASSES, DataConfig
from mesm_core.data.synthetic import audio as synth_audio
from mesm_core.data.synthetic import faces as synth_faces
from mesm_core.data.synthetic import (
    SAMPLE_SPECS,
    SynthConfig,
    attach_cues,
    ensure_dataset,
    generate,
    load_cues,
    make_samples,
    plan_dataset,
    read_dataset_json,
)
from mesm_core.data.synthetic.text import EMOTION_WORDS, make_transcript

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "assets" / "samples"

# Every clip shows its expression and carries its audio cue, one class per clip, short clips:
# 6 clips = one per class (the plan is round-robin over classes).
TINY = SynthConfig(duration_range=(2.0, 2.5), p_two_labels=0.0, p_visual=1.0, p_audio=1.0)

# FACS regions in the five-point face frame (s: lateral in inter-ocular units, t: 0 = eyes, 1 = mouth),
# as docs/facs.md ("Face frame", "Region table") defines them, slightly padded. (s_lo, s_hi, t_lo, t_hi, mirrored in s)
REGIONS = {
    "brows": (-1.05, 1.05, -1.1, 0.0, False),      # forehead, brows, glabella (AU1, AU2, AU4: lowered to the lid line)
    "eyes": (0.1, 0.95, -0.3, 0.3, True),          # lids and eye opening (AU5, AU7)
    "cheeks": (0.3, 1.2, -0.1, 0.75, True),        # cheeks, lower lids, crow's feet (AU6)
    "nose": (-0.45, 0.45, -0.1, 0.85, False),      # nose root, bridge, alae (AU9)
    "mouth": (-0.9, 0.9, 0.6, 1.5, False),         # upper lip, lip corners, lips (AU10-25)
    "jaw": (-0.9, 0.9, 1.0, 2.2, False),           # jaw drop, chin (AU26, AU16)
}
EXPECTED_REGIONS = {
    "anger": ("brows", "eyes", "mouth"),
    "disgust": ("nose", "mouth", "jaw"),
    "fear": ("brows", "eyes", "mouth", "jaw"),
    "happy": ("cheeks", "eyes", "mouth"),
    "sad": ("brows", "mouth"),
    "surprise": ("brows", "eyes", "mouth", "jaw"),
}


def _region(name: str, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    s_lo, s_hi, t_lo, t_hi, mirrored = REGIONS[name]
    ss = np.abs(s) if mirrored else s
    return (ss >= s_lo) & (ss <= s_hi) & (t >= t_lo) & (t <= t_hi)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic") / "src"
    return generate(out, n_clips=6, seed=3, workers=2, config=TINY)


@pytest.fixture(scope="module")
def tiny_rows(tiny_dataset) -> list[dict]:
    with open(tiny_dataset / "labels.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _labels(row: dict) -> list[str]:
    return [c for c in MOSEI_CLASSES if row[c] == "1"]


@pytest.fixture(scope="module")
def tiny_records(tiny_dataset, tiny_rows):
    """The data pipeline's real path (PyAV decode, MTCNN, mel) + attach_cues, once for the module."""
    from mesm_core.data.clip import preprocess_clip
    from mesm_core.data.faces import FaceDetector

    detector = FaceDetector()
    records = {}
    for row in tiny_rows:
        record = preprocess_clip(tiny_dataset / row["video"], row["transcript"], detector=detector, clip_id=row["id"])
        records[row["id"]] = attach_cues(record, tiny_dataset, DataConfig())
    return records


# --- constants and planning (no rendering) --------------------------------------------------------

def test_astronaut_constants_match_mtcnn():
    from facenet_pytorch import MTCNN
    from skimage import data

    boxes, probs, points = MTCNN(image_size=48, margin=2, post_process=False).detect(data.astronaut(), landmarks=True)
    box = np.asarray(boxes[0], dtype=np.float64)
    marks = np.asarray(points[0], dtype=np.float64)
    np.testing.assert_allclose(box, synth_faces.ASTRONAUT_BOX, atol=0.5)
    np.testing.assert_allclose(marks, synth_faces.ASTRONAUT_LANDMARKS, atol=0.5)
    assert float(probs[0]) > 0.999
    # MTCNN order: image-left eye first, image-left mouth corner first.
    assert marks[0, 0] < marks[1, 0] and marks[3, 0] < marks[4, 0]


def test_plan_balance_splits_and_modalities():
    plans = plan_dataset(1200, seed=0)
    primary = [p.labels[0] for p in plans]
    assert {c: primary.count(c) for c in MOSEI_CLASSES} == {c: 200 for c in MOSEI_CLASSES}
    splits = [p.split for p in plans]
    assert (splits.count("train"), splits.count("valid"), splits.count("test")) == (840, 120, 240)
    for c in MOSEI_CLASSES:  # stratified: every class in every split
        assert {p.split for p in plans if p.labels[0] == c} == {"train", "valid", "test"}
    two = sum(len(p.labels) == 2 for p in plans) / len(plans)
    assert 0.1 < two < 0.2
    assert all(len(set(p.labels)) == len(p.labels) for p in plans)
    visual = np.mean([p.visual_cue for p in plans])
    audio = np.mean([p.audio_cue for p in plans])
    text = np.mean([p.text_cue for p in plans])
    assert 0.75 < visual < 0.85 and 0.7 < audio < 0.8 and 0.5 < text < 0.6
    assert all(p.visual_cue or p.audio_cue or p.text_cue for p in plans)
    assert len({p.clip_id for p in plans}) == len(plans)


def test_plan_is_deterministic_and_seed_dependent():
    assert plan_dataset(50, seed=1) == plan_dataset(50, seed=1)
    assert plan_dataset(50, seed=1) != plan_dataset(50, seed=2)


@pytest.mark.parametrize("cls", MOSEI_CLASSES)
def test_face_cue_mask_lies_in_facs_regions(cls):
    mask = synth_faces.emotion_masks()[cls]
    ys, xs = np.mgrid[0:synth_faces.CANON_SIZE, 0:synth_faces.CANON_SIZE]
    s, t = synth_faces.canonical_frame().to_face(np.stack([xs, ys], axis=-1))
    allowed = np.zeros_like(mask)
    for name in EXPECTED_REGIONS[cls]:
        region = _region(name, s, t)
        allowed |= region
        # every expected region carries part of the evidence
        assert (mask & region).sum() >= 0.05 * mask.sum(), (cls, name)
    assert (mask & allowed).sum() >= 0.97 * mask.sum()
    for name in set(REGIONS) - set(EXPECTED_REGIONS[cls]) - {"nose", "cheeks", "jaw", "eyes"}:
        assert (mask & _region(name, s, t)).sum() <= 0.02 * mask.sum(), (cls, name)


def test_emotions_look_different_where_their_cues_are():
    """Any two prototypes differ visibly inside their cue regions (fear and surprise share most
    regions, as their FACS prototypes do, and differ in what happens there)."""
    masks = synth_faces.emotion_masks()
    renders = {c: synth_faces.render_expression(synth_faces.EMOTION_AUS[c]) for c in MOSEI_CLASSES}
    neutral = synth_faces.render_expression({})
    for a in MOSEI_CLASSES:
        assert np.abs(renders[a] - neutral).mean(-1)[masks[a]].mean() > 12.0, a
        for b in MOSEI_CLASSES:
            if a < b:
                union = masks[a] | masks[b]
                assert np.abs(renders[a] - renders[b]).mean(-1)[union].mean() > 10.0, (a, b)
    for cls, aus in synth_faces.EMFACS_PROTOTYPES.items():
        assert {f"AU{n}" for n in aus} <= set(synth_faces.EMOTION_AUS[cls])


@pytest.mark.parametrize("cls", MOSEI_CLASSES)
def test_mel_cue_rows_are_the_class_band(cls):
    boxes = np.array([[0.5, 1.2, *synth_audio.CUE_BANDS[cls]]], np.float32)
    mask = synth_audio.mel_cue_mask(boxes, 200)
    rows = np.flatnonzero(mask.any(axis=1))
    centres = synth_audio.mel_centre_frequencies()
    lo, hi = synth_audio.CUE_BANDS[cls]
    assert len(rows) >= 4 and np.all(np.diff(rows) == 1)
    assert centres[rows[0]] >= lo and centres[rows[-1]] <= hi
    cols = np.flatnonzero(mask.any(axis=0))
    assert cols[0] == 40 and cols[-1] == 96  # frames centred at 0.5 s .. 1.2 s (hop 12.5 ms)


def test_cue_bands_do_not_overlap():
    bands = [synth_audio.CUE_BANDS[c] for c in MOSEI_CLASSES]
    for (lo1, hi1), (lo2, hi2) in zip(bands, bands[1:]):
        assert lo1 < hi1 < lo2 < hi2


def test_transcripts_carry_emotion_words_only_when_the_text_cue_is_present():
    rng = np.random.default_rng(0)
    every_word = [w for words in EMOTION_WORDS.values() for w in words]
    for i in range(300):
        cls = MOSEI_CLASSES[i % 6]
        present = bool(i % 2)
        text, used = make_transcript(rng, [cls], present)
        found = [w for w in every_word if re.search(rf"\b{re.escape(w)}\b", text.lower())]
        if present:
            assert used and used[0] in EMOTION_WORDS[cls] and used[0] in text
        else:
            assert not used and not found, text


# --- the generated files ------------------------------------------------------------------------

@pytest.mark.slow
def test_layout_labels_and_dataset_json(tiny_dataset, tiny_rows):
    assert list(tiny_rows[0]) == ["id", "video", "transcript", "split", *MOSEI_CLASSES]
    assert sorted(_labels(r)[0] for r in tiny_rows) == sorted(MOSEI_CLASSES)
    for row in tiny_rows:
        assert (tiny_dataset / row["video"]).is_file()
        assert (tiny_dataset / "cues" / f"{row['id']}.npz").is_file()
        assert row["split"] in ("train", "valid", "test") and row["transcript"]
    meta = read_dataset_json(tiny_dataset)
    assert meta["seed"] == 3 and meta["n_clips"] == 6 and meta["classes"] == list(MOSEI_CLASSES)
    assert meta["version"] >= 1
    assert not [p for p in tiny_dataset.parent.iterdir() if p.name.startswith(".src.")]  # no temp dirs left


@pytest.mark.slow
def test_videos_are_h264_aac_and_decode(tiny_dataset, tiny_rows):
    import av

    for row in tiny_rows:
        cues = load_cues(tiny_dataset / "cues" / f"{row['id']}.npz")
        with av.open(str(tiny_dataset / row["video"])) as container:
            video, sound = container.streams.video[0], container.streams.audio[0]
            assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
            assert sound.codec_context.name == "aac" and sound.rate == 16000 and sound.channels == 1
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == cues.n_frames
        assert frames[0].shape == (TINY.size, TINY.size, 3)


@pytest.mark.slow
def test_generation_is_deterministic(tiny_dataset, tiny_rows, tmp_path):
    import av

    again = generate(tmp_path / "again", n_clips=6, seed=3, workers=1, config=TINY)
    assert (again / "labels.csv").read_bytes() == (tiny_dataset / "labels.csv").read_bytes()
    assert (again / "dataset.json").read_bytes() == (tiny_dataset / "dataset.json").read_bytes()
    for row in tiny_rows:
        a = np.load(tiny_dataset / "cues" / f"{row['id']}.npz")
        b = np.load(again / "cues" / f"{row['id']}.npz")
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        firsts = []
        for root in (tiny_dataset, again):
            with av.open(str(root / row["video"])) as container:
                firsts.append(next(container.decode(video=0)).to_ndarray(format="rgb24"))
        np.testing.assert_array_equal(firsts[0], firsts[1])


@pytest.mark.slow
def test_another_seed_gives_other_clips(tiny_dataset, tmp_path):
    other = generate(tmp_path / "other", n_clips=2, seed=4, config=TINY, workers=1)
    assert (other / "labels.csv").read_bytes() != (tiny_dataset / "labels.csv").read_bytes()


@pytest.mark.slow
def test_audio_cue_energy_sits_in_the_box(tiny_dataset, tiny_records):
    for clip_id, record in tiny_records.items():
        mask = record.mel_cues
        assert mask.shape == record.mel.shape and mask.any()
        cues = load_cues(tiny_dataset / "cues" / f"{clip_id}.npz")
        rows = np.flatnonzero(mask.any(axis=1))
        lo, hi = synth_audio.CUE_BANDS[cues.labels[0]]
        centres = synth_audio.mel_centre_frequencies()
        assert centres[rows].min() >= lo and centres[rows].max() <= hi
        log_mel = np.log(record.mel + 1e-10)
        band = log_mel[rows]
        inside = band[:, mask.any(axis=0)].mean()
        outside = band[:, ~mask.any(axis=0)].mean()
        assert inside > outside + 2.0, (clip_id, inside, outside)  # ≥ 2 nats ≈ 8.7 dB


# --- the real MTCNN path and cue mapping -----------------------------------------------------------

@pytest.mark.slow
def test_mtcnn_detects_faces_in_at_least_90_percent_of_frames(tiny_records):
    detected = np.concatenate([r.face_detected for r in tiny_records.values()])
    assert len(detected) >= 24
    assert detected.mean() >= 0.9, f"{detected.sum()}/{len(detected)} frames with a face"


@pytest.mark.slow
def test_attach_cues_shapes_and_consistency(tiny_dataset, tiny_records):
    from mesm_core.data.faces import crop_region

    for clip_id, record in tiny_records.items():
        n = len(record.faces)
        assert record.face_cues.shape == (n, 48, 48) and record.face_cues.dtype == bool
        assert record.mel_cues.dtype == bool
        cues = load_cues(tiny_dataset / "cues" / f"{clip_id}.npz")
        for f in range(n):
            index = cues.frame_index(float(record.frame_times[f]))
            if not cues.active[index].any():
                assert not record.face_cues[f].any()  # before the onset: no evidence, no cue
                continue
            if record.face_detected[f]:
                # the same region as the face pixels: a nearest-neighbour crop of the frame mask agrees
                # up to boundary pixels, and better than any copy shifted by 2 crop pixels
                nearest = crop_region(cues.frame_mask(index), record.face_boxes[f])
                mine = record.face_cues[f]

                def iou(other):
                    return (other & mine).sum() / max((other | mine).sum(), 1)

                aligned = iou(nearest)
                assert aligned > 0.75, (clip_id, f, aligned)
                for dy, dx in ((2, 0), (-2, 0), (0, 2), (0, -2)):
                    assert iou(np.roll(nearest, (dy, dx), axis=(0, 1))) < aligned, (clip_id, f, dy, dx)
        assert record.face_cues.any(), clip_id  # every tiny clip shows its expression at some sample


# Crop landmarks (image-left eye, image-right eye, nose, mouth corners) near which each class has cues.
CUE_LANDMARKS = {
    "anger": (0, 1),
    "disgust": (2, 3, 4),
    "fear": (0, 1, 3, 4),
    "happy": (3, 4),
    "sad": (3, 4),
    "surprise": (0, 1),
}


@pytest.mark.slow
def test_attach_cues_aligns_with_the_crop(tiny_rows, tiny_records):
    """The cue mask sits where the face shows it: checked against MTCNN's own crop landmarks."""
    for row in tiny_rows:
        cls = _labels(row)[0]
        record = tiny_records[row["id"]]
        frames = [f for f in range(len(record.faces)) if record.face_cues[f].any() and record.face_detected[f]]
        assert frames, row["id"]
        for f in frames:
            mask = record.face_cues[f]
            ys, xs = np.nonzero(mask)
            for point in CUE_LANDMARKS[cls]:
                x, y = record.landmarks[f, point]
                assert (np.hypot(xs + 0.5 - x, ys + 0.5 - y) <= 4.0).any(), (cls, f, point)
            top = mask[:16].sum() / mask.sum()      # forehead and brows
            lower = mask[24:].sum() / mask.sum()    # below the nose tip
            if cls in ("happy", "disgust"):
                assert top <= 0.02 and lower >= 0.6, (cls, top, lower)
            else:
                assert top >= 0.1, (cls, top)


@pytest.mark.slow
def test_attach_cues_missing_file_names_it(tiny_records, tmp_path):
    record = next(iter(tiny_records.values()))
    with pytest.raises(FileNotFoundError, match="no cue file"):
        attach_cues(record, tmp_path)


# --- ensure_dataset, samples ---------------------------------------------------------------------

@pytest.mark.parametrize("asked", [{}, {"n_clips": 2}, {"seed": 5}, {"n_clips": 2, "seed": 5, "workers": 2}])
def test_ensure_dataset_keeps_what_is_there_unless_told_otherwise(tmp_path, asked):
    """A folder made with other parameters than the defaults (here 2 clips, seed 5) is used as it is when
    the caller asks for nothing else: no silent regeneration with 1,200 clips over the user's data."""
    import warnings

    src = tmp_path / "syn"
    generate(src, n_clips=2, seed=5, workers=1, config=TINY)
    before = {p.name: p.stat().st_mtime_ns for p in src.rglob("*")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # keeping a dataset says nothing
        assert ensure_dataset(src, **{"workers": 1, **asked}) == src
    assert {p.name: p.stat().st_mtime_ns for p in src.rglob("*")} == before


def test_ensure_dataset_generates_once_and_refuses_foreign_dirs(tmp_path):
    src = tmp_path / "syn"
    ensure_dataset(src, n_clips=2, seed=5, workers=1)
    stamp = (src / "labels.csv").stat().st_mtime_ns
    assert ensure_dataset(src, n_clips=2, seed=5, workers=1) == src
    assert (src / "labels.csv").stat().st_mtime_ns == stamp  # matching dataset.json: not regenerated
    with pytest.warns(UserWarning, match="replacing the synthetic dataset.*n_clips 2 → 3"):
        ensure_dataset(src, n_clips=3, seed=5, workers=1)      # other parameters asked for: regenerated, said so
    assert json.loads((src / "dataset.json").read_text())["n_clips"] == 3
    assert len(list((src / "videos").iterdir())) == 3
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a synthetic dataset"):
        ensure_dataset(foreign, n_clips=2, seed=5, workers=1)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(FileExistsError):
        generate(foreign, n_clips=1, seed=5, workers=1)


def _probe(path: Path) -> tuple[str, str, float]:
    import av

    with av.open(str(path)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        return video.codec_context.name, sound.codec_context.name, float(container.duration) / 1e6


def test_committed_samples_are_small_playable_and_labelled():
    manifest = json.loads((SAMPLES / "samples.json").read_text())
    entries = manifest["samples"]
    assert 1 <= len(entries) <= 6
    assert {label for e in entries for label in e["labels"]} == set(MOSEI_CLASSES)
    readme = (SAMPLES / "README.md").read_text()
    durations = []
    for entry in entries:
        path = SAMPLES / entry["file"]
        assert path.stat().st_size < 300 * 1024
        assert (SAMPLES / entry["transcript_file"]).read_text().strip() == entry["transcript"]
        assert entry["file"] in readme and entry["id"].startswith("demo-")
        video, sound, duration = _probe(path)
        assert (video, sound) == ("h264", "aac")
        durations.append(duration)
    assert any(9.5 <= d <= 10.5 for d in durations)  # the latency benchmark's 10-second clip
    assert all(d >= 3.0 for d in durations)


def test_make_samples_reproduces_the_committed_transcripts(tmp_path):
    # Regenerating only the first sample keeps this cheap.
    entries = make_samples(tmp_path, specs=SAMPLE_SPECS[:1])
    committed = json.loads((SAMPLES / "samples.json").read_text())["samples"][0]
    assert entries[0]["transcript"] == committed["transcript"]
    assert entries[0]["labels"] == committed["labels"]
    import av

    frames = []
    for root in (tmp_path, SAMPLES):
        with av.open(str(root / entries[0]["file"])) as container:
            frames.append(next(container.decode(video=0)).to_ndarray(format="rgb24"))
    np.testing.assert_array_equal(frames[0], frames[1])


def test_committed_samples_carry_their_cue_files():
    """Each sample names its video's SHA-1 and a small cue file that fits it (the studio finds it by content)."""
    from mesm_core.io import file_sha1

    for entry in json.loads((SAMPLES / "samples.json").read_text())["samples"]:
        assert entry["sha1"] == file_sha1(SAMPLES / entry["file"])
        cue_file = SAMPLES / entry["cue_file"]
        assert cue_file.stat().st_size < 16 * 1024
        cues = load_cues(cue_file)
        assert cues.labels == entry["labels"] and all(cues.modality_cues.values())
        assert cues.n_frames / cues.fps == pytest.approx(entry["duration_s"])


def test_make_samples_cues_only_keeps_the_videos(tmp_path):
    entries = make_samples(tmp_path, specs=SAMPLE_SPECS[:1])
    video = tmp_path / entries[0]["file"]
    before = video.read_bytes()
    (tmp_path / entries[0]["cue_file"]).unlink()
    again = make_samples(tmp_path, specs=SAMPLE_SPECS[:1], cues_only=True)
    assert video.read_bytes() == before and (tmp_path / again[0]["cue_file"]).is_file()
    assert again[0]["sha1"] == entries[0]["sha1"]
    with pytest.raises(FileNotFoundError, match="cues_only needs the sample videos"):
        make_samples(tmp_path / "empty", specs=SAMPLE_SPECS[:1], cues_only=True)
