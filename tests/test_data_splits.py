"""Split lists: the official lists' formats and counts (read from shared reference data when
present), the generated IEMOCAP split, and reporting of mismatches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mesm_core.data import DataSourceError, assign_splits, generate_iemocap_split, load_split_lists, parse_mosei_id
from mesm_core.data.scan import ClipJob
from mesm_core.data.iemocap import speaker_side

# The official lists (docs/data.md): $MESM_SPLITS_DIR, else a shared/data/mesm_splits folder beside the repo.
OFFICIAL = Path(os.environ.get("MESM_SPLITS_DIR")
                or Path(__file__).resolve().parents[2] / "shared" / "data" / "mesm_splits")


@pytest.mark.parametrize("dataset,counts", [("IEMOCAP", (5162, 737, 1481)), ("MOSEI", (14524, 1765, 4188))])
def test_official_split_lists(dataset, counts):
    folder = OFFICIAL / dataset
    if not folder.is_dir():
        pytest.skip(f"official split lists not available at {folder}")
    lists = load_split_lists(folder)
    assert tuple(len(lists[s]) for s in ("train", "valid", "test")) == counts
    all_ids = [uid for ids in lists.values() for uid in ids]
    assert len(set(all_ids)) == len(all_ids)  # no overlap, no duplicates
    if dataset == "IEMOCAP":
        for uid in all_ids:
            assert uid.startswith("Ses0") and speaker_side(uid)[0] in ("left", "right")
            assert uid.split("_")[-1][0] in "FM" and uid.split("_")[-1][1:].isdigit()
    else:
        videos = {split: {parse_mosei_id(uid)[0] for uid in ids} for split, ids in lists.items()}
        assert all(parse_mosei_id(uid)[1].isdigit() for uid in all_ids)
        assert any(uid.startswith("-") for uid in all_ids)
        assert any("_" in parse_mosei_id(uid)[0] for uid in all_ids)
        # MOSEI splits are video-disjoint
        assert not (videos["train"] & videos["test"]) and not (videos["train"] & videos["valid"])


def test_split_list_file_names_and_overlap(tmp_path):
    (tmp_path / "train_split.txt").write_text("a\r\nb\n\n")
    (tmp_path / "valid_split.txt").write_text("c\n")
    (tmp_path / "test_split.txt").write_text("d\n")
    assert load_split_lists(tmp_path) == {"train": ["a", "b"], "valid": ["c"], "test": ["d"]}
    (tmp_path / "test.txt").write_text("a\n")  # plain names take precedence
    with pytest.raises(DataSourceError, match="both train and test"):
        load_split_lists(tmp_path)
    (tmp_path / "test.txt").unlink()
    (tmp_path / "valid_split.txt").unlink()
    with pytest.raises(DataSourceError, match="no valid list"):
        load_split_lists(tmp_path)


def test_generated_iemocap_split_is_seeded_and_complete():
    ids = [f"Ses0{s}F_impro01_F{i:03d}" for s in range(1, 6) for i in range(1476)]  # 7380 ids
    split = generate_iemocap_split(ids, seed=0)
    assert [len(split[s]) for s in ("train", "valid", "test")] == [5166, 738, 1476]
    assert sorted(split["train"] + split["valid"] + split["test"]) == sorted(ids)
    assert generate_iemocap_split(list(reversed(ids)), seed=0) == split
    assert generate_iemocap_split(ids, seed=1) != split


def test_mismatches_are_reported_not_dropped():
    jobs = [ClipJob(id=i) for i in ("a", "b", "c")]
    with pytest.warns(UserWarning, match="in no split"):
        report = assign_splits(jobs, {"train": ["a", "x"], "valid": ["b"], "test": []})
    assert [job.split for job in jobs] == ["train", "valid", None]
    assert report.missing["train"] == ["x"] and report.unassigned == ["c"]
    assert report.counts == {"train": 1, "valid": 1, "test": 0} and not report.ok
    assert "1 id(s) listed in train have no data" in report.summary()
