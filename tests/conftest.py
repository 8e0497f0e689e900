"""Shared pytest fixtures. Keep this file small; add fixtures at the end."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")          # never wait on the network in tests
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

SMALL_PRESETS = ("fe2e_small", "mesm_small")
PAPER_PRESETS = ("fe2e_iemocap", "mesm_iemocap", "fe2e_mosei", "mesm_mosei")


def spconv_installed() -> bool:
    from mesm_core.models.sparse import spconv_available

    return spconv_available()


requires_spconv = pytest.mark.skipif(not spconv_installed(), reason="spconv is not installed")


@pytest.fixture
def seeded() -> None:
    """Seed torch's global RNG so random model weights are reproducible within a test."""
    torch.manual_seed(0)


def tiny_text(**overrides):
    """create_model overrides for fast tests: the 2-layer random BERT text encoder."""
    return {"text_model": "tiny-random", **overrides}


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread, as the app runs: much faster on shared cores (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
