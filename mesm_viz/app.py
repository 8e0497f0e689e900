"""The Gradio 6 Blocks app of the attention studio: layout, event wiring and error display.

All computation is in :class:`mesm_viz.studio.Studio` (plain Python, tested without a server). The page is
laid out once (:func:`layout` → :class:`Components`, a dataclass of every component) and wired by name
(:func:`wire`): each callback returns updates keyed by component (:class:`Updates` turns the studio's view
models into them), and turns errors into one status line with the server still serving.

What a slider move sends: the header (status, FLOPs line, prediction, floor note) and the tab the user looks
at; another tab is drawn when it is opened. The page tells the server which tab it shows through a hidden
box (``tab``); an API call leaves it empty and gets every view. Model work runs in three queues (Gradio
concurrency ids): ``analysis`` (Analyze; ``--concurrency`` at once), ``views`` (slider, frames, tabs, floors,
transcript: never behind another user's analysis) and ``sweep`` (the cost curve after each analysis).

Every view belongs to the clip shown: a new file (or another checkpoint) clears the results and disables
what acted on them, and so does a failed analysis. Uploads are plain files (any container); the video box
shows a browser-playable preview made on the server (:mod:`mesm_viz.preview`).

Events and their API names (every one callable with ``gradio_client``):

=================  ===========================================  ===========================================
``/analyze``       video, transcript, checkpoint, top_p, cues,   p-independent stage + first result
                   paper's rule, tab
``/frames``        —                                             the frame strip (after /analyze)
``/cost_curve``    —                                             FLOPs/kept vs p plot (runs after /analyze)
``/set_top_p``     top_p, tab                                    sparse stage + heads only (cached state)
``/set_floors``    paper's rule, tab                             the paper's rule (keep floors off) or not
``/set_transcript`` transcript, tab                              text re-encoded, dense features reused
``/select_frame``  frame index                                   face views of another sampled frame
``/export``        —                                             report.json + PNGs + flops.csv as a .zip
``/checkpoint_info`` checkpoint                                  slider state, floor switch, model facts
``/preview``       video                                         browser-playable preview and its note
=================  ===========================================  ===========================================
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import functools
import json
import logging
import traceback
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from mesm_core.errors import MesmError
from mesm_viz import image_store
from mesm_viz.catalog import SAMPLES_DIR, bundled_checkpoints, discover_checkpoints, sample_clips
from mesm_viz.messages import ErrorText
from mesm_viz.preview import make_preview
from mesm_viz.page import (
    CSS,
    DEVIATIONS,
    HEAD,
    PAGE_JS,
    PLOTLY_FILE,
    STRIP_COLUMNS,
    ImageFiles,
    LenientSlider,
    border_cells_text,
    figure_value,
    file_link,
    plotly_view,
)
from mesm_viz.sessions import Sessions
from mesm_viz.studio import TOP_P_RANGE, AppSettings, PControl, Studio, clamp_top_p
from mesm_viz.view_models import ClipView, FrameView, PView, parts_for
from mesm_viz.workers import background

log = logging.getLogger(__name__)

__all__ = ["Components", "Updates", "build_app", "layout", "wire", "launch_kwargs", "LenientSlider", "PAGE_JS", "HEAD"]

TABS = ("Face", "Audio", "Ground truth", "Cost", "Export")

def _table(view: FrameView) -> Any:
    """The FACS table with column widths that fit the page: the text columns first, then the numbers."""
    n = len(view.facs_headers)
    text = ["15%", "14%", "17%"][:n]
    rest = [f"{(100 - 46) / (n - 3):.1f}%"] * (n - 3) if n > 3 else []
    value = {"headers": view.facs_headers, "data": view.facs_rows}
    table = gr.Dataframe(value=value, column_widths=text + rest if n > 3 else None)
    table.mesm_digest = json.dumps(value, default=str)   # what Sessions compares (the update holds no plain value)
    return table


# --- the page --------------------------------------------------------------------------------------------


@dataclass
class Components:
    """Every component of the page a callback reads or writes, by name."""

    state: gr.State
    tab: gr.Textbox                # the tab the page shows (set by the page; "" for API calls)
    video: gr.File
    preview: gr.Video
    preview_note: gr.Markdown
    transcript: gr.Textbox
    text_note: gr.Markdown
    checkpoint: gr.Dropdown
    top_p: gr.Slider
    p_note: gr.Markdown
    paper_rule: gr.Checkbox        # the paper's rule: keep floors off (shown for checkpoints with floors)
    floor_note: gr.Markdown        # which rule set the masks at this p
    floor_range: gr.Markdown       # which p range the floor fixes, from the cost curve's sweep (p-independent)
    analyze_btn: gr.Button
    retext_btn: gr.Button
    cue_file: gr.File
    status: gr.Markdown
    flops_text: gr.Markdown
    label: gr.Label
    model_md: gr.Markdown
    prob_plot: gr.HTML             # an SVG chart (svg_charts): redrawn on every slider move, so not plotly
    modality_plot: gr.HTML
    clip_md: gr.Markdown
    tabs: dict                     # tab name → gr.Tab
    gallery: gr.Gallery
    frame_index: gr.Slider
    frame_img: gr.Image
    layer_plot: gr.HTML                # plotly_view
    facs_plot: gr.HTML                # plotly_view
    facs_note: gr.Markdown
    facs_table: gr.Dataframe
    mel_plot: gr.HTML                # plotly_view
    cue_md: gr.Markdown
    cue_plot: gr.HTML                # plotly_view
    flops_plot: gr.HTML                # plotly_view
    flops_p_plot: gr.HTML                # plotly_view
    numbers: gr.JSON
    export_btn: gr.Button
    export_file: gr.File

    def results(self) -> list:
        """Every component that shows (or acts on) a clip's results: what a new clip clears."""
        return [self.state, self.gallery, self.frame_index, self.frame_img, self.layer_plot, self.facs_plot,
                self.facs_table, self.facs_note, self.label, self.prob_plot, self.modality_plot, self.mel_plot,
                self.flops_plot, self.flops_p_plot, self.flops_text, self.numbers, self.cue_md, self.cue_plot,
                self.clip_md, self.tabs["Ground truth"], self.text_note, self.floor_note, self.floor_range, self.export_btn,
                self.retext_btn, self.export_file, self.status]

    def part(self, name: str) -> list:
        """The components of one part of the page (view_models.PARTS)."""
        return {"header": [self.label, self.prob_plot, self.modality_plot, self.flops_text, self.floor_note],
                "face": [self.layer_plot, self.facs_plot, self.facs_table, self.facs_note],
                "audio": [self.mel_plot], "cue": [self.cue_md, self.cue_plot],
                "cost": [self.flops_plot, self.flops_p_plot, self.numbers]}[name]

    def views(self) -> list:
        """Every component a p view can change (header and every tab's part)."""
        return [c for name in ("header", "face", "audio", "cue", "cost") for c in self.part(name)]

    def server_views(self) -> list:
        """The views only the server writes (the user cannot edit them): what :class:`Sessions` may skip."""
        return [*self.views(), self.clip_md, self.text_note, self.floor_range]


