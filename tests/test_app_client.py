"""The Gradio app in-process, driven through its named API endpoints with gradio_client."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]  # a live server

# Order of the /analyze outputs (see mesm_viz.app.build_app): state is not part of the API.
ANALYZE = ["gallery", "frame_index", "frame_img", "layer_img", "facs_img", "facs_table", "facs_note", "label",
           "prob_plot", "modality_plot", "mel_img", "flops_plot", "flops_p_plot", "flops_text", "numbers",
           "clip_md", "status"]
SET_TOP_P = ["layer_img", "facs_img", "facs_table", "facs_note", "label", "prob_plot", "modality_plot", "mel_img",
             "flops_plot", "flops_p_plot", "flops_text", "numbers", "status"]


def _digest(path: str) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served(media, models, tmp_path_factory):
    root = tmp_path_factory.mktemp("app_client")
    old_temp = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio")
    from gradio_client import Client

    from mesm_viz.app import build_app, launch_kwargs
    from mesm_viz.studio import AppSettings

    checkpoint = models.make_checkpoint(root / "mesm")
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
                 "/checkpoint_info"):
        assert name in names, names


def test_analyze_then_move_top_p(served):
    from gradio_client import handle_file

    client = served["client"]
    out = dict(zip(ANALYZE, client.predict(handle_file(str(served["clip"])), served["transcript"], served["checkpoint"], 0.3,
                                           api_name="/analyze")))
    assert out["status"].startswith("**Done:**"), out["status"]
    first = out["numbers"]
    assert first["top_p"] == 0.3 and len(out["gallery"]) == 4  # 2 s at one frame per 0.5 s
    assert Path(out["layer_img"]).is_file() and Path(out["mel_img"]).is_file()

    high = dict(zip(SET_TOP_P, client.predict(0.9, api_name="/set_top_p")))
    assert high["numbers"]["top_p"] == 0.9
    assert high["numbers"]["flops_actual"] > first["flops_actual"]
    assert high["numbers"]["flops_dense"] == first["flops_dense"]
    for modality in ("visual", "audio"):
        assert high["numbers"]["kept_cells"][modality][0] > first["kept_cells"][modality][0]
    assert _digest(high["layer_img"]) != _digest(out["layer_img"])   # the masks moved
    assert _digest(high["mel_img"]) != _digest(out["mel_img"])
    assert "p = 0.90" in high["flops_text"]

    low = dict(zip(SET_TOP_P, client.predict(0.3, api_name="/set_top_p")))
    assert low["numbers"]["flops_actual"] == pytest.approx(first["flops_actual"])

    curve, text = client.predict(api_name="/cost_curve")
    assert json.loads(curve["plot"])["data"] and "FLOPs" in text


def test_transcript_frame_and_export(served):
    from gradio_client import handle_file

    client = served["client"]
    client.predict(handle_file(str(served["clip"])), served["transcript"], served["checkpoint"], 0.5, api_name="/analyze")
    edited = dict(zip(SET_TOP_P, client.predict("a completely different sentence", api_name="/set_transcript")))
    assert edited["numbers"]["transcript"] == "a completely different sentence"
    assert "re-encoded" in edited["status"]

    frame_img, layer_img, *_rest, status = client.predict(3, api_name="/select_frame")
    assert Path(frame_img).is_file() and Path(layer_img).is_file()

    zip_path, status = client.predict(api_name="/export")
    with zipfile.ZipFile(zip_path) as archive:
        assert any(name.endswith("report.json") for name in archive.namelist())


def test_bad_upload_keeps_server_serving(served):
    from gradio_client import handle_file

    client = served["client"]
    garbage = served["root"] / "broken.mp4"
    garbage.write_bytes(b"definitely not a video" * 50)
    out = dict(zip(ANALYZE, client.predict(handle_file(str(garbage)), served["transcript"], served["checkpoint"], 0.5,
                                           api_name="/analyze")))
    assert out["status"].startswith("**Problem:**") and "broken.mp4" in out["status"]
    empty = dict(zip(ANALYZE, client.predict(handle_file(str(served["clip"])), "", served["checkpoint"], 0.5,
                                             api_name="/analyze")))
    assert "Transcript needed" in empty["status"]
    # Still serving: a good request right after works.
    ok = dict(zip(ANALYZE, client.predict(handle_file(str(served["clip"])), served["transcript"], served["checkpoint"], 0.5,
                                          api_name="/analyze")))
    assert ok["status"].startswith("**Done:**")


def test_checkpoint_info_endpoint(served):
    slider, note = served["client"].predict(served["checkpoint"], api_name="/checkpoint_info")
    assert "MESM" in note
