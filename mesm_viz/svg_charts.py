"""The studio's two small charts as SVG markup: class probabilities with thresholds, modality contributions.

They change on every slider move. As Plotly figures each cost the page a full plotly render (on a loaded
2-core machine about a tenth of a second each, measured in ``benchmarks/studio_live.py``); as SVG the
browser draws them in a few milliseconds. Same content as :func:`mesm_viz.figures.class_probabilities_dict`
and :func:`mesm_viz.figures.modality_contributions_dict` (the Plotly versions, for notebooks): bars, a
dark threshold mark on a white halo, a legend, axes with ticks, and a tooltip per bar (``<title>``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np

from mesm_core.metrics import above_threshold
from mesm_viz.figures import ACTUAL_COLOR, DENSE_COLOR, MARK_COLOR, MODALITY_COLORS

__all__ = ["probability_bars", "contribution_bars"]

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 46, 40
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"
INK, GRID = "#2a3f5f", "#EBF0F8"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _frame(title: str, legend: Sequence[tuple[str, str, str]], body: list[str], axis: list[str]) -> str:
    """The chart's SVG: title, legend ((label, colour, "bar"|"line"|"diamond")), axis, body."""
    parts = [f'<svg class="mesm-chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
             f'xmlns="http://www.w3.org/2000/svg" font-family="{FONT}" font-size="12" fill="{INK}">',
             f'<title>{_esc(title)}</title>',
             f'<text x="{LEFT}" y="20" font-size="14">{_esc(title)}</text>']
    x = WIDTH - RIGHT
    for label, colour, kind in reversed(legend):
        width = 7.2 * len(label) + 22
        x -= width
        mark = (f'<rect x="{x:.1f}" y="29" width="12" height="10" fill="{colour}"/>' if kind == "bar" else
                f'<line x1="{x:.1f}" x2="{x + 14:.1f}" y1="34" y2="34" stroke="{colour}" stroke-width="3"/>'
                if kind == "line" else
                f'<path d="M{x + 6:.1f},28 l6,6 l-6,6 l-6,-6 z" fill="{colour}"/>')
        parts += [mark, f'<text x="{x + 17:.1f}" y="38">{_esc(label)}</text>']
    return "".join(parts + axis + body + ["</svg>"])


def _y_axis(low: float, high: float, ticks: Sequence[float], label: str, fmt: str = "{:g}") -> tuple[list[str], callable]:
    """Grid lines, tick labels and the axis title of a value axis over [low, high]; returns them and y(value)."""
    span = (high - low) or 1.0

    def y(value: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - (value - low) / span)

    out = []
    for tick in ticks:
        yy = y(tick)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{GRID}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{fmt.format(tick)}</text>')
    mid = (TOP + HEIGHT - BOTTOM) / 2
    out.append(f'<text transform="translate(14,{mid:.1f}) rotate(-90)" text-anchor="middle">{_esc(label)}</text>')
    return out, y


def _slots(n: int) -> tuple[float, float]:
    """(slot width, bar width) for ``n`` categories."""
    slot = (WIDTH - LEFT - RIGHT) / max(n, 1)
    return slot, min(slot * 0.7, 90.0)


def _class_labels(classes: Sequence[str]) -> list[str]:
    slot, _ = _slots(len(classes))
    return [f'<text x="{LEFT + slot * (i + 0.5):.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{_esc(c)}</text>'
            for i, c in enumerate(classes)]


