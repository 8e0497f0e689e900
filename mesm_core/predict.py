"""``python -m mesm_core.predict``: classify the emotions of one clip, and say what it cost.

    python -m mesm_core.predict VIDEO [--transcript "TEXT" | --transcript-file F] [--checkpoint DIR]
                                [--top-p P] [--report OUT]

Prints the probabilities, the thresholds and their source, the predicted labels, dense vs actual
FLOPs and the kept fractions; exits with 2 and a one-line message for bad media or a bad checkpoint.
``--report OUT`` writes ``report.json`` and ``flops.csv``. ``python -m mesm_viz.report`` takes the same
flags and also draws the overlay PNGs and the FACS statistics (core never draws; docs/app.md).
The work is done by :class:`mesm_core.inference.Predictor`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch

from mesm_core.console import log_to_console
from mesm_core.errors import MesmError
from mesm_core.inference import Prediction, Predictor, format_prediction, write_report
from mesm_core.resources import DEFAULT_CHECKPOINT, default_checkpoint

__all__ = ["build_parser", "main"]

ReportWriter = Callable[[Prediction, Path], Path]


def build_parser(prog: str = "python -m mesm_core.predict", report_help: str = "write report.json and flops.csv "
                 "to this folder", report_required: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("video", help="video file with an audio track")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--transcript", help="the words spoken in the clip (MESM needs them)")
    text.add_argument("--transcript-file", help="a text file holding the transcript")
    parser.add_argument("--checkpoint", default=None,
                        help=f"checkpoint folder (default: the bundled {DEFAULT_CHECKPOINT.name}, in a checkout)")
    parser.add_argument("--top-p", type=float, default=None, help="MESM nucleus threshold (default: the checkpoint's)")
    parser.add_argument("--report", default=None, required=report_required, help=report_help)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 is often faster on shared cores)")
    parser.add_argument("--sparse-backend", choices=("auto", "gather", "dense", "masked", "spconv"), default=None,
                        help="MESM sparse path (same results on every one); default 'auto': per block, the path "
                             "measured fastest at its density (mesm_core/models/sparse/crossovers.json)")
    return parser


def main(argv: list[str] | None = None, *, parser: argparse.ArgumentParser | None = None,
         write: ReportWriter | None = None) -> int:
    """Run the CLI. ``parser`` and ``write(prediction, out_dir) -> report.json path`` let
    ``python -m mesm_viz.report`` reuse it with its own help and its image-drawing writer."""
    args = (parser or build_parser()).parse_args(argv)
    log_to_console()
    if args.threads:
        torch.set_num_threads(args.threads)
    transcript = args.transcript  # None → the .txt/.srt sidecar beside the video, if any
    if args.transcript_file:
        transcript = Path(args.transcript_file).read_text(encoding="utf-8").strip()
    try:
        backend = args.sparse_backend or "auto"
        predictor = Predictor.load(args.checkpoint or default_checkpoint(), args.device, sparse_backend=backend)
        prediction = predictor.predict(args.video, transcript, args.top_p)
    except MesmError as exc:  # bad media, empty transcript, bad checkpoint: each names the file and the reason
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_prediction(prediction))
    if args.report:
        path = (write or write_report)(prediction, Path(args.report))
        print(f"report: {path}")
        if write is None:
            print("note: for the overlay PNGs and FACS statistics run python -m mesm_viz.report with the same "
                  "arguments", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
