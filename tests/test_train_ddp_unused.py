"""DDP's find_unused_parameters is set only where a training step can leave a parameter without a gradient."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

import mesm_core
from mesm_core.distributed import may_leave_parameters_unused


CASES = [
    ("fe2e_small", {}),
    ("fe2e_small", {"text_trainable": True}),
    ("mesm_small", {}),
    ("mesm_small", {"attention_mode": "trained"}),
    ("mesm_small", {"attention_mode": "trained", "attention_scorer": "context"}),
    ("mesm_small", {"attention_scorer": "context", "attention_smoothing": 3}),
    ("mesm_small", {"attention_mode": "reference"}),
]


def _model(preset, overrides):
    torch.manual_seed(0)
    return mesm_core.create_model(preset, text_pretrained=False, text_model="tiny-random", sparse_backend="masked", **overrides).train()


def _unused_after_step(model, batch) -> list[str]:
    model.zero_grad(set_to_none=True)
    out = model(batch, top_p=0.3) if model.supports_top_p else model(batch)
    F.binary_cross_entropy_with_logits(out.logits, batch.labels).backward()
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


@pytest.mark.parametrize("preset, overrides", CASES)
def test_rule_matches_what_a_step_leaves_unused(preset, overrides):
    model = _model(preset, overrides)
    batch = mesm_core.dummy_batch(preset, batch_size=2, tokenizer=model.tokenizer)
    assert bool(_unused_after_step(model, batch)) == may_leave_parameters_unused(model.config)


class _Entries:
    def __init__(self, frames, chunks):
        self.entries = [{"n_frames": f, "n_chunks": c} for f, c in zip(frames, chunks)]


def test_clips_without_frames_or_chunks_need_the_search():
    config = mesm_core.get_preset("mesm_small").model
    assert not may_leave_parameters_unused(config, _Entries([3, 4], [5, 6]))
    assert may_leave_parameters_unused(config, _Entries([3, 0], [5, 6]))
    assert may_leave_parameters_unused(config, _Entries([3, 4], [0, 6]))
    assert may_leave_parameters_unused(config, object())            # no manifest counts: assume the worst
    # and such a batch does skip a CNN
    model = _model("fe2e_small", {})
    batch = mesm_core.dummy_batch("fe2e_small", batch_size=2, n_frames=0, tokenizer=model.tokenizer)
    assert any(".visual." in n for n in _unused_after_step(model, batch))


def test_ddp_without_the_search_trains(tmp_path):
    """One-process gloo DDP with find_unused_parameters=False runs several MESM steps (it would raise at the
    second step if a parameter had gone unused)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = _model("mesm_small", {})
        assert not may_leave_parameters_unused(model.config)
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
        batch = mesm_core.dummy_batch("mesm_small", batch_size=2, tokenizer=model.tokenizer)
        for _ in range(3):
            F.binary_cross_entropy_with_logits(ddp(batch, top_p=0.5).logits, batch.labels).backward()
    finally:
        dist.destroy_process_group()
