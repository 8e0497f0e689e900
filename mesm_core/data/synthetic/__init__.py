"""The embedded synthetic dataset: talking faces with emotion cues in known regions.

Six MOSEI classes (``config.MOSEI_CLASSES``). Faces are FACS-style local warps of the public-domain
astronaut photo (``faces.py``), audio is a voiced carrier with a class-specific band-limited cue
(``audio.py``), transcripts come from templates (``text.py``). Every clip has ground-truth cue
regions (``cues/<id>.npz``) that :func:`attach_cues` (``cues.py``) maps onto a preprocessed ClipRecord.
``source.py`` is the ``synthetic`` dataset source (registered in ``mesm_core.data.sources``).
See docs/synthetic.md.

    from mesm_core.data.synthetic import ensure_dataset, attach_cues
    src = ensure_dataset("data/synthetic")          # generates once (~1,200 clips)

CLI: ``python -m mesm_core.data.synthetic --out DIR --n-clips N --seed S --workers W``
(``--samples assets/samples`` writes the app's sample clips).
"""

from __future__ import annotations

from mesm_core.data.synthetic.generator import (
    GENERATOR_VERSION,
    SAMPLE_SPECS,
    ClipPlan,
    SynthConfig,
    ensure_dataset,
    generate,
    make_samples,
    plan_dataset,
    read_dataset_json,
    render_clip,
)
from mesm_core.data.synthetic.cues import ClipCues, attach_cue_file, attach_cues, cue_path, load_cues

__all__ = [
    "GENERATOR_VERSION", "SAMPLE_SPECS", "ClipPlan", "SynthConfig", "ensure_dataset", "generate",
    "make_samples", "plan_dataset", "read_dataset_json", "render_clip", "ClipCues", "attach_cues", "attach_cue_file",
    "cue_path", "load_cues",
]
