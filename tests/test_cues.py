"""mesm_core.cues: attention and kept cells inside the true cue vs chance, defined once for the evaluation
(a split) and the studio (one clip)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mesm_core import create_model, cues
from mesm_core import evaluation as ev
from mesm_core.evaluation import cues as evaluation_cues
from mesm_core.data.dataset import CacheDataset, collate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tally_counts_by_hand():
    mask = np.zeros((2, 4, 4), bool)
    mask[0, :2, :2] = True                 # frame 0: the top-left cell (2×2 grid) is cue
    attention = np.array([[[0.4, 0.1], [0.2, 0.3]], [[0.25, 0.25], [0.25, 0.25]]], np.float32)
    kept = np.array([[[True, False], [True, False]], [[True, True], [False, False]]])
    active = np.ones_like(kept)
    tally = cues.tally_block(mask, attention, kept, active, (2, 2))
    assert tally.items == 1                 # frame 1 has no cue cell: skipped
    assert tally.attention_in_cue == pytest.approx(0.4 / 1.0)
    assert tally.kept_in_cue == pytest.approx(1 / 2)
    assert tally.chance == pytest.approx(1 / 4)
    assert tally.kept_share == pytest.approx(4 / 8)   # over every frame
    total = cues.CueTally()
    total += tally
    total += tally
    assert total.items == 2 and total.attention_in_cue == pytest.approx(0.4)
    assert math.isnan(cues.CueTally().attention_in_cue)


def test_cue_cells_follow_the_majority_rule():
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True                       # 1 of 4 pixels of the top-left cell
    mask[0:2, 2] = True                     # 2 of 4 pixels of the top-right cell
    assert cues.cue_cells(mask, (2, 2)).tolist() == [[False, True], [False, False]]
    assert cues.cue_cells(mask, (2, 2), "any").tolist() == [[True, True], [False, False]]


def test_the_evaluation_uses_the_same_tally():
    assert evaluation_cues.tally_block is cues.tally_block and ev.cue_grid is cues.cue_grid and ev.CueRow is cues.CueRow


def test_one_clip_gives_the_evaluations_numbers(tiny_training, tmp_path):
    """The studio's per-clip rows (clip_cue_rows) equal python -m mesm_core.evaluate's on a split of that one clip."""
    cfg = tiny_training.tiny_config("mesm_small")
    cache = tiny_training.make_tiny_cache(tmp_path, cfg.model.classes, {"test": 1}, cues=True)
    torch.manual_seed(0)
    model = create_model(cfg.model, text_pretrained=False).eval()
    report = ev.cue_attention_report(model, cache, "test", top_p=0.4)
    record = CacheDataset(cache, "test")[0]
    batch = collate([record], model.tokenizer, chunk_frames=cfg.model.chunk_frames)
    with torch.no_grad():
        out = model(batch, top_p=0.4, return_trace=True)
    rows = cues.clip_cue_rows(record, out.trace, cfg.model.chunk_frames)
    assert [(r.modality, r.block) for r in rows] == [(r.modality, r.block) for r in report.rows]
    for mine, theirs in zip(rows, report.rows):
        for field in ("attention_in_cue", "kept_in_cue", "chance", "kept_share"):
            assert getattr(mine, field) == pytest.approx(getattr(theirs, field)), field


def test_no_cue_masks_no_rows(tiny_training, tmp_path):
    cfg = tiny_training.tiny_config("mesm_small")
    cache = tiny_training.make_tiny_cache(tmp_path, cfg.model.classes, {"test": 1}, cues=False)
    record = CacheDataset(cache, "test")[0]
    assert not cues.has_cues(record)
    assert cues.clip_cue_rows(record, {"visual": []}, 32) == []
