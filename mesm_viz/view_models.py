"""What the studio's callbacks hand the page: typed, frozen view models, one per area of the page.

The page has a header (status, FLOPs line, prediction, the floor note) and tabs (Face, Audio, Ground truth,
Cost). A view of one p is built **by part** (:data:`PARTS`): a slider move builds the header and the part of
the tab the user is looking at, and the other tabs are drawn when they are opened. A part that was not
built is None in the view model, and the page leaves that area as it is.

Figures are plotly JSON dicts (:data:`Figure`), the form the page's plotly.js reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Figure", "PARTS", "TAB_PARTS", "parts_for", "ModelInfo", "ClipView", "FrameView", "PView", "Analysis",
           "Update"]

Figure = dict  # plotly JSON: {"data": [...], "layout": {...}}

PARTS = ("header", "face", "audio", "cue", "cost")
# The tab a user looks at → the part of the page it shows ("" = an API call: every part).
TAB_PARTS = {"Face": "face", "Audio": "audio", "Ground truth": "cue", "Cost": "cost", "Export": None}


def parts_for(tab: str | None) -> frozenset[str]:
    """The parts to build for a page showing ``tab``: the header and that tab's part; every part for an
    API call (no tab)."""
    if not tab:
        return frozenset(PARTS)
    part = TAB_PARTS.get(tab)
    return frozenset({"header", part} if part else {"header"})


@dataclass(frozen=True)
class ModelInfo:
    """What the page says beside the prediction about the checkpoint that made it."""

    name: str
    arch: str
    classes: tuple[str, ...]
    trained_on: str | None                # from the checkpoint's metadata or model card (None: not recorded)
    source: str                           # where that came from ("config.json", "model card", "not recorded")
    synthetic: bool
    card: str | None                      # the model card file
    top_p: float | None                   # the p it was trained with (MESM)
    thresholds: str                       # "tuned on validation" or "default 0.5"
    valid_f1: float | None = None
    data_facts: str = ""                  # dataset kind, source, seed, split sizes (as the trainer recorded them)

    def markdown(self, card_link: str | None = None) -> str:
        """Markdown for the page; ``card_link`` is a URL the browser can open for the model card."""
        lines = []
        if self.synthetic:
            lines.append("⚠️ **Trained on synthetic clips only.** On real faces and voices its answers mean little, "
                         "however confident they look.")
        arch = self.arch.upper() + (f", trained at p = {self.top_p:g}" if self.top_p is not None else "")
        lines.append(f"**Model** `{self.name}` ({arch}) · **classes** {', '.join(self.classes)} · "
                     f"**thresholds** {self.thresholds}"
                     + (f" · validation macro-F1 {100 * self.valid_f1:.1f}" if self.valid_f1 is not None else ""))
        trained = self.trained_on or "the checkpoint does not record its training data"
        lines.append(f"**Trained on** ({self.source}): {trained}")
        if self.data_facts:
            lines.append(f"**Data** {self.data_facts}")
        if card_link:
            lines.append(f"[Model card]({card_link})")
        elif self.card:
            lines.append(f"Model card: `{Path(self.card).name}` in the checkpoint folder")
        return "  \n".join(lines)


@dataclass(frozen=True)
class ClipView:
    """The clip itself: the frame strip (None until the display frames are decoded) and its facts."""

    strip: list[tuple[np.ndarray, str]] | None   # gallery items: (thumbnail with box, caption)
    n_frames: int
    summary: str                                 # markdown: clip facts
    frame: int = 0                               # the frame selected first (the most confident face)


@dataclass(frozen=True)
class FrameView:
    """The Face tab for one sampled frame at one p."""

    frame_image: np.ndarray | None        # selected frame, large, with its box (None: unchanged / not decoded yet)
    layer_fig: Figure | None              # layer × {attention, kept} on the face crop
    facs_fig: Figure | None               # FACS regions over the layer-1 attention
    facs_headers: list[str]
    facs_rows: list[list[Any]]
    facs_note: str
    frame: int = 0                        # the frame shown (after clamping)


@dataclass(frozen=True)
class PView:
    """The p-dependent views, by part (None where the part was not built: see :data:`PARTS`)."""

    parts: frozenset[str]
    # header
    label: dict[str, float] | None = None
    probabilities_fig: str | None = None      # SVG markup (mesm_viz.svg_charts)
    modality_fig: str | None = None           # SVG markup
    flops_text: str | None = None
    floor_text: str | None = None             # which rule set the masks (markdown; "" without a floor)
    # audio
    mel_fig: Figure | None = None             # spectrogram and kept cells on time/frequency axes
    # cue (ground truth)
    cue_fig: Figure | None = None             # attention and kept cells inside the true cue vs chance
    cue_text: str | None = None
    # cost
    flops_fig: Figure | None = None
    flops_p_fig: Figure | None = None         # the cost curve marked at p (None before the sweep has run)
    numbers: dict[str, Any] | None = field(default=None)  # machine-readable summary (top_p, FLOPs, kept, ...)


class Analysis(NamedTuple):
    """What Analyze returns: the session state, the clip, the Face tab, the p views and the status line."""

    state: Any
    clip: ClipView
    frame: FrameView
    pview: PView
    status: str


class Update(NamedTuple):
    """What a slider move, a transcript edit or the floor switch returns."""

    state: Any
    frame: FrameView | None
    pview: PView
    status: str
