"""Selection training: the straight-through keep gate, scorer options, warm start, keep band, p schedule."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import mesm_core
from mesm_core.checkpoint import CheckpointError, save_checkpoint
from mesm_core.config import RunConfig
from mesm_core.models.keep_gate import keep_gate, keep_threshold
from mesm_core.models.nucleus import nucleus_mask
from mesm_core.models.sparse import SparseVGGBlock
from mesm_core.models.sparse.masked import masked_block
from mesm_core.models.warm_start import map_weights
from mesm_core.training.warm_start import warm_start
from mesm_core.training.selection import keep_band_penalty, top_p_at
from mesm_core.types import ModelOutput, SelectionState


def _mesm(**overrides):
    overrides.setdefault("sparse_backend", "masked")
    return mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random", **overrides)


def _attention_grads(model):
    return {n: p.grad for n, p in model.named_parameters() if ".sparse.attention." in n}


# --- the keep gate ---------------------------------------------------------------------------------

def test_keep_gate_forward_is_the_hard_mask_and_backward_reaches_dropped_cells():
    torch.manual_seed(0)
    scores = torch.randn(3, 5, 4, requires_grad=True)
    log_probs = torch.log_softmax(scores.flatten(1), -1).view_as(scores)
    active = torch.ones(3, 5, 4, dtype=torch.bool)
    kept = nucleus_mask(log_probs.exp(), 0.4, active)
    assert (~kept).any()
    gate = keep_gate(log_probs, kept, active)
    assert torch.equal(gate, kept.float())
    (gate * torch.randn(3, 5, 4)).sum().backward()
    dropped = ~kept
    assert (scores.grad[dropped].abs() > 0).all(), "every dropped cell's score gets a gradient"


def test_keep_threshold_sits_between_kept_and_dropped():
    log_probs = torch.log(torch.tensor([[[0.5, 0.3, 0.15, 0.05]]]))
    kept = torch.tensor([[[True, True, False, False]]])
    active = torch.ones_like(kept)
    tau = keep_threshold(log_probs, kept, active, 1.0)
    assert math.isclose(float(tau), float((log_probs[0, 0, 1] + log_probs[0, 0, 2]) / 2), rel_tol=1e-6)
    everything = keep_threshold(log_probs, active, active, 1.0)
    assert math.isclose(float(everything), float(log_probs.min()) - 1.0, rel_tol=1e-6)


def test_self_saliency_is_the_task_gradient_at_the_gates_and_ignores_auxiliary_terms(seeded):
    """|∂L_task/∂m|^γ is read before any auxiliary term joins the loss, so a deeper block's saliency loss cannot
    leak into a shallower block's target (the bug of the in-backward injection it replaces)."""
    from mesm_core.training.selection import saliency_loss, self_saliency

    model = _mesm(attention_mode="straight_through").train()
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
    out = model(batch, top_p=0.5)
    task = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, batch.labels)
    targets = self_saliency(task, out, power=2.0)
    gates = [state.gate for state in out.selections["visual"]]
    expected = torch.autograd.grad(task, gates, retain_graph=True)
    for target, grad in zip(targets["visual"], expected):
        torch.testing.assert_close(target, grad.abs().pow(2))
    deeper_only = {m: [torch.zeros_like(t) for t in blocks[:-1]] + [blocks[-1]] for m, blocks in targets.items()}
    loss = task + 5.0 * saliency_loss(out, deeper_only)
    again = self_saliency(task, out, power=2.0)   # the same reading with the auxiliary term in the objective
    for a, b in zip(again["visual"], targets["visual"]):
        torch.testing.assert_close(a, b)
    loss.backward()


