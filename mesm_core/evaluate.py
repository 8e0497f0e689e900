"""Evaluate a checkpoint on a preprocessed cache; top-p sweep (paper Figure 5); attention on cue regions.

``python -m mesm_core.evaluate --checkpoint DIR --data CACHE [--split test] [--out result.json]``
prints per-class and average metrics (the dataset's reported ones, see ``mesm_core.metrics``).
Thresholds come from the checkpoint (chosen on validation during training) or, when it has none, are
tuned on the cache's ``valid`` split. They are NEVER tuned on the split being tested, except when
that split is ``valid`` itself.

``--top-p 0.1,0.2,...,1.0`` evaluates the same MESM weights at each p (thresholds re-tuned on
validation at every p, or the checkpoint's with ``--sweep-thresholds checkpoint``) and reports the
metrics with the feature-extraction FLOPs per utterance; ``--fe2e-checkpoint`` adds the FE2E level.
The figure is an interactive Plotly HTML file.

On data with ground-truth cue masks (the synthetic set) a MESM evaluation also reports, for each
sparse block and modality, the share of attention mass and of kept cells that falls inside the cue
regions, against chance (the cue regions' share of the grid). A grid cell counts as cue when at least
half of the pixels (visual) / mel bins × frames (audio) under it are cue (``majority``, the default, so
chance ≈ the regions' area share), or with ``any`` when at least one is.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

# The cue quantities are defined once in mesm_core.cues (the studio reports the same ones); cue_grid and
# CueRow stay importable from here.
from mesm_core.cues import (CUE_CELL_RULE, CUE_CELL_RULES, CueRow, CueTally, cue_grid,  # noqa: F401
                            record_cue_masks, tally_block)
from mesm_core.io import write_json
from mesm_core.metrics import METRIC_LABELS, MetricsReport, choose_thresholds, compute_metrics
from mesm_core.training.predictions import SplitPredictions
from mesm_core.types import Batch, ClipRecord


# --- loading and batching -------------------------------------------------------------------------

def load_model_for_eval(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """(model in eval mode, CheckpointInfo) from a checkpoint or run directory."""
    from mesm_core.checkpoint import load_checkpoint

    model, info = load_checkpoint(checkpoint, map_location=device)
    return model.eval(), info


def _dataset(cache_dir: Path, split: str, classes: Sequence[str] | None = None):
    from mesm_core.data import CacheDataset

    return CacheDataset(Path(cache_dir), split, classes=classes)


def iterate_batches(
    dataset: Any, tokenizer: Any, batch_size: int
) -> Iterator[tuple[list[ClipRecord], Batch]]:
    """(records, collated batch) in the dataset's order."""
    from mesm_core.data import collate

    chunk_frames = int(getattr(dataset, "data_config", {}).get("chunk_frames", 32))
    for start in range(0, len(dataset), batch_size):
        records = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        yield records, collate(records, tokenizer, chunk_frames=chunk_frames)


def cache_dataset_name(cache_dir: Path) -> str | None:
    """The ``dataset`` recorded in the cache's cache.json (e.g. "iemocap", "synthetic"), if any."""
    try:
        return json.loads((Path(cache_dir) / "cache.json").read_text()).get("dataset")
    except (OSError, ValueError):
        return None


def _has_split(cache_dir: Path, split: str) -> bool:
    try:
        return len(_dataset(cache_dir, split)) > 0
    except (FileNotFoundError, ValueError):  # DataSourceError is a ValueError
        return False


