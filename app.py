"""Start the MESM attention studio (Gradio): ``python app.py [--port 7860] [--checkpoint DIR] ...``.

Thin entry point: flags → ``mesm_viz.app.build_app`` → ``launch``. See docs/app.md.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_parser() -> argparse.ArgumentParser:
    from mesm_viz.studio import AppSettings

    defaults = AppSettings()
    parser = argparse.ArgumentParser(description="MESM attention studio (Gradio)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default %(default)s: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--checkpoint", default=defaults.checkpoint, help="default checkpoint (default: bundled mesm_small)")
    parser.add_argument("--checkpoint-dir", action="append", default=[],
                        help="extra folder scanned for checkpoints (repeatable)")
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    parser.add_argument("--root-path", default=None,
                        help="the URL path the app is served under behind a reverse proxy (Gradio's root_path)")
    parser.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb)
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds, help="longest clip accepted")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads per request (default 1: several requests run at once, and on "
                             "shared cores more threads stall in OpenMP waits; see docs/app.md)")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency,
                        help="analyses run at once (default: the CPU cores this process may use, here "
                             "%(default)s); slider moves, frames and tabs have their own queue of twice as many")
    parser.add_argument("--min-face-share", type=float, default=defaults.min_face_share,
                        help="smallest face looked for, as a share of the frame's shorter side (default "
                             "%(default)s; 0: the data pipeline's own detection, slower on large frames)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    from mesm_viz.app import build_app, launch_kwargs
    from mesm_viz.studio import AppSettings, Studio

    settings = AppSettings(checkpoint=args.checkpoint, checkpoint_dirs=list(args.checkpoint_dir),
                           max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds, device=args.device,
                           concurrency=max(1, args.concurrency), min_face_share=args.min_face_share)
    studio = Studio(settings)
    studio.warm_up()  # load the default checkpoint, MTCNN and the audio path before the first upload
    demo = build_app(studio=studio)
    demo.queue(default_concurrency_limit=settings.concurrency)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, root_path=args.root_path,
                **launch_kwargs(settings))


if __name__ == "__main__":
    main()