def _input_column(settings: AppSettings, studio: Studio, control: PControl, samples: list) -> dict:
    """The left column: file, preview, transcript, checkpoint, top-p and its floor switch, Analyze."""
    c: dict[str, Any] = {}
    c["video"] = gr.File(label="Video file: any container (MP4, MOV, AVI, MKV, WebM…)", file_count="single",
                         type="filepath", height=110, elem_id="mesm-upload")
    c["preview"] = gr.Video(label="Preview (a browser-playable copy made on the server)", interactive=False,
                            height=240, elem_id="mesm-preview")
    c["preview_note"] = gr.Markdown(elem_id="mesm-preview-note")
    c["transcript"] = gr.Textbox(label="Transcript (MESM needs the words)", lines=2, max_lines=4,
                                 placeholder="What is said in the clip", elem_id="mesm-transcript",
                                 info="After an analysis, edit it and press 'Re-run transcript' (or Shift+Enter; "
                                      "Enter starts a new line): only the text is re-encoded, the masks move with "
                                      "the words.")
    c["text_note"] = gr.Markdown(elem_id="mesm-text-note")
    c["checkpoint"] = gr.Dropdown(choices=studio.checkpoint_choices(), value=studio.default_checkpoint(),
                                  label="Checkpoint", allow_custom_value=True)
    c["top_p"] = LenientSlider(TOP_P_RANGE[0], TOP_P_RANGE[1], value=control.default_p or 0.5, step=0.05,
                               label="top-p (nucleus share kept)", interactive=control.interactive)
    c["p_note"] = gr.Markdown(control.note)
    c["paper_rule"] = gr.Checkbox(value=False, label="Paper's rule (floors off): the nucleus alone sets the masks",
                                  info=control.floors_off_note or None, elem_id="mesm-paper-rule",
                                  visible=any(v > 0 for v in control.floors.values()))
    c["floor_note"] = gr.Markdown(elem_id="mesm-floor-note")
    c["floor_range"] = gr.Markdown(elem_id="mesm-floor-range")
    with gr.Row():
        c["analyze_btn"] = gr.Button("Analyze", variant="primary")
        c["retext_btn"] = gr.Button("Re-run transcript", interactive=False)
    with gr.Accordion("Ground truth for a synthetic clip (optional)", open=False):
        c["cue_file"] = gr.File(label="Its cue file (cues/<id>.npz from mesm_core.data.synthetic)",
                                file_types=[".npz"], type="filepath", height=90)
        gr.Markdown("Clips made by the synthetic generator come with their true cue regions. The sample clips' "
                    "cue files are found by themselves; for another synthetic clip give its `cues/<id>.npz` here, "
                    "then Analyze.")
    gr.Markdown(f"Limits: upload ≤ {settings.max_upload_mb:g} MB, clip ≤ {settings.max_seconds:g} s; one face "
                "frame every 0.5 s. Runs on CPU.")
    if samples:
        gr.Examples(examples=[[v, t] for v, t in samples], inputs=[c["video"], c["transcript"]],
                    label="Sample clips (transcript from the .txt beside each; true cues known)",
                    cache_examples=False, example_labels=[Path(v).stem for v, _ in samples])
    return c


