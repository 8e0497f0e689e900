"""mesm_viz.floors: which rule set a sparse layer's masks (nucleus or keep floor), read from the trace; the p range
the floor fixes; the flat part of the cost curve; the paper's rule's accuracy cost as a checkpoint records it."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import torch

from mesm_core.models.nucleus import nucleus_mask
from mesm_viz.floors import (
    FLOORS_OFF_FILE,
    flat_cost_range,
    floor_decided,
    floor_ranges,
    floor_report,
    layer_rules,
    range_text,
    read_floors_off,
)


def _layer(attention: np.ndarray, p: float, floor: float) -> SimpleNamespace:
    """A trace layer as the model makes it: the nucleus at p with the keep floor."""
    active = np.ones(attention.shape, bool)
    kept = nucleus_mask(torch.from_numpy(attention), p, torch.from_numpy(active), floor).numpy()
    return SimpleNamespace(attention=attention, kept=kept, active_in=active, grid=attention.shape[1:])


def _peaked(n: int = 4, size: int = 6) -> np.ndarray:
    """Attention with one dominant cell per frame: the nucleus keeps few cells."""
    att = np.full((n, size, size), 0.1 / (size * size - 1), np.float32)
    att[:, 0, 0] = 0.9
    return att


def _pred(p: float, floor: float) -> SimpleNamespace:
    return SimpleNamespace(top_p=p, trace={"visual": [_layer(_peaked(), p, floor)], "audio": []})


def test_floor_decides_where_it_keeps_more_than_the_nucleus():
    sharp = _layer(_peaked(), 0.5, 0.6)          # the nucleus keeps 1 cell of 36; the floor 22
    assert floor_decided(sharp, 0.5, 0.6).all()
    assert not floor_decided(_layer(_peaked(), 0.5, 0.0), 0.5, 0.0).any()    # no floor: the nucleus decides
    flat = _layer(np.full((2, 4, 4), 1 / 16, np.float32), 0.9, 0.2)           # the nucleus keeps 15 of 16
    assert not floor_decided(flat, 0.9, 0.2).any()
    recorded = SimpleNamespace(**vars(sharp), floor_decided=np.array([True, False, True, False]))
    assert floor_decided(recorded, 0.5, 0.6).tolist() == [True, False, True, False]   # the core's own record wins


def test_rules_ranges_and_words():
    floors = {"visual": 0.6, "audio": 0.0}
    rules = layer_rules(_pred(0.5, 0.6), floors)
    assert [(r.modality, r.block, r.rule, r.decided, r.items) for r in rules] == [("visual", 1, "floor", 4, 4)]
    report = floor_report(_pred(0.5, 0.6), floors)
    assert report.binding and "face layer 1" in report.text and "Paper's rule" in report.text
    assert "**floor** (4 of 4 frames)" in report.table()
    assert floor_report(_pred(0.5, 0.0), {"visual": 0.0, "audio": 0.0}) is None       # no floor: nothing said
    assert "nucleus alone" in floor_report(_pred(0.5, 0.0), floors, keep_floor=False).text
    # The floor holds at every p of this sweep: it fixes layer 1 up to the highest p swept.
    ranges = floor_ranges({p: _pred(p, 0.6) for p in (0.1, 0.3, 0.5)}, floors)
    assert ranges == {("visual", 1): 0.5}
    text = range_text(ranges, flat_to=0.5)
    assert "face layer 1 for p ≤ 0.5" in text and "flat up to p = 0.5" in text


def test_flat_part_of_the_cost_curve():
    points = [(0.1, 10.0, 100.0), (0.2, 10.5, 100.0), (0.3, 10.9, 100.0), (0.4, 20.0, 100.0), (0.5, 30.0, 100.0)]
    assert flat_cost_range(points) == 0.3
    assert flat_cost_range([(0.1, 10.0, 100.0), (0.2, 20.0, 100.0)]) is None


def test_the_accuracy_cost_is_read_only_for_the_weights_it_was_measured_on(models, tmp_path):
    from mesm_core.io import file_sha1

    checkpoint = models.make_checkpoint(tmp_path / "ck")
    record = {"weights_sha1": file_sha1(checkpoint / "model.safetensors"), "split": "test", "dataset": "synthetic",
              "rows": [{"top_p": 0.5, "f1_floors": 0.9, "f1_floors_off": 0.4}]}
    (checkpoint / FLOORS_OFF_FILE).write_text(json.dumps(record))
    cost = read_floors_off(checkpoint)
    assert "macro-F1 40.0 with the paper's rule against 90.0 with the floors" in cost.sentence(0.45)
    retrained = tmp_path / "retrained"
    shutil.copytree(checkpoint, retrained)
    (retrained / "model.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes() + b"\0")
    assert read_floors_off(retrained) is None          # other weights: not this checkpoint's cost
    assert read_floors_off(tmp_path / "nothing") is None


def test_floor_cost_cli_measures_both_rules_into_the_checkpoint(models, tiny_training, tmp_path):
    """`python -m mesm_viz.floor_cost --into-checkpoint`: both sweeps run on the checkpoint's weights, the record is
    written beside them and the studio reads it back."""
    from mesm_core.presets import get_preset
    from mesm_viz import floor_cost

    checkpoint = models.make_checkpoint(tmp_path / "ck", **models.BINDING_FLOORS)
    cache = tiny_training.make_tiny_cache(tmp_path / "cache", get_preset("mesm_small").model.classes,
                                          {"train": 2, "valid": 4, "test": 4})
    assert floor_cost.main([str(checkpoint), "--cache", str(cache), "--top-p", "0.3,0.9", "--into-checkpoint"]) == 0
    record = json.loads((checkpoint / FLOORS_OFF_FILE).read_text())
    assert [row["top_p"] for row in record["rows"]] == [0.3, 0.9]
    assert all(0 <= row["f1_floors"] <= 1 and 0 <= row["f1_floors_off"] <= 1 for row in record["rows"])
    assert read_floors_off(checkpoint) is not None
