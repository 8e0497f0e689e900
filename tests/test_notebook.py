"""notebooks/topp_sweep.ipynb runs headless (nbclient, the ``notebook`` extra) on the tiny synthetic cache the
tests build, with tiny MESM and FE2E checkpoints in place of the bundled ones."""

from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_topp_sweep_notebook_executes(repo_root, tiny_training, models, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from mesm_core.presets import get_preset

    cache = tiny_training.make_tiny_cache(tmp_path, get_preset("mesm_small").model.classes,
                                          {"train": 6, "valid": 5, "test": 5})
    monkeypatch.setenv("MESM_NOTEBOOK_MESM", str(models.make_checkpoint(tmp_path / "mesm")))
    monkeypatch.setenv("MESM_NOTEBOOK_FE2E", str(models.make_checkpoint(tmp_path / "fe2e", preset="fe2e_small")))
    monkeypatch.setenv("MESM_NOTEBOOK_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notebook = nbformat.read(repo_root / "notebooks" / "topp_sweep.ipynb", as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(repo_root)}})
    client.execute(env=dict(os.environ))   # raises CellExecutionError on the first failing cell
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert "F1 change from p=1.0 to p=0.5" in printed and "the card comparison is for the bundled" in printed
