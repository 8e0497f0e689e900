"""Analytic FLOPs: agreement with torch's FlopCounterMode and the paper-size reference numbers."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import mesm_core
from mesm_core.flops import active_neighbour_count, per_item_dense_flops
from mesm_core.models.sparse import SparseVGGBlock, get_backend
from mesm_core.models.vgg import VGGEncoder



def _counted_cnn_flops(config, modality):
    """FlopCounterMode over the full dense CNN of one face / chunk (convs are all it counts here)."""
    in_channels = 3 if modality == "visual" else 1
    hw = (config.face_size, config.face_size) if modality == "visual" else (config.n_mels, config.chunk_frames)
    cnn = VGGEncoder(in_channels, config.stem_channels, config.stem_kernel, config.block_channels, config.pool_after).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        cnn(torch.zeros(1, in_channels, *hw))
    return counter.get_total_flops()


@pytest.mark.parametrize("preset", ["mesm_iemocap", "mesm_small"])
@pytest.mark.parametrize("modality", ["visual", "audio"])
def test_dense_count_agrees_with_flop_counter(preset, modality):
    config = mesm_core.get_preset(preset).model
    analytic = per_item_dense_flops(config, modality)
    assert analytic == pytest.approx(_counted_cnn_flops(config, modality), rel=0.01)


@pytest.mark.parametrize("modality, macs", [("visual", 478e6), ("audio", 837e6)])
def test_paper_cnn_multiply_adds(modality, macs):
    """478 M MACs per 48×48 face, 837 M per 128×32 chunk (FLOPs = 2 × MACs; docs/models.md, "Cost")."""
    for preset in ("fe2e_iemocap", "mesm_mosei"):
        assert per_item_dense_flops(mesm_core.get_preset(preset).model, modality) / 2 == pytest.approx(macs, rel=0.02)


def test_active_neighbour_count_hand_made():
    mask = torch.zeros(1, 5, 5, dtype=torch.bool)
    mask[0, 0, 0] = True
    assert active_neighbour_count(mask) == 1                      # isolated cell: itself only
    mask[0, 0, 1] = True
    assert active_neighbour_count(mask) == 4                      # two neighbours: 2 + 2
    full = torch.ones(1, 3, 3, dtype=torch.bool)
    assert active_neighbour_count(full) == 4 * 4 + 4 * 6 + 9      # corners, edges, centre


@pytest.mark.spconv
def test_sparse_conv_count_matches_spconv_work():
    """spconv's Native algorithm does its work with torch.mm, which FlopCounterMode sees: same count."""
    torch.manual_seed(0)
    block = SparseVGGBlock(4, 8, pool=False).eval()
    mask = torch.rand(3, 10, 7) < 0.3
    x = torch.randn(3, 4, 10, 7) * mask[:, None]
    get_backend("spconv")(block, x, mask)                          # warm-up (lazy import, holders)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        get_backend("spconv")(block, x, mask)
    expected = 2 * float(active_neighbour_count(mask)) * (4 * 8 + 8 * 8)
    assert counter.get_total_flops() == pytest.approx(expected, rel=1e-6)


def test_fe2e_report_is_dense_and_sums_per_item_costs(seeded):
    model = mesm_core.create_model("fe2e_small", text_pretrained=False, text_model="tiny-random").eval()
    batch = mesm_core.dummy_batch("fe2e_small", batch_size=3, tokenizer=model.tokenizer)
    with torch.no_grad():
        report = model(batch).flops
    per_face = per_item_dense_flops(model.config, "visual")
    per_chunk = per_item_dense_flops(model.config, "audio")
    expected = batch.faces.shape[0] * per_face + batch.chunks.shape[0] * per_chunk
    assert report.dense == report.actual == pytest.approx(expected)
    by_modality = report.by_modality()
    assert by_modality["visual"][0] == pytest.approx(batch.faces.shape[0] * per_face)
    assert [r.name for r in report.layers if r.modality == "visual"] == ["stem"] + [f"block{i}" for i in range(1, 6)]


def test_mesm_report_rows_and_sparse_savings(seeded):
    model = mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random", sparse_backend="masked").eval()
    batch = mesm_core.dummy_batch("mesm_small", batch_size=2, tokenizer=model.tokenizer)
    with torch.no_grad():
        full = model(batch, top_p=1.0, return_trace=True)
        sparse = model(batch, top_p=0.3, return_trace=True)
    names = [r.name for r in full.flops.layers if r.modality == "audio"]
    assert names == ["stem", "block1", "block2", "attention1", "sparse_block1", "attention2", "sparse_block2", "attention3", "sparse_block3"]
    # dense part of the report equals FE2E's CNN cost plus the attention layers
    cnn_dense = sum(r.dense for r in full.flops.layers if not r.name.startswith("attention"))
    per_item = batch.faces.shape[0] * per_item_dense_flops(model.config, "visual") + batch.chunks.shape[0] * per_item_dense_flops(model.config, "audio")
    assert cnn_dense == pytest.approx(per_item)
    # p = 1: the first sparse block's actual cost is exactly its in-image neighbour count
    row = next(r for r in full.flops.layers if r.modality == "visual" and r.name == "sparse_block1")
    kept = full.trace["visual"][0].kept
    c_in, c_out = model.config.block_channels[1], model.config.block_channels[2]
    assert row.actual == pytest.approx(2 * float(active_neighbour_count(kept)) * (c_in * c_out + c_out * c_out))
    assert sparse.flops.actual < full.flops.actual <= full.flops.dense
    assert sparse.flops.dense == full.flops.dense
