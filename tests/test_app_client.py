"""The Gradio app in-process, driven through its named API endpoints with gradio_client: the results, the
clamped slider, the preview of any container, and no stale views after a bad upload."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]  # a live server

# Order of the /analyze outputs (see mesm_viz.app: Components.results): state, the Ground truth tab and the
# buttons are not part of the API.
ANALYZE = ["gallery", "frame_index", "frame_img", "layer_plot", "facs_plot", "facs_table", "facs_note", "label",
           "prob_plot", "modality_plot", "mel_plot", "flops_plot", "flops_p_plot", "flops_text", "numbers", "cue_md",
           "cue_plot", "clip_md", "text_note", "floor_note", "floor_range", "export_file", "status"]
# Every p view (Components.views): the header, then the Face, Audio, Ground truth and Cost tabs' parts.
P_VIEWS = ["label", "prob_plot", "modality_plot", "flops_text", "floor_note", "layer_plot", "facs_plot", "facs_table",
           "facs_note", "mel_plot", "cue_md", "cue_plot", "flops_plot", "flops_p_plot", "numbers"]
SET_TOP_P = [*P_VIEWS, "top_p", "status"]
SET_TRANSCRIPT = [*P_VIEWS, "text_note", "status"]
SELECT_FRAME = ["gallery", "frame_index", "frame_img", "layer_plot", "facs_plot", "facs_table", "facs_note", "status"]


def _digest(figure: str) -> str:
    return hashlib.sha1(figure.encode("utf-8")).hexdigest()


def _value(output):
    """An output's value: updates (a gallery with its selected thumbnail, a slider) come as dicts."""
    return output.get("value") if isinstance(output, dict) and output.get("__type__") == "update" else output


def _analyze(client, video, transcript, checkpoint, top_p=0.5, cues=None) -> dict:
    from gradio_client import handle_file

    out = client.predict(handle_file(str(video)), transcript, checkpoint, top_p, cues, api_name="/analyze")
    return {name: _value(value) for name, value in zip(ANALYZE, out)}


@pytest.fixture(scope="module")
def served(media, models, tmp_path_factory):
    root = tmp_path_factory.mktemp("app_client")
    old_temp = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio")
    from gradio_client import Client

    from mesm_viz.app import build_app, launch_kwargs
    from mesm_viz.studio import AppSettings

    checkpoint = models.make_checkpoint(root / "mesm", **models.BINDING_FLOORS)   # the floor note has work to do
    settings = AppSettings(checkpoint=str(checkpoint), export_dir=str(root / "exports"), max_upload_mb=5)
    demo = build_app(settings)
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                            **launch_kwargs(settings))
    client = Client(url, verbose=False, download_files=str(root / "downloads"))
    try:
        yield {"client": client, "root": root, "checkpoint": str(checkpoint.resolve()),
               "clip": media.make_face_clip(root / "face.mp4", seconds=2.0), "transcript": media.TRANSCRIPT}
    finally:
        client.close()
        demo.close()
        if old_temp is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old_temp


def test_api_lists_named_endpoints(served):
    info = served["client"].view_api(print_info=False, return_format="dict")
    names = set(info["named_endpoints"])
    for name in ("/analyze", "/set_top_p", "/set_transcript", "/select_frame", "/export", "/cost_curve",
                 "/checkpoint_info", "/preview"):
        assert name in names, names
    assert len(info["named_endpoints"]["/analyze"]["returns"]) == len(ANALYZE)
    assert len(info["named_endpoints"]["/set_top_p"]["returns"]) == len(SET_TOP_P)
    assert len(info["named_endpoints"]["/set_transcript"]["returns"]) == len(SET_TRANSCRIPT)
    assert len(info["named_endpoints"]["/select_frame"]["returns"]) == len(SELECT_FRAME)


