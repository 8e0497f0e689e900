"""The item store under both caches: one naming rule, one manifest merge rule, atomic writes."""

from __future__ import annotations

import json
import urllib.parse

import numpy as np
import pytest

from mesm_core.io import stale_temp_files
from mesm_core.item_store import ItemStore, item_filename, manifest_name

IDS = ["Ses01F_impro01_F000", "zXR-Dm3_p4A_12", ".hidden", "a/b", "a_b", "a b", "ünï", "100%", "x.npz"]


def test_names_are_distinct_flat_and_reversible():
    names = [item_filename(i) for i in IDS]
    assert len(set(names)) == len(IDS)
    for item_id, name in zip(IDS, names):
        assert name.endswith(".npz") and "/" not in name and not name.startswith(".")
        assert urllib.parse.unquote(name[: -len(".npz")]) == item_id
    assert item_filename("Ses01F_impro01_F000") == "Ses01F_impro01_F000.npz"  # readable ids stay readable


def _lines(path, *entries) -> None:
    with open(path, "a") as handle:
        for entry in entries:
            handle.write((entry if isinstance(entry, str) else json.dumps(entry)) + "\n")


def test_latest_time_wins_across_manifests_and_torn_lines_are_skipped(tmp_path):
    store = ItemStore(tmp_path, "items")
    _lines(tmp_path / manifest_name(), {"id": "a", "status": "ok", "time": 2.0}, {"id": "b", "status": "failed", "time": 5.0},
           '{"id": "c", "sta')  # a line cut by a killed writer
    _lines(tmp_path / manifest_name((1, 2)), {"id": "a", "status": "failed", "time": 1.0}, {"id": "b", "status": "ok", "time": 6.0},
           {"no_id": True})
    entries = store.entries()
    assert {k: v["status"] for k, v in entries.items()} == {"a": "ok", "b": "ok"}


def test_on_a_tie_the_later_line_wins(tmp_path):
    """Manifests written before entries carried a time (older feature caches) keep 'the last line wins'."""
    _lines(tmp_path / "manifest.jsonl", {"id": "a", "status": "failed"}, {"id": "a", "status": "ok"})
    assert ItemStore(tmp_path, "items").entries()["a"]["status"] == "ok"
    store = ItemStore(tmp_path, "items")
    store.append({"id": "a", "status": "failed"})  # a new entry has a time: it beats the timeless ones
    assert store.entries()["a"]["status"] == "failed" and store.entries()["a"]["time"] > 0


def test_writes_are_atomic_and_clear_a_killed_write(tmp_path):
    store = ItemStore(tmp_path, "records")
    stale = store.path("x").with_name(".x.npz.123.tmp")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    assert stale_temp_files(store.path("x")) == [stale]
    file = store.write("x", {"a": np.arange(3)})
    assert file == "records/x.npz" and store.resolve(file) == store.path("x")
    assert not stale_temp_files(store.path("x"))
    with np.load(store.path("x")) as archive:
        assert archive["a"].tolist() == [0, 1, 2]
    assert store.resolve("x.npz") == tmp_path / "records" / "x.npz"  # a bare name (older feature caches)


@pytest.mark.parametrize("item_id", ["plain_id", "a/b", ".hidden"])
def test_both_caches_name_and_record_items_through_the_store(tmp_path, item_id):
    from mesm_core.data.cache import record_path, record_store
    from mesm_core.features.byof import import_items
    from mesm_core.features.cache import FeatureCache, FeatureItem

    item = FeatureItem(item_id, "train", np.ones((2, 3), np.float32), np.ones((1, 4), np.float32),
                       np.ones((1, 2), np.float32), np.ones(1, bool), np.ones(2, np.float32))
    cache = import_items([item], tmp_path / "features", ("a", "b"), {"text": "t", "audio": "a", "visual": "v"})
    entry = FeatureCache(cache.root).entries()[item_id]
    assert entry["file"] == f"items/{item_filename(item_id)}" and entry["time"] > 0
    np.testing.assert_array_equal(FeatureCache(cache.root).load(item_id).text, item.text)
    assert record_path(tmp_path / "clips", item_id) == tmp_path / "clips" / "records" / item_filename(item_id)
    assert record_store(tmp_path / "clips").relative(item_id) == f"records/{item_filename(item_id)}"