def test_ungated_training_step_runs_on_the_configured_backend_and_keeps_attention_learning(seeded):
    from mesm_core.training.selection import keep_ratio_penalty

    model = _mesm(attention_mode="straight_through", sparse_backend="dense").train()
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
    out = model(batch, top_p=0.5, straight_through=False)
    assert all(state.gate is None for blocks in out.selections.values() for state in blocks)
    keep_ratio_penalty(out, {"audio": 0.5, "visual": 0.5}, (0.3, 0.7)).backward()
    grads = _attention_grads(model)
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "attention.0." in n)


def test_gated_masked_block_equals_the_plain_masked_block():
    torch.manual_seed(0)
    block = SparseVGGBlock(4, 6, pool=True).train()
    x = torch.randn(3, 4, 8, 8)
    mask = torch.rand(3, 8, 8) > 0.5
    plain, plain_mask = masked_block(block, x, mask)
    gated, gated_mask = masked_block(block, x, mask, gate=mask.float().requires_grad_())
    torch.testing.assert_close(gated, plain, rtol=0, atol=1e-6)
    assert torch.equal(plain_mask, gated_mask)


@pytest.mark.parametrize("scorer, smoothing", [("cell", 0), ("context", 0), ("cell", 3)])
def test_straight_through_forward_equals_plain_masking_and_every_attention_weight_learns(scorer, smoothing, seeded):
    model = _mesm(attention_mode="straight_through", attention_scorer=scorer, attention_smoothing=smoothing)
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
    out = model.train()(batch, top_p=0.5)
    model.zero_grad(set_to_none=True)
    out.logits.sum().backward()
    for name, grad in _attention_grads(model).items():
        if name.endswith("score.bias"):
            continue  # a softmax ignores a constant shift
        assert grad is not None and grad.abs().sum() > 0, name
    model.eval()
    with torch.no_grad():
        straight = model(batch, top_p=0.5).logits
        model.config = dataclasses.replace(model.config, attention_mode="reference")
        reference = model(batch, top_p=0.5).logits
    torch.testing.assert_close(straight, reference)


@pytest.mark.parametrize("mode", ["straight_through", "reference"])
def test_p_one_equals_dense_blocks(mode, seeded):
    """At p = 1 with plain masking every cell is computed: the sparse stage is the dense VGG stack."""
    model = _mesm(attention_mode=mode).eval()
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
    branch = model.branches["visual"]
    with torch.no_grad():
        dense = model.encode_dense(batch)["visual"]
        query = torch.zeros(dense.shape[0], branch.sparse.attention[0].query_dim)
        sparse = branch.sparse(dense, query, 1.0, model.config, return_trace=False).features
        x = dense
        for block in branch.sparse.blocks:
            for conv, bn in block.layers():
                x = torch.relu(torch.nn.functional.batch_norm(
                    torch.nn.functional.conv2d(x, conv.weight, padding=1), bn.running_mean, bn.running_var,
                    bn.weight, bn.bias, False, 0.0, bn.eps))
            if block.pool:
                x = torch.nn.functional.max_pool2d(x, 2)
    torch.testing.assert_close(sparse, x, rtol=1e-5, atol=1e-5)


@pytest.mark.spconv
def test_spconv_and_masked_agree_for_a_straight_through_model(seeded):
    model = _mesm(attention_mode="straight_through", attention_scorer="context").eval()
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
    with torch.no_grad():
        masked = model(batch, top_p=0.5).logits
        model.config = dataclasses.replace(model.config, sparse_backend="spconv")
        spconv = model(batch, top_p=0.5).logits
    torch.testing.assert_close(masked, spconv, rtol=1e-4, atol=1e-4)


