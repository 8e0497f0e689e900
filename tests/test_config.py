"""The run-config family: one registry for every model, (de)serialisation, validation in the dataclasses."""

from __future__ import annotations

import dataclasses
import json
import re
import typing

import pytest

import mesm_core
from mesm_core.models import get_arch
from mesm_core.config import (
    BaselineModelConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    apply_overrides,
    literal_choices,
    run_config_from_dict,
    to_dict,
)

SECTIONS = [ModelConfig, BaselineModelConfig, DataConfig, TrainConfig]


@pytest.mark.parametrize("name", mesm_core.list_presets())
def test_every_preset_is_valid_and_round_trips_through_json(name):
    cfg = mesm_core.get_preset(name).validate()
    again = run_config_from_dict(json.loads(json.dumps(to_dict(cfg))))
    assert again == cfg and type(again.model) is type(cfg.model)
    assert cfg.is_baseline == (get_arch(cfg.model.arch).family == "baseline")


@pytest.mark.parametrize("cls", SECTIONS)
def test_literal_choices_are_read_from_the_annotations(cls):
    hints = typing.get_type_hints(cls)
    expected = {f.name for f in dataclasses.fields(cls) if typing.get_origin(hints[f.name]) is typing.Literal}
    assert set(literal_choices(cls)) == expected and expected  # every section has some
    for name, choices in literal_choices(cls).items():
        assert getattr(cls(), name) in choices  # the default is one of them


CHOICE_CASES = [(cls, name) for cls in SECTIONS for name in literal_choices(cls)]


@pytest.mark.parametrize("cls, name", CHOICE_CASES, ids=[f"{c.__name__}.{n}" for c, n in CHOICE_CASES])
def test_a_value_outside_a_literal_is_refused_naming_the_choices(cls, name):
    section = cls()
    setattr(section, name, "not-a-choice")
    with pytest.raises(ConfigError, match=rf"{section.SECTION}\.{name} must be one of .*'not-a-choice'"):
        section.validate()


@pytest.mark.parametrize("override, message", [
    ("train.lr=0", "train.lr must be > 0"),
    ("train.batch_size=0", "train.batch_size must be >= 1"),
    ("train.epochs=0", "train.epochs must be >= 1"),
    ("train.keep_min_fraction=1.5", "keep_min_fraction and keep_max_fraction"),
    ("train.saliency_power=0", "train.saliency_power must be > 0"),
    ("train.saliency_weight=-1", "train.saliency_weight must be >= 0"),
    ("train.dense_step_every=-1", "train.dense_step_every must be >= 0"),
    ("train.attention_lr_factor=0", "train.attention_lr_factor must be > 0"),
    ("train.distill_weight=-0.5", "train.distill_weight must be >= 0"),
    ("train.plateau_factor=1", "train.plateau_factor must be in (0, 1)"),
    ("model.keep_temperature=0", "model.keep_temperature must be > 0"),
    ("model.min_keep_visual=1.5", "model.min_keep_visual must be in [0, 1]"),
    ("model.attention_smoothing=4", "odd kernel size >= 3"),
    ("model.top_p=0", "model.top_p must be in (0, 1]"),
    ("model.n_sparse_blocks=0", "model.n_sparse_blocks must be between 1 and"),
    ("model.modalities=[\"audio\",\"visual\"]", "MESM needs the text modality"),
    ("model.reference_block1_bug=true", "reference_block1_bug=true needs model.attention_mode=reference"),
    ("data.num_workers=-1", "data.num_workers must be >= 0"),
])
def test_range_checks_name_the_field(override, message):
    cfg = apply_overrides(mesm_core.get_preset("mesm_small"), [override, "train.saliency_weight=0"]
                          if "saliency_weight" not in override else [override])
    with pytest.raises(ConfigError, match=re.escape(message)):
        cfg.validate()


def test_rules_that_join_two_sections():
    fe2e = apply_overrides(mesm_core.get_preset("fe2e_small"), ["train.saliency_weight=1"])
    with pytest.raises(ConfigError, match=re.escape("saliency_weight > 0 needs a MESM (FE2E has no attention")):
        fe2e.validate()
    self_saliency = apply_overrides(mesm_core.get_preset("mesm_small"), ["train.saliency_weight=1",
                                                                          "train.saliency_source=self",
                                                                          "model.attention_mode=trained"])
    with pytest.raises(ConfigError, match="saliency_source=self needs model.attention_mode=straight_through"):
        self_saliency.validate()
    sampling = apply_overrides(mesm_core.get_preset("mesm_small"), ["train.top_p_range=[0.6, 0.2]"])
    with pytest.raises(ConfigError, match="top_p_range must be"):
        sampling.validate()
    baseline = apply_overrides(mesm_core.get_preset("mult"), ["train.distill_from=/somewhere"])
    with pytest.raises(ConfigError, match="train.distill_from needs an FE2E or MESM model"):
        baseline.validate()
    fine = apply_overrides(mesm_core.get_preset("fe2e_small"), ["model.top_p=0", "model.n_sparse_blocks=0"])
    fine.validate()  # MESM's rules do not apply to FE2E


def test_every_problem_is_reported_at_once():
    cfg = apply_overrides(mesm_core.get_preset("mesm_small"), ["train.lr=0", "train.scheduler=\"step\"", "model.top_p=2"])
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert all(part in str(err.value) for part in ("train.lr", "train.scheduler", "model.top_p"))


def test_models_and_checkpoints_validate_their_config(tmp_path):
    from mesm_core.checkpoint import CheckpointError, save_checkpoint
    from mesm_core.loading import load_checkpoint

    with pytest.raises(ConfigError, match="odd kernel"):
        mesm_core.create_model("fe2e_small", text_pretrained=False, text_model="tiny-random", attention_smoothing=2)
    model = mesm_core.create_model("fe2e_small", text_pretrained=False, text_model="tiny-random")
    save_checkpoint(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["train"]["scheduler"] = "sometimes"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="train.scheduler must be one of none, cosine, plateau"):
        load_checkpoint(tmp_path)


def test_the_model_section_is_chosen_by_arch():
    cfg = run_config_from_dict({"model": {"arch": "mult", "mult_dim": 20}, "train": {"scheduler": "plateau"}})
    assert isinstance(cfg.model, BaselineModelConfig) and cfg.model.mult_dim == 20
    assert isinstance(run_config_from_dict({}).model, ModelConfig)
    with pytest.raises(ConfigError, match="unknown model arch 'lf_gru'"):
        run_config_from_dict({"model": {"arch": "lf_gru"}})
    with pytest.raises(ConfigError, match="unknown field"):
        run_config_from_dict({"model": {"arch": "mult", "top_p": 0.5}})  # an E2E field in a baseline section


@pytest.mark.parametrize("raw, expected", [("true", True), ("yes", True), ("1", True), ("false", False),
                                           ("No", False), ("0", False)])
def test_boolean_overrides_take_the_boolean_words(raw, expected):
    cfg = apply_overrides(mesm_core.get_preset("lf_lstm"), [f"normalize={raw}", f"model.faithful_padding={raw}"])
    assert cfg.model.normalize_features is expected and cfg.model.faithful_padding is expected


@pytest.mark.parametrize("raw", ["flase", "ture", "2", "", "null", "off"])
def test_anything_else_is_an_error_not_a_silent_false(raw):
    with pytest.raises(ConfigError, match="expected a boolean"):
        apply_overrides(mesm_core.get_preset("lf_lstm"), [f"normalize={raw}"])
    with pytest.raises(ConfigError, match="expected a boolean"):
        apply_overrides(RunConfig(), [f"model.text_trainable={raw}"])
