"""The sparse backends (masked, dense, gather, spconv, auto): submanifold semantics and agreement with each other."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mesm_core
from mesm_core.flops import active_neighbour_count
from mesm_core.models.sparse import PATHS, ActiveBatchNorm, SparseVGGBlock, get_backend, pool_mask, resolve_backend_name
from mesm_core.models.sparse.auto import choose_path, flops_share, load_table
from mesm_core.models.sparse.gather import rulebook
from mesm_core.models.sparse.masked import masked_block
from mesm_core.models.sparse import spconv_available

# Every backend that must equal the masked reference; spconv only where it is installed (marker in conftest).
BACKENDS = ["dense", "gather", "auto", pytest.param("spconv", marks=pytest.mark.spconv)]


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
    assert resolve_backend_name("auto") == "auto"            # chooses per call
    for name in ("dense", "gather"):
        assert resolve_backend_name(name) == name
    with pytest.raises(ValueError, match="unknown sparse backend"):
        get_backend("sparse")


def _block_run(backend, block, x, mask, grad_out):
    block.zero_grad(set_to_none=True)
    xx = x.clone().requires_grad_(True)
    y, out_mask = get_backend(backend)(block, xx, mask)
    (y * grad_out).sum().backward()
    grads = {n: p.grad.clone() for n, p in block.named_parameters()}
    return y.detach(), out_mask, xx.grad, grads


def _randomise_bn(block):
    """Running statistics and affine parameters away from the identity, so eval-mode folding is exercised."""
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for bn in (block.bn1, block.bn2):
            for t, lo, hi in ((bn.running_mean, -1, 1), (bn.running_var, 0.5, 2), (bn.weight, 0.5, 2), (bn.bias, -1, 1)):
                t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) * (hi - lo) + lo)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("pool", [True, False])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("density", [0.4, 1.0])
def test_backend_equals_masked(backend, dtype, tol, pool, training, density):
    """Outputs, masks, input and parameter gradients and BN running statistics equal the masked reference."""
    torch.manual_seed(0)
    block = SparseVGGBlock(6, 5, pool=pool).to(dtype).train(training)
    if not training:
        _randomise_bn(block)
    x, mask = _inputs(dtype, density=density)
    x = x + torch.randn_like(x) * ~mask[:, None]                 # garbage off the mask must not matter
    grad_out = torch.randn(4, 5, *((4, 3) if pool else (8, 6)), dtype=dtype)
    state = {k: v.clone() for k, v in block.state_dict().items()}
    ref = _block_run("masked", block, x, mask, grad_out)
    ref_state = {k: v.clone() for k, v in block.state_dict().items()}
    block.load_state_dict(state)
    got = _block_run(backend, block, x, mask, grad_out)
    assert torch.equal(ref[1], got[1])
    scale = lambda t: max(1.0, float(t.abs().max()))  # noqa: E731 - relative tolerance for large gradients
    assert (ref[0] - got[0]).abs().max() <= tol * scale(ref[0])
    assert (ref[2] - got[2]).abs().max() <= tol * scale(ref[2])
    for name in ref[3]:
        assert (ref[3][name] - got[3][name]).abs().max() <= tol * scale(ref[3][name]), name
    for name, value in block.state_dict().items():
        assert torch.allclose(value.double(), ref_state[name].double(), atol=tol, rtol=0), name


@pytest.mark.parametrize("backend", ["dense", "gather", "auto"])
def test_backend_equals_masked_without_autograd(backend):
    """The no-grad eval path (BN folded into the conv, cached) gives the masked values, also after a weight update."""
    torch.manual_seed(0)
    block = SparseVGGBlock(6, 5, pool=True).double().eval()
    _randomise_bn(block)
    x, mask = _inputs()
    for _ in range(2):
        with torch.no_grad():
            ref, got = masked_block(block, x, mask)[0], get_backend(backend)(block, x, mask)[0]
            assert torch.allclose(ref, got, atol=1e-12, rtol=0)
            block.conv2.weight.mul_(1.5)                         # the folded-weight cache must notice
            block.bn1.running_mean.add_(0.25)


@pytest.mark.parametrize("h, w", [(7, 5), (5, 6), (3, 3)])
def test_gather_pool_on_odd_grids(h, w):
    torch.manual_seed(0)
    block = SparseVGGBlock(4, 3, pool=True).double().train()
    x, mask = _inputs(n=3, c=4, h=h, w=w, density=0.5)
    ref, got = masked_block(block, x, mask), get_backend("gather")(block, x, mask)
    assert torch.equal(ref[1], got[1]) and torch.allclose(ref[0], got[0], atol=1e-12, rtol=0)


def test_rulebook_counts_the_flops_pairs():
    _, mask = _inputs(density=0.5)
    book = rulebook(mask)
    assert book.rows == int(mask.sum())
    assert book.pair_count() == int(active_neighbour_count(mask))
    assert abs(flops_share(mask) - book.pair_count() / (9 * mask.numel())) < 1e-12


def _table(device: str, crossover: float) -> dict:
    """A crossover table in the format of crossovers.json: gather wins below s = crossover, dense above."""
    points = {"share": [0.0, 1.0], "ratio": {"dense": [1.0, 1.0], "gather": [0.0, 1.0 / crossover]}}
    mode = {"64x128@24x24": points}
    return {"devices": {device: {"threads": {"1": {"forward": mode, "train": mode}}}}}


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("share", [0.05, 0.3, 0.6, 0.95])
@pytest.mark.parametrize("grad", [False, True])
def test_auto_follows_the_measured_crossover(device, share, grad):
    block = SparseVGGBlock(64, 128, pool=True)
    mask = torch.ones(2, 24, 24, dtype=torch.bool)
    chosen = choose_path(block, mask, grad=grad, device=device, threads=1, share=share, table=_table(device, 0.5))
    assert chosen == ("gather" if share < 0.5 else "dense")
    # an unmeasured shape takes the nearest measured one; an unmeasured device gets dense
    other = SparseVGGBlock(32, 64, pool=True)
    assert choose_path(other, mask[:, :12, :12], device=device, threads=2, share=share,
                       table=_table(device, 0.5)) == chosen
    assert choose_path(block, mask, device=device, share=share, table={"devices": {}}) == "dense"


@pytest.mark.parametrize("device, loaded, expected", [("cpu", False, "gather"), ("cpu", True, "spconv"), ("cuda", False, "spconv")])
def test_auto_takes_spconv_on_cpu_only_once_it_is_loaded(monkeypatch, device, loaded, expected):
    """spconv's import and first call cost seconds on CPU (not in the table): auto leaves it alone until loaded."""
    import sys

    from mesm_core.models.sparse import auto

    monkeypatch.setattr(auto, "spconv_available", lambda: True)
    if loaded:
        monkeypatch.setitem(sys.modules, "spconv.pytorch", object())
    else:
        monkeypatch.delitem(sys.modules, "spconv.pytorch", raising=False)
    points = {"share": [0.0, 1.0], "ratio": {"dense": [1.0, 1.0], "gather": [0.2, 2.0], "spconv": [0.1, 3.0]}}
    table = {"devices": {device: {"threads": {"1": {"forward": {"64x128@24x24": points}}}}}}
    block = SparseVGGBlock(64, 128, pool=True)
    mask = torch.ones(2, 24, 24, dtype=torch.bool)
    assert choose_path(block, mask, device=device, threads=1, share=0.01, table=table) == expected


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("density", [0.05, 0.2, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("grad", [False, True])
def test_auto_picks_a_valid_path_from_the_shipped_table(device, density, grad):
    block = SparseVGGBlock(64, 128, pool=True)
    mask = torch.rand(4, 24, 24, generator=torch.Generator().manual_seed(0)) < density
    mask[:, 0, 0] = True
    path = choose_path(block, mask, grad=grad, device=device)
    assert path in PATHS and (path != "spconv" or spconv_available())
    if device not in load_table().get("devices", {}):
        assert path == "dense"


def test_shipped_table_says_where_it_was_measured():
    table = load_table()
    assert table["devices"], "crossovers.json holds no measurement"
    for device in table["devices"].values():
        for per_threads in device["threads"].values():
            for mode in ("forward", "train"):
                source = per_threads["source"][mode]
                assert source["command"] and source["cpu"] and source["torch"] and source["load_average_start"]
                for points in per_threads[mode].values():
                    assert points["share"] == sorted(points["share"])
                    assert all(len(v) == len(points["share"]) for v in points["ratio"].values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_on_backend_equals_masked_model_logits_and_gradients(backend):
    """Whole MESM in float64 ("trained" attention, so training runs on the backend itself): the same
    parameters give the same logits and gradients as on the masked backend."""
    torch.manual_seed(0)
    model = mesm_core.create_model(
        "mesm_small", text_pretrained=False, text_model="tiny-random", sparse_backend="masked", attention_mode="trained"
    ).double().train()
    batch = mesm_core.dummy_batch("mesm_small", batch_size=2, tokenizer=model.tokenizer)
    batch.faces, batch.chunks = batch.faces.double(), batch.chunks.double()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    results = {}
    for name in ("masked", backend):
        model.load_state_dict(state)                      # identical BN running stats before each run
        model.config.sparse_backend = name
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)                              # identical dropout masks
        out = model(batch, top_p=0.5)
        F.binary_cross_entropy_with_logits(out.logits, batch.labels.double()).backward()
        results[name] = (out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    (l1, g1), (l2, g2) = results["masked"], results[backend]
    assert torch.allclose(l1, l2, atol=1e-10, rtol=0)
    assert g1.keys() == g2.keys() and any(".sparse." in n for n in g1)
    for name in g1:
        assert torch.allclose(g1[name], g2[name], atol=1e-9, rtol=1e-9), name


def test_gemm_row_buckets_are_few_and_tight():
    """The oneDNN route pads row counts to buckets (kernels are compiled per shape): always room for the zero
    row, at most 12.5 % more rows above 64, and few distinct sizes."""
    from mesm_core.models.sparse.gather import bucket

    sizes = {bucket(m) for m in range(20000)}
    assert all(bucket(m) >= m + 1 and bucket(m) <= max(64, 1.125 * (m + 1) + 1) for m in range(20000))
    assert len(sizes) < 110
