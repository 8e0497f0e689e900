"""Every sparse path against the masked reference on one device, in float32: blocks and whole models, values and gradients.

For each backend (dense, gather, auto, and spconv where it is installed) and each case, the largest
absolute difference to the masked backend, divided by max(1, largest magnitude) of the reference, for
the output (logits), the input gradient and every parameter gradient; a case passes when all are
≤ ``--tol`` (float32 tolerance). TF32 is switched off so cuDNN/cuBLAS compute in float32 like the CPU.
Cases: single sparse blocks (train and eval, pooled, 40 % and 100 % active) and whole MESM models in
training with ``attention_mode="trained"`` (so the backend itself runs forward and backward) at p = 0.3
and 1.0: ``mesm_small`` and, with ``--full``, the full-size ``mesm_iemocap`` (random MiniLM-size text).

    python benchmarks/gpu_equivalence.py --device cuda --full --json docs/results/gpu/equivalence.json
    python benchmarks/gpu_equivalence.py --device cpu          # the same check on the CPU (dry run)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import finish_record, machine_record  # noqa: E402


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) / max(1.0, float(b.abs().max())) if b.numel() else 0.0


def _run(fn, params: dict[str, torch.nn.Parameter], inputs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    for p in params.values():
        p.grad = None
    out = fn()
    gen = torch.Generator(device=out.device).manual_seed(0)
    (out * torch.randn(out.shape, generator=gen, device=out.device)).sum().backward()
    got = {"output": out.detach()}
    got.update({f"grad:{n}": p.grad.detach().clone() for n, p in params.items() if p.grad is not None})
    got.update({f"grad:input{i}": t.grad.detach().clone() for i, t in enumerate(inputs) if t.grad is not None})
    return got


def block_cases(device: torch.device, backends: list[str]) -> list[dict]:
    from mesm_core.models.sparse import SparseVGGBlock, get_backend

    results = []
    for training in (True, False):
        for density in (0.4, 1.0):
            torch.manual_seed(0)
            block = SparseVGGBlock(64, 128, pool=True).to(device).train(training)
            gen = torch.Generator().manual_seed(1)
            mask = (torch.rand(8, 24, 24, generator=gen) < density).to(device)
            mask[:, 0, 0] = True
            x = torch.randn(8, 64, 24, 24, generator=gen).to(device)
            state = {k: v.clone() for k, v in block.state_dict().items()}
            params = dict(block.named_parameters())

            def call(name):
                block.load_state_dict(state)
                xx = x.clone().requires_grad_(True)
                return _run(lambda: get_backend(name)(block, xx, mask)[0], params, [xx])

            reference = call("masked")
            for name in backends:
                got = call(name)
                errors = {k: _relative(got[k], reference[k]) for k in reference}
                results.append({"case": f"block 64→128 24×24 {'train' if training else 'eval'} {density:.0%} active",
                                "backend": name, "max_error": max(errors.values()), "errors": errors})
    return results


def model_cases(device: torch.device, backends: list[str], full: bool) -> list[dict]:
    import mesm_core

    results = []
    presets = [("mesm_small", {"text_model": "tiny-random"})]
    if full:
        presets.append(("mesm_iemocap", {"text_model": "minilm"}))
    for preset, text in presets:
        torch.manual_seed(0)
        model = mesm_core.create_model(preset, text_pretrained=False, attention_mode="trained",
                                       sparse_backend="masked", **text).to(device).train()
        batch = mesm_core.dummy_batch(preset, batch_size=2, n_frames=6, n_chunks=6, tokenizer=model.tokenizer).to(device)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        for top_p in (0.3, 1.0):
            def call(name):
                model.load_state_dict(state)
                model.config.sparse_backend = name
                torch.manual_seed(1)
                return _run(lambda: model(batch, top_p=top_p).logits, params, [])

            reference = call("masked")
            for name in backends:
                got = call(name)
                errors = {k: _relative(got[k], reference[k]) for k in reference}
                results.append({"case": f"{preset} train p={top_p}", "backend": name,
                                "max_error": max(errors.values()), "errors": errors})
    return results


def main(argv: list[str] | None = None) -> int:
    from mesm_core.models.sparse import spconv_available

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--full", action="store_true", help="also the full-size mesm_iemocap model")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    backends = ["dense", "gather", "auto"] + (["spconv"] if spconv_available() else [])
    results = block_cases(device, backends) + model_cases(device, backends, args.full)
    ok = True
    for r in results:
        r["pass"] = r["max_error"] <= args.tol
        ok &= r["pass"]
        worst = max(r["errors"], key=r["errors"].get)
        print(f"  {'ok  ' if r['pass'] else 'FAIL'} {r['backend']:7s} {r['case']}: max relative error {r['max_error']:.2e} ({worst})")
    payload = {"machine": finish_record(machine_record(device)), "tolerance": args.tol, "tf32": False,
               "spconv_installed": spconv_available(), "backends": backends, "pass": ok, "results": results}
    if not spconv_available():
        print("  spconv is not installed here: its CUDA equivalence was NOT checked")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print("equivalence:", "pass" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
