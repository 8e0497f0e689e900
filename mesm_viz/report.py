"""The full report of a prediction: core's report.json + flops.csv, plus the overlay PNGs and FACS statistics.

    python -m mesm_viz.report VIDEO --report OUT [--transcript "TEXT"] [--checkpoint DIR] [--top-p P] ...

takes the flags of ``python -m mesm_core.predict`` and writes ``OUT/report.json`` (with a ``facs``
section), ``OUT/flops.csv``, ``OUT/face_layers.png``, ``OUT/facs_overlay.png`` and ``OUT/mel_masks.png``.
The studio's Export button writes the same folder (:func:`write_full_report`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from mesm_core.inference import Prediction, write_report
from mesm_core.io import atomic_write
from mesm_viz import facs
from mesm_viz.overlay import to_uint8_image
from mesm_viz.views import best_frame, facs_table, frame_regions, shown_class

__all__ = ["png_bytes", "save_png", "report_artefacts", "facs_mean_stats", "write_full_report", "main"]


def png_bytes(image: np.ndarray) -> bytes:
    """RGB ``(H, W, 3)`` uint8 or float in [0, 1] → PNG-encoded bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(to_uint8_image(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an RGB image as PNG (atomically); returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: expected a .png file name")
    return atomic_write(path, png_bytes(image))


def facs_mean_stats(pred: Prediction) -> list[dict[str, Any]]:
    """Per layer and region: attention mass and kept fraction averaged over frames with a detected face."""
    record = pred.record
    frames = np.flatnonzero(record.face_detected)
    blocks = pred.trace.get("visual", [])
    if not len(frames) or not blocks:
        return []
    sums: dict[tuple[int, str], list[float]] = {}
    for f in frames:
        regions = frame_regions(record, int(f))
        for layer, block in enumerate(blocks, start=1):
            for row in facs.region_stats(regions, block.attention[f], block.kept[f]):
                acc = sums.setdefault((layer, row["label"]), [0.0, 0.0, 0.0, 0])
                acc[0] += row["attention_mass"] or 0.0
                acc[1] += row["kept_fraction"] or 0.0
                acc[2] += row["area_share"]
                acc[3] += 1
    return [{"layer": layer, "region": label, "attention_mass": a / n, "kept_fraction": k / n, "area_share": s / n}
            for (layer, label), (a, k, s, n) in sums.items()]


def report_artefacts(pred: Prediction, out_dir: str | os.PathLike, frame: int | None = None) -> dict[str, Any]:
    """Write the PNGs (face layer grid, FACS overlay, mel with masks; :mod:`mesm_viz.report_figures`) into
    ``out_dir`` and return the extra report.json entries: ``files`` (their names) and ``facs`` (the frame
    shown, its region table, the prototype of the shown class, and region statistics averaged over the
    frames with a detected face). ``frame`` defaults to the most confident face frame."""
    from mesm_viz import report_figures

    out_dir = Path(out_dir)
    files = []
    record = pred.record
    frame = best_frame(record) if frame is None else int(frame)
    atomic_write(out_dir / "mel_masks.png", report_figures.png(report_figures.mel_masks_figure(pred)))
    files.append("mel_masks.png")
    if frame >= 0:
        layers = report_figures.face_layers_figure(pred, frame)
        if layers is not None:
            atomic_write(out_dir / "face_layers.png", report_figures.png(layers))
            files.append("face_layers.png")
        regions = frame_regions(record, frame)
        table = facs_table(pred, frame, regions, legend_hint=False)
        overlay = report_figures.facs_figure(pred, frame, regions, table.proto_names, table.shown)
        atomic_write(out_dir / "facs_overlay.png", report_figures.png(overlay))
        files.append("facs_overlay.png")
        facs_section = {"frame": frame, "frame_time_s": float(record.frame_times[frame]), "headers": table.headers,
                        "rows": table.rows, "note": table.note, "mean_over_face_frames": facs_mean_stats(pred)}
    else:
        facs_section = {"frame": None, "note": pred.face_note}
    shown, above = shown_class(pred)
    proto = facs.prototype_for(shown)
    facs_section["prototype"] = {"class": shown, "predicted": above, "notation": proto.notation if proto else None,
                                 "note": proto.note if proto else facs.label_mapping(shown).note}
    return {"facs": facs_section, "files": files}


def write_full_report(pred: Prediction, out_dir: str | os.PathLike, frame: int | None = None) -> Path:
    """The PNGs, then core's flops.csv and report.json (with the ``facs`` section). Returns report.json."""
    return write_report(pred, out_dir, extra=report_artefacts(pred, out_dir, frame))


def main(argv: list[str] | None = None) -> int:
    """``python -m mesm_viz.report``: the predict CLI, writing the full report."""
    from mesm_core.predict import build_parser
    from mesm_core.predict import main as predict_main

    parser = build_parser(prog="python -m mesm_viz.report", report_required=True,
                          report_help="folder for report.json, flops.csv and the overlay PNGs")
    return predict_main(argv, parser=parser, write=write_full_report)


if __name__ == "__main__":
    raise SystemExit(main())
