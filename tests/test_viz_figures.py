"""The Plotly figures build with the expected traces (mesm_viz.figures)."""

import numpy as np
import pytest

go = pytest.importorskip("plotly.graph_objects")

from mesm_core.types import FlopsReport, FlopsRow  # noqa: E402
from mesm_viz.figures import (  # noqa: E402
    class_probabilities_figure,
    flops_bar_figure,
    flops_vs_p_figure,
    mel_figure,
    modality_contributions_figure,
)


def _report():
    rows = [
        FlopsRow("visual", "stem", 4e8, 4e8), FlopsRow("visual", "sparse_block1", 2e8, 8e7),
        FlopsRow("audio", "stem", 6e8, 6e8), FlopsRow("audio", "sparse_block1", 3e8, 1e8),
    ]
    return FlopsReport(dense=sum(r.dense for r in rows), actual=sum(r.actual for r in rows), layers=rows)


def test_flops_bar_figure():
    fig = flops_bar_figure(_report())
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["dense", "actual"]
    dense, actual = fig.data
    assert list(dense.x[0]) == ["visual", "visual", "audio", "audio"]
    assert list(dense.x[1]) == ["stem", "sparse_block1", "stem", "sparse_block1"]
    np.testing.assert_allclose(actual.y, [0.4, 0.08, 0.6, 0.1])
    assert "saved" in fig.layout.title.text
    with pytest.raises(ValueError):
        flops_bar_figure(FlopsReport(dense=0.0, actual=0.0))


def test_flops_vs_p_figure_marks_current_p():
    rows = [(0.9, 2e9, 3e9, 0.8), (0.5, 1e9, 3e9, 0.3), (0.7, 1.5e9, 3e9, 0.5)]
    fig = flops_vs_p_figure(rows, current_p=0.7)
    assert [t.name for t in fig.data] == ["actual GFLOPs", "dense GFLOPs", "kept fraction"]
    np.testing.assert_allclose(fig.data[0].x, [0.5, 0.7, 0.9])         # sorted by p
    np.testing.assert_allclose(fig.data[0].y, [1.0, 1.5, 2.0])
    assert fig.data[2].yaxis == "y2"
    assert len(fig.layout.shapes) == 1 and fig.layout.shapes[0].x0 == 0.7
    assert len(flops_vs_p_figure(rows).layout.shapes) == 0
    with pytest.raises(ValueError):
        flops_vs_p_figure([(0.5, 1.0, 2.0)])


def test_class_probabilities_figure():
    classes = ["ang", "exc", "fru", "hap", "neu", "sad"]
    probs = np.array([0.9, 0.1, 0.4, 0.2, 0.6, 0.05])
    thr = [0.5, 0.5, 0.3, 0.5, 0.7, 0.5]
    fig = class_probabilities_figure(classes, probs, thr, labels=["ang"])
    bars, halo, marks = fig.data
    assert halo.marker.color == "white" and marks.marker.color == "#2d3142"  # visible on an orange bar too
    assert bars.type == "bar" and marks.name == "threshold"
    np.testing.assert_allclose(marks.y, thr)
    assert bars.x[0] == "ang ★"
    colours = list(bars.marker.color)
    assert colours[0] == colours[2] != colours[4]                      # above, above, below threshold
    assert len(class_probabilities_figure(classes, probs).data) == 1
    with pytest.raises(ValueError):
        class_probabilities_figure(classes, probs[:3])


def test_modality_contributions_stack_to_fused_logit():
    classes = ["a", "b"]
    logits = {"text": np.array([1.0, -2.0]), "visual": np.array([0.5, 0.5]), "audio": np.array([-1.0, 3.0])}
    weights = np.array([0.5, -1.0, 2.0])
    fig = modality_contributions_figure(classes, logits, weights)
    assert [t.type for t in fig.data] == ["bar", "bar", "bar", "scatter"]
    assert fig.layout.barmode == "relative"
    np.testing.assert_allclose(fig.data[3].y, [0.5 - 0.5 - 2.0, -1.0 - 0.5 + 6.0])
    as_dict = modality_contributions_figure(classes, logits, {"text": 0.5, "visual": -1.0, "audio": 2.0})
    np.testing.assert_allclose(as_dict.data[3].y, fig.data[3].y)
    with pytest.raises(ValueError):
        modality_contributions_figure(classes, logits, [1.0, 2.0])


def test_mel_figure_with_mask_contour():
    mel = np.random.default_rng(0).random((128, 40)).astype(np.float32)
    mask = np.zeros((128, 40), bool)
    mask[:16, :32] = True
    fig = mel_figure(mel, mask=mask)
    heat, contour = fig.data
    assert heat.type == "heatmap" and contour.type == "contour"
    assert np.asarray(heat.z).shape == (128, 40)
    assert heat.x[1] == pytest.approx(0.0125) and heat.y[0] == 0     # y[0] = mel bin 0, drawn at the bottom
    assert np.asarray(heat.z).max() == pytest.approx(0.0)            # dB relative to the max
    assert len(mel_figure(mel).data) == 1
    with pytest.raises(ValueError):
        mel_figure(mel, mask=mask[:, :10])


def test_dict_figures_are_plain_plotly_json():
    """The studio sends the *_dict figures to plotly.js as they are: no plotly.py-only shorthand
    (``marker_color`` is understood by go.Figure, not by plotly.js, which then drops the colours)."""
    from mesm_core.cues import CueRow
    from mesm_viz import figures

    built = [
        figures.flops_bar_dict(_report()),
        figures.flops_vs_p_dict([(0.5, 1e9, 3e9, 0.3), (0.9, 2e9, 3e9, 0.8)], current_p=0.5),
        figures.class_probabilities_dict(["a", "b"], [0.2, 0.9], 0.5),
        figures.modality_contributions_dict(["a", "b"], {"text": [1.0, 2.0], "audio": [0.5, -1.0]}, [1.0, 0.5]),
        figures.flat_cost_dict(1e9),
        figures.cue_dict([CueRow("visual", 1, (24, 24), 0.3, 0.25, 0.1, 0.1, 5)], 0.5),
    ]
    for figure in built:
        checked = go.Figure(figure).to_plotly_json()
        for ours, plotly_json in zip(figure["data"], checked["data"]):
            assert set(ours) <= set(plotly_json), set(ours) - set(plotly_json)
        assert set(figure["layout"]) <= set(checked["layout"]), set(figure["layout"]) - set(checked["layout"])