def _results_column(model_md: str) -> dict:
    """The right column: status, FLOPs line, prediction and what the checkpoint learned from."""
    c: dict[str, Any] = {}
    c["status"] = gr.Markdown("Upload a clip and press **Analyze**.", elem_id="mesm-status")
    c["flops_text"] = gr.Markdown(elem_id="mesm-flops")
    with gr.Row(equal_height=False):
        c["label"] = gr.Label(label="Predictions (sigmoid, multi-label)", num_top_classes=8, scale=3, min_width=220,
                              elem_id="mesm-label")
        with gr.Column(scale=4, min_width=260):
            c["model_md"] = gr.Markdown(model_md, elem_id="mesm-model")
    c["prob_plot"] = gr.HTML(label="Probabilities and thresholds", show_label=True, container=True,
                             elem_id="mesm-probabilities")
    c["modality_plot"] = gr.HTML(label="Modality contributions", show_label=True, container=True,
                                 elem_id="mesm-modality")
    gr.Markdown("Modality contributions: fusion weight × branch logit per class; the diamond is the fused logit "
                "(its sigmoid is the probability). Fusion weights are unconstrained scalars.")
    c["clip_md"] = gr.Markdown(elem_id="mesm-clip")
    return c


def _face_tab() -> dict:
    c: dict[str, Any] = {}
    gr.Markdown("**Sampled frames** (click one; green box = face, orange = no face: centre crop; blue border = "
                "selected)")
    c["gallery"] = gr.Gallery(show_label=False, columns=STRIP_COLUMNS, height="auto", allow_preview=False,
                              object_fit="contain", elem_id="mesm-strip")
    c["frame_index"] = LenientSlider(0, 1, value=0, step=1, label="Selected frame", interactive=False,
                                     elem_id="mesm-frame")
    gr.Markdown("The selected frame · its 48×48 face crop per sparse layer (top: text-queried attention, min–max "
                "scaled per frame, hover a cell for its value and rank; bottom: kept cells, dropped ones dimmed) · "
                "FACS regions over the layer-1 attention")
    with gr.Row(equal_height=False):
        c["frame_img"] = gr.Image(label="Selected frame", type="filepath", height=360, interactive=False, scale=2,
                                  elem_id="mesm-frame-img")
        c["layer_plot"] = plotly_view("Face crop per sparse layer", "mesm-layers", scale=3)
    with gr.Row(equal_height=False):
        c["facs_plot"] = plotly_view("FACS regions over layer-1 attention", "mesm-facs", scale=3)
        with gr.Column(scale=2):
            c["facs_note"] = gr.Markdown(elem_id="mesm-facs-note")
    c["facs_table"] = gr.Dataframe(label="FACS regions: attention mass and kept fraction per layer",
                                   interactive=False, wrap=True, max_height=460, elem_id="mesm-facs-table")
    return c