@torch.no_grad()
def predict_top_ps(
    model: nn.Module,
    cache_dir: Path,
    split: str,
    top_ps: Sequence[float | None],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    progress: bool = False,
) -> dict[float | None, SplitPredictions]:
    """Predictions for each p with one pass over the data: the p-independent stage (text CLS, dense
    low-level features) runs once per batch, ``forward_prepared`` once per p."""
    dataset = _dataset(cache_dir, split, model.config.classes)
    model.eval()
    device = torch.device(device)
    acc: dict[Any, dict[str, Any]] = {p: {"probs": [], "labels": [], "ids": [], "dense": 0.0, "actual": 0.0} for p in top_ps}
    batches = iterate_batches(dataset, model.tokenizer, batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=math.ceil(len(dataset) / batch_size), desc=f"{split}", leave=False)
    for _, batch in batches:
        batch = batch.to(device)
        text_cls = model.encode_text(batch.text) if getattr(model, "text_encoder", None) is not None else None
        dense = model.encode_dense(batch)
        for p in top_ps:
            out = model.forward_prepared(batch, text_cls, dense, top_p=p)
            slot = acc[p]
            slot["probs"].append(torch.sigmoid(out.logits.float()).cpu().numpy().astype(np.float64))
            if batch.labels is not None:
                slot["labels"].append(batch.labels.cpu().numpy())
            slot["ids"].extend(batch.ids)
            slot["dense"] += float(out.flops.dense)
            slot["actual"] += float(out.flops.actual)
    results = {}
    for p, slot in acc.items():
        results[p] = SplitPredictions(
            ids=slot["ids"],
            probs=np.concatenate(slot["probs"]),
            labels=np.concatenate(slot["labels"]).astype(np.float32) if slot["labels"] else None,
            flops_dense=slot["dense"],
            flops_actual=slot["actual"],
        )
    return results


# --- one evaluation -------------------------------------------------------------------------------

@dataclass
class EvaluationResult:
    checkpoint: str
    split: str
    report: MetricsReport
    threshold_source: str
    flops_per_utterance: float
    dense_flops_per_utterance: float
    top_p: float | None
    arch: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "split": self.split,
            "arch": self.arch,
            "top_p": self.top_p,
            "threshold_source": self.threshold_source,
            "flops_per_utterance": self.flops_per_utterance,
            "dense_flops_per_utterance": self.dense_flops_per_utterance,
            **self.report.to_dict(),
        }


def resolve_thresholds(
    info: Any,
    split: str,
    *,
    mode: str = "auto",
    valid_predictions: SplitPredictions | None = None,
) -> tuple[list[float], str]:
    """Per-class thresholds and where they came from.

    mode ``checkpoint``: the checkpoint's (error if absent); ``valid``: tuned on the validation
    predictions; ``auto``: checkpoint if present, else validation. Tuning on ``split`` happens only
    when ``split == "valid"``.
    """
    if mode not in ("auto", "checkpoint", "valid"):
        raise ValueError(f"unknown threshold mode {mode!r} (auto, checkpoint or valid)")
    saved = getattr(info, "thresholds", None)
    if mode in ("auto", "checkpoint") and saved is not None:
        return [float(t) for t in saved], "checkpoint (chosen on validation during training)"
    if mode == "checkpoint":
        raise ValueError(f"{getattr(info, 'path', 'checkpoint')}: has no thresholds; use --thresholds valid")
    if valid_predictions is None or valid_predictions.labels is None:
        raise ValueError(
            "no thresholds in the checkpoint and no labelled validation split in the cache: refusing to tune "
            f"thresholds on {split!r}"
        )
    return list(choose_thresholds(valid_predictions.probs, valid_predictions.labels)), "tuned on the valid split"


