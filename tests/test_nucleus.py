"""Nucleus (top-p) selection and the cross-modal attention layer."""

from __future__ import annotations

import pytest
import torch

from mesm_core.models.attention import CrossModalAttention, masked_spatial_softmax
from mesm_core.models.nucleus import nucleus_mask


def _keep(probs, p, active=None):
    probs = torch.tensor(probs, dtype=torch.float32)[None]
    act = None if active is None else torch.tensor(active)[None]
    return nucleus_mask(probs, p, act)[0].nonzero().flatten().tolist()


@pytest.mark.parametrize(
    "probs, p, kept",
    [
        ([0.5, 0.25, 0.125, 0.125], 0.1, [0]),
        ([0.5, 0.25, 0.125, 0.125], 0.5, [0]),          # top-1 alone reaches p
        ([0.5, 0.25, 0.125, 0.125], 0.75, [0, 1]),
        ([0.5, 0.25, 0.125, 0.125], 0.76, [0, 1, 2]),
        ([0.125, 0.25, 0.5, 0.125], 0.75, [1, 2]),      # order of cells does not matter
        ([0.25, 0.25, 0.25, 0.25], 0.5, [0, 1]),        # ties: lowest indices first
        ([0.25, 0.25, 0.25, 0.25], 0.51, [0, 1, 2]),
        ([0.1, 0.3, 0.3, 0.3], 0.35, [1, 2]),           # tie between 1,2,3: 1 and 2
    ],
)
def test_minimal_prefix_hand_made(probs, p, kept):
    assert _keep(probs, p) == kept


def test_p_one_keeps_every_cell_even_when_float_mass_is_below_one():
    probs = torch.softmax(torch.randn(64, 1000, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert (probs.cumsum(-1)[:, -1] < 1.0).any()                  # float32 mass falls short of 1 for some frames
    below = torch.tensor([[0.3, 0.3, 0.3999998, 0.0]])           # mass < 1 and an active zero-probability cell
    assert nucleus_mask(below, 1.0).all()
    above = torch.tensor([[0.6, 0.4000001, 1e-9]])                # cumulative sum exceeds 1 before the last cell
    assert nucleus_mask(above, 1.0).all()
    assert nucleus_mask(probs, 1.0).all()


def test_inactive_cells_never_kept():
    probs = torch.tensor([[0.0, 0.7, 0.0, 0.3]])
    active = torch.tensor([[False, True, False, True]])
    assert nucleus_mask(probs, 1.0, active).tolist() == active.tolist()
    assert nucleus_mask(probs, 0.99999, active).tolist() == active.tolist()
    assert nucleus_mask(probs, 0.5, active).tolist() == [[False, True, False, False]]


def _brute_force(row: torch.Tensor, p: float) -> set[int]:
    """Shortest prefix of the (−prob, index)-sorted cells whose mass reaches p."""
    order = sorted(range(len(row)), key=lambda i: (-float(row[i]), i))
    kept, mass = set(), 0.0
    for i in order:
        if mass >= p and kept:
            break
        kept.add(i)
        mass += float(row[i])
    return kept


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.7, 0.9])
def test_vectorised_matches_brute_force_per_frame(p):
    gen = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(6, 4, 5, generator=gen, dtype=torch.float64) * 2, dim=-1).reshape(6, 4, 5)
    probs = probs / probs.sum(dim=(1, 2), keepdim=True)
    mask = nucleus_mask(probs, p)
    assert mask.shape == probs.shape
    for frame in range(6):
        got = set(mask[frame].flatten().nonzero().flatten().tolist())
        assert got == _brute_force(probs[frame].flatten(), p)
        assert probs[frame][mask[frame]].sum() >= p - 1e-12          # reaches p
        assert len(got) >= 1


def test_kept_sets_nested_in_p():
    probs = torch.softmax(torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(2)).flatten(1), -1).view(3, 8, 8)
    previous = torch.zeros(3, 8, 8, dtype=torch.bool)
    for p in (0.1, 0.3, 0.5, 0.7, 0.9, 1.0):
        mask = nucleus_mask(probs, p)
        assert (mask | ~previous).all() and (mask >= previous).all()
        previous = mask


@pytest.mark.parametrize("p", [0.0, -0.1, 1.01])
def test_invalid_p_raises(p):
    with pytest.raises(ValueError, match="top_p"):
        nucleus_mask(torch.ones(1, 2, 2) / 4, p)


def test_masked_softmax_is_a_distribution_over_active_cells():
    scores = torch.randn(2, 3, 4)
    active = torch.rand(2, 3, 4) > 0.5
    active[:, 0, 0] = True
    probs = masked_spatial_softmax(scores, active)
    assert torch.allclose(probs.sum(dim=(1, 2)), torch.ones(2))
    assert (probs[~active] == 0).all()


def test_attention_follows_the_additive_equation():
    torch.manual_seed(0)
    layer = CrossModalAttention(channels=4, query_dim=6)
    x, q = torch.randn(2, 4, 3, 5), torch.randn(2, 6)
    probs = layer(x, q)
    wm, bm = layer.feature_proj.weight, layer.feature_proj.bias
    wq, wa, ba = layer.query_proj.weight, layer.score.weight[0], layer.score.bias
    for n in range(2):
        cells = x[n].reshape(4, -1).T                                       # (HW, C)
        scores = torch.tanh(cells @ wm.T + bm + wq @ q[n]) @ wa + ba
        assert torch.allclose(probs[n].flatten(), torch.softmax(scores, 0), atol=1e-6)
    assert layer.query_proj.bias is None and layer.hidden == 4


def test_floor_decided_marks_the_frames_where_the_floor_kept_more():
    from mesm_core.models.nucleus import nucleus_select

    peaked = torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]])
    selection = nucleus_select(peaked, 0.5, min_fraction=0.5)
    assert selection.floor_decided.tolist() == [True, False]   # nucleus keeps 1 (< 2) and 2 (= 2) cells
    assert selection.kept.sum(1).tolist() == [2, 2]
    assert not nucleus_select(peaked, 0.5).floor_decided.any()
    assert not nucleus_select(peaked, 1.0, min_fraction=0.9).floor_decided.any()
    active = torch.tensor([[True, True, False, False], [True, True, True, True]])
    masked = nucleus_select(peaked * active, 0.2, active, min_fraction=0.5)
    assert masked.floor_decided.tolist() == [False, True]     # frame 0: 1 kept of 2 active = the floor ⌈1⌉