def _other_tabs(c: dict) -> None:
    """The Audio, Ground truth, Cost and Export tabs (into ``c``)."""
    with gr.Tab("Audio") as c["tabs"]["Audio"]:
        gr.Markdown("Mel spectrogram (dB) and, below it, the cells each sparse layer kept (tinted; dropped cells "
                    "dimmed), 400 ms chunks side by side. Time in seconds, frequency in Hz on the mel scale.")
        c["mel_plot"] = plotly_view("Mel spectrogram and kept cells", "mesm-mel")
    with gr.Tab("Ground truth", visible=False, elem_id="mesm-cue-tab") as c["tabs"]["Ground truth"]:
        gr.Markdown("This clip comes with its **true cue regions** (the synthetic generator's, docs/synthetic.md), "
                    "drawn as dotted green outlines on the face and the spectrogram. Per sparse layer: the share of "
                    "attention mass and of kept cells inside the cue, against chance (the cue's share of the grid) — "
                    "the quantity `python -m mesm_core.evaluate` reports over a test split, here for this clip at "
                    "this p. A cell counts as cue when at least half of it is.")
        c["cue_md"] = gr.Markdown(elem_id="mesm-cue-text")
        c["cue_plot"] = plotly_view("Attention on the true cue vs chance", "mesm-cues")
    with gr.Tab("Cost") as c["tabs"]["Cost"]:
        with gr.Row():
            c["flops_plot"] = plotly_view("FLOPs per layer", "mesm-flops-layers")
            c["flops_p_plot"] = plotly_view("FLOPs and kept fraction against p", "mesm-pcurve")
        gr.Markdown(f"**Why MESM stays below dense even at p = 1 (border cells).** {border_cells_text()} "
                    f"Source: [docs/deviations.md, \"Border cells\"]({file_link(DEVIATIONS)}).",
                    elem_id="mesm-border-cells")
        with gr.Accordion("Numbers (as returned by the API)", open=False):
            c["numbers"] = gr.JSON(label="Numbers")
    with gr.Tab("Export") as c["tabs"]["Export"]:
        gr.Markdown("Writes `report.json`, `flops.csv` and the overlay PNGs (the same writer as "
                    "`python -m mesm_viz.report`) for the current p and frame.")
        c["export_btn"] = gr.Button("Export report", interactive=False)
        c["export_file"] = gr.File(label="Report (.zip)", interactive=False)