def test_context_scorer_and_smoothing_are_counted_and_validated(seeded):
    batch = None
    flops = {}
    for scorer in ("cell", "context"):
        model = _mesm(attention_scorer=scorer).eval()
        batch = batch or mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
        with torch.no_grad():
            out = model(batch, top_p=1.0)
        flops[scorer] = {r.name: r.dense for r in out.flops.layers if r.modality == "visual" and r.name == "attention1"}
    c, k, cells = 16, 16, 24 * 24
    d = model.branches["visual"].sparse.attention[0].query_dim   # the text CLS + the earlier branches' posterior
    assert d == model.text_encoder.hidden_size + 2 * len(model.classes)
    n = int(batch.faces.shape[0])
    assert flops["cell"]["attention1"] == n * (cells * 2 * (c * k + k) + 2 * d * k)
    assert flops["context"]["attention1"] == n * (cells * 2 * (9 * c * k + k) + 2 * (d + c) * k)
    with pytest.raises(ValueError, match="odd kernel"):
        _mesm(attention_smoothing=2)


# --- warm start ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fe2e_checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    fe2e = mesm_core.create_model("fe2e_small", text_pretrained=False, text_model="tiny-random")
    # non-trivial BN statistics and conv biases, so that the folding is exercised
    for module in fe2e.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
        if isinstance(module, torch.nn.Conv2d) and module.bias is not None:
            module.bias.data.uniform_(-0.3, 0.3)
    directory = tmp_path_factory.mktemp("fe2e")
    save_checkpoint(fe2e, directory, run_config=RunConfig(preset="fe2e_small", model=fe2e.config))
    return fe2e.eval(), directory


@pytest.mark.parametrize("mode", ["straight_through", "reference"])
def test_mesm_warm_started_from_fe2e_reproduces_its_logits_at_p_one(fe2e_checkpoint, mode):
    fe2e, directory = fe2e_checkpoint
    torch.manual_seed(5)
    mesm = _mesm(attention_mode=mode)
    report = warm_start(mesm, directory)
    assert len(report.folded_biases) == 12 and all(".sparse.attention." in k for k in report.fresh)
    batch = mesm_core.dummy_batch("mesm_small", batch_size=3, tokenizer=mesm.tokenizer)
    with torch.no_grad():
        expected = fe2e(batch).logits
        got = mesm.eval()(batch, top_p=1.0).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_warm_start_round_trip_mesm_to_fe2e(fe2e_checkpoint, tmp_path):
    fe2e, directory = fe2e_checkpoint
    mesm = _mesm(attention_mode="reference")
    warm_start(mesm, directory)
    save_checkpoint(mesm, tmp_path, run_config=RunConfig(preset="mesm_small", model=mesm.config))
    back = mesm_core.create_model("fe2e_small", text_pretrained=False, text_model="tiny-random")
    warm_start(back, tmp_path)
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=back.tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(batch).logits, fe2e(batch).logits, rtol=0, atol=1e-5)


def test_warm_start_refuses_a_different_architecture(fe2e_checkpoint):
    _, directory = fe2e_checkpoint
    other = mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random", flatten_hidden=64)
    with pytest.raises(CheckpointError, match="flatten_hidden"):
        warm_start(other, directory)
    fe2e, _ = fe2e_checkpoint
    bad = {k: v for k, v in fe2e.state_dict().items()}
    bad["fusion.weight"] = torch.zeros(1, 5)
    with pytest.raises(CheckpointError, match="shape mismatch for fusion.weight"):
        map_weights(bad, fe2e.config, _mesm())


# --- training-time losses and schedule -------------------------------------------------------------

def _selection_output(probs: torch.Tensor) -> ModelOutput:
    state = SelectionState(log_probs=probs.log(), kept=probs > 0, active=torch.ones_like(probs, dtype=torch.bool))
    return ModelOutput(logits=torch.zeros(1, 6), modality_logits={}, fusion_weights=torch.zeros(3),
                       flops=None, selections={"visual": [state]})