def evaluate_checkpoint(
    checkpoint: str | Path,
    cache_dir: str | Path,
    split: str = "test",
    *,
    thresholds: str = "auto",
    top_p: float | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    model: nn.Module | None = None,
    info: Any = None,
    progress: bool = False,
) -> EvaluationResult:
    """Metrics of a checkpoint on ``split`` of ``cache_dir`` (see :func:`resolve_thresholds`)."""
    if model is None:
        model, info = load_model_for_eval(checkpoint, device)
    cache_dir = Path(cache_dir)
    predictions = predict_top_ps(model, cache_dir, split, [top_p], device=device, batch_size=batch_size,
                                 progress=progress)[top_p]
    if predictions.labels is None:
        raise ValueError(f"{cache_dir}: the {split} split has no labels to evaluate against")
    need_valid = thresholds == "valid" or (thresholds == "auto" and getattr(info, "thresholds", None) is None)
    valid_predictions = None
    if need_valid:
        if split == "valid":
            valid_predictions = predictions
        elif _has_split(cache_dir, "valid"):
            valid_predictions = predict_top_ps(model, cache_dir, "valid", [top_p], device=device,
                                               batch_size=batch_size)[top_p]
    chosen, source = resolve_thresholds(info, split, mode=thresholds, valid_predictions=valid_predictions)
    report = compute_metrics(predictions.probs, predictions.labels, chosen, model.config.classes,
                             dataset=cache_dataset_name(cache_dir))
    return EvaluationResult(
        checkpoint=str(getattr(info, "path", checkpoint)), split=split, report=report, threshold_source=source,
        flops_per_utterance=predictions.flops_per_utterance,
        dense_flops_per_utterance=predictions.dense_flops_per_utterance,
        top_p=(top_p if top_p is not None else model.config.top_p) if model.config.arch == "mesm" else None,
        arch=model.config.arch,
    )


# --- top-p sweep ------------------------------------------------------------------------------------

@dataclass
class SweepRow:
    top_p: float
    report: MetricsReport
    flops_per_utterance: float
    dense_flops_per_utterance: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "top_p": self.top_p,
            "flops_per_utterance": self.flops_per_utterance,
            "dense_flops_per_utterance": self.dense_flops_per_utterance,
            "flops_fraction": self.flops_per_utterance / self.dense_flops_per_utterance
            if self.dense_flops_per_utterance else 1.0,
            "average": self.report.to_dict()["average"],
            "per_class": self.report.to_dict()["per_class"],
            "thresholds": self.report.thresholds,
        }


@dataclass
class SweepResult:
    split: str
    checkpoint: str
    threshold_source: str
    metrics: tuple[str, ...]
    rows: list[SweepRow]
    fe2e: EvaluationResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "checkpoint": self.checkpoint,
            "threshold_source": self.threshold_source,
            "metrics": list(self.metrics),
            "rows": [row.to_dict() for row in self.rows],
            "fe2e": None if self.fe2e is None else self.fe2e.to_dict(),
        }

    def format_table(self) -> str:
        names = [METRIC_LABELS.get(m, m) for m in self.metrics]
        header = f"{'top-p':>6}  " + "  ".join(f"{n:>6}" for n in names) + f"  {'GFLOPs/utt':>10}  {'vs dense':>8}"
        lines = [header, "-" * len(header)]
        for row in self.rows:
            cells = "  ".join(f"{row.report.average[m] * 100:6.1f}" for m in self.metrics)
            frac = row.flops_per_utterance / row.dense_flops_per_utterance if row.dense_flops_per_utterance else 1.0
            lines.append(f"{row.top_p:6.2f}  {cells}  {row.flops_per_utterance / 1e9:10.4f}  {frac:8.1%}")
        if self.fe2e is not None:
            cells = "  ".join(f"{self.fe2e.report.average[m] * 100:6.1f}" for m in self.metrics)
            lines.append(f"{'FE2E':>6}  {cells}  {self.fe2e.flops_per_utterance / 1e9:10.4f}  {'':>8}")
        return "\n".join(lines)


