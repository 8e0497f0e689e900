"""Two-phase baselines: shapes, masking, gradients, reference-quirk flags, EmoEmbs zero-shot."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mesm_core.models import build_model, get_arch, list_archs
from mesm_core.models.baselines import (
    BaselineModelConfig,
    EmoEmbs,
    LateFusion,
    LFLSTM,
    LFTransformer,
    LogitFusion,
    dummy_feature_batch,
)
from mesm_core.types import FeatureBatch

BASELINE_ARCHS = list_archs("baseline")

SIZES = (6, 8, 5)
N_CLASSES = 4
CLASSES = ("ang", "hap", "neu", "sad")


def tiny_config(arch: str, **overrides) -> BaselineModelConfig:
    base = dict(
        arch=arch, classes=CLASSES, feature_sizes=SIZES,
        trans_heads=(2, 2, 5), trans_ff=16, trans_layers=1,
        emo_hidden=(6, 8, 4),
        mult_dim=8, mult_heads=2, mult_layers=1,
    )
    base.update(overrides)
    return BaselineModelConfig(**base)


def build(arch: str, seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = tiny_config(arch, **overrides)
    if get_arch(arch).label_vectors:
        return build_model(config, label_embeddings=torch.randn(N_CLASSES, config.emo_hidden[0]))
    return build_model(config)


def batch(lengths=((7, 3, 1), (5, 9, 2), (4, 1, 6)), seed: int = 0) -> FeatureBatch:
    return dummy_feature_batch(SIZES, lengths, n_classes=N_CLASSES, seed=seed)


def single(full: FeatureBatch, index: int, extra_padding: int = 0) -> FeatureBatch:
    """Utterance ``index`` of ``full`` alone, trimmed to its length plus ``extra_padding`` zero steps."""
    tensors = {}
    for modality in ("text", "audio", "visual"):
        length = int(getattr(full, f"{modality}_lengths")[index])
        x = getattr(full, modality)[index : index + 1, :length]
        tensors[modality] = torch.cat([x, x.new_zeros(1, extra_padding, x.shape[-1])], dim=1)
        tensors[f"{modality}_lengths"] = torch.tensor([length])
    return FeatureBatch(**tensors)


@pytest.mark.parametrize("arch", BASELINE_ARCHS)
def test_output_shapes_and_finite(arch):
    model = build(arch)
    b = batch()
    output = model(b)
    assert output.logits.shape == (3, N_CLASSES)
    assert torch.isfinite(output.logits).all()
    if not isinstance(model, LateFusion):
        assert output.modality_logits == {}  # early fusion (MulT): no per-modality heads
    else:
        assert set(output.modality_logits) == {"text", "audio", "visual"}
        assert all(v.shape == (3, N_CLASSES) for v in output.modality_logits.values())
        assert output.fusion_weights.shape == (3,)
    assert output.flops.dense == 0.0


@pytest.mark.parametrize("arch", BASELINE_ARCHS)
def test_every_parameter_gets_a_gradient(arch):
    model = build(arch)
    model.train()
    b = batch()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(b).logits, b.labels)
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


@pytest.mark.parametrize("arch", BASELINE_ARCHS)
@pytest.mark.parametrize("index", [0, 1, 2])
def test_padding_does_not_change_the_prediction(arch, index):
    """With the correct (default) masking, extra zero padding is invisible to every model."""
    model = build(arch).eval()
    full = batch()
    with torch.no_grad():
        alone = model(single(full, index)).logits
        padded = model(single(full, index, extra_padding=4)).logits
        in_batch = model(full).logits[index : index + 1]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone, in_batch, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "arch, flag, branch",
    [
        ("lf_lstm", {"faithful_padding": True}, "text"),     # text vector = output at the last padded step
        ("lf_lstm", {"faithful_padding": True}, "audio"),    # h_n runs over the padding (no packing)
        ("lf_trans", {"mask_text": False}, "text"),          # text pads are attended to
        ("emoembs", {"faithful_padding": True}, "visual"),
    ],
)
def test_reference_quirk_flags_make_padding_visible(arch, flag, branch):
    model = build(arch, **flag).eval()
    full = batch()
    with torch.no_grad():
        alone = model(single(full, 1)).modality_logits[branch]
        padded = model(single(full, 1, extra_padding=4)).modality_logits[branch]
    assert not torch.allclose(alone, padded, atol=1e-4)


def test_lf_trans_quirk_leaves_audio_and_visual_masked():
    model = build("lf_trans", mask_text=False).eval()
    full = batch()
    with torch.no_grad():
        alone = model(single(full, 1)).modality_logits
        padded = model(single(full, 1, extra_padding=4)).modality_logits
    torch.testing.assert_close(alone["audio"], padded["audio"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone["visual"], padded["visual"], atol=1e-5, rtol=1e-4)


def test_faithful_lstm_text_uses_the_last_padded_output():
    model = build("lf_lstm", faithful_padding=True).eval()
    b = batch()
    branch = model.branches["text"]
    with torch.no_grad():
        output, _ = branch.lstm(b.text)
        expected = branch.head(output[:, -1])
        torch.testing.assert_close(model(b).modality_logits["text"], expected)


def test_logit_fusion_is_a_bias_free_linear_over_modalities():
    fusion = LogitFusion(3)
    assert fusion.weights.bias is None and fusion.weights.weight.shape == (1, 3)
    logits = [torch.randn(2, 4) for _ in range(3)]
    fused, weights = fusion(logits)
    expected = sum(w * l for w, l in zip(fusion.weights.weight[0], logits))
    torch.testing.assert_close(fused, expected)
    torch.testing.assert_close(weights, fusion.weights.weight.detach()[0])
    single_fusion = LogitFusion(1)
    assert single_fusion(logits[:1])[0] is logits[0]
    assert list(single_fusion.parameters()) == []


def test_single_modality_returns_that_branch():
    model = build("lf_lstm", modalities=("audio",)).eval()
    with torch.no_grad():
        output = model(batch())
    assert list(output.modality_logits) == ["audio"]
    torch.testing.assert_close(output.logits, output.modality_logits["audio"])


def test_emoembs_fusion_starts_at_one_third():
    model = build("emoembs")
    torch.testing.assert_close(model.fusion.weights.weight, torch.full((1, 3), 1 / 3))
    assert not model.label_embeddings.requires_grad
    assert "label_embeddings" in model.state_dict()  # travels with checkpoints


def test_emoembs_zero_shot_scores_an_unseen_label_vector():
    model = build("emoembs").eval()
    b = batch()
    unseen = torch.randn(1, 6)
    with torch.no_grad():
        known = model(b).logits
        extended = model(b, label_embeddings=torch.cat([model.label_embeddings, unseen])).logits
        only_new = model(b, label_embeddings=unseen)
    assert extended.shape == (3, N_CLASSES + 1)
    torch.testing.assert_close(extended[:, :N_CLASSES], known)
    torch.testing.assert_close(extended[:, N_CLASSES:], only_new.logits)
    # The new class is scored by every modality: text directly, audio/visual through the learned maps.
    assert set(only_new.modality_logits) == {"text", "audio", "visual"}
    assert all(v.shape == (3, 1) for v in only_new.modality_logits.values())


def test_emoembs_rejects_label_vectors_of_the_wrong_size():
    with pytest.raises(ValueError, match="text hidden"):
        EmoEmbs(tiny_config("emoembs"), torch.randn(N_CLASSES, 7))
    model = build("emoembs")
    with pytest.raises(ValueError, match=r"\(K, 6\)"):
        model(batch(), label_embeddings=torch.randn(2, 5))


def test_emoembs_default_label_words_and_errors():
    assert BaselineModelConfig(arch="emoembs").resolved_label_words() == (
        "angry", "excited", "frustrated", "happy", "neutral", "sad")
    with pytest.raises(ValueError, match="label word"):
        BaselineModelConfig(arch="emoembs", classes=("calm",)).resolved_label_words()


def test_mult_handles_streams_shorter_than_their_kernel():
    model = build("mult").eval()  # audio kernel 5
    b = batch(lengths=((1, 2), (1, 3), (1, 1)))
    with torch.no_grad():
        logits = model(b).logits
    assert logits.shape == (2, N_CLASSES) and torch.isfinite(logits).all()


def test_mult_needs_two_modalities():
    with pytest.raises(ValueError, match="two modalities"):
        build("mult", modalities=("text",))


def test_heads_must_divide_feature_sizes():
    with pytest.raises(ValueError, match="heads do not divide"):
        build("lf_trans", trans_heads=(4, 2, 5))
    with pytest.raises(ValueError, match="heads do not divide"):
        build("mult", mult_heads=3)


def test_unknown_arch_is_rejected():
    with pytest.raises(ValueError, match="unknown architecture 'lf_gru'"):
        build_model(dataclasses.replace(BaselineModelConfig(), arch="lf_gru"))


@pytest.mark.parametrize("model_cls, kwargs, expected", [
    (LFLSTM, {}, 2_026_336),                          # the reference's ~2.03 M
    (LFTransformer, {"trans_heads": (4, 2, 5)}, 4_898_702),  # the reference's ~4.90 M
])
def test_reference_sizes_match_the_published_counts(model_cls, kwargs, expected):
    config = BaselineModelConfig(arch="lf_lstm" if model_cls is LFLSTM else "lf_trans",
                                 feature_sizes=(300, 144, 35), **kwargs)
    assert sum(p.numel() for p in model_cls(config).parameters()) == expected
