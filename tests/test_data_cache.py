"""The preprocess CLI and cache: records, manifest, resume after interruption/corruption, broken
clips, shards, workers; CacheDataset / collate / make_loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mesm_core.config import DataConfig
from mesm_core.data import CacheDataset, CorruptRecordError, collate, make_loader, preprocess_clip, read_manifest
from mesm_core.data.cache import load_record, record_path, save_record
from mesm_core.item_store import item_filename
from mesm_core.io import stale_temp_files
from mesm_core.preprocess import main

CLASSES = ("happy", "sad", "angry")


def fake_tokenizer(texts: list[str]) -> dict[str, torch.Tensor]:
    """Word-count tokenizer: ids = word lengths, padded to the longest text."""
    rows = [[len(word) + 1 for word in text.split()] or [1] for text in texts]
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture
def folder_dataset(media, tmp_path):
    """Six tiny clips (one broken) with a split column; ids include MOSEI-like '-x_y_1'."""
    src = tmp_path / "src"
    rows = ["id,video,transcript,split," + ",".join(CLASSES)]
    specs = [("a", 1.0, "train", "1,0,0"), ("b", 1.6, "train", "0,1,0"), ("-x_y_1", 0.6, "train", "1,1,0"),
             ("d", 2.0, "valid", "0,0,1"), ("e", 1.1, "test", "0,0,0")]
    for clip_id, seconds, split, labels in specs:
        media.write_video(src / f"{clip_id}.mkv", int(seconds * 10), fps=10, audio=media.tone(seconds))
        rows.append(f"{clip_id},{clip_id}.mkv,words of {clip_id},{split},{labels}")
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    rows.append("broken,broken.mp4,bad clip,train,1,0,0")
    (src / "labels.csv").write_text("\n".join(rows) + "\n")
    return src


def run_cli(src, out, *extra):
    return main(["--dataset", "folder", "--source", str(src), "--out", str(out), "--no-progress", *extra])


def test_cli_writes_records_manifest_and_reports_broken_clips(folder_dataset, tmp_path, capsys):
    out = tmp_path / "cache"
    assert run_cli(folder_dataset, out) == 0
    printed = capsys.readouterr().out
    assert "5 processed, 1 failed" in printed and "FAILED broken" in printed
    manifest = read_manifest(out)
    assert {k: v["status"] for k, v in manifest.items()} == {"a": "ok", "b": "ok", "-x_y_1": "ok", "d": "ok",
                                                            "e": "ok", "broken": "failed"}
    assert str(folder_dataset / "broken.mp4") in manifest["broken"]["error"]
    entry = manifest["b"]
    assert entry["split"] == "train" and entry["labels"] == [0, 1, 0]
    assert entry["n_frames"] == 4 and entry["n_chunks"] == -(-(1 + 25600 // 200) // 32)
    info = json.loads((out / "cache.json").read_text())
    assert info["classes"] == list(CLASSES) and info["data"]["frame_interval_ms"] == 500
    record = load_record(out / entry["file"])
    assert record.id == "b" and record.transcript == "words of b" and record.faces.shape == (4, 48, 48, 3)
    np.testing.assert_array_equal(record.labels, [0, 1, 0])
    assert main(["--dataset", "folder", "--source", str(folder_dataset), "--out", str(out), "--no-progress",
                 "--strict"]) == 1  # --strict: failures → status 1


def test_rerun_skips_verified_redoes_corrupt_and_retries_failed(folder_dataset, tmp_path, capsys):
    out = tmp_path / "cache"
    assert run_cli(folder_dataset, out, "--limit", "3") == 0   # an "interrupted" first run
    done_first = set(read_manifest(out))
    assert len(done_first) == 3
    # Simulate a kill mid-write: a half-written record of a finished clip, a stale temp file,
    # and a torn manifest line.
    victim = sorted(done_first - {"broken"})[0]
    path = record_path(out, victim)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    (path.parent / f".{path.name}.killed.tmp").write_bytes(b"partial")  # as mesm_core.io.atomic_write names them
    with open(out / "manifest.jsonl", "a") as handle:
        handle.write('{"id": "e", "status": "o')
    capsys.readouterr()
    assert run_cli(folder_dataset, out) == 0
    printed = capsys.readouterr().out
    n_ok_before = len(done_first - {"broken"}) - 1
    assert f"{n_ok_before} already done" in printed and "1 corrupt record(s) redone" in printed
    assert load_record(path).id == victim
    assert not stale_temp_files(path)
    manifest = read_manifest(out)
    assert sum(e["status"] == "ok" for e in manifest.values()) == 5 and manifest["broken"]["status"] == "failed"
    capsys.readouterr()
    assert run_cli(folder_dataset, out) == 0
    assert "5 already done, 0 processed, 1 failed" in capsys.readouterr().out  # failed ones are retried


def test_settings_mismatch_and_missing_source_are_clear_errors(folder_dataset, tmp_path, capsys):
    out = tmp_path / "cache"
    assert run_cli(folder_dataset, out, "--limit", "1") == 0
    assert run_cli(folder_dataset, out, "--set", "data.frame_interval_ms=250") == 2
    assert "frame_interval_ms" in capsys.readouterr().err
    assert run_cli(tmp_path / "nope", tmp_path / "c2") == 2
    assert "nope" in capsys.readouterr().err
    assert run_cli(folder_dataset, out, "--set", "data.no_such_field=1") == 2


def test_shards_cover_everything_once(folder_dataset, tmp_path):
    out = tmp_path / "cache"
    assert run_cli(folder_dataset, out, "--shard", "0/2") == 0
    assert run_cli(folder_dataset, out, "--shard", "1/2") == 0
    shard_files = sorted(p.name for p in out.glob("manifest*.jsonl"))
    assert shard_files == ["manifest.shard-000-of-002.jsonl", "manifest.shard-001-of-002.jsonl"]
    ids = [json.loads(line)["id"] for name in shard_files for line in (out / name).read_text().splitlines()]
    assert sorted(ids) == sorted(["a", "b", "-x_y_1", "d", "e", "broken"])
    assert len(CacheDataset(out, "train")) == 3


@pytest.mark.slow
def test_worker_processes(folder_dataset, tmp_path):
    out = tmp_path / "cache"
    assert run_cli(folder_dataset, out, "--workers", "2") == 0
    manifest = read_manifest(out)
    assert sum(e["status"] == "ok" for e in manifest.values()) == 5 and manifest["broken"]["status"] == "failed"


def test_dataset_collate_and_loader(folder_dataset, tmp_path):
    out = tmp_path / "cache"
    run_cli(folder_dataset, out)
    train = CacheDataset(out, "train")
    assert train.ids == ["-x_y_1", "a", "b"] and train.classes == CLASSES
    np.testing.assert_array_equal(train.labels(), [[1, 1, 0], [1, 0, 0], [0, 1, 0]])
    records = [train[i] for i in range(len(train))]
    batch = collate(records, fake_tokenizer)
    frames = [len(r.faces) for r in records]
    chunks = [-(-r.mel.shape[1] // 32) for r in records]
    assert batch.faces.shape == (sum(frames), 3, 48, 48) and batch.faces.dtype == torch.float32
    assert float(batch.faces.max()) <= 255 and float(batch.faces.min()) >= 0
    np.testing.assert_array_equal(batch.faces[0].permute(1, 2, 0).numpy(), records[0].faces[0].astype(np.float32))
    assert batch.face_lengths.tolist() == frames and batch.chunk_lengths.tolist() == chunks
    assert batch.chunks.shape == (sum(chunks), 1, 128, 32)
    assert batch.labels.shape == (3, 3) and batch.ids == train.ids
    assert batch.text["input_ids"].shape[0] == 3 and batch.text["input_ids"].dtype == torch.long
    reordered = CacheDataset(out, "train", classes=("sad", "happy"))
    np.testing.assert_array_equal(reordered[0].labels, [1, 1])
    np.testing.assert_array_equal(reordered[2].labels, [1, 0])
    loader = make_loader(out, "train", fake_tokenizer, batch_size=2, shuffle=True, seed=3)
    seen = [uid for b in loader for uid in b.ids]
    assert sorted(seen) == train.ids
    assert [uid for b in make_loader(out, "train", fake_tokenizer, 2, True, seed=3) for uid in b.ids] == seen
    with pytest.raises(ValueError, match="no preprocessed records in split 'nope'"):
        CacheDataset(out, "nope")


def test_corrupt_record_names_the_file(folder_dataset, tmp_path):
    out = tmp_path / "cache"
    run_cli(folder_dataset, out)
    dataset = CacheDataset(out, "valid")
    path = out / dataset.entries[0]["file"]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptRecordError, match=str(path)):
        dataset[0]


def test_record_round_trip_keeps_every_field(media, tmp_path):
    video = media.write_video(tmp_path / "v.mkv", 10, audio=media.tone(1.0))
    record = preprocess_clip(video, "héllo wörld", detector=media.NoFaceDetector())
    record.labels = np.array([1, 0], np.float32)
    record.face_cues = np.zeros((len(record.faces), 48, 48), bool)
    record.mel_cues = np.ones_like(record.mel, dtype=bool)
    path = save_record(record, tmp_path / "r" / item_filename(".hidden/id"))
    assert path.name.startswith("%2E") and "/" not in path.name
    loaded = load_record(path)
    for name in ("faces", "face_boxes", "landmarks", "face_probs", "face_detected", "frame_times", "mel", "labels",
                 "face_cues", "mel_cues"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(record, name))
    assert loaded.transcript == "héllo wörld" and loaded.frame_size == record.frame_size
    assert loaded.meta == record.meta and loaded.meta.extra["n_fallback"] == record.meta["n_fallback"]
    with np.load(path, allow_pickle=False) as archive:  # arrays only: no pickled objects inside
        assert all(archive[k].dtype != object for k in archive.files)


# What a cache written before ClipMeta holds in each record's info["meta"]: one flat dict.
OLD_META = {"transcript_source": "given", "duration_s": 1.0, "start_s": 0.0, "end_s": 1.0, "audio_silent": True,
            "audio_path": "/data/a.wav", "n_faces": 0, "face_regions": [[0, 0, 48, 48]], "split": "train",
            "dataset": "iemocap", "side": "left"}


@pytest.mark.parametrize("meta", [OLD_META, {}, {"split": "test", "cue_modalities": {"visual": True}}])
def test_old_flat_meta_loads_as_clip_meta_and_round_trips(media, tmp_path, meta):
    import json

    from mesm_core.types import ClipMeta

    video = media.write_video(tmp_path / "v.mkv", 10, audio=media.tone(1.0))
    record = preprocess_clip(video, "x", detector=media.NoFaceDetector())
    path = save_record(record, tmp_path / "r.npz")
    with np.load(path, allow_pickle=False) as archive:  # rewrite it as an older cache would have
        arrays = {k: archive[k] for k in archive.files}
    info = json.loads(str(arrays["info"]))
    info["meta"] = meta
    arrays["info"] = np.array(json.dumps(info))
    np.savez_compressed(path, **arrays)
    loaded = load_record(path)
    assert isinstance(loaded.meta, ClipMeta)
    for key, value in meta.items():  # typed fields and extras alike, by item access
        assert loaded.meta[key] == value and key in loaded.meta
    assert {k: v for k, v in loaded.meta.to_dict().items() if k in meta} == meta
    assert loaded.meta.split == meta.get("split") and loaded.meta.audio_silent is meta.get("audio_silent", False)
    assert set(loaded.meta.extra) == set(meta) - set(ClipMeta.fields())
    assert load_record(save_record(loaded, tmp_path / "again.npz")).meta == loaded.meta


def test_collate_without_labels_and_with_empty_clips(media, tmp_path):
    video = media.write_video(tmp_path / "v.mkv", 10, audio=media.tone(1.0))
    config = DataConfig(no_face_policy="skip")
    record = preprocess_clip(video, "x", detector=media.NoFaceDetector(), config=config)
    batch = collate([record, record], fake_tokenizer)
    assert batch.labels is None and batch.faces.shape == (0, 3, 48, 48)
    assert batch.face_lengths.tolist() == [0, 0]


@pytest.mark.slow
def test_synthetic_dataset_through_the_cli(tmp_path, capsys):
    pytest.importorskip("mesm_core.data.synthetic")
    src, out = tmp_path / "synth", tmp_path / "cache"
    assert main(["--dataset", "synthetic", "--source", str(src), "--out", str(out), "--n-clips", "2",
                 "--seed", "5", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "0 failed" in printed
    manifest = read_manifest(out)
    assert len(manifest) == 2 and all(e["status"] == "ok" for e in manifest.values())
    record = load_record(out / next(iter(manifest.values()))["file"])
    assert record.face_cues is not None and record.face_cues.shape == record.faces.shape[:3]
    assert record.mel_cues is not None and record.mel_cues.shape == record.mel.shape
    # Rerun without --n-clips/--seed: the 2-clip dataset is kept (not regenerated with the 1,200 default).
    made = (src / "dataset.json").read_bytes()
    assert main(["--dataset", "synthetic", "--source", str(src), "--out", str(out), "--no-progress"]) == 0
    assert "2 already done" in capsys.readouterr().out and (src / "dataset.json").read_bytes() == made


def test_cache_info_is_typed_and_names_the_file_when_malformed(tmp_path):
    from mesm_core.data.cache import CacheInfo, read_cache_info, write_cache_info
    from mesm_core.data.errors import DataSourceError

    info = write_cache_info(tmp_path, DataConfig(), ("a", "b"), dataset="demo", source="tests")
    assert isinstance(info, CacheInfo) and read_cache_info(tmp_path) == info
    assert json.loads((tmp_path / "cache.json").read_text()) == info.to_dict()
    assert info.classes == ("a", "b") and info.data["frame_interval_ms"] == DataConfig().frame_interval_ms
    with pytest.raises(DataSourceError, match="holds classes"):
        write_cache_info(tmp_path, DataConfig(), ("a", "c"), dataset="demo", source="tests")
    (tmp_path / "cache.json").write_text(json.dumps({"version": 1, "dataset": "demo", "classes": "ab"}))
    with pytest.raises(DataSourceError, match=r"cache.json: missing or malformed field\(s\) \['classes', 'data', 'source'\]"):
        read_cache_info(tmp_path)
