"""The Gradio 6 Blocks app of the attention studio: layout, event wiring and error display.

All computation is in :class:`mesm_viz.studio.Studio` (plain Python, tested without a server). Here
each callback only unpacks the studio's views into component values and turns errors into one status
line (what to do; the detail one click away) with the server still serving.

Every view belongs to the clip shown: a new file (or another checkpoint) clears the results and disables
what acted on them, and so does a failed analysis. Uploads are plain files (any container); the video box
shows a browser-playable preview made on the server (:mod:`mesm_viz.preview`).

Events and their API names (every one callable with ``gradio_client``):

=================  ===========================================  ===========================================
``/analyze``       video, transcript, checkpoint, top_p, cues    p-independent stage + first result
``/set_top_p``     top_p                                         sparse stage + heads only (cached state)
``/set_transcript`` transcript                                   text re-encoded, dense features reused
``/select_frame``  frame index                                   face views of another sampled frame
``/cost_curve``    —                                             FLOPs/kept vs p plot (runs after /analyze)
``/export``        —                                             report.json + PNGs + flops.csv as a .zip
``/checkpoint_info`` checkpoint                                  slider state, note and model facts
``/preview``       video                                         browser-playable preview and its note
=================  ===========================================  ===========================================
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import functools
import json
import logging
import re
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from mesm_core.errors import MesmError
from mesm_viz.catalog import REPO_ROOT, SAMPLES_DIR, bundled_checkpoints, discover_checkpoints, sample_clips
from mesm_viz.messages import ErrorText
from mesm_viz.preview import make_preview
from mesm_viz.studio import TOP_P_RANGE, AppSettings, Studio, StudioState, clamp_top_p
from mesm_viz.views import BORDER_CELLS_NOTE, ClipView, FrameView, PView

log = logging.getLogger(__name__)

__all__ = ["build_app", "launch_kwargs", "LenientSlider"]

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
  overflow-y: visible !important;}}
#mesm-facs-table th span.header {{white-space: normal !important; word-break: keep-all !important;
  overflow-wrap: normal !important; hyphens: none;}}
#mesm-layers image, #mesm-facs image, #mesm-mel image {{image-rendering: pixelated;}}
#mesm-model {{font-size: 0.95em}}
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


def _file_link(path: str | os.PathLike) -> str:
    """A URL the page can open for a file the app serves (``allowed_paths``)."""
    return "/gradio_api/file=" + str(Path(path).resolve())


def _border_cells_text() -> str:
    """docs/deviations.md's "Border cells" paragraph (the one source), else the short note."""
    try:
        text = DEVIATIONS.read_text(encoding="utf-8")
    except OSError:
        return BORDER_CELLS_NOTE
    found = re.search(r"\*\*Border cells\.\*\*(.*?)(?:\n\n|\Z)", text, re.DOTALL)
    return " ".join(found.group(1).split()) if found else BORDER_CELLS_NOTE


def _plot(figure: Any) -> Any:
    """Plotly figures pass through; a plotly JSON dict (the studio's interactive views, the cached cost
    curve) is handed over as-is."""
    if isinstance(figure, dict):
        from gradio.components.plot import PlotData
        from plotly.utils import PlotlyJSONEncoder

        return PlotData(type="plotly", plot=json.dumps(figure, cls=PlotlyJSONEncoder))
    return figure


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


def _table(view: FrameView) -> Any:
    """The FACS table with column widths that fit the page: the text columns first, then the numbers."""
    n = len(view.facs_headers)
    text = ["15%", "14%", "17%"][:n]
    rest = [f"{(100 - 46) / (n - 3):.1f}%"] * (n - 3) if n > 3 else []
    return gr.Dataframe(value={"headers": view.facs_headers, "data": view.facs_rows},
                        column_widths=text + rest if n > 3 else None)


def _guard(fn: Callable[..., list], on_error: Callable[[ErrorText], list], explain: Callable[[BaseException], ErrorText]
           ) -> Callable[..., list]:
    """Wrap a callback so that any failure becomes ``on_error(message)`` (never a red error badge, the
    server keeps serving). Input errors are the user's to fix; anything else is logged with its traceback."""

    @functools.wraps(fn)  # gradio reads the signature (a gr.Progress default) through __wrapped__
    def wrapper(*args: Any) -> list:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 — any failure must keep the server serving
            if not isinstance(exc, MesmError):
                log.error("callback %s failed:\n%s", fn.__name__, traceback.format_exc())
            return on_error(explain(exc))

    return wrapper