def layout(studio: Studio, model_md: str) -> Components:
    """Lay the page out (inside an open ``gr.Blocks``) and return its components by name."""
    control = studio.top_p_control(studio.default_checkpoint())
    c: dict[str, Any] = {"state": gr.State(value=None), "tabs": {},
                         "tab": gr.Textbox(value="", visible=True, elem_id="mesm-tab", container=False,
                                           show_label=False, interactive=False)}
    gr.Markdown(
        "## MESM attention studio\n"
        "Where does the Multimodal End-to-end Sparse Model (Dai et al., NAACL 2021) look? Upload a short clip with "
        "its transcript: the text queries every face frame and every 400 ms mel chunk, and each sparse layer keeps "
        "only the cells holding a share **p** of that attention (top-p). Move the slider to see cost and masks "
        "change (where the checkpoint's keep floor binds, the note under the slider says so); edit the words to "
        "see the masks move.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=320):
            c.update(_input_column(studio.settings, studio, control, sample_clips()))
        with gr.Column(scale=7, min_width=480):
            c.update(_results_column(model_md))
    with gr.Tabs():
        with gr.Tab("Face") as c["tabs"]["Face"]:
            c.update(_face_tab())
        _other_tabs(c)
    return Components(**{f.name: c[f.name] for f in fields(Components)})


# --- view models → updates ------------------------------------------------------------------------------


class Updates:
    """The studio's view models as ``{component: value}`` updates of the page."""

    def __init__(self, c: Components, to_file: ImageFiles) -> None:
        self.c, self.to_file = c, to_file

    def frame(self, view: FrameView | None, with_image: bool = False) -> dict:
        if view is None:
            return {}
        out = {self.c.layer_plot: figure_value(view.layer_fig), self.c.facs_plot: figure_value(view.facs_fig),
               self.c.facs_table: _table(view), self.c.facs_note: view.facs_note}
        if with_image or view.frame_image is not None:
            out[self.c.frame_img] = self.to_file(view.frame_image)
        return out

    def pview(self, view: PView) -> dict:
        c, out = self.c, {}
        if "header" in view.parts:
            out.update({c.label: view.label, c.prob_plot: view.probabilities_fig,
                        c.modality_plot: view.modality_fig, c.flops_text: view.flops_text,
                        c.floor_note: view.floor_text})
        if "audio" in view.parts:
            out[c.mel_plot] = figure_value(view.mel_fig)
        if "cue" in view.parts:
            out.update({c.cue_md: view.cue_text, c.cue_plot: figure_value(view.cue_fig)})
        if "cost" in view.parts:
            out.update({c.flops_plot: figure_value(view.flops_fig), c.numbers: view.numbers})
            if view.flops_p_fig is not None:   # before its sweep the curve keeps what it shows
                out[c.flops_p_plot] = figure_value(view.flops_p_fig)
        return out

    def clip(self, view: ClipView) -> dict:
        c = self.c
        out = {c.clip_md: view.summary,
               c.frame_index: gr.Slider(minimum=0, maximum=max(view.n_frames - 1, 1), value=view.frame, step=1,
                                        interactive=view.n_frames > 1)}
        if view.strip is not None:
            strip = [(self.to_file(image), caption) for image, caption in view.strip]
            out[c.gallery] = gr.Gallery(value=strip, selected_index=view.frame if view.n_frames else None)
        return out

    def cleared(self, message: str) -> dict:
        """Every result view emptied and everything that acts on a result disabled."""
        c = self.c
        out = {component: None for component in (c.state, c.frame_img, c.layer_plot, c.facs_plot, c.label,
                                                   c.mel_plot, c.flops_plot, c.flops_p_plot, c.numbers, c.cue_plot,
                                                   c.export_file)}
        out.update({component: "" for component in (c.facs_note, c.flops_text, c.cue_md, c.clip_md, c.text_note,
                                                     c.floor_note, c.floor_range, c.prob_plot, c.modality_plot)})
        out.update({c.gallery: [], c.frame_index: gr.Slider(minimum=0, maximum=1, value=0, interactive=False),
                    c.facs_table: {"headers": ["region"], "data": []}, c.tabs["Ground truth"]: gr.Tab(visible=False),
                    c.export_btn: gr.Button(interactive=False), c.retext_btn: gr.Button(interactive=False),
                    c.status: message})
        return out


def _outputs(*groups) -> list:
    """The components of several groups, each once, in order."""
    return list(dict.fromkeys(component for group in groups for component in group))


def _guard(fn: Callable[..., dict], explain: Callable[[BaseException], ErrorText],
           on_error: Callable[[ErrorText], dict], after: Callable[[gr.Request | None, dict], dict] | None = None
           ) -> Callable[..., dict]:
    """Wrap a callback so that any failure becomes ``on_error(message)`` (never a red error badge, the
    server keeps serving). Input errors are the user's to fix; anything else is logged with its traceback.
    ``after(request, updates)`` then sees every result (the session store: :class:`Sessions`)."""

    @functools.wraps(fn)  # gradio reads the signature (gr.Progress, gr.Request) through __wrapped__
    def wrapper(*args: Any) -> dict:
        try:
            out = fn(*args)
        except Exception as exc:  # noqa: BLE001 — any failure must keep the server serving
            if not isinstance(exc, MesmError):
                log.error("callback %s failed:\n%s", fn.__name__, traceback.format_exc())
            out = on_error(explain(exc))
        if after is None:
            return out
        return after(next((a for a in args if isinstance(a, gr.Request)), None), out)

    return wrapper


# --- events ---------------------------------------------------------------------------------------------


@dataclass
class _Wiring:
    """What every event handler needs: the components, the studio, the update builder, the queue limits."""

    c: Components
    studio: Studio
    up: Updates
    preview_dir: Path
    analyses: int          # analyses at once
    views: int             # view updates at once (slider, frames, tabs)
    sessions: Sessions

    def status_only(self, message: ErrorText) -> dict:
        return {self.c.status: message.markdown()}

    def failed(self, message: ErrorText) -> dict:
        return self.up.cleared(message.markdown())

    def guard(self, fn: Callable[..., dict], on_error: Callable[[ErrorText], dict] | None = None) -> Callable:
        return _guard(fn, self.studio.explain, on_error or self.status_only,
                      lambda request, out: self.sessions.send(request, out, self.c))

    def queue(self, group: str) -> dict:
        limit = {"analysis": self.analyses, "views": self.views, "sweep": self.analyses}[group]
        return dict(concurrency_id=group, concurrency_limit=limit)

    def quiet(self, progress: str = "minimal") -> dict:
        """A view update's progress shows on the status line only (a spinner on every output costs the
        page a relayout per output and per tick of its timer); a follow-up step shows none, anywhere."""
        return dict(show_progress=progress, show_progress_on=[self.c.status if progress != "hidden" else self.c.tab])


def _wire_clip(w: _Wiring) -> Callable:
    """A new file, Analyze, the strip and the cost curve after it. Returns the cost-curve step."""
    c, studio, up, sessions = w.c, w.studio, w.up, w.sessions

    def new_file(path, checkpoint, request: gr.Request):
        if not path:
            return up.cleared("Upload a clip and press **Analyze**.")
        studio.prefetch(path, checkpoint)   # the clip is prepared while the transcript is typed
        text, source = studio.transcript_for(path)
        said = (f"its transcript was filled in from {source}" if text else
                "the transcript box was cleared (it belonged to the previous clip): type the words spoken")
        out = up.cleared(f"New file “{Path(path).name}”: {said}, then press **Analyze** (earlier results were "
                         "cleared).")
        out[c.transcript] = text or ""
        return out

    def analyze(video_path, text, checkpoint, p, cues, paper_rule, tab, request: gr.Request,
                progress=gr.Progress()):
        result = studio.analyze(video_path, text, checkpoint, p, cues, lambda f, s: progress(f, desc=s),
                                keep_floor=not paper_rule, parts=parts_for(tab), frames=not tab)
        return {c.state: result.state, **up.clip(result.clip), **up.frame(result.frame, with_image=not tab),
                **up.pview(result.pview), c.tabs["Ground truth"]: gr.Tab(visible=studio.has_cues(result.state)),
                c.text_note: studio.text_note(result.state), c.floor_range: "", c.export_btn: gr.Button(interactive=True),
                c.retext_btn: gr.Button(interactive=True), c.export_file: None, c.status: result.status}

    def frames(state, request: gr.Request):
        state = sessions.newest(request, state)
        if state is None:
            return {c.clip_md: gr.skip()}
        clip, frame = studio.strip(state)
        return {**up.clip(clip), c.frame_img: up.to_file(frame.frame_image)}

    def cost_curve(state, tab, request: gr.Request):
        state = sessions.newest(request, state)
        if state is None:
            return {c.flops_text: gr.skip()}
        figure, text = studio.cost_curve(state)
        out = {c.floor_range: studio.floor_range_text(state), c.clip_md: studio.clip_summary(state)}
        if not tab:
            out[c.flops_text] = text   # an API call; a page has it from the update it shows
        # Sent whatever the tab (once per analysis): the Cost tab may be opened while the sweep runs.
        out[c.flops_p_plot] = figure_value(figure)
        return out

    follow = [c.flops_p_plot, c.flops_text, c.floor_range, c.clip_md]
    analyze_event = c.analyze_btn.click(
        w.guard(analyze, w.failed), inputs=[c.video, c.transcript, c.checkpoint, c.top_p, c.cue_file, c.paper_rule,
                                            c.tab], outputs=_outputs(c.results(), c.views()), api_name="analyze",
        **w.queue("analysis"))
    analyze_event.then(w.guard(frames), inputs=[c.state], outputs=[c.gallery, c.frame_index, c.frame_img, c.clip_md],
                       api_name="frames", **w.quiet("hidden"), **w.queue("views")).then(
        w.guard(cost_curve, lambda m: {c.flops_text: gr.skip()}), inputs=[c.state, c.tab], outputs=follow,
        api_name="cost_curve", trigger_mode="always_last", **w.quiet("hidden"), **w.queue("sweep"))

    def make_preview_view(path):
        if not path:
            return {c.preview: None, c.preview_note: ""}
        shown = background().submit(make_preview, path, w.preview_dir).result()   # at a low priority
        return {c.preview: shown.path, c.preview_note: shown.note}

    c.video.change(w.guard(new_file, w.failed), inputs=[c.video, c.checkpoint],
                   outputs=_outputs([c.transcript], c.results(), c.views()), cancels=[analyze_event],
                   api_visibility="private", show_progress="hidden", queue=False).then(
        make_preview_view, inputs=[c.video], outputs=[c.preview, c.preview_note], api_name="preview",
        show_progress="minimal", concurrency_id="preview",
        # A `.then` defaults to "once": a new file while the last preview is still being made would get no
        # preview at all, leaving the previous clip's on screen. "always_last" runs it once that one ends.
        trigger_mode="always_last")

    def cue_changed(path, request: gr.Request):
        return up.cleared("Cue file changed: press **Analyze** to run the clip with it.")

    c.cue_file.change(w.guard(cue_changed), inputs=[c.cue_file], outputs=_outputs(c.results(), c.views()),
                      api_visibility="private", queue=False)
    return w.guard(cost_curve, lambda m: {c.flops_text: gr.skip()})


def _wire_views(w: _Wiring, cost_curve: Callable) -> None:
    """The slider, the floor switch and the transcript: the ``views`` queue; the cost curve after them."""
    c, studio, up, sessions = w.c, w.studio, w.up, w.sessions

    def refresh(state, tab, request: gr.Request):
        """After an update: draw the tab the page shows now when the update drew another one."""
        state = sessions.newest(request, state)
        if state is None or not tab or state.shown == next(iter(parts_for(tab) - {"header"}), "header"):
            return {c.label: gr.skip()}   # (an empty dict would read as one value, not as "no update")
        frame, pview = studio.tab_views(state, tab)
        return {**up.frame(frame), **up.pview(pview)} or {c.label: gr.skip()}

    def set_top_p(state, p, tab, request: gr.Request):
        value, note = clamp_top_p(p)
        if state is None:  # nothing analysed yet: the value waits for Analyze
            shown = value if value is not None else TOP_P_RANGE[1]
            return {c.top_p: gr.Slider(value=shown), c.status: note or f"top-p = {shown:g}: press **Analyze** to run it."}
        result = studio.set_top_p(state, p, parts_for(tab))
        out = {c.state: result.state, **up.frame(result.frame), **up.pview(result.pview), c.status: result.status}
        if result.state.top_p is not None and result.state.top_p != value:
            out[c.top_p] = gr.Slider(value=result.state.top_p)   # the applied value, where it differs
        return out

    def set_floors(state, paper_rule, tab, request: gr.Request):
        if state is None:
            return {c.status: "The rule applies from the next **Analyze**."}
        result = studio.set_floors(state, not paper_rule, parts_for(tab))
        return {c.state: result.state, **up.frame(result.frame), **up.pview(result.pview), c.status: result.status}

    def set_transcript(state, text, tab, request: gr.Request):
        result = studio.set_transcript(state, text, parts_for(tab))
        return {c.state: result.state, **up.frame(result.frame), **up.pview(result.pview),
                c.text_note: studio.text_note(result.state), c.status: result.status}

    views, after = w.queue("views"), [c.flops_p_plot, c.flops_text, c.floor_range, c.clip_md]
    refresh = w.guard(refresh, lambda m: {c.label: gr.skip()})
    c.top_p.release(w.guard(set_top_p), inputs=[c.state, c.top_p, c.tab], outputs=[c.state, *c.views(), c.top_p, c.status],
                    api_name="set_top_p", trigger_mode="always_last", **w.quiet(), **views).then(
        refresh, inputs=[c.state, c.tab], outputs=c.views(), api_visibility="private", **w.quiet("hidden"), **views)
    c.paper_rule.input(w.guard(set_floors), inputs=[c.state, c.paper_rule, c.tab],
                       outputs=[c.state, *c.views(), c.status], api_name="set_floors", **w.quiet(), **views).then(
        cost_curve, inputs=[c.state, c.tab], outputs=after, api_visibility="private", trigger_mode="always_last",
        **w.quiet("hidden"), **w.queue("sweep"))
    retext = w.guard(set_transcript)
    for trigger, name in ((c.retext_btn.click, "set_transcript"), (c.transcript.submit, None)):
        trigger(retext, inputs=[c.state, c.transcript, c.tab], outputs=[c.state, *c.views(), c.text_note, c.status],
                api_name=name, api_visibility="public" if name else "private", **w.quiet(), **views).then(
            cost_curve, inputs=[c.state, c.tab], outputs=after, api_visibility="private", trigger_mode="always_last",
            **w.quiet("hidden"), **w.queue("sweep"))
    _wire_frames_and_tabs(w, refresh)


def _wire_frames_and_tabs(w: _Wiring, refresh: Callable) -> None:
    """The frame slider and strip, and the tabs (each drawn when opened)."""
    c, studio, up = w.c, w.studio, w.up
    select_outputs = [c.state, c.gallery, c.frame_index, c.frame_img, c.layer_plot, c.facs_plot, c.facs_table,
                      c.facs_note, c.status]

    def select_frame(state, index, request: gr.Request):
        new_state, frame, note = studio.select_frame(w.sessions.newest(request, state), index)
        out = {c.state: new_state, c.gallery: gr.Gallery(selected_index=frame.frame),
               c.frame_index: gr.Slider(value=frame.frame), **up.frame(frame, with_image=True)}
        if note:
            out[c.status] = note
        return out

    def pick_from_strip(state, evt: gr.SelectData, request: gr.Request):
        return select_frame(state, evt.index, request)

    views = w.queue("views")
    c.frame_index.release(w.guard(select_frame), inputs=[c.state, c.frame_index], outputs=select_outputs,
                          api_name="select_frame", **w.quiet(), **views)
    c.gallery.select(w.guard(pick_from_strip), inputs=[c.state], outputs=select_outputs, api_visibility="private",
                     **w.quiet(), **views)
    for name, tab in c.tabs.items():
        # The page's hidden box learns the tab at once (no round trip); then the tab's views are drawn.
        tab.select(None, None, [c.tab], js=f"() => {json.dumps(name)}", api_visibility="private").then(
            refresh, inputs=[c.state, c.tab], outputs=c.views(), api_visibility="private", **w.quiet(), **views)


def _wire_other(w: _Wiring, model_markdown: Callable[[str | None], str]) -> None:
    """The checkpoint picker, Export, and the page's load (it tells the server it is a page)."""
    c, studio, up = w.c, w.studio, w.up

    def checkpoint_info(ck):
        control = studio.top_p_control(ck)
        slider = gr.Slider(interactive=control.interactive) if control.default_p is None else gr.Slider(
            interactive=control.interactive, value=control.default_p)
        return {c.top_p: slider, c.p_note: control.note, c.model_md: model_markdown(ck),
                c.paper_rule: gr.Checkbox(visible=any(v > 0 for v in control.floors.values()), value=False,
                                          info=control.floors_off_note or None)}

    def checkpoint_changed(ck, request: gr.Request):
        return up.cleared("Checkpoint changed: press **Analyze** to run the clip with it.")

    c.checkpoint.change(checkpoint_info, inputs=[c.checkpoint], outputs=[c.top_p, c.p_note, c.model_md, c.paper_rule],
                        api_name="checkpoint_info").then(
        w.guard(checkpoint_changed), inputs=[c.checkpoint], outputs=_outputs(c.results(), c.views()),
        api_visibility="private", queue=False)

    def export(state):
        return {c.export_file: studio.export(state),
                c.status: "**Done:** report written (download it below the Export button)."}

    c.export_btn.click(w.guard(export), inputs=[c.state], outputs=[c.export_file, c.status], api_name="export",
                       concurrency_id="export", concurrency_limit=1)


def wire(c: Components, studio: Studio, to_file: ImageFiles, model_markdown: Callable[[str | None], str],
         demo: gr.Blocks) -> None:
    """Attach every event of the page (see the module docstring for the API names and queues)."""
    analyses = max(1, studio.settings.concurrency)
    w = _Wiring(c, studio, Updates(c, to_file), Path(to_file.folder) / "previews", analyses, max(2, 2 * analyses),
                Sessions())
    cost_curve = _wire_clip(w)
    _wire_views(w, cost_curve)
    _wire_other(w, model_markdown)
    # The page tells the server it is a page (only pages get "unchanged: skipped" updates) and which tab it
    # shows; an API call, which runs no page, leaves the tab box empty and gets every view.
    demo.load(w.sessions.mark_page, None, None, api_visibility="private", queue=False).then(
        None, None, [c.tab], js="() => 'Face'", api_visibility="private")


def build_app(settings: AppSettings | None = None, studio: Studio | None = None) -> gr.Blocks:
    """Build the Blocks app (not launched). ``studio`` lets tests share a preloaded :class:`Studio`."""
    studio = studio or Studio(settings)
    to_file = ImageFiles()

    def model_markdown(checkpoint: str | None) -> str:
        info = studio.model_info(checkpoint)
        if info is None:
            return "**Model:** this folder is not a readable checkpoint; Analyze says why."
        return info.markdown(file_link(info.card) if info.card else None)

    with gr.Blocks(title="MESM attention studio", analytics_enabled=False) as demo:
        c = layout(studio, model_markdown(studio.default_checkpoint()))
        wire(c, studio, to_file, model_markdown, demo)
    return demo


def served_files(settings: AppSettings) -> list[str]:
    """Files the page links to: the model cards of the checkpoints it offers, and docs/deviations.md."""
    folders = bundled_checkpoints() + discover_checkpoints(*settings.checkpoint_dirs)
    cards = [str(Path(f) / "README.md") for f in folders if (Path(f) / "README.md").is_file()]
    default = Path(settings.checkpoint)
    for folder in (default, default / "best"):
        if (folder / "README.md").is_file():
            cards.append(str((folder / "README.md").resolve()))
    return [*dict.fromkeys(cards), *([str(DEVIATIONS)] if DEVIATIONS.is_file() else [])]


def launch_kwargs(settings: AppSettings) -> dict[str, Any]:
    """Keyword arguments for ``demo.launch``: upload size limit, served files (samples, model cards,
    docs/deviations.md, the figures' pictures), CSS and the page's script."""
    return {
        "max_file_size": f"{settings.max_upload_mb:g}mb",
        "allowed_paths": [str(SAMPLES_DIR), *served_files(settings), str(image_store.folder()), str(PLOTLY_FILE)],
        "css": CSS,
        "js": PAGE_JS,
        "head": HEAD + f'<script src="{file_link(PLOTLY_FILE)}"></script>',
        "footer_links": ["api", "gradio"],
    }
