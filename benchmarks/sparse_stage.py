"""The p-dependent stage of MESM (what the studio reruns on a slider move): time against p, beside its FLOPs.

The stage is ``model.forward_prepared`` (attention → nucleus → sparse blocks, per modality, then the
flatten MLPs, temporal Transformers, heads, fusion and the FLOPs report), run under
``torch.inference_mode`` as ``mesm_core.predict.run`` runs it, on a clip prepared once
(``mesm_core.predict.prepare``: decode, MTCNN, mel, text and dense CNN layers). Every sparse backend is
timed at every p, interleaved; "vgg" is the same stage with the sparse blocks run as ordinary dense VGG
blocks (no attention): the dense stage of the issue. spconv is left out unless ``--with-spconv``: the studio
does not load it, and once loaded auto may pick it on CPU. Models: the bundled demo checkpoint
(``mesm_small``) and a full-size MESM (preset ``mesm_iemocap``, random weights, MiniLM text so it runs
offline: the stage's cost does not depend on the weights, its masks do).

    python benchmarks/sparse_stage.py                                  # both models, 1 and 2 threads
    python benchmarks/sparse_stage.py --models full --threads 1 --repeats 9
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import REPO, finish_record, interleaved, machine_record, markdown_header, quartiles, ratio_summary, write_results  # noqa: E402
from sparse_blocks import vgg_blocks  # noqa: E402

DEMO = REPO / "assets" / "checkpoints" / "mesm_small"
CLIP = REPO / "assets" / "samples" / "sad_10s.mp4"
BACKENDS = ("masked", "dense", "gather", "spconv", "auto")


def load(name: str):
    """A Predictor (the studio's inference API) on the demo checkpoint or a full-size MESM (random weights)."""
    import mesm_core
    from mesm_core.inference import Predictor

    if name == "demo":
        return Predictor.load(DEMO)
    torch.manual_seed(0)
    return Predictor(mesm_core.create_model("mesm_iemocap", text_model="minilm"))


def vgg_stage(model, batch, text_cls, dense) -> torch.Tensor:
    """forward_prepared with the sparse stage replaced by dense VGG blocks of the same weights (logits only)."""
    logits = {}
    if model.text_head is not None:
        logits["text"] = model.text_head(text_cls)
    for m, branch in model.branches.items():
        lengths = batch.face_lengths if m == "visual" else batch.chunk_lengths
        features = vgg_blocks(list(branch.sparse.blocks), dense[m])
        logits[m] = branch.head(branch.temporal(branch.projection(features), lengths))
    return model.fusion(torch.stack([logits[m] for m in model.modalities], dim=-1)).squeeze(-1)


def stage_case(name: str, model, prepared, ps: list[float], repeats: int, backends: list[str]) -> dict:
    batch, text_cls, dense = prepared.batch, prepared.text_cls, prepared.dense
    config = model.config

    def run(backend: str, p: float):
        def call():
            config.sparse_backend = backend
            with torch.inference_mode():
                return model.forward_prepared(batch, text_cls, dense, top_p=p, return_trace=True)
        return call

    def vgg():
        with torch.inference_mode():
            return vgg_stage(model, batch, text_cls, dense)

    rows = []
    for p in ps:
        fns = {"vgg": vgg, **{b: run(b, p) for b in backends}}
        first = {}
        for variant, fn in fns.items():               # the first call at this p: new masks, new GEMM shapes
            start = time.perf_counter()
            fn()
            first[variant] = (time.perf_counter() - start) * 1e3
        times = interleaved(fns, repeats, torch.device("cpu"))
        out = run("masked", p)()
        sparse = [r for r in out.flops.layers if r.name.startswith(("sparse_block", "attention"))]
        stage_dense = sum(r.dense for r in sparse)
        rows.append({
            "top_p": p,
            "stage_flops_share": sum(r.actual for r in sparse) / stage_dense,
            "feature_flops_share": out.flops.actual / out.flops.dense,
            "kept": {m: [float(t.active_cells) / t.kept.numel() for t in traces] for m, traces in (out.trace or {}).items()},
            "ms": {k: quartiles(v) for k, v in times.items()},
            "first_call_ms": first,
            "ratio_to_vgg": {k: ratio_summary(v, times["vgg"]) for k, v in times.items() if k != "vgg"},
        })
        print(f"  {name} {torch.get_num_threads()}t p {p:.1f} stage FLOPs share {rows[-1]['stage_flops_share']:.3f} "
              f"vgg {rows[-1]['ms']['vgg']['median']:.1f} ms " + " ".join(
                  f"{b} {rows[-1]['ms'][b]['median']:.1f}" for b in backends), flush=True)
    full = next(r for r in rows if r["top_p"] == 1.0) if any(r["top_p"] == 1.0 for r in rows) else None
    for row in rows if full is not None else []:
        row["ratio_to_p1"] = {b: row["ms"][b]["median"] / full["ms"][b]["median"] for b in backends}
        row["ratio_to_masked_p1"] = {b: row["ms"][b]["median"] / full["ms"]["masked"]["median"] for b in backends}
    return {"model": name, "threads": torch.get_num_threads(),
            "frames": int(batch.faces.shape[0]), "chunks": int(batch.chunks.shape[0]), "rows": rows}


def markdown(payload: dict) -> str:
    lines = markdown_header("The p-dependent stage (studio slider): time against p, beside its FLOPs", payload["machine"]) + [
        "*demo*: the bundled `mesm_small` checkpoint (where its keep floors, not p, set the masks, the stage FLOPs stay flat "
        "as p falls); *full*: "
        "`mesm_iemocap` with random weights and the MiniLM-size text encoder (the stage's cost follows the kept cells, "
        "not the weights). "
        f"Clip `{payload['clip']}`; the stage is `forward_prepared` under `torch.inference_mode` (as `predict.run`). "
        "*stage FLOPs*: attention + sparse blocks, actual ÷ dense; *ms*: median over interleaved rounds [quartiles]; "
        "*vgg*: the same stage with dense VGG blocks in place of attention + sparse blocks (the dense stage). "
        "*÷ p=1*: the backend's time ÷ its own time at p = 1 (issue target for auto at p = 0.3 on the full-size "
        "model: ≤ 0.6). *÷ masked p=1*: ÷ today's studio backend at p = 1. *first call*: auto's first call at that p "
        "(new masks; the process's first calls also build oneDNN kernels).",
        "",
    ]
    for case in payload["cases"]:
        backends = [b for b in BACKENDS if b in case["rows"][0]["ms"]]
        lines += [
            f"## {case['model']}, {case['threads']} thread(s), {case['frames']} frames, {case['chunks']} chunks",
            "",
            "| p | stage FLOPs | kept (visual / audio, blocks 1-3) | vgg ms | " + " | ".join(f"{b} ms" for b in backends)
            + " | auto ÷ p=1 | auto ÷ vgg | auto ÷ masked p=1 | auto first call ms |",
            "|" + "---|" * (len(backends) + 8),
        ]
        for row in case["rows"]:
            kept = " / ".join(",".join(f"{k:.2f}" for k in row["kept"].get(m, [])) for m in ("visual", "audio"))
            ms = row["ms"]
            lines.append(
                f"| {row['top_p']:.1f} | {row['stage_flops_share']:.3f} | {kept} | {ms['vgg']['median']:.1f} | "
                + " | ".join(f"{ms[b]['median']:.1f} [{ms[b]['q1']:.1f}–{ms[b]['q3']:.1f}]" for b in backends)
                + f" | {row.get('ratio_to_p1', {}).get('auto', float('nan')):.2f} | {row['ratio_to_vgg']['auto']['median']:.2f}"
                + f" | {row.get('ratio_to_masked_p1', {}).get('auto', float('nan')):.2f} | {row['first_call_ms']['auto']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    from mesm_core.models.sparse import spconv_available

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,full", help="demo (bundled mesm_small) and/or full (mesm_iemocap)")
    parser.add_argument("--clip", default=str(CLIP))
    parser.add_argument("--top-p", default="0.1,0.2,0.3,0.5,0.7,1.0")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--with-spconv", action="store_true",
                        help="also time spconv (this loads it, after which auto may pick it on CPU too; the studio does not load it)")
    parser.add_argument("--out", default="sparse_stage")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    backends = [b for b in BACKENDS if b != "spconv" or (args.with_spconv and spconv_available())]
    payload: dict = {"machine": machine_record(), "clip": str(Path(args.clip).relative_to(REPO)) if Path(args.clip).is_relative_to(REPO) else args.clip,
                     "repeats": args.repeats, "cases": []}
    ps = [float(p) for p in args.top_p.split(",")]
    for name in args.models.split(","):
        predictor = load(name)
        model = predictor.model
        prepared = predictor.prepare(args.clip)  # transcript from the clip's .txt sidecar
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            payload["cases"].append(stage_case(name, model, prepared, ps, args.repeats, backends))
    finish_record(payload["machine"])
    if not args.no_write:
        print("wrote", *write_results(args.out, payload, markdown(payload)))
    return payload


if __name__ == "__main__":
    main()