def test_keep_band_penalty_is_zero_inside_the_band_and_pushes_back_outside():
    uniform = torch.full((1, 1, 10), 0.1)
    assert float(keep_band_penalty(_selection_output(uniform), 0.5, 0.2, 0.8)) == 0.0
    peaked = torch.tensor([[[0.91] + [0.01] * 9]]).requires_grad_()
    floor = keep_band_penalty(_selection_output(peaked), 0.5, 0.3, 1.0)
    assert floor.item() == pytest.approx((0.93 - 0.5) ** 2, rel=1e-5)
    floor.backward()
    assert peaked.grad[0, 0, 0] > 0          # descent lowers the peak: the nucleus keeps more cells
    flat = uniform.clone().requires_grad_()
    ceiling = keep_band_penalty(_selection_output(flat), 0.5, 0.0, 0.2)
    assert ceiling.item() == pytest.approx((0.5 - 0.2) ** 2, rel=1e-5)
    ceiling.backward()
    assert flat.grad[0, 0, 0] < 0            # descent raises the top cells: the nucleus keeps fewer


def test_top_p_schedule_holds_one_then_anneals_to_the_target():
    cfg = mesm_core.get_preset("mesm_small")
    cfg.model.top_p, cfg.train.top_p_sampling = 0.5, "fixed"
    assert top_p_at(cfg, 0, 100) == 0.5                  # no schedule: the target throughout
    cfg.train.top_p_warmup_epochs, cfg.train.top_p_anneal_epochs = 1.0, 2.0
    values = [top_p_at(cfg, step, 100) for step in range(0, 401, 10)]
    assert values[:10] == [1.0] * 10 and values[-1] == 0.5 and values[-11] == 0.5
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert top_p_at(cfg, 200, 100) == pytest.approx(0.75)


def test_teacher_saliency_has_the_sparse_grids_and_leaves_the_teacher_untouched(seeded):
    from mesm_core.training.selection import teacher_saliency

    teacher = mesm_core.create_model("fe2e_small", text_pretrained=False, text_model="tiny-random").eval()
    teacher.requires_grad_(False)
    batch = mesm_core.dummy_batch("fe2e_small", tokenizer=teacher.tokenizer)
    targets = teacher_saliency(teacher, batch, first_block=2, n_blocks=3, power=2.0)
    grids = {"visual": [(24, 24), (12, 12), (6, 6)], "audio": [(64, 16), (32, 8), (16, 4)]}
    n = {"visual": batch.faces.shape[0], "audio": batch.chunks.shape[0]}
    for modality, maps in targets.items():
        assert [tuple(t.shape) for t in maps] == [(n[modality], *g) for g in grids[modality]]
        assert all(bool((t >= 0).all()) and float(t.sum()) > 0 for t in maps)
    assert all(p.grad is None for p in teacher.parameters())
    assert not any(m._forward_pre_hooks for m in teacher.modules())   # hooks removed


def test_saliency_loss_moves_the_attention_towards_the_target():
    from mesm_core.training.selection import saliency_loss

    scores = torch.zeros(1, 2, 2, requires_grad=True)
    log_probs = torch.log_softmax(scores.flatten(1), -1).view_as(scores)
    state = SelectionState(log_probs=log_probs, kept=torch.ones(1, 2, 2, dtype=torch.bool),
                           active=torch.ones(1, 2, 2, dtype=torch.bool))
    output = ModelOutput(logits=torch.zeros(1, 6), modality_logits={}, fusion_weights=torch.zeros(3), flops=None,
                         selections={"visual": [state]})
    target = torch.tensor([[[0.0, 0.0], [0.0, 5.0]]])
    loss = saliency_loss(output, {"visual": [target]})
    assert loss.item() == pytest.approx(math.log(4))          # CE of a one-hot target against uniform attention
    loss.backward()
    assert scores.grad[0, 1, 1] < 0 and (scores.grad[0].flatten()[:3] > 0).all()


# --- one checkpoint for the whole slider ----------------------------------------------------------

