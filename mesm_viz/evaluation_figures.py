"""Figures of an evaluation (``python -m mesm_core.evaluate --out EVAL.json``): the top-p sweep (paper Figure 5)
and the attention-on-cue bars, as interactive Plotly HTML.

    python -m mesm_viz.evaluation_figures EVAL.json [--figure SWEEP.html] [--cue-figure CUES.html] [--plotlyjs embed]

draws from the JSON (no model, no data): by default ``<stem>_topp.html`` when it holds a sweep and
``<stem>_cues.html`` when it holds a cue report, beside it. Core writes the numbers; every figure is drawn here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mesm_core.evaluation import CueReport, EvaluationReport, SweepResult, read_evaluation
from mesm_core.metrics import METRIC_LABELS

__all__ = ["sweep_figure", "cue_figure", "write_figure", "draw_evaluation", "main"]


def sweep_figure(sweep: SweepResult, title: str | None = None) -> go.Figure:
    """Plotly figure: top, the dataset's metrics vs p (FE2E as dashed lines); bottom, GFLOPs/utterance."""
    ps = [row.top_p for row in sweep.rows]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("average metric (%)", "feature-extraction GFLOPs per utterance"))
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for i, metric in enumerate(sweep.metrics):
        colour = colours[i % len(colours)]
        name = METRIC_LABELS.get(metric, metric)
        fig.add_trace(go.Scatter(x=ps, y=[row.report.average[metric] * 100 for row in sweep.rows],
                                 mode="lines+markers", name=f"MESM {name}", line=dict(color=colour)), row=1, col=1)
        if sweep.fe2e is not None:
            level = sweep.fe2e.report.average[metric] * 100
            fig.add_trace(go.Scatter(x=[min(ps), max(ps)], y=[level, level], mode="lines", name=f"FE2E {name}",
                                     line=dict(color=colour, dash="dash")), row=1, col=1)
    fig.add_trace(go.Scatter(x=ps, y=[row.flops_per_utterance / 1e9 for row in sweep.rows], mode="lines+markers",
                             name="MESM GFLOPs", line=dict(color="#ff7f0e")), row=2, col=1)
    if sweep.fe2e is not None:
        level = sweep.fe2e.flops_per_utterance / 1e9
        fig.add_trace(go.Scatter(x=[min(ps), max(ps)], y=[level, level], mode="lines", name="FE2E GFLOPs",
                                 line=dict(color="#ff7f0e", dash="dash")), row=2, col=1)
    fig.update_xaxes(title_text="top-p (nucleus sampling)", row=2, col=1)
    fig.update_layout(title=title or f"Top-p sweep on the {sweep.split} split", height=650,
                      legend=dict(orientation="h", y=-0.12))
    return fig


def write_figure(fig: Any, path: Path, plotlyjs: str = "cdn") -> list[Path]:
    """HTML always; PNG beside it only when kaleido happens to be installed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True if plotlyjs == "embed" else "cdn")
    written = [path]
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return written
    try:
        png = path.with_suffix(".png")
        fig.write_image(str(png))
        written.append(png)
    except Exception:  # kaleido present but unusable (e.g. no browser): HTML is enough
        pass
    return written


def cue_figure(report: CueReport) -> go.Figure:
    """Grouped bars per block: attention share, kept share and chance, one panel per modality."""
    modalities = sorted({r.modality for r in report.rows})
    fig = make_subplots(rows=1, cols=len(modalities), subplot_titles=[f"{m}" for m in modalities])
    for col, modality in enumerate(modalities, start=1):
        rows = [r for r in report.rows if r.modality == modality]
        labels = [f"block {r.block} ({r.grid[0]}×{r.grid[1]})" for r in rows]
        for name, values, colour in (
            ("attention mass in cue", [r.attention_in_cue * 100 for r in rows], "#d62728"),
            ("kept cells in cue", [r.kept_in_cue * 100 for r in rows], "#1f77b4"),
            ("chance (cue area)", [r.chance * 100 for r in rows], "#7f7f7f"),
        ):
            fig.add_trace(go.Bar(x=labels, y=values, name=name, marker_color=colour, showlegend=col == 1),
                          row=1, col=col)
    fig.update_yaxes(title_text="% inside cue regions", row=1, col=1)
    fig.update_layout(barmode="group", title=f"Attention on ground-truth cue regions (p = {report.top_p})",
                      height=420)
    return fig


def draw_evaluation(report: EvaluationReport, stem: Path, *, figure: Path | None = None, cue_figure_path: Path | None = None,
                    plotlyjs: str = "cdn") -> list[Path]:
    """The figures ``report`` has data for: the sweep (at ``figure``, default ``<stem>_topp.html``) and the cue
    bars (``cue_figure_path``, default ``<stem>_cues.html``). Returns the files written."""
    stem = Path(stem)
    written: list[Path] = []
    if report.sweep is not None:
        written += write_figure(sweep_figure(report.sweep), figure or stem.with_name(stem.name + "_topp.html"), plotlyjs)
    if report.cues is not None:
        written += write_figure(cue_figure(report.cues), cue_figure_path or stem.with_name(stem.name + "_cues.html"),
                                plotlyjs)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesm_viz.evaluation_figures", description=__doc__.split("\n\n")[0])
    parser.add_argument("evaluation", type=Path, help="the JSON written by python -m mesm_core.evaluate --out")
    parser.add_argument("--figure", type=Path, default=None, help="sweep figure (HTML); default <stem>_topp.html")
    parser.add_argument("--cue-figure", type=Path, default=None,
                        help="attention-on-cue bar chart (HTML); default <stem>_cues.html")
    parser.add_argument("--plotlyjs", choices=("cdn", "embed"), default="cdn",
                        help="figure HTML loads plotly.js from the CDN (small) or embeds it (offline, ~4 MB)")
    args = parser.parse_args(argv)
    try:
        report = read_evaluation(args.evaluation)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {args.evaluation}: not an evaluation JSON of python -m mesm_core.evaluate ({exc})", file=sys.stderr)
        return 2
    written = draw_evaluation(report, args.evaluation.with_suffix(""), figure=args.figure,
                              cue_figure_path=args.cue_figure, plotlyjs=args.plotlyjs)
    if args.figure is not None and report.sweep is None:
        print(f"note: {args.evaluation} holds no top-p sweep (evaluate with --top-p a,b,...): no sweep figure",
              file=sys.stderr)
    print("figure: " + ", ".join(str(p) for p in written) if written else "no figure: the evaluation holds no sweep "
          "and no cue report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
