"""The studio's interactive views as Plotly dicts: cell edges, the layer grid, the FACS overlay (labelled
prototype regions, the others on demand), the spectrogram on real axes, the cue and FE2E cost figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mesm_core.cues import CueRow
from mesm_viz import figures
from mesm_viz.face_plots import CUE_LEGEND, facs_figure, layer_grid_figure
from mesm_viz.mel_plot import mel_figure
from mesm_viz.plotly_canvas import cell_edges
from mesm_viz.spectrogram import mel_bin_of_hz
from mesm_viz.views import facs_table, frame_regions

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def prediction(media, models, tmp_path_factory):
    from mesm_core.inference import Predictor

    root = tmp_path_factory.mktemp("interactive")
    predictor = Predictor.load(models.make_checkpoint(root / "mesm"), sparse_backend="masked")
    return predictor.predict(media.make_face_clip(root / "face.mp4", seconds=2.0), media.TRANSCRIPT, 0.5)


def _segments(xs, ys):
    out, i = set(), 0
    while i < len(xs):
        out.add(((xs[i], ys[i]), (xs[i + 1], ys[i + 1])))
        i += 3
    return out


def test_cell_edges_trace_the_boundary_of_true_cells():
    mask = np.array([[True, True], [False, True]])
    xs, ys = cell_edges(mask, cell=(1.0, 1.0))
    assert xs[2::3] == [None] * (len(xs) // 3)
    segments = _segments(xs, ys)
    # Runs are merged: the top edge of both cells is one segment.
    assert ((0.0, 0.0), (2.0, 0.0)) in segments and ((2.0, 0.0), (2.0, 2.0)) in segments
    assert len(segments) == 6          # an L-shape has six sides
    assert cell_edges(np.zeros((3, 3), bool)) == ([], [])


def test_layer_grid_figure_is_text_and_cells(prediction):
    figure = layer_grid_figure(prediction, 0)
    json.dumps(figure)                 # plain JSON: no numpy left
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    assert titles[0] == "L1 attention · 24×24 cells" and titles[1].startswith("L1 kept · ")
    images = figure["layout"]["images"]     # the crop under every panel, one picture (a URL in the studio)
    assert len(images) == 6 and all(i["source"].startswith("data:image/png;base64,") for i in images)
    assert len({i["source"] for i in images}) == 1 and {i["xref"] for i in images} == {"x", *(f"x{k}" for k in range(2, 7))}
    heat = next(t for t in figure["data"] if t["type"] == "heatmap")
    assert heat["dx"] == 2.0 and "rank %{customdata[3]}" in heat["hovertemplate"]   # 48 px / 24 cells; hover: rank
    served = layer_grid_figure(prediction, 0, image=lambda picture: "/pictures/crop.png")
    assert {i["source"] for i in served["layout"]["images"]} == {"/pictures/crop.png"}
    ruled = layer_grid_figure(prediction, 0, rules=["floor", "nucleus", "nucleus"])
    assert [a["text"].split("<br>")[1] for a in ruled["layout"]["annotations"][1::2]] == [
        "set by the keep floor", "set by the nucleus (top-p)", "set by the nucleus (top-p)"]
    assert not any(t.get("name") == CUE_LEGEND for t in figure["data"])
    cue = np.zeros((48, 48), bool)
    cue[10:30, 10:30] = True
    with_cue = layer_grid_figure(prediction, 0, cue)
    outlines = [t for t in with_cue["data"] if t.get("name") == CUE_LEGEND]
    assert len(outlines) == 6 and sum(t["showlegend"] for t in outlines) == 1 and with_cue["layout"]["showlegend"]


def test_facs_figure_labels_the_prototype_and_hides_the_rest(prediction):
    regions = frame_regions(prediction.record, 0)
    table = facs_table(prediction, 0, regions)
    proto = {r.name for r in regions if r.name in table.proto_names}
    figure = facs_figure(prediction, 0, regions, table.proto_names, table.rows, table.headers)
    outlines = [t for t in figure["data"] if t["type"] == "scatter" and t.get("fill") == "toself"]
    assert len(outlines) == len(regions)
    for trace in outlines:
        shown = trace["legendgroup"] in proto
        assert trace["visible"] is True if shown else trace["visible"] == "legendonly"
        assert trace["hoveron"] == "fills" and "AU" in trace["text"] and "attention L1" in trace["text"]
    labels = [t for t in figure["data"] if t.get("mode") == "text"]
    assert {t["text"][0] for t in labels if t["visible"] is True} == {r.label for r in regions if r.name in proto}
    assert figure["layout"]["legend"]["title"]["text"] == "FACS regions (click to show or hide)"


def test_mel_figure_has_time_and_frequency_axes(prediction):
    figure = mel_figure(prediction)
    layout = figure["layout"]
    # the spectrogram, then per layer the grey spectrogram and a transparent kept-cell mask over it
    assert len(layout["images"]) == 7 and layout["xaxis4"]["title"]["text"] == "time (s)"
    masks = layout["images"][2::2]
    assert all(m["source"].startswith("data:image/png;base64,") and len(m["source"]) < 20_000 for m in masks)
    assert layout["yaxis"]["ticktext"][:3] == ["250 Hz", "500 Hz", "1 kHz"]
    n_mels, n_frames = prediction.record.mel.shape
    assert layout["yaxis"]["range"] == [0, n_mels] and layout["xaxis"]["range"][1] == pytest.approx((n_frames - 0.5) * 0.0125)
    assert layout["yaxis"]["tickvals"][2] == pytest.approx(mel_bin_of_hz(1000, n_mels, 8000) + 0.5)
    assert [a["text"] for a in layout["annotations"]][0] == "mel spectrogram (dB)"
    cue = np.zeros((n_mels, n_frames), bool)
    cue[40:60, 10:40] = True
    with_cue = mel_figure(prediction, cue_mask=cue)
    assert sum(t.get("name") == "true cue region (ground truth)" for t in with_cue["data"]) == 4


def test_cue_and_dense_cost_figures():
    rows = [CueRow("visual", 1, (24, 24), 0.3, 0.25, 0.1, 0.1, 5), CueRow("audio", 1, (64, 16), 0.02, 0.0, 0.04, 0.04, 3)]
    figure = figures.cue_figure(rows, 0.5)
    assert [t.name for t in figure.data] == ["attention in cue", "kept cells in cue", "chance (cue share of the grid)"]
    assert list(figure.data[0].y) == pytest.approx([30.0, 2.0]) and "p = 0.50" in figure.layout.title.text
    flat = figures.flat_cost_figure(1.2e9)
    assert set(flat.data[0].y) == {1.2} and "FE2E is dense" in flat.layout.annotations[0].text