def test_analyze_then_move_top_p(served):
    client = served["client"]
    out = _analyze(client, served["clip"], served["transcript"], served["checkpoint"], 0.3)
    assert out["status"].startswith("**Done:**"), out["status"]
    first = out["numbers"]
    assert first["top_p"] == 0.3 and len(out["gallery"]) == 4  # 2 s at one frame per 0.5 s
    assert json.loads(out["layer_plot"])["data"] and json.loads(out["mel_plot"])["layout"]["images"]  # plotly JSON
    assert out["prob_plot"].startswith("<svg") and "threshold" in out["prob_plot"]
    assert "tokens used" in out["text_note"]

    high = dict(zip(SET_TOP_P, client.predict(0.9, api_name="/set_top_p")))
    assert high["numbers"]["top_p"] == 0.9
    assert high["numbers"]["flops_actual"] > first["flops_actual"]
    assert high["numbers"]["flops_dense"] == first["flops_dense"]
    for modality in ("visual", "audio"):
        assert high["numbers"]["kept_cells"][modality][0] > first["kept_cells"][modality][0]
    assert _digest(high["layer_plot"]) != _digest(out["layer_plot"])   # the masks moved
    assert _digest(high["mel_plot"]) != _digest(out["mel_plot"])
    assert "p = 0.90" in high["flops_text"]

    low = dict(zip(SET_TOP_P, client.predict(0.3, api_name="/set_top_p")))
    assert low["numbers"]["flops_actual"] == pytest.approx(first["flops_actual"])

    curve, text, floor_range, clip = client.predict(api_name="/cost_curve")
    assert "every slider position run in" in clip
    assert json.loads(curve)["data"] and "FLOPs" in text
    assert "Over the slider" in floor_range and "the keep floor fixes" in floor_range   # the tiny preset has floors


def test_the_paper_rule_switches_the_floors_off(served):
    """A checkpoint with keep floors: /set_floors runs the nucleus alone (the paper's rule) and back."""
    client = served["client"]
    _analyze(client, served["clip"], served["transcript"], served["checkpoint"], 0.3)
    paper = dict(zip(SET_TOP_P[:-2] + ["status"], client.predict(True, api_name="/set_floors")))
    assert paper["numbers"]["keep_floor"] is False and paper["numbers"]["rules"] == []
    assert "Paper's rule" in paper["status"] and "Paper's rule" in paper["floor_note"]
    back = dict(zip(SET_TOP_P[:-2] + ["status"], client.predict(False, api_name="/set_floors")))
    assert back["numbers"]["keep_floor"] is True and back["numbers"]["rules"]
    assert back["numbers"]["flops_actual"] > paper["numbers"]["flops_actual"]   # the floor keeps more cells
    assert {r["rule"] for r in back["numbers"]["rules"]} <= {"floor", "nucleus"}


def test_a_typed_top_p_out_of_range_is_applied_clamped(served):
    """Typing 2 (or 0) into the slider's box: no red error badges, the clamped value is applied and named."""
    client = served["client"]
    _analyze(client, served["clip"], served["transcript"], served["checkpoint"], 0.5)
    two = dict(zip(SET_TOP_P, client.predict(2, api_name="/set_top_p")))
    assert two["numbers"]["top_p"] == 1.0 and "2 was applied as 1" in two["status"]
    zero = dict(zip(SET_TOP_P, client.predict(0, api_name="/set_top_p")))
    assert zero["numbers"]["top_p"] == 0.05 and "0 was applied as 0.05" in zero["status"]
    frame = dict(zip(SELECT_FRAME, client.predict(50, api_name="/select_frame")))
    assert "Frame 50 does not exist" in frame["status"]


def test_transcript_frame_and_export(served):
    client = served["client"]
    _analyze(client, served["clip"], served["transcript"], served["checkpoint"], 0.5)
    edited = dict(zip(SET_TRANSCRIPT, client.predict("a completely different sentence", api_name="/set_transcript")))
    assert edited["numbers"]["transcript"] == "a completely different sentence"
    assert "re-encoded" in edited["status"] and "tokens used" in edited["text_note"]

    frame = dict(zip(SELECT_FRAME, client.predict(3, api_name="/select_frame")))
    assert Path(frame["frame_img"]).is_file() and json.loads(frame["layer_plot"])["data"]

    zip_path, status = client.predict(api_name="/export")
    with zipfile.ZipFile(zip_path) as archive:
        assert any(name.endswith("report.json") for name in archive.namelist())