def parse_top_ps(text: str) -> list[float]:
    """``"0.1,0.5,1"`` or the arithmetic form ``"0.1,0.2,...,1.0"`` → sorted values in (0, 1]."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if "..." in items:
        at = items.index("...")
        if at != 2 or len(items) != 4:
            raise ValueError(f"--top-p {text!r}: use 'a,b,...,c' for a range")
        start, second, end = float(items[0]), float(items[1]), float(items[3])
        step = second - start
        if step <= 0:
            raise ValueError(f"--top-p {text!r}: the step must be positive")
        count = int(round((end - start) / step)) + 1
        values = [round(start + i * step, 6) for i in range(count)]
    else:
        try:
            values = [float(item) for item in items]
        except ValueError as exc:
            raise ValueError(f"--top-p {text!r}: not a comma-separated list of numbers") from exc
    if not values:
        raise ValueError("--top-p: no values")
    bad = [v for v in values if not 0.0 < v <= 1.0]
    if bad:
        raise ValueError(f"--top-p: values must be in (0, 1], got {bad}")
    return sorted(set(values))


def sweep_top_p(
    model: nn.Module,
    info: Any,
    cache_dir: str | Path,
    top_ps: Sequence[float],
    *,
    split: str = "test",
    thresholds: str = "valid",
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    progress: bool = False,
) -> SweepResult:
    """Evaluate the same MESM weights at each p. ``thresholds="valid"`` re-tunes the per-class
    thresholds on validation at every p (falls back to the checkpoint's when the cache has no
    valid split); ``"checkpoint"`` keeps the checkpoint's."""
    if model.config.arch != "mesm":
        raise ValueError("a top-p sweep needs a MESM checkpoint (FE2E has no top-p)")
    cache_dir = Path(cache_dir)
    top_ps = list(top_ps)
    test = predict_top_ps(model, cache_dir, split, top_ps, device=device, batch_size=batch_size, progress=progress)
    valid = None
    use_valid = thresholds == "valid" and split != "valid" and _has_split(cache_dir, "valid")
    if thresholds == "valid" and split == "valid":
        valid = test
    elif use_valid:
        valid = predict_top_ps(model, cache_dir, "valid", top_ps, device=device, batch_size=batch_size,
                               progress=progress)
    rows = []
    source = ""
    for p in top_ps:
        mode = "valid" if valid is not None else "checkpoint"
        chosen, source = resolve_thresholds(info, split, mode=mode, valid_predictions=None if valid is None else valid[p])
        if test[p].labels is None:
            raise ValueError(f"{cache_dir}: the {split} split has no labels")
        report = compute_metrics(test[p].probs, test[p].labels, chosen, model.config.classes,
                                 dataset=cache_dataset_name(cache_dir))
        rows.append(SweepRow(p, report, test[p].flops_per_utterance, test[p].dense_flops_per_utterance))
    metrics = tuple(rows[0].report.report_metrics)
    if valid is not None:
        source = "tuned on the valid split at each p"
    return SweepResult(split=split, checkpoint=str(getattr(info, "path", "")), threshold_source=source,
                       metrics=metrics, rows=rows)


def sweep_figure(sweep: SweepResult, title: str | None = None):
    """Plotly figure: top, the dataset's metrics vs p (FE2E as dashed lines); bottom, GFLOPs/utterance."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

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


# --- attention on cue regions ---------------------------------------------------------------------

@dataclass
class CueReport:
    split: str
    top_p: float
    rows: list[CueRow]
    cell_rule: str = CUE_CELL_RULE
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "top_p": self.top_p, "cell_rule": self.cell_rule,
                "rows": [row.to_dict() for row in self.rows], "notes": list(self.notes)}

    def format_table(self) -> str:
        header = (f"{'modality':<8} {'block':>5} {'grid':>7}  {'attn in cue':>11} {'kept in cue':>11} "
                  f"{'chance':>7} {'attn/chance':>11} {'kept/chance':>11} {'kept share':>10} {'items':>6}")
        lines = [header, "-" * len(header)]
        for r in self.rows:
            lines.append(
                f"{r.modality:<8} {r.block:>5} {r.grid[0]:>3}x{r.grid[1]:<3}  {r.attention_in_cue:11.1%} "
                f"{r.kept_in_cue:11.1%} {r.chance:7.1%} {r.attention_ratio:11.2f} {r.kept_ratio:11.2f} "
                f"{r.kept_share:10.1%} {r.items:6d}"
            )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _record_cues(records: list[ClipRecord], batch: Batch, chunk_frames: int) -> dict[str, torch.Tensor | None]:
    """Cue masks aligned with the batch's frames/chunks, or None when a record lacks them."""
    per_record = [record_cue_masks(record, int(batch.face_lengths[i]), int(batch.chunk_lengths[i]), chunk_frames)
                  for i, record in enumerate(records)]
    return {modality: None if any(m[modality] is None for m in per_record) or not per_record
            else torch.cat([m[modality] for m in per_record]) for modality in ("visual", "audio")}