def test_uniform_top_p_sampling_stays_in_range_is_reproducible_and_keeps_dense_steps():
    cfg = mesm_core.get_preset("mesm_small")
    cfg.train.top_p_sampling, cfg.train.top_p_range, cfg.train.dense_step_every = "uniform", (0.2, 0.9), 4
    values = [top_p_at(cfg, step, 100) for step in range(200)]
    sampled = [v for i, v in enumerate(values) if (i + 1) % 4]
    assert all(0.2 <= v <= 0.9 for v in sampled) and len(set(sampled)) == len(sampled)
    assert all(values[i] == 1.0 for i in range(3, 200, 4))
    assert values == [top_p_at(cfg, step, 100) for step in range(200)]     # a resumed run draws the same p
    assert max(sampled) - min(sampled) > 0.5


def test_plan_step_gates_every_kth_step_and_every_self_saliency_step():
    from mesm_core.training.selection import plan_step

    cfg = mesm_core.get_preset("mesm_small")
    cfg.train.gate_every, cfg.train.saliency_weight, cfg.train.dense_step_every = 3, 0.0, 0
    gates = [plan_step(cfg, step, 100).inputs["straight_through"] for step in range(9)]
    assert gates == [True, False, False] * 3
    cfg.train.saliency_weight, cfg.train.saliency_source, cfg.train.dense_step_every = 1.0, "self", 2
    cfg.train.saliency_at = "dense"
    plans = [plan_step(cfg, step, 100) for step in range(6)]
    assert [p.self_saliency for p in plans] == [False, True] * 3
    assert all(p.inputs["straight_through"] for p in plans if p.self_saliency)
    cfg.train.saliency_source, cfg.train.saliency_at = "teacher", "all"
    assert all(plan_step(cfg, step, 100).teacher_saliency for step in range(6))
    assert plan_step(mesm_core.get_preset("lf_lstm"), 0, 10).inputs == {}


def test_keep_ratio_penalty_is_zero_on_the_target_curve_and_pushes_towards_it():
    from mesm_core.training.selection import keep_ratio_penalty

    # uniform over 4 of 10 cells: the top 4·p of them hold mass p, i.e. ρ = 0.4 exactly
    on_curve = torch.tensor([[[0.25] * 4 + [1e-12] * 6]])
    assert float(keep_ratio_penalty(_selection_output(on_curve), {"visual": 0.4}, (0.5, 1.0))) < 1e-10
    peaked = torch.tensor([[[0.82] + [0.02] * 9]]).requires_grad_()
    penalty = keep_ratio_penalty(_selection_output(peaked), {"visual": 0.4}, (0.5,))
    assert penalty.item() == pytest.approx((0.84 - 0.5) ** 2, rel=1e-5)      # top ⌈0.2·10⌉ = 2 cells
    penalty.backward()
    assert peaked.grad[0, 0, 0] > 0           # descent flattens: the nucleus at 0.5 keeps more cells
    assert float(keep_ratio_penalty(_selection_output(peaked), {"audio": 0.4}, (0.5,))) == 0.0


