"""The masked and spconv sparse backends: submanifold semantics and agreement with each other."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mesm_core
from mesm_core.models.sparse import ActiveBatchNorm, SparseVGGBlock, get_backend, pool_mask, resolve_backend_name
from mesm_core.models.sparse.masked import masked_block


def _inputs(dtype=torch.float64, n=4, c=6, h=8, w=6, density=0.4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, h, w, generator=gen) < density
    mask[:, 0, 0] = True
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype) * mask[:, None]
    return x, mask


def test_full_mask_equals_dense_vgg_block():
    torch.manual_seed(0)
    block = SparseVGGBlock(6, 5, pool=True).double().train()
    x, _ = _inputs()
    mask = torch.ones(4, 8, 6, dtype=torch.bool)
    y, out_mask = masked_block(block, x, mask)
    h = x
    for conv in (block.conv1, block.conv2):
        h = F.relu(F.batch_norm(F.conv2d(h, conv.weight, padding=1), None, None, training=True, eps=1e-5))
    assert torch.allclose(y, F.max_pool2d(h, 2), atol=1e-12) and out_mask.all()


def test_submanifold_semantics():
    torch.manual_seed(0)
    block = SparseVGGBlock(6, 5, pool=False).double().eval()
    x, mask = _inputs()
    y, out_mask = masked_block(block, x, mask)
    assert torch.equal(out_mask, mask) and (y * ~mask[:, None] == 0).all()
    garbage = x + torch.randn_like(x) * ~mask[:, None]          # values at inactive cells must not matter
    assert torch.equal(masked_block(block, garbage, mask)[0], y)


def test_pool_mask_is_any_over_the_window():
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, 1] = mask[0, 3, 3] = True
    assert pool_mask(mask)[0].tolist() == [[True, False], [False, True]]


def test_active_batch_norm_matches_batchnorm1d():
    rows = torch.randn(10, 3)
    ours, ref = ActiveBatchNorm(3), torch.nn.BatchNorm1d(3)
    for _ in range(2):
        assert torch.allclose(ours(rows), ref(rows), atol=1e-6)
    assert torch.allclose(ours.running_mean, ref.running_mean) and torch.allclose(ours.running_var, ref.running_var)
    ours.eval(), ref.eval()
    assert torch.allclose(ours(rows), ref(rows), atol=1e-6)
    assert torch.isfinite(ours.train()(rows[:1])).all()       # one active cell in training is fine


def test_backend_names():
    assert resolve_backend_name("masked") == "masked"
    assert resolve_backend_name("auto") in ("masked", "spconv")
    with pytest.raises(ValueError, match="unknown sparse backend"):
        get_backend("dense")


def _block_run(backend, block, x, mask, grad_out):
    block.zero_grad(set_to_none=True)
    xx = x.clone().requires_grad_(True)
    y, out_mask = get_backend(backend)(block, xx, mask)
    (y * grad_out).sum().backward()
    grads = {n: p.grad.clone() for n, p in block.named_parameters()}
    return y.detach(), out_mask, xx.grad, grads


@pytest.mark.spconv
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("pool", [True, False])
def test_spconv_block_equals_masked(dtype, tol, pool):
    torch.manual_seed(0)
    block = SparseVGGBlock(6, 5, pool=pool).to(dtype).train()
    x, mask = _inputs(dtype)
    grad_out = torch.randn(4, 5, *((4, 3) if pool else (8, 6)), dtype=dtype)
    ref = _block_run("masked", block, x, mask, grad_out)
    got = _block_run("spconv", block, x, mask, grad_out)
    assert torch.equal(ref[1], got[1])
    scale = lambda t: max(1.0, float(t.abs().max()))  # noqa: E731 - relative tolerance for large gradients
    assert (ref[0] - got[0]).abs().max() <= tol * scale(ref[0])
    assert (ref[2] - got[2]).abs().max() <= tol * scale(ref[2])
    for name in ref[3]:
        assert (ref[3][name] - got[3][name]).abs().max() <= tol * scale(ref[3][name]), name


@pytest.mark.spconv
def test_spconv_model_equals_masked_model_logits_and_gradients():
    """Whole MESM in float64: the same parameters give the same logits and gradients on both backends."""
    torch.manual_seed(0)
    model = mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random", sparse_backend="masked").double().train()
    batch = mesm_core.dummy_batch("mesm_small", batch_size=2, tokenizer=model.tokenizer)
    batch.faces, batch.chunks = batch.faces.double(), batch.chunks.double()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    results = {}
    for backend in ("masked", "spconv"):
        model.load_state_dict(state)                      # identical BN running stats before each run
        model.config.sparse_backend = backend
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)                              # identical dropout masks
        out = model(batch)
        F.binary_cross_entropy_with_logits(out.logits, batch.labels.double()).backward()
        results[backend] = (out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    (l1, g1), (l2, g2) = results["masked"], results["spconv"]
    assert torch.allclose(l1, l2, atol=1e-10, rtol=0)
    assert g1.keys() == g2.keys() and any(".sparse." in n for n in g1)
    for name in g1:
        assert torch.allclose(g1[name], g2[name], atol=1e-9, rtol=1e-9), name