@torch.no_grad()
def cue_attention_report(
    model: nn.Module,
    cache_dir: str | Path,
    split: str = "test",
    *,
    top_p: float | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    max_items: int | None = None,
    cell_rule: str = CUE_CELL_RULE,
) -> CueReport | None:
    """Attention mass / kept cells inside the ground-truth cue regions per sparse block and modality.

    Returns None when the split has no cue masks or the model is not MESM. Items (frames / chunks)
    whose grid has no cue cell are skipped (their chance is 0). ``max_items`` caps utterances.
    """
    if model.config.arch != "mesm":
        return None
    dataset = _dataset(Path(cache_dir), split, model.config.classes)
    if len(dataset) == 0:
        return None
    first = dataset[0]
    if first.face_cues is None and first.mel_cues is None:
        return None
    p = float(model.config.top_p if top_p is None else top_p)
    tallies: dict[tuple[str, int], CueTally] = {}
    grids: dict[tuple[str, int], tuple[int, int]] = {}
    seen = 0
    notes = []
    for records, batch in iterate_batches(dataset, model.tokenizer, batch_size):
        if max_items is not None and seen >= max_items:
            break
        seen += len(records)
        cues = _record_cues(records, batch, model.config.chunk_frames)
        out = model(batch.to(device), top_p=p, return_trace=True)
        for modality, blocks in (out.trace or {}).items():
            pixel_mask = cues.get(modality)
            if pixel_mask is None:
                continue
            for index, block in enumerate(blocks, start=1):
                grids[(modality, index)] = tuple(block.grid)
                tallies.setdefault((modality, index), CueTally())
                tallies[(modality, index)] += tally_block(pixel_mask, block.attention, block.kept, block.active_in,
                                                          tuple(block.grid), cell_rule)
    rows = [CueRow.of(modality, index, grids[(modality, index)], tally)
            for (modality, index), tally in sorted(tallies.items()) if tally.items]
    if not rows:
        return None
    rule_text = "at least half of the pixels under it are" if cell_rule == "majority" else "any pixel under it is"
    notes.append(f"a grid cell is cue when {rule_text} cue; frames/chunks without cue cells skipped")
    return CueReport(split=split, top_p=p, rows=rows, cell_rule=cell_rule, notes=notes)


