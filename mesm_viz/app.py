"""The Gradio 6 Blocks app of the attention studio: layout, event wiring and error display.

All computation is in :class:`mesm_viz.studio.Studio` (plain Python, tested without a server). Here
each callback only unpacks the studio's views into component values and turns errors into a
``gr.Warning`` plus a status line, so the server keeps serving whatever the upload.

Events and their API names (every one callable with ``gradio_client``):

=================  ===========================================  ===========================================
``/analyze``       video, transcript, checkpoint, top_p          p-independent stage + first result
``/set_top_p``     top_p                                         sparse stage + heads only (cached state)
``/set_transcript`` transcript                                   text re-encoded, dense features reused
``/select_frame``  frame index                                   face views of another sampled frame
``/cost_curve``    —                                             FLOPs/kept vs p plot (runs after /analyze)
``/export``        —                                             report.json + PNGs + flops.csv as a .zip
``/checkpoint_info`` checkpoint                                  slider state for that checkpoint (FE2E: off)
=================  ===========================================  ===========================================
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import json
import logging
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from mesm_core.errors import MesmError
from mesm_viz.catalog import SAMPLES_DIR, sample_clips
from mesm_viz.studio import AppSettings, Studio, describe_error
from mesm_viz.views import ClipView, FrameView, PView

log = logging.getLogger(__name__)

__all__ = ["build_app", "launch_kwargs"]

CSS = """
#mesm-status {min-height: 2.5em}
#mesm-flops {font-size: 1.05em}
.mesm-pixelated img {image-rendering: pixelated}
"""

def _safe(fn: Callable[..., list], n_outputs: int, status_index: int) -> Callable[..., list]:
    """Wrap a callback: on error, warn in the UI, write the message into the status output and leave
    every other output as it was (``gr.skip()``)."""

    def wrapper(*args: Any) -> list:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 — any failure must keep the server serving
            message = describe_error(exc)
            if not isinstance(exc, MesmError):  # input errors are the user's to fix; the rest is ours
                log.error("callback %s failed:\n%s", fn.__name__, traceback.format_exc())
            gr.Warning(message)
            out: list = [gr.skip()] * n_outputs
            out[status_index] = f"**Problem:** {message}"
            return out

    wrapper.__name__ = fn.__name__
    return wrapper


class ImageFiles:
    """Encode the app's images ourselves and hand Gradio file paths.

    Gradio would encode numpy outputs with PIL defaults (PNG level 6 / JPEG q75); a 10 s clip's
    spectrogram panel then costs ~0.1–0.3 s per slider move. Here: JPEG q92 for photos and the
    spectrogram, PNG level 1 for the small pixel-exact panels. Only the newest ``keep`` files are
    kept on disk (Gradio copies outputs into its own cache).
    """

    def __init__(self, keep: int = 256) -> None:
        import collections
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="mesm_app_images_"))
        self.keep = keep
        self.files: collections.deque[Path] = collections.deque()
        self.counter = 0
        self.lock = threading.Lock()

    def __call__(self, image: Any, kind: str = "png") -> str | None:
        if image is None:
            return None
        from PIL import Image

        with self.lock:
            self.counter += 1
            path = self.folder / f"{self.counter:08d}.{'jpg' if kind == 'jpeg' else 'png'}"
            self.files.append(path)
            stale = [self.files.popleft() for _ in range(max(0, len(self.files) - self.keep))]
        for old in stale:
            old.unlink(missing_ok=True)
        picture = Image.fromarray(image)
        if kind == "jpeg":
            picture.save(path, format="JPEG", quality=92)
        else:
            picture.save(path, format="PNG", compress_level=1)
        return str(path)


def _plot(figure: Any) -> Any:
    """Plotly figures pass through; a plotly JSON dict (the cached cost curve) is handed over as-is."""
    if isinstance(figure, dict):
        from gradio.components.plot import PlotData
        from plotly.utils import PlotlyJSONEncoder

        return PlotData(type="plotly", plot=json.dumps(figure, cls=PlotlyJSONEncoder))
    return figure


def _table(view: FrameView) -> dict:
    return {"headers": view.facs_headers, "data": view.facs_rows}


def build_app(settings: AppSettings | None = None, studio: Studio | None = None) -> gr.Blocks:
    """Build the Blocks app (not launched). ``studio`` lets tests share a preloaded :class:`Studio`."""
    studio = studio or Studio(settings)
    settings = studio.settings
    choices = studio.checkpoint_choices()
    default_checkpoint = studio.default_checkpoint()
    interactive, default_p, p_note = studio.top_p_control(default_checkpoint)
    samples = sample_clips()
    to_file = ImageFiles()

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
                video = gr.Video(label="Video (with audio)", sources=["upload"], format=None, height=240,
                                 include_audio=True)
                transcript = gr.Textbox(label="Transcript (MESM needs the words)", lines=2, max_lines=4,
                                        placeholder="What is said in the clip",
                                        info="After an analysis, edit it and press 'Re-run transcript' (or Enter): "
                                             "only the text is re-encoded, the masks move with the words.")
                checkpoint = gr.Dropdown(choices=choices, value=default_checkpoint, label="Checkpoint",
                                         allow_custom_value=True)
                top_p = gr.Slider(0.05, 1.0, value=default_p or 0.5, step=0.05, label="top-p (nucleus share kept)",
                                  interactive=interactive)
                p_note_md = gr.Markdown(p_note)
                with gr.Row():
                    analyze_btn = gr.Button("Analyze", variant="primary")
                    retext_btn = gr.Button("Re-run transcript")
                gr.Markdown(
                    f"Limits: upload ≤ {settings.max_upload_mb:g} MB, clip ≤ {settings.max_seconds:g} s; one face "
                    "frame every 0.5 s. Runs on CPU."
                )
                if samples:
                    gr.Examples(examples=[[v, t] for v, t in samples], inputs=[video, transcript],
                                label="Sample clips (transcript from the .txt beside each)",
                                cache_examples=False, example_labels=[Path(v).stem for v, _ in samples])
            with gr.Column(scale=7, min_width=480):
                status = gr.Markdown("Upload a clip and press **Analyze**.", elem_id="mesm-status")
                flops_text = gr.Markdown(elem_id="mesm-flops")
                with gr.Row(equal_height=False):
                    label = gr.Label(label="Predictions (sigmoid, multi-label)", num_top_classes=8, scale=2)
                    prob_plot = gr.Plot(label="Probabilities and thresholds", scale=3)
                modality_plot = gr.Plot(label="Modality contributions")
                gr.Markdown("Modality contributions: fusion weight × branch logit per class; the diamond is the "
                            "fused logit (its sigmoid is the probability). Fusion weights are unconstrained scalars.")
                clip_md = gr.Markdown()
        with gr.Tabs():
            with gr.Tab("Face"):
                gallery = gr.Gallery(label="Sampled frames (click one; green = face box, orange = no face)",
                                     columns=10, rows=1, height=150, allow_preview=False, object_fit="contain")
                frame_index = gr.Slider(0, 1, value=0, step=1, label="Selected frame")
                gr.Markdown("Selected frame · its 48×48 face crop per sparse layer (top: text-queried attention, "
                            "min–max scaled; bottom: kept cells, dropped cells dimmed) · FACS regions")
                with gr.Row(equal_height=False):
                    frame_img = gr.Image(label="Selected frame", type="filepath", height=340, interactive=False,
                                         scale=2)
                    layer_img = gr.Image(label="Face crop per sparse layer: attention (top), kept cells (bottom)",
                                         show_label=False, type="filepath", height=340, interactive=False,
                                         scale=3, elem_classes=["mesm-pixelated"])
                    facs_img = gr.Image(label="FACS regions over layer-1 attention", type="filepath", height=340,
                                        interactive=False, scale=2, elem_classes=["mesm-pixelated"])
                facs_note = gr.Markdown()
                facs_table = gr.Dataframe(label="FACS regions: attention mass and kept fraction per layer",
                                          interactive=False, wrap=True, max_height=360)
            with gr.Tab("Audio"):
                gr.Markdown("Mel spectrogram (dB, low frequencies at the bottom) and, below it, the cells each "
                            "sparse layer kept (tinted; dropped cells dimmed), 400 ms chunks side by side.")
                mel_img = gr.Image(label="Mel spectrogram and kept cells", show_label=False, type="filepath",
                                   interactive=False, elem_classes=["mesm-pixelated"])
            with gr.Tab("Cost"):
                with gr.Row():
                    flops_plot = gr.Plot(label="FLOPs per layer")
                    flops_p_plot = gr.Plot(label="FLOPs and kept fraction against p")
                with gr.Accordion("Numbers (as returned by the API)", open=False):
                    numbers = gr.JSON(label="Numbers")
            with gr.Tab("Export"):
                gr.Markdown("Writes `report.json`, `flops.csv` and the overlay PNGs (the same writer as "
                            "`python -m mesm_viz.report`) for the current p and frame.")
                export_btn = gr.Button("Export report")
                export_file = gr.File(label="Report (.zip)", interactive=False)

        frame_outputs = [layer_img, facs_img, facs_table, facs_note]
        p_outputs = [label, prob_plot, modality_plot, mel_img, flops_plot, flops_p_plot, flops_text, numbers]

        def frame_values(view: FrameView) -> list:
            return [to_file(view.layer_grid), to_file(view.facs_image), _table(view), view.facs_note]

        def p_values(view: PView) -> list:
            return [view.label, view.probabilities_fig, view.modality_fig, to_file(view.mel_image, "jpeg"),
                    view.flops_fig, _plot(view.flops_p_fig), view.flops_text, view.numbers]

        # analyze -------------------------------------------------------------------------------
        analyze_outputs = [state, gallery, frame_index, frame_img, *frame_outputs, *p_outputs, clip_md, status]

        def analyze(video_path, text, ck, p):
            new_state, clip, frame, pv, message = studio.analyze(video_path, text, ck, p)
            clip: ClipView
            slider = gr.Slider(minimum=0, maximum=max(clip.n_frames - 1, 1), value=new_state.frame, step=1,
                               interactive=clip.n_frames > 1)
            strip = [(to_file(image, "jpeg"), caption) for image, caption in clip.strip]
            return [new_state, strip, slider, to_file(frame.frame_image, "jpeg"), *frame_values(frame), *p_values(pv),
                    clip.summary, message]

        def cost_curve(current):
            try:
                figure, text = studio.cost_curve(current)
                return [_plot(figure), text]
            except Exception:  # noqa: BLE001 — the step before already reported the problem
                return [gr.skip(), gr.skip()]

        analyze_btn.click(
            _safe(analyze, len(analyze_outputs), len(analyze_outputs) - 1),
            inputs=[video, transcript, checkpoint, top_p], outputs=analyze_outputs,
            api_name="analyze", concurrency_id="model", concurrency_limit=1,
        ).then(cost_curve, inputs=[state], outputs=[flops_p_plot, flops_text], api_name="cost_curve",
               show_progress="hidden", concurrency_id="model")

        # top-p ---------------------------------------------------------------------------------
        p_change_outputs = [state, *frame_outputs, *p_outputs, status]

        def set_top_p(current, p):
            new_state, frame, pv, message = studio.set_top_p(current, p)
            return [new_state, *frame_values(frame), *p_values(pv), message]

        top_p.release(_safe(set_top_p, len(p_change_outputs), len(p_change_outputs) - 1),
                      inputs=[state, top_p], outputs=p_change_outputs, api_name="set_top_p",
                      trigger_mode="always_last", show_progress="minimal", concurrency_id="model")

        # transcript ----------------------------------------------------------------------------
        def set_transcript(current, text):
            new_state, frame, pv, message = studio.set_transcript(current, text)
            return [new_state, *frame_values(frame), *p_values(pv), message]

        retext = _safe(set_transcript, len(p_change_outputs), len(p_change_outputs) - 1)
        retext_btn.click(retext, inputs=[state, transcript], outputs=p_change_outputs, api_name="set_transcript",
                         concurrency_id="model").then(
            cost_curve, inputs=[state], outputs=[flops_p_plot, flops_text], api_visibility="private",
            show_progress="hidden", concurrency_id="model")
        transcript.submit(retext, inputs=[state, transcript], outputs=p_change_outputs,
                          api_visibility="private", concurrency_id="model").then(
            cost_curve, inputs=[state], outputs=[flops_p_plot, flops_text], api_visibility="private",
            show_progress="hidden", concurrency_id="model")

        # frames --------------------------------------------------------------------------------
        select_outputs = [state, frame_img, *frame_outputs, status]

        def select_frame(current, index):
            new_state, frame = studio.select_frame(current, int(index or 0))
            return [new_state, to_file(frame.frame_image, "jpeg"), *frame_values(frame), gr.skip()]

        frame_index.release(_safe(select_frame, len(select_outputs), len(select_outputs) - 1),
                            inputs=[state, frame_index], outputs=select_outputs, api_name="select_frame",
                            show_progress="minimal", concurrency_id="model")

        def pick_from_strip(current, evt: gr.SelectData):
            out = _safe(select_frame, len(select_outputs), len(select_outputs) - 1)(current, evt.index)
            return [gr.Slider(value=int(evt.index)), *out]

        gallery.select(pick_from_strip, inputs=[state], outputs=[frame_index, *select_outputs],
                       api_visibility="private", show_progress="minimal", concurrency_id="model")

        # checkpoint / export -------------------------------------------------------------------
        def checkpoint_info(ck):
            active, p_default, note = studio.top_p_control(ck)
            update = gr.Slider(interactive=active) if p_default is None else gr.Slider(interactive=active,
                                                                                        value=p_default)
            return update, note

        checkpoint.change(checkpoint_info, inputs=[checkpoint], outputs=[top_p, p_note_md],
                          api_name="checkpoint_info")

        def export(current):
            return [studio.export(current), "**Done:** report written (download it below the Export button)."]

        export_btn.click(_safe(export, 2, 1), inputs=[state], outputs=[export_file, status], api_name="export",
                         concurrency_id="model")
    return demo


def launch_kwargs(settings: AppSettings) -> dict[str, Any]:
    """Keyword arguments for ``demo.launch``: upload size limit, served sample folder, CSS."""
    return {
        "max_file_size": f"{settings.max_upload_mb:g}mb",
        "allowed_paths": [str(SAMPLES_DIR)],
        "css": CSS,
        "footer_links": ["api", "gradio"],
    }
