"""The studio page's own pieces: its CSS and scripts, the figure view drawn in place, the lenient slider, and
the photo files the page shows. :mod:`mesm_viz.app` lays the page out and wires it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import gradio as gr
import plotly

from mesm_viz.catalog import REPO_ROOT
from mesm_viz.views import BORDER_CELLS_NOTE

__all__ = ["DEVIATIONS", "STRIP_COLUMNS", "SELECTED", "CSS", "HEAD", "PAGE_JS", "PLOTLY_FILE", "PLOTLY_ON_LOAD",
           "LenientSlider", "ImageFiles", "plotly_view", "file_link", "border_cells_text", "figure_value"]

DEVIATIONS = REPO_ROOT / "docs" / "deviations.md"
STRIP_COLUMNS = 12
SELECTED = "#1d4ed8"   # the selected thumbnail: a blue no face box uses (green = face, orange = no face)

CSS = f"""
#mesm-status {{min-height: 2.5em}}
#mesm-flops {{font-size: 1.05em}}
#mesm-strip .thumbnail-item.selected, #mesm-strip .thumbnail-small.selected {{
  --ring-color: {SELECTED}; border: 3px solid {SELECTED} !important; box-shadow: 0 0 0 2px {SELECTED};}}
#mesm-strip .thumbnail-item:hover {{--ring-color: {SELECTED}; border-color: {SELECTED};}}
#mesm-strip .grid-wrap {{min-height: 0 !important; max-height: none !important; height: auto !important;
  overflow-y: visible !important; padding-top: 4px;}}
#mesm-strip .grid-container {{grid-template-columns: repeat(auto-fill, minmax(84px, 1fr)) !important;
  grid-auto-rows: auto !important;}}
#mesm-facs-table th span.header {{white-space: normal !important; word-break: keep-all !important;
  overflow-wrap: normal !important; hyphens: none;}}
#mesm-layers image, #mesm-facs image, #mesm-mel image {{image-rendering: pixelated;}}
#mesm-model {{font-size: 0.95em}}
#mesm-floor-note table {{font-size: 0.9em}}
#mesm-tab {{display: none !important}}
.mesm-plotly {{width: 100%; min-height: 40px}}
/* Row shares by scale, not by content: the large frame's own width would squeeze the layer grid. */
#mesm-frame-img {{flex: 2 1 0% !important;}}
#mesm-layers, #mesm-facs {{flex: 3 1 0% !important; min-width: 460px !important;}}
#mesm-floor-note th:first-child, #mesm-floor-note td:first-child {{white-space: nowrap;}}
"""

# In the page's <head>, before Gradio's own script. Gradio 6 keeps a "run history" of every event, inputs and
# outputs included, in localStorage, rewritten whole at each status message of each event: with the studio's
# figures (tens of KB per event, 100 events kept) that is megabytes of JSON per slider move, and it grows
# with the session (measured: most of the browser's time per move). The studio does not use that history.
HEAD = """<script>
(() => {
  const setItem = Storage.prototype.setItem;
  Storage.prototype.setItem = function (key, value) {
    if (typeof key === 'string' && key.startsWith('gradio:run-history:v2:')) { return; }
    return setItem.call(this, key, value);
  };
})();
</script>"""

# Run once when the page loads.
PAGE_JS = """
() => {
  // Enter in a number box applies it: the box loses focus, which is the slider's release event.
  document.addEventListener('keydown', (event) => {
    const box = event.target;
    if (event.key === 'Enter' && box instanceof HTMLInputElement && box.type === 'number') { box.blur(); }
  }, true);
  // A plot drawn while its tab was hidden was laid out at plotly's 700 px default; every plot re-fits its box
  // when the box's width changes (a tab opened, the window resized). Height changes are the plot's own.
  const observed = new WeakSet();
  const widths = new WeakMap();
  const pending = new Set();
  const refit = () => {
    for (const plot of pending) {
      if (plot.isConnected && plot.offsetWidth > 0 && window.Plotly) { window.Plotly.Plots.resize(plot); }
    }
    pending.clear();
  };
  const resizer = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const width = Math.round(entry.contentRect.width);
      if (widths.get(entry.target) === width) { continue; }
      widths.set(entry.target, width);
      const plot = entry.target.querySelector('.js-plotly-plot');
      if (plot && width > 0) { pending.add(plot); }
    }
    if (pending.size) { requestAnimationFrame(refit); }
  });
  const scan = () => document.querySelectorAll('.js-plotly-plot').forEach((plot) => {
    const box = plot.parentElement;
    if (box && !observed.has(box)) { observed.add(box); resizer.observe(box); }
  });
  new MutationObserver(scan).observe(document.body, {childList: true, subtree: true});
  scan();
}
"""


def _lenient_slider_class() -> type[gr.Slider]:
    """``LenientSlider``: a ``gr.Slider`` whose server side accepts any number typed into its box.

    Gradio's own slider rejects a value outside its range before the callback runs: every output shows
    a red "Error" badge and the server logs a traceback, while the box shows a clamped value that is
    never applied. Here the callback gets the number as typed and clamps it itself (and says so). A
    subclass, because Gradio rebuilds a session's copy of a component from its class after an update;
    Gradio's metaclass would also write a ``.pyi`` stub beside this file for it, so that step is skipped
    while the class is made.
    """
    import gradio.component_meta as meta

    write_stub = meta.create_or_modify_pyi
    meta.create_or_modify_pyi = lambda *args, **kwargs: None
    try:
        class LenientSlider(gr.Slider):
            is_template = True  # the frontend of gr.Slider

            def preprocess(self, payload: float | None) -> float | None:
                return None if payload is None else float(payload)
    finally:
        meta.create_or_modify_pyi = write_stub
    return LenientSlider


LenientSlider = _lenient_slider_class()


def file_link(path: str | os.PathLike) -> str:
    """A URL the page can open for a file the app serves (``allowed_paths``)."""
    return "/gradio_api/file=" + str(Path(path).resolve())


def border_cells_text() -> str:
    """docs/deviations.md's "Border cells" paragraph (the one source), else the short note."""
    try:
        text = DEVIATIONS.read_text(encoding="utf-8")
    except OSError:
        return BORDER_CELLS_NOTE
    found = re.search(r"\*\*Border cells\.\*\*(.*?)(?:\n\n|\Z)", text, re.DOTALL)
    return " ".join(found.group(1).split()) if found else BORDER_CELLS_NOTE


