"""Shared fixtures and markers. Shared helpers live in ``tests/helpers/`` and reach tests only as the
fixtures below: test modules never import helpers, conftest or each other.

Markers (pyproject.toml): ``slow`` (every training, subprocess and browser test; the fast loop is
``pytest -m "not slow"``), ``browser``, and ``spconv`` (skipped where spconv is not installed).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")          # never wait on the network in tests
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_collection_modifyitems(config, items):
    from mesm_core.models.sparse import spconv_available

    if spconv_available():
        return
    skip = pytest.mark.skip(reason="spconv is not installed")
    for item in items:
        if "spconv" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the working directory of CLI subprocesses)."""
    return Path(__file__).resolve().parents[1]


@pytest.fixture
def seeded() -> None:
    """Seed torch's global RNG so random model weights are reproducible within a test."""
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread, as the app runs: tiny models run much faster on shared cores without
    OpenMP contention (restored afterwards). A module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def media():
    """Media makers (``tests/helpers/media.py``): write_video, write_wav, tone, face_image, blank_image,
    make_face_clip, make_noface_clip, NoFaceDetector, TRANSCRIPT, ..."""
    from tests.helpers import media as module

    return module


@pytest.fixture(scope="session")
def models():
    """Random-weight checkpoints (``tests/helpers/models.py``): make_checkpoint, TINY_TEXT."""
    from tests.helpers import models as module

    return module


@pytest.fixture(scope="session")
def tiny_training():
    """Narrow presets and tiny caches (``tests/helpers/training.py``): TINY_OVERRIDES, tiny_config,
    make_tiny_cache; for the baselines TINY_BASELINE_OVERRIDES, BASELINE_CLASSES, make_feature_cache."""
    from tests.helpers import training as module

    return module