def cue_figure(report: CueReport):
    """Grouped bars per block: attention share, kept share and chance, one panel per modality."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

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


# --- CLI ----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mesm_core.evaluate",
        description="Evaluate a checkpoint on a preprocessed cache (thresholds from the checkpoint or the valid "
        "split, never the tested split); optional top-p sweep and attention-on-cue analysis.",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint directory (or a run directory)")
    parser.add_argument("--data", type=Path, required=True, help="preprocessed cache directory")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--thresholds", choices=("auto", "checkpoint", "valid"), default="auto",
                        help="auto: the checkpoint's if it has them, else tuned on the valid split")
    parser.add_argument("--top-p", default=None,
                        help="MESM top-p for a single evaluation, or a list for a sweep: 0.1,0.2,...,1.0")
    parser.add_argument("--sweep-thresholds", choices=("valid", "checkpoint"), default="valid",
                        help="sweep: re-tune thresholds on valid at each p (default) or keep the checkpoint's")
    parser.add_argument("--fe2e-checkpoint", type=Path, default=None, help="FE2E checkpoint for the sweep's reference")
    parser.add_argument("--figure", type=Path, default=None,
                        help="sweep figure (HTML); default: next to --out as <stem>_topp.html")
    parser.add_argument("--plotlyjs", choices=("cdn", "embed"), default="cdn",
                        help="figure HTML loads plotly.js from the CDN (small) or embeds it (offline, ~4 MB)")
    parser.add_argument("--cues", choices=("auto", "off"), default="auto",
                        help="attention-on-cue report for MESM on data with cue masks (auto)")
    parser.add_argument("--cue-rule", choices=CUE_CELL_RULES, default=CUE_CELL_RULE,
                        help="a grid cell is cue when at least half (majority) / any of its pixels are cue")
    parser.add_argument("--cue-figure", type=Path, default=None,
                        help="attention-on-cue bar chart (HTML); default: next to --out as <stem>_cues.html")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--progress", action="store_true", help="progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if not args.data.is_dir():
        parser.error(f"--data {args.data}: no such directory")
    if not args.checkpoint.exists():
        parser.error(f"--checkpoint {args.checkpoint}: no such directory")
    if args.fe2e_checkpoint is not None and not args.fe2e_checkpoint.exists():
        parser.error(f"--fe2e-checkpoint {args.fe2e_checkpoint}: no such directory")
    top_ps: list[float] | None = None
    if args.top_p is not None:
        try:
            top_ps = parse_top_ps(args.top_p)
        except ValueError as exc:
            parser.error(str(exc))
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was requested but CUDA is not available on this machine")
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    if not _has_split(args.data, args.split):
        parser.error(f"--split {args.split}: {args.data} has no such (non-empty) split")

    from mesm_core.checkpoint import CheckpointError

    try:
        model, info = load_model_for_eval(args.checkpoint, device)
    except CheckpointError as exc:
        parser.error(f"--checkpoint: {exc}")
    output: dict[str, Any] = {}
    try:
        sweeping = top_ps is not None and len(top_ps) > 1
        if sweeping and model.config.arch != "mesm":
            parser.error("--top-p with several values needs a MESM checkpoint")
        single_p = top_ps[0] if top_ps is not None and not sweeping else None
        result = evaluate_checkpoint(args.checkpoint, args.data, args.split, thresholds=args.thresholds,
                                     top_p=single_p, device=device, batch_size=args.batch_size,
                                     model=model, info=info, progress=args.progress)
        print(f"{result.arch} {result.checkpoint} on {args.split} ({result.report.n_samples} utterances); "
              f"thresholds: {result.threshold_source}"
              + (f"; top-p {result.top_p}" if result.top_p is not None else ""))
        print(result.report.format_table())
        print(f"feature-extraction FLOPs per utterance: {result.flops_per_utterance / 1e9:.4f} G "
              f"(dense {result.dense_flops_per_utterance / 1e9:.4f} G)")
        output["evaluation"] = result.to_dict()
        if sweeping:
            sweep = sweep_top_p(model, info, args.data, top_ps, split=args.split, thresholds=args.sweep_thresholds,
                                device=device, batch_size=args.batch_size, progress=args.progress)
            if args.fe2e_checkpoint is not None:
                sweep.fe2e = evaluate_checkpoint(args.fe2e_checkpoint, args.data, args.split,
                                                 thresholds=args.thresholds, device=device,
                                                 batch_size=args.batch_size)
            print(f"\ntop-p sweep ({sweep.threshold_source}):")
            print(sweep.format_table())
            output["sweep"] = sweep.to_dict()
            figure_path = args.figure or (args.out.with_name(args.out.stem + "_topp.html") if args.out else None)
            if figure_path is not None:
                written = write_figure(sweep_figure(sweep), figure_path, args.plotlyjs)
                print("figure: " + ", ".join(str(p) for p in written))
        if args.cues == "auto":
            cues = cue_attention_report(model, args.data, args.split, top_p=single_p, device=device,
                                        batch_size=args.batch_size, cell_rule=args.cue_rule)
            if cues is not None:
                print(f"\nattention on ground-truth cue regions (p = {cues.top_p}):")
                print(cues.format_table())
                output["cues"] = cues.to_dict()
                cue_path = args.cue_figure or (args.out.with_name(args.out.stem + "_cues.html") if args.out else None)
                if cue_path is not None:
                    written = write_figure(cue_figure(cues), cue_path, args.plotlyjs)
                    print("figure: " + ", ".join(str(p) for p in written))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.out is not None:
        write_json(args.out, output)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
