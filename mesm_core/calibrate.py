"""``python -m mesm_core.calibrate``: give a trained MESM checkpoint BatchNorm statistics per top-p regime.

A MESM trained with one set of BN running statistics normalises its sparse blocks with averages taken at
whatever p its training steps ran at (for a recipe with dense steps, a mix of p = 1 and the training p). This
command rebuilds the model with one set per p regime (``model.bn_top_p``), re-estimates each on training
batches at its p (no labels, no gradient: ``mesm_core.training.bn_calibration``) and writes a new checkpoint.
The weights are unchanged. The decision thresholds are the checkpoint's unless ``--retune-thresholds`` tunes
them again on the validation split at the deployed p and at each regime's p (never on the tested split).

    python -m mesm_core.calibrate --checkpoint runs/mesm/best --data data/synthetic_cache --out runs/mesm/calibrated
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["calibrate_checkpoint", "main"]

DEFAULT_REGIMES = "0.1,0.2,...,1.0"


def calibrate_checkpoint(checkpoint: str | Path, data_dir: str | Path, out: str | Path, *,
                         top_ps: Sequence[float], batches: int = 8, batch_size: int = 8,
                         retune_thresholds: bool = False, device: str = "cpu") -> Path:
    """Write ``out``: the checkpoint with BN statistics per regime of ``top_ps``, calibrated on ``batches`` batches
    of the training split of ``data_dir``. Returns ``out``."""
    from mesm_core.checkpoint import CheckpointError
    from mesm_core.evaluation.collector import predict_split
    from mesm_core.families import E2E, family_of
    from mesm_core.loading import load_checkpoint
    from mesm_core.metrics import choose_thresholds
    from mesm_core.models.warm_start import map_weights
    from mesm_core.training.bn_calibration import calibrate_batchnorm
    from mesm_core.checkpoint import save_checkpoint

    source, info = load_checkpoint(checkpoint, map_location=device)
    if not getattr(source, "supports_top_p", False):
        raise CheckpointError(f"{checkpoint}: a {source.config.arch} checkpoint has no top-p selection to calibrate")
    cfg = info.run_config
    source_model_config = cfg.model
    cfg.model = dataclasses.replace(source_model_config, bn_top_p=tuple(sorted(top_ps)))
    cfg.validate()
    model = family_of(cfg).build_model(cfg.model, pretrained=True).to(device)
    mapped, _ = map_weights(source.state_dict(), source_model_config, model, where=str(checkpoint))
    model.load_state_dict(mapped, strict=False)
    dataset = E2E.dataset(data_dir, "train", cfg.model)
    collate = family_of(cfg).collate_fn(model, dataset)
    items = [dataset[i] for i in range(min(len(dataset), batches * batch_size))]
    calibration = [collate(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
    calibrate_batchnorm(model, calibration, device)
    thresholds = list(info.thresholds) if info.thresholds is not None else None
    table = dict(info.thresholds_by_top_p)
    metadata = {k: v for k, v in (info.metadata or {}).items() if k not in ("bn_calibration",)}
    metadata["bn_calibration"] = {"source": str(checkpoint), "regimes": list(cfg.model.bn_top_p), "clips": len(items),
                                  "split": "train", "thresholds": "checkpoint"}
    if retune_thresholds:
        grid = sorted({float(cfg.model.top_p), *cfg.model.bn_top_p})
        valid = predict_split(model, data_dir, "valid", grid, device=device)
        table = {p: [float(t) for t in choose_thresholds(r.probs, r.labels)] for p, r in valid.items()}
        thresholds = table[float(cfg.model.top_p)]
        metadata["bn_calibration"]["thresholds"] = f"re-tuned on the valid split at p = {cfg.model.top_p} and at each regime"
    out = Path(out)
    save_checkpoint(model, out, run_config=cfg, thresholds=thresholds, metrics=dict(info.metrics or {}),
                    thresholds_by_top_p=table, **metadata)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mesm_core.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a MESM checkpoint directory (or run directory)")
    parser.add_argument("--data", required=True, help="the preprocessed cache it was trained on (its train split)")
    parser.add_argument("--out", required=True, help="where to write the calibrated checkpoint")
    parser.add_argument("--top-p", default=DEFAULT_REGIMES, help=f"the p regimes (default {DEFAULT_REGIMES})")
    parser.add_argument("--batches", type=int, default=8, help="training batches per regime (default 8)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--retune-thresholds", action="store_true",
                        help="tune the decision thresholds again on the valid split at the deployed p")
    parser.add_argument("--device", default="cpu")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from mesm_core.errors import InputError
    from mesm_core.evaluation.sweep import parse_top_ps

    args = build_parser().parse_args(argv)
    try:
        out = calibrate_checkpoint(args.checkpoint, args.data, args.out, top_ps=parse_top_ps(args.top_p),
                                   batches=args.batches, batch_size=args.batch_size,
                                   retune_thresholds=args.retune_thresholds, device=args.device)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