def probability_bars(classes: Sequence[str], probabilities: Sequence[float], thresholds: Sequence[float] | None,
                     title: str = "Class probabilities and thresholds") -> str:
    """Per class, the sigmoid probability as a bar (orange when above its threshold, strictly:
    ``mesm_core.metrics.above_threshold``) and the threshold as a dark mark on a white halo."""
    probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if len(classes) != len(probs):
        raise ValueError(f"{len(classes)} classes but {len(probs)} probabilities")
    thr = None if thresholds is None else np.broadcast_to(np.asarray(thresholds, dtype=np.float64), probs.shape)
    above = above_threshold(probs, thr) if thr is not None else np.ones(len(probs), bool)
    axis, y = _y_axis(0.0, 1.0, [0, 0.2, 0.4, 0.6, 0.8, 1.0], "probability")
    slot, bar = _slots(len(classes))
    body = []
    for i, (name, p) in enumerate(zip(classes, probs)):
        x = LEFT + slot * (i + 0.5) - bar / 2
        colour = ACTUAL_COLOR if above[i] else DENSE_COLOR
        tip = f"{name}: {p:.3f}" + ("" if thr is None else f" (threshold {thr[i]:.2f}, "
                                                          f"{'predicted' if above[i] else 'not predicted'})")
        body.append(f'<rect x="{x:.1f}" y="{y(p):.1f}" width="{bar:.1f}" height="{max(y(0) - y(p), 0):.1f}" '
                    f'fill="{colour}"><title>{_esc(tip)}</title></rect>')
        if thr is not None:
            ty = y(float(thr[i]))
            body.append(f'<line x1="{x - 4:.1f}" x2="{x + bar + 4:.1f}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="white" '
                        f'stroke-width="7"/><line x1="{x - 2:.1f}" x2="{x + bar + 2:.1f}" y1="{ty:.1f}" y2="{ty:.1f}" '
                        f'stroke="{MARK_COLOR}" stroke-width="3"><title>{_esc(name)} threshold {thr[i]:.2f}</title></line>')
    legend = [("probability", DENSE_COLOR, "bar"), ("predicted", ACTUAL_COLOR, "bar")]
    legend += [("threshold", MARK_COLOR, "line")] if thr is not None else []
    return _frame(title, legend, body + _class_labels(classes), axis)


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = max(high - low, 1e-9)
    raw = span / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if raw <= step * m)
    start = math.floor(low / step) * step
    return [round(start + k * step, 10) for k in range(int(math.ceil((high - start) / step)) + 1)]


def contribution_bars(classes: Sequence[str], modality_logits: Mapping[str, Sequence[float]],
                      fusion_weights: Mapping[str, float],
                      title: str = "Modality contributions to the fused logits") -> str:
    """Per class, ``fusion_weight[m] × logit[m]`` of each modality stacked from zero (positive parts up,
    negative down) and the fused logit (their sum) as a diamond."""
    names = list(modality_logits)
    parts = np.array([[float(fusion_weights[m]) * float(v) for v in modality_logits[m]] for m in names])
    if parts.shape != (len(names), len(classes)):
        raise ValueError(f"modality logits {parts.shape} do not match {len(names)} modalities × {len(classes)} classes")
    total = parts.sum(axis=0)
    ups, downs = np.clip(parts, 0, None).sum(0), np.clip(parts, None, 0).sum(0)
    ticks = _nice_ticks(min(0.0, downs.min(), total.min()), max(0.0, ups.max(), total.max()))
    axis, y = _y_axis(ticks[0], ticks[-1], ticks, "logit", "{:g}")
    axis.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="{INK}" '
                'stroke-width="1"/>')
    slot, bar = _slots(len(classes))
    body = []
    for i, name in enumerate(classes):
        x = LEFT + slot * (i + 0.5) - bar / 2
        up = down = 0.0
        for m, value in zip(names, parts[:, i]):
            base = up if value >= 0 else down
            top, bottom = (base + value, base) if value >= 0 else (base, base + value)
            body.append(f'<rect x="{x:.1f}" y="{y(top):.1f}" width="{bar:.1f}" height="{y(bottom) - y(top):.1f}" '
                        f'fill="{MODALITY_COLORS.get(m, DENSE_COLOR)}"><title>{_esc(name)} · {_esc(m)}: '
                        f'{value:+.3f}</title></rect>')
            up, down = (top, down) if value >= 0 else (up, bottom)
        cx, cy = LEFT + slot * (i + 0.5), y(float(total[i]))
        body.append(f'<path d="M{cx:.1f},{cy - 7:.1f} l7,7 l-7,7 l-7,-7 z" fill="{MARK_COLOR}" stroke="white">'
                    f'<title>{_esc(name)}: fused logit {total[i]:+.3f}</title></path>')
    legend = [(f"{m} (w={float(fusion_weights[m]):.2f})", MODALITY_COLORS.get(m, DENSE_COLOR), "bar") for m in names]
    legend.append(("fused logit", MARK_COLOR, "diamond"))
    return _frame(title, legend, body + _class_labels(classes), axis)