def figure_value(figure: dict | None) -> str | None:
    """A plotly JSON dict (every studio figure) for a :func:`plotly_view`, as JSON text: the page keeps a
    component's value and copies it on every update, which is cheap for one string and costly for the
    thousands of small arrays of a parsed figure (measured)."""
    return None if figure is None else json.dumps(figure, separators=(",", ":"))


PLOTLY_FILE = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"   # served to the page once

# A figure view that stays on the page: a new figure is drawn into the same plot with Plotly.react (an
# incremental update). Gradio's gr.Plot re-creates its plot on every new value (a full plotly render each
# time: the largest cost of a slider move, measured in benchmarks/studio_live.py).
PLOTLY_ON_LOAD = """
const draw = () => {
  const box = element.querySelector('.mesm-plotly');
  if (!box) { return; }
  if (!window.Plotly) { setTimeout(draw, 100); return; }
  const figure = typeof props.value === 'string' && props.value ? JSON.parse(props.value) : props.value;
  if (!figure || !figure.data) { window.Plotly.purge(box); box.innerHTML = ''; box.style.height = ''; return; }
  // The figure's own height, on the box: a resize (responsive plotly) re-fits the width and keeps the height.
  box.style.height = (figure.layout && figure.layout.height ? figure.layout.height : 450) + 'px';
  window.Plotly.react(box, figure.data, figure.layout, {responsive: true, displaylogo: false});
};
watch('value', draw);
draw();
"""


def plotly_view(label: str, elem_id: str, **kwargs: Any) -> gr.HTML:
    """A page area that shows a plotly figure (its value: the figure as JSON text) and redraws it in place
    when it changes."""
    return gr.HTML(value=None, label=label, show_label=True, container=True, elem_id=elem_id,
                   html_template='<div class="mesm-plotly"></div>', js_on_load=PLOTLY_ON_LOAD, **kwargs)


class ImageFiles:
    """Encode the app's photos ourselves (JPEG q92) and hand Gradio file paths; only the newest ``keep``
    files stay on disk (Gradio copies outputs into its own cache)."""

    def __init__(self, keep: int = 256) -> None:
        import collections
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="mesm_app_images_"))
        self.keep = keep
        self.files: collections.deque[Path] = collections.deque()
        self.counter = 0
        self.lock = threading.Lock()

    def __call__(self, image: Any) -> str | None:
        if image is None:
            return None
        from PIL import Image

        with self.lock:
            self.counter += 1
            path = self.folder / f"{self.counter:08d}.jpg"
            self.files.append(path)
            stale = [self.files.popleft() for _ in range(max(0, len(self.files) - self.keep))]
        for old in stale:
            old.unlink(missing_ok=True)
        Image.fromarray(image).save(path, format="JPEG", quality=92)
        return str(path)