def build_app(settings: AppSettings | None = None, studio: Studio | None = None) -> gr.Blocks:
    """Build the Blocks app (not launched). ``studio`` lets tests share a preloaded :class:`Studio`."""
    studio = studio or Studio(settings)
    settings = studio.settings
    choices = studio.checkpoint_choices()
    default_checkpoint = studio.default_checkpoint()
    interactive, default_p, p_note = studio.top_p_control(default_checkpoint)
    samples = sample_clips()
    to_file = ImageFiles()
    preview_dir = Path(to_file.folder) / "previews"

    def model_markdown(checkpoint: str | None) -> str:
        info = studio.model_info(checkpoint)
        if info is None:
            return "**Model:** this folder is not a readable checkpoint; Analyze says why."
        return info.markdown(_file_link(info.card) if info.card else None)

    with gr.Blocks(title="MESM attention studio", analytics_enabled=False) as demo:
        state = gr.State(value=None)
        gr.Markdown(
            "## MESM attention studio\n"
            "Where does the Multimodal End-to-end Sparse Model (Dai et al., NAACL 2021) look? Upload a short "
            "clip with its transcript: the text queries every face frame and every 400 ms mel chunk, and each "
            "sparse layer keeps only the cells holding a share **p** of that attention (top-p). Move the "
            "slider to see cost and masks change; edit the words to see the masks move."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=320):
                video = gr.File(label="Video file: any container (MP4, MOV, AVI, MKV, WebM…)", file_count="single",
                                type="filepath", height=110, elem_id="mesm-upload")
                preview = gr.Video(label="Preview (a browser-playable copy made on the server)", interactive=False,
                                   height=240, elem_id="mesm-preview")
                preview_note = gr.Markdown(elem_id="mesm-preview-note")
                transcript = gr.Textbox(label="Transcript (MESM needs the words)", lines=2, max_lines=4,
                                        placeholder="What is said in the clip", elem_id="mesm-transcript",
                                        info="After an analysis, edit it and press 'Re-run transcript' (or "
                                             "Shift+Enter; Enter starts a new line): only the text is re-encoded, "
                                             "the masks move with the words.")
                text_note = gr.Markdown(elem_id="mesm-text-note")
                checkpoint = gr.Dropdown(choices=choices, value=default_checkpoint, label="Checkpoint",
                                         allow_custom_value=True)
                top_p = LenientSlider(TOP_P_RANGE[0], TOP_P_RANGE[1], value=default_p or 0.5, step=0.05,
                                      label="top-p (nucleus share kept)", interactive=interactive)
                p_note_md = gr.Markdown(p_note)
                with gr.Row():
                    analyze_btn = gr.Button("Analyze", variant="primary")
                    retext_btn = gr.Button("Re-run transcript", interactive=False)
                with gr.Accordion("Ground truth for a synthetic clip (optional)", open=False):
                    cue_file = gr.File(label="Its cue file (cues/<id>.npz from mesm_core.data.synthetic)",
                                       file_types=[".npz"], type="filepath", height=90)
                    gr.Markdown("Clips made by the synthetic generator come with their true cue regions. The "
                                "sample clips' cue files are found by themselves; for another synthetic clip "
                                "give its `cues/<id>.npz` here, then Analyze.")
                gr.Markdown(
                    f"Limits: upload ≤ {settings.max_upload_mb:g} MB, clip ≤ {settings.max_seconds:g} s; one face "
                    "frame every 0.5 s. Runs on CPU."
                )
                if samples:
                    gr.Examples(examples=[[v, t] for v, t in samples], inputs=[video, transcript],
                                label="Sample clips (transcript from the .txt beside each; true cues known)",
                                cache_examples=False, example_labels=[Path(v).stem for v, _ in samples])
            with gr.Column(scale=7, min_width=480):
                status = gr.Markdown("Upload a clip and press **Analyze**.", elem_id="mesm-status")
                flops_text = gr.Markdown(elem_id="mesm-flops")
                with gr.Row(equal_height=False):
                    label = gr.Label(label="Predictions (sigmoid, multi-label)", num_top_classes=8, scale=3,
                                     min_width=220, elem_id="mesm-label")
                    with gr.Column(scale=4, min_width=260):
                        model_md = gr.Markdown(model_markdown(default_checkpoint), elem_id="mesm-model")
                prob_plot = gr.Plot(label="Probabilities and thresholds", elem_id="mesm-probabilities")
                modality_plot = gr.Plot(label="Modality contributions")
                gr.Markdown("Modality contributions: fusion weight × branch logit per class; the diamond is the "
                            "fused logit (its sigmoid is the probability). Fusion weights are unconstrained scalars.")
                clip_md = gr.Markdown()
        with gr.Tabs():
            with gr.Tab("Face"):
                gallery = gr.Gallery(label="Sampled frames (click one; green box = face, orange = no face: "
                                           "centre crop; blue border = selected)",
                                     columns=STRIP_COLUMNS, height="auto", allow_preview=False, object_fit="contain",
                                     elem_id="mesm-strip")
                frame_index = LenientSlider(0, 1, value=0, step=1, label="Selected frame", interactive=False,
                                            elem_id="mesm-frame")
                gr.Markdown("The selected frame · its 48×48 face crop per sparse layer (top: text-queried "
                            "attention, min–max scaled per frame, hover a cell for its value and rank; bottom: "
                            "kept cells, dropped ones dimmed) · FACS regions over the layer-1 attention")
                with gr.Row(equal_height=False):
                    frame_img = gr.Image(label="Selected frame", type="filepath", height=360, interactive=False,
                                         scale=2)
                    layer_plot = gr.Plot(label="Face crop per sparse layer", scale=3, elem_id="mesm-layers")
                with gr.Row(equal_height=False):
                    facs_plot = gr.Plot(label="FACS regions over layer-1 attention", scale=3, elem_id="mesm-facs")
                    with gr.Column(scale=2):
                        facs_note = gr.Markdown(elem_id="mesm-facs-note")
                facs_table = gr.Dataframe(label="FACS regions: attention mass and kept fraction per layer",
                                          interactive=False, wrap=True, max_height=460, elem_id="mesm-facs-table")
            with gr.Tab("Audio"):
                gr.Markdown("Mel spectrogram (dB) and, below it, the cells each sparse layer kept (tinted; dropped "
                            "cells dimmed), 400 ms chunks side by side. Time in seconds, frequency in Hz on the "
                            "mel scale.")
                mel_plot = gr.Plot(label="Mel spectrogram and kept cells", elem_id="mesm-mel")
            with gr.Tab("Ground truth", visible=False, elem_id="mesm-cue-tab") as cue_tab:
                gr.Markdown("This clip comes with its **true cue regions** (the synthetic generator's, "
                            "docs/synthetic.md), drawn as dotted green outlines on the face and the spectrogram. "
                            "Per sparse layer: the share of attention mass and of kept cells inside the cue, "
                            "against chance (the cue's share of the grid) — the quantity `python -m "
                            "mesm_core.evaluate` reports over a test split, here for this clip at this p. A cell "
                            "counts as cue when at least half of it is.")
                cue_md = gr.Markdown(elem_id="mesm-cue-text")
                cue_plot = gr.Plot(label="Attention on the true cue vs chance", elem_id="mesm-cues")
            with gr.Tab("Cost"):
                with gr.Row():
                    flops_plot = gr.Plot(label="FLOPs per layer")
                    flops_p_plot = gr.Plot(label="FLOPs and kept fraction against p", elem_id="mesm-pcurve")
                gr.Markdown(f"**Why MESM stays below dense even at p = 1 (border cells).** {_border_cells_text()} "
                            f"Source: [docs/deviations.md, \"Border cells\"]({_file_link(DEVIATIONS)}).",
                            elem_id="mesm-border-cells")
                with gr.Accordion("Numbers (as returned by the API)", open=False):
                    numbers = gr.JSON(label="Numbers")
            with gr.Tab("Export"):
                gr.Markdown("Writes `report.json`, `flops.csv` and the overlay PNGs (the same writer as "
                            "`python -m mesm_viz.report`) for the current p and frame.")
                export_btn = gr.Button("Export report", interactive=False)
                export_file = gr.File(label="Report (.zip)", interactive=False)

        # --- what a clip's results are, and how they are cleared --------------------------------------
        frame_outputs = [layer_plot, facs_plot, facs_table, facs_note]
        p_outputs = [label, prob_plot, modality_plot, mel_plot, flops_plot, flops_p_plot, flops_text, numbers,
                     cue_md, cue_plot]
        result_outputs = [state, gallery, frame_index, frame_img, *frame_outputs, *p_outputs, clip_md, cue_tab,
                          text_note, export_btn, retext_btn, export_file, status]

        def frame_values(view: FrameView) -> list:
            return [_plot(view.layer_fig), _plot(view.facs_fig), _table(view), view.facs_note]

        def p_values(view: PView) -> list:
            return [view.label, view.probabilities_fig, view.modality_fig, _plot(view.mel_fig), view.flops_fig,
                    _plot(view.flops_p_fig), view.flops_text, view.numbers, view.cue_text, view.cue_fig]

        def cleared(message: str) -> list:
            """Every result view emptied and everything that acts on a result disabled."""
            empty_frames = [None, None, {"headers": ["region"], "data": []}, ""]
            empty_p = [None, None, None, None, None, None, "", None, "", None]
            return [None, [], gr.Slider(minimum=0, maximum=1, value=0, interactive=False), None, *empty_frames,
                    *empty_p, "", gr.Tab(visible=False), "", gr.Button(interactive=False),
                    gr.Button(interactive=False), None, message]

        def failed(message: ErrorText) -> list:
            return cleared(message.markdown())

        # --- a new file: clear the old results, then make the preview --------------------------------
        def new_file(path):
            if not path:
                return cleared("Upload a clip and press **Analyze**.")
            return cleared(f"New file “{Path(path).name}”: press **Analyze** to run it (earlier results were "
                           "cleared).")

        def make_preview_view(path):
            if not path:
                return [None, ""]
            shown = make_preview(path, preview_dir)
            return [shown.path, shown.note]

        # --- analyze ---------------------------------------------------------------------------------
        def analyze(video_path, text, ck, p, cues, progress=gr.Progress()):
            def report(fraction: float, stage: str) -> None:
                progress(fraction, desc=stage)

            new_state, clip, frame, pv, message = studio.analyze(video_path, text, ck, p, cues, report)
            clip: ClipView
            strip = [(to_file(image), caption) for image, caption in clip.strip]
            slider = gr.Slider(minimum=0, maximum=max(clip.n_frames - 1, 1), value=frame.frame, step=1,
                               interactive=clip.n_frames > 1)
            return [new_state, gr.Gallery(value=strip, selected_index=frame.frame if clip.n_frames else None),
                    slider, to_file(frame.frame_image), *frame_values(frame), *p_values(pv), clip.summary,
                    gr.Tab(visible=pv.cue_fig is not None), studio.text_note(new_state), gr.Button(interactive=True),
                    gr.Button(interactive=True), None, message]

        def cost_curve(current):
            try:
                figure, text = studio.cost_curve(current)
                return [_plot(figure), text]
            except Exception:  # noqa: BLE001 — the step before already reported the problem
                return [gr.skip(), gr.skip()]

        analyze_event = analyze_btn.click(
            _guard(analyze, failed, studio.explain), inputs=[video, transcript, checkpoint, top_p, cue_file],
            outputs=result_outputs, api_name="analyze", concurrency_id="model", concurrency_limit=1,
        )
        analyze_event.then(cost_curve, inputs=[state], outputs=[flops_p_plot, flops_text], api_name="cost_curve",
                           show_progress="hidden", concurrency_id="model", trigger_mode="always_last")

        video.change(new_file, inputs=[video], outputs=result_outputs, cancels=[analyze_event],
                     api_visibility="private", show_progress="hidden", queue=False).then(
            make_preview_view, inputs=[video], outputs=[preview, preview_note], api_name="preview",
            show_progress="minimal", concurrency_id="preview",
            # A `.then` defaults to "once": a new file while the last preview is still being made would get no
            # preview at all, leaving the previous clip's on screen. "always_last" runs it once that one ends.
            trigger_mode="always_last")
        cue_file.change(lambda path: cleared("Cue file changed: press **Analyze** to run the clip with it."),
                        inputs=[cue_file], outputs=result_outputs, api_visibility="private", queue=False)

        # --- top-p -----------------------------------------------------------------------------------
        p_change_outputs = [state, *frame_outputs, *p_outputs, top_p, status]

        def set_top_p(current: StudioState | None, p):
            value, note = clamp_top_p(p)
            if current is None:  # nothing analysed yet: the value waits for Analyze
                shown = value if value is not None else TOP_P_RANGE[1]
                message = note or f"top-p = {shown:g}: press **Analyze** to run it."
                return [gr.skip()] * (len(p_change_outputs) - 2) + [gr.Slider(value=shown), message]
            new_state, frame, pv, message = studio.set_top_p(current, p)
            return [new_state, *frame_values(frame), *p_values(pv),
                    gr.Slider(value=new_state.top_p) if new_state.top_p is not None else gr.skip(), message]

        def status_only(outputs: list) -> Callable[[ErrorText], list]:
            return lambda message: [gr.skip()] * (len(outputs) - 1) + [message.markdown()]

        top_p.release(_guard(set_top_p, status_only(p_change_outputs), studio.explain),
                      inputs=[state, top_p], outputs=p_change_outputs, api_name="set_top_p",
                      trigger_mode="always_last", show_progress="minimal", concurrency_id="model")

        # --- transcript --------------------------------------------------------------------------------
        retext_outputs = [state, *frame_outputs, *p_outputs, text_note, status]

        def set_transcript(current, text):
            new_state, frame, pv, message = studio.set_transcript(current, text)
            return [new_state, *frame_values(frame), *p_values(pv), studio.text_note(new_state), message]

        retext = _guard(set_transcript, status_only(retext_outputs), studio.explain)
        retext_btn.click(retext, inputs=[state, transcript], outputs=retext_outputs, api_name="set_transcript",
                         concurrency_id="model").then(
            cost_curve, inputs=[state], outputs=[flops_p_plot, flops_text], api_visibility="private",
            show_progress="hidden", concurrency_id="model", trigger_mode="always_last")
        transcript.submit(retext, inputs=[state, transcript], outputs=retext_outputs,
                          api_visibility="private", concurrency_id="model").then(
            cost_curve, inputs=[state], outputs=[flops_p_plot, flops_text], api_visibility="private",
            show_progress="hidden", concurrency_id="model", trigger_mode="always_last")

        # --- frames ------------------------------------------------------------------------------------
        select_outputs = [state, gallery, frame_index, frame_img, *frame_outputs, status]

        def select_frame(current, index):
            new_state, frame, note = studio.select_frame(current, index)
            return [new_state, gr.Gallery(selected_index=frame.frame), gr.Slider(value=frame.frame),
                    to_file(frame.frame_image), *frame_values(frame), note or gr.skip()]

        select = _guard(select_frame, status_only(select_outputs), studio.explain)
        frame_index.release(select, inputs=[state, frame_index], outputs=select_outputs, api_name="select_frame",
                            show_progress="minimal", concurrency_id="model")

        def pick_from_strip(current, evt: gr.SelectData):
            return select(current, evt.index)

        gallery.select(pick_from_strip, inputs=[state], outputs=select_outputs, api_visibility="private",
                       show_progress="minimal", concurrency_id="model")

        # --- checkpoint / export -----------------------------------------------------------------------
        def checkpoint_info(ck):
            active, p_default, note = studio.top_p_control(ck)
            update = gr.Slider(interactive=active) if p_default is None else gr.Slider(interactive=active,
                                                                                        value=p_default)
            return [update, note, model_markdown(ck)]

        checkpoint.change(checkpoint_info, inputs=[checkpoint], outputs=[top_p, p_note_md, model_md],
                          api_name="checkpoint_info").then(
            lambda ck: cleared("Checkpoint changed: press **Analyze** to run the clip with it."),
            inputs=[checkpoint], outputs=result_outputs, api_visibility="private", queue=False)

        def export(current):
            return [studio.export(current), "**Done:** report written (download it below the Export button)."]

        export_btn.click(_guard(export, status_only([export_file, status]), studio.explain), inputs=[state],
                         outputs=[export_file, status], api_name="export", concurrency_id="model")
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
    docs/deviations.md), CSS."""
    return {
        "max_file_size": f"{settings.max_upload_mb:g}mb",
        "allowed_paths": [str(SAMPLES_DIR), *served_files(settings)],
        "css": CSS,
        "footer_links": ["api", "gradio"],
    }