def test_a_bad_upload_clears_the_previous_results(served):
    """Clip A analysed, then a broken file: one clear message, every view of A gone, the slider and Export
    no longer act on A, and the server still serves the next good clip."""
    client = served["client"]
    good = _analyze(client, served["clip"], served["transcript"], served["checkpoint"], 0.5)
    assert good["status"].startswith("**Done:**")
    garbage = served["root"] / "broken.mp4"
    garbage.write_bytes(b"definitely not a video" * 50)
    out = _analyze(client, garbage, served["transcript"], served["checkpoint"])
    assert out["status"].startswith("**Problem:** “broken.mp4” could not be read as a video"), out["status"]
    assert str(served["root"]) not in out["status"] and "Errno" not in out["status"]
    assert out["gallery"] in ([], None) and not out["numbers"] and out["layer_plot"] is None
    assert out["mel_plot"] is None and not out["label"] and out["flops_text"] == ""
    moved = dict(zip(SET_TOP_P, client.predict(0.9, api_name="/set_top_p")))
    assert "press **Analyze**" in moved["status"]           # nothing analysed: the slider acts on nothing
    _, status = client.predict(api_name="/export")
    assert "Analyze a video first" in status
    empty = _analyze(client, served["clip"], "", served["checkpoint"])
    assert "Transcript needed" in empty["status"] and not empty["numbers"]
    ok = _analyze(client, served["clip"], served["transcript"], served["checkpoint"])
    assert ok["status"].startswith("**Done:**")


def test_preview_of_any_container(served, media):
    client = served["client"]
    from gradio_client import handle_file

    avi = media.write_video(served["root"] / "film.avi", 20, fps=10, frame=media.face_image(96, 128),
                            audio=media.speechy_audio(2.0))
    path, note = client.predict(handle_file(str(avi)), api_name="/preview")
    path = path["video"] if isinstance(path, dict) else path
    assert path.endswith(".mp4") and note == ""
    import av

    with av.open(path) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    text = served["root"] / "notes.mp4"
    text.write_text("not a video at all " * 40)
    path, note = client.predict(handle_file(str(text)), api_name="/preview")
    assert path is None and note.startswith("No preview: “notes.mp4” could not be read as a video")


def test_checkpoint_info_endpoint(served):
    slider, note, model, paper_rule = served["client"].predict(served["checkpoint"], api_name="/checkpoint_info")
    assert "MESM" in note and "does not record its training data" in model
    assert paper_rule["visible"] is True and "not recorded" in paper_rule["info"]   # a checkpoint with floors


def test_follow_up_steps_never_drop_a_newer_trigger(models, tmp_path):
    """The preview and the cost curve run as `.then` steps; Gradio's default for those ("once") drops a new
    trigger while the previous run is pending, which left the previous clip's preview on screen under load."""
    from mesm_viz.app import build_app
    from mesm_viz.studio import AppSettings

    demo = build_app(AppSettings(checkpoint=str(models.make_checkpoint(tmp_path / "mesm"))))
    steps = [(dep, getattr(fn.fn, "__name__", "")) for dep, fn in zip(demo.config["dependencies"], demo.fns.values())]
    previews = [dep for dep, _ in steps if dep.get("api_name") == "preview"]
    # after analyze, the floor switch, and each way to re-run the transcript
    cost_curves = [dep for dep, name in steps if name == "cost_curve"]
    assert len(previews) == 1 and len(cost_curves) == 4
    assert all(dep["trigger_mode"] == "always_last" for dep in previews + cost_curves)
    demo.close()