def test_bn_regimes_follow_the_stage_p_and_calibration_makes_each_one_exact(seeded):
    from mesm_core.models.sparse import RegimeBatchNorm
    from mesm_core.training.bn_calibration import calibrate_batchnorm, regime_top_ps

    model = _mesm(bn_top_p=(0.3, 0.6, 1.0), sparse_backend="dense").eval()
    assert regime_top_ps(model) == (0.3, 0.6, 1.0)
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
    calibrate_batchnorm(model, [batch])
    bn = model.branches["visual"].sparse.blocks[0].bn1
    assert isinstance(bn, RegimeBatchNorm)
    means = bn.regime_mean.clone()
    assert not torch.allclose(means[0], means[2]), "p = 0.3 and p = 1 see different cells"
    # the p = 1 regime is exactly the batch statistics over all cells of block 1's first conv
    with torch.no_grad():
        x = model.encode_dense(batch)["visual"]
        h = model.branches["visual"].sparse.blocks[0].conv1(x)
    torch.testing.assert_close(means[2], h.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        low = model(batch, top_p=0.32).logits        # nearest regime 0.3
        bn.regime_mean[0] += 1.0                      # changing regime 0.3 changes p = 0.32 ...
        assert not torch.allclose(model(batch, top_p=0.32).logits, low)
        high = model(batch, top_p=0.9).logits         # ... but not p = 0.9 (regime 1.0)
        bn.regime_mean[0] -= 1.0
        torch.testing.assert_close(model(batch, top_p=0.9).logits, high)
    assert model.training is False


def test_warm_start_into_bn_regimes_keeps_fe2e_logits_at_p_one(fe2e_checkpoint):
    fe2e, directory = fe2e_checkpoint
    mesm = _mesm(attention_mode="straight_through", bn_top_p=(0.2, 0.5, 1.0))
    warm_start(mesm, directory)
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=mesm.tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(mesm.eval()(batch, top_p=1.0).logits, fe2e(batch).logits, rtol=0, atol=1e-5)


def test_posterior_query_adds_the_earlier_branches_without_a_gradient_into_them(seeded):
    model = _mesm(attention_query="text+posterior").train()
    assert model.query_sources("audio") == ("text",) and model.query_sources("visual") == ("text", "audio")
    text_dim, n_classes = model.text_encoder.hidden_size, len(model.classes)
    assert model.branches["visual"].sparse.attention[0].query_dim == text_dim + 2 * n_classes
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
    out = model(batch, top_p=0.5)
    visual_attention = sum(state.log_probs.exp().square().sum() for state in out.selections["visual"])
    model.zero_grad(set_to_none=True)
    visual_attention.backward()
    audio_head = model.branches["audio"].head.weight.grad
    assert audio_head is None or float(audio_head.abs().sum()) == 0.0


def test_teacher_targets_are_the_teachers_saliency_per_clip(seeded):
    from mesm_core.training.selection import teacher_saliency
    from mesm_core.training.teacher import TeacherTargets

    teacher = mesm_core.create_model("fe2e_small", text_pretrained=False, text_model="tiny-random").eval()
    teacher.requires_grad_(False)
    batches = [mesm_core.dummy_batch("fe2e_small", tokenizer=teacher.tokenizer, seed=s) for s in (1, 2)]
    targets = TeacherTargets.compute(teacher, batches, first_block=2, n_blocks=3, with_saliency=True)
    assert set(targets.logits) == {i for b in batches for i in b.ids}
    batch = batches[1]
    got = targets.batch_saliency(batch, power=2.0, device="cpu")
    raw = teacher_saliency(teacher, batch, first_block=2, n_blocks=3, power=1.0)
    for modality, maps in raw.items():
        for mine, theirs in zip(got[modality], maps):
            expected = (theirs / theirs.flatten(1).sum(1)[:, None, None]).pow(2)
            torch.testing.assert_close(mine, expected, rtol=2e-3, atol=1e-7)
    with torch.no_grad():
        torch.testing.assert_close(targets.batch_logits(batch, "cpu"), teacher(batch).logits)


def test_paper_rule_toggle_and_floor_report(seeded):
    model = _mesm(min_keep_visual=0.6, min_keep_audio=0.2).eval()
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
    with torch.no_grad():
        floors = model(batch, top_p=0.3, return_trace=True)
        paper = model(batch, top_p=0.3, return_trace=True, keep_floor=False)
        reference = _mesm(min_keep_visual=0.0, min_keep_audio=0.0)
        reference.load_state_dict(model.state_dict())
        plain = reference.eval()(batch, top_p=0.3, return_trace=True)
    torch.testing.assert_close(paper.logits, plain.logits)
    assert all(not t.floor_decided.any() for t in paper.trace["visual"])
    assert floors.trace["visual"][0].floor_decided.all()      # random attention: 0.3 of the mass < 60 % of cells
    assert floors.flops.actual > paper.flops.actual
