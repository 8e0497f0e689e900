"""The accuracy cost of the paper's rule: the same MESM weights over a split with the keep floors, then without.

    python -m mesm_viz.floor_cost CHECKPOINT --cache DATA_DIR [--split test] [--top-p 0.1,0.3,0.5,0.7,0.9]
                                  [--out FILE | --into-checkpoint]

Runs :func:`mesm_core.evaluation.sweep_top_p` twice (per-class thresholds re-tuned on validation at every
p, as the model card's sweep does): once as the checkpoint runs, once with every sparse stage's keep floor
set to 0 (the nucleus alone, paper Eq. 3). Writes ``floors_off.json``: per p, macro-F1 both ways. With
``--into-checkpoint`` the file goes into the checkpoint folder, where the studio reads it beside its
"Paper's rule (floors off)" toggle (:func:`mesm_viz.floors.read_floors_off`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from mesm_viz.floors import FLOORS_OFF_FILE, checkpoint_floors

__all__ = ["floors_off", "measure", "main"]


class floors_off:
    """Context manager: the keep floor of every sparse stage of ``model`` set to 0, restored on exit."""

    def __init__(self, model) -> None:
        self.stages = [branch.sparse for branch in getattr(model, "branches", {}).values()
                       if hasattr(getattr(branch, "sparse", None), "min_keep")]
        self.saved: list[float] = []

    def __enter__(self):
        self.saved = [stage.min_keep for stage in self.stages]
        for stage in self.stages:
            stage.min_keep = 0.0
        return self

    def __exit__(self, *exc) -> None:
        for stage, value in zip(self.stages, self.saved):
            stage.min_keep = value


def measure(checkpoint: str, cache: str, split: str, top_ps: Sequence[float]) -> dict:
    """Macro-F1 per p with the checkpoint's floors and with the floors off, over ``split`` of ``cache``."""
    from mesm_core.loading import load_checkpoint
    from mesm_core.evaluation import sweep_top_p
    from mesm_core.families import family_of

    model, info = load_checkpoint(checkpoint)
    floors = checkpoint_floors(model.config)
    if not any(v > 0 for v in floors.values()):
        raise SystemExit(f"{checkpoint}: this checkpoint has no keep floor (min_keep_visual = min_keep_audio = 0)")
    with_floors = sweep_top_p(model, info, cache, top_ps, split=split)
    with floors_off(model):
        without = sweep_top_p(model, info, cache, top_ps, split=split)
    dataset = family_of(info.run_config).dataset_name(cache) or Path(cache).name
    rows = [{"top_p": a.top_p, "f1_floors": a.report.average["f1"], "f1_floors_off": b.report.average["f1"]}
            for a, b in zip(with_floors.rows, without.rows)]
    from mesm_core.io import file_sha1

    return {"checkpoint": str(checkpoint), "weights_sha1": file_sha1(Path(info.path) / "model.safetensors"),
            "floors": floors, "cache": str(cache), "dataset": dataset, "split": split,
            "thresholds": "re-tuned on valid at every p", "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    from mesm_core.evaluation import parse_top_ps

    parser = argparse.ArgumentParser(prog="python -m mesm_viz.floor_cost", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--cache", required=True, help="preprocessed cache (python -m mesm_core.preprocess)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--top-p", default="0.1,0.3,0.5,0.7,0.9")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help="write the JSON here (default: print it)")
    where.add_argument("--into-checkpoint", action="store_true", help=f"write CHECKPOINT/{FLOORS_OFF_FILE}")
    args = parser.parse_args(argv)
    result = measure(args.checkpoint, args.cache, args.split, parse_top_ps(args.top_p))
    text = json.dumps(result, indent=1) + "\n"
    target = Path(args.checkpoint) / FLOORS_OFF_FILE if args.into_checkpoint else (Path(args.out) if args.out else None)
    if target is None:
        print(text, end="")
    else:
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    for row in result["rows"]:
        print(f"p = {row['top_p']:g}: macro-F1 {100 * row['f1_floors']:.1f} with floors, "
              f"{100 * row['f1_floors_off']:.1f} floors off")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
