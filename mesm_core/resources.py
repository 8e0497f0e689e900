"""Where the repository's own files are: the bundled demo checkpoints, the sample clips, the docs.

They live in a checkout of the repository (``assets/``, ``docs/``), beside the packages, and are not part of
an installed package (``pip install`` ships ``mesm_core`` and ``mesm_viz`` only). Every module finds them
here, from :data:`REPO_ROOT`; outside a checkout, :func:`default_checkpoint` says what to pass instead.
"""

from __future__ import annotations

from pathlib import Path

from mesm_core.errors import MissingResourceError

__all__ = ["REPO_ROOT", "CHECKPOINTS_DIR", "SAMPLES_DIR", "DEFAULT_CHECKPOINT", "default_checkpoint"]

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout this package was imported from
CHECKPOINTS_DIR = REPO_ROOT / "assets" / "checkpoints"   # the bundled demo checkpoints
SAMPLES_DIR = REPO_ROOT / "assets" / "samples"           # the studio's sample clips (and their cue files)
DEFAULT_CHECKPOINT = CHECKPOINTS_DIR / "mesm_small"


def default_checkpoint() -> Path:
    """The bundled ``mesm_small`` checkpoint folder.

    Raises :class:`~mesm_core.errors.MissingResourceError` when it is not there (an installed package
    outside a checkout, or a checkout without its assets), saying to pass a checkpoint folder instead.
    """
    if not (DEFAULT_CHECKPOINT / "config.json").is_file():
        raise MissingResourceError(
            f"{DEFAULT_CHECKPOINT}: the default checkpoint is not here (it ships with a checkout of the repository, "
            "not with the installed package); pass a checkpoint folder (--checkpoint DIR)")
    return DEFAULT_CHECKPOINT
