"""mesm_viz.report: the full report (PNGs + FACS statistics over core's report.json) and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mesm_core.config import DataConfig
from mesm_core.inference import Predictor
from mesm_viz import report
from mesm_viz.report_figures import face_layers_figure
from mesm_viz.views import best_frame, frame_regions

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PNGS = ("face_layers.png", "facs_overlay.png", "mel_masks.png")


@pytest.fixture(scope="module")
def mesm_dir(models, tmp_path_factory):
    return models.make_checkpoint(tmp_path_factory.mktemp("ckpt") / "mesm")


@pytest.fixture(scope="module")
def predictor(mesm_dir):
    return Predictor.load(mesm_dir, sparse_backend="masked")


@pytest.fixture(scope="module")
def clip(media, tmp_path_factory):
    return media.make_face_clip(tmp_path_factory.mktemp("report") / "face.mp4", seconds=2.0)


@pytest.fixture(scope="module")
def prediction(predictor, clip, media):
    return predictor.predict(clip, media.TRANSCRIPT, 0.5)


def test_full_report_folder(prediction, tmp_path):
    path = report.write_full_report(prediction, tmp_path / "rep")
    body = json.loads(path.read_text())
    assert body["files"] == ["report.json", "flops.csv", "mel_masks.png", "face_layers.png", "facs_overlay.png"]
    for name in body["files"]:
        assert (tmp_path / "rep" / name).is_file(), name
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == sorted(body["files"])  # no temp files left
    facs = body["facs"]
    assert facs["frame"] == best_frame(prediction.record) and facs["rows"]
    assert len(facs["headers"]) == 3 + 2 * 3 and all(len(r) == len(facs["headers"]) for r in facs["rows"])
    assert facs["prototype"]["class"] in prediction.classes
    # Averages over the face frames: one row per (layer, region), shares in [0, 1].
    regions = frame_regions(prediction.record, 0)
    assert len(facs["mean_over_face_frames"]) == 3 * len(regions)
    assert all(0 <= row["area_share"] <= 1 for row in facs["mean_over_face_frames"])


@pytest.mark.parametrize("frame", [0, 2])
def test_report_shows_the_chosen_frame(prediction, tmp_path, frame):
    body = json.loads(report.write_full_report(prediction, tmp_path, frame=frame).read_text())
    assert body["facs"]["frame"] == frame
    assert body["facs"]["frame_time_s"] == pytest.approx(float(prediction.record.frame_times[frame]))


def test_no_face_frames_still_report_the_audio(predictor, media, tmp_path):
    clip = media.make_noface_clip(tmp_path / "noface.mp4")
    pred = predictor.predict(clip, "hello there", 0.5, data_config=DataConfig(no_face_policy="skip"))
    assert face_layers_figure(pred, 0) is None
    body = json.loads(report.write_full_report(pred, tmp_path / "rep").read_text())
    assert body["facs"]["frame"] is None and "face view is empty" in body["facs"]["note"]
    assert "mel_masks.png" in body["files"] and "face_layers.png" not in body["files"]


@pytest.mark.parametrize("scale", [1, 6])
def test_frame_regions_are_the_crop_raster_times_scale(prediction, scale):
    regions = frame_regions(prediction.record, 0, scale)
    size = prediction.record.faces.shape[1] * scale
    assert regions and all(r.mask.shape == (size, size) for r in regions)


def test_png_writes_are_atomic_and_checked(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    path = report.save_png(image, tmp_path / "a.png")
    assert path.read_bytes() == report.png_bytes(image)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    with pytest.raises(ValueError, match="png"):
        report.save_png(image, tmp_path / "a.jpg")


def test_cli_takes_the_predict_flags_and_draws(mesm_dir, clip, tmp_path, capsys):
    code = report.main([str(clip), "--checkpoint", str(mesm_dir), "--top-p", "0.6", "--report", str(tmp_path)])
    assert code == 0 and "report:" in capsys.readouterr().out
    body = json.loads((tmp_path / "report.json").read_text())
    assert body["top_p"] == 0.6 and all(name in body["files"] for name in PNGS)


def test_cli_requires_the_report_folder(clip, capsys):
    with pytest.raises(SystemExit) as info:
        report.main([str(clip)])
    assert info.value.code == 2 and "--report" in capsys.readouterr().err


def test_report_pngs_are_publication_ready(prediction, tmp_path):
    """Issue 17 item 6: titled panels, axes, a legend and colour bars, at print resolution, in a font that has
    the glyphs the captions use (×, ·, –): no missing-glyph boxes, spaces kept."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font
    from PIL import Image

    from mesm_viz import report_figures

    font = FT2Font(font_manager.findfont(report_figures.STYLE["font.family"], fallback_to_default=False))
    assert all(font.get_char_index(ord(ch)) for ch in "×·–≤★")
    layers = report_figures.face_layers_figure(prediction, 0)
    texts = [t.get_text() for ax in layers.axes for t in (ax.title,)]
    assert "L1 attention · 24×24 cells" in texts and any(t.startswith("L1 kept · ") for t in texts)
    assert any(ax.get_label() == "<colorbar>" for ax in layers.axes)          # the attention scale
    mel = report_figures.mel_masks_figure(prediction)
    rows = [ax for ax in mel.axes if ax.get_label() != "<colorbar>"]
    assert rows[-1].get_xlabel() == "time (s)" and "kHz" in " ".join(t.get_text() for t in rows[0].get_yticklabels())
    body = json.loads(report.write_full_report(prediction, tmp_path).read_text())
    regions = frame_regions(prediction.record, body["facs"]["frame"])
    overlay = report_figures.facs_figure(prediction, body["facs"]["frame"], regions, set(), "happy")
    legend = next(ax.get_legend() for ax in overlay.axes if ax.get_legend() is not None)
    assert len(legend.get_texts()) == len(regions) and "FACS regions" in legend.get_title().get_text()
    for name in PNGS:
        width, height = Image.open(tmp_path / name).size
        assert width >= 1000 and height >= 600, (name, width, height)   # 200 dpi, not 288×288
