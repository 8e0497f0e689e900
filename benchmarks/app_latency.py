"""Latency of the attention studio on the machine at hand: upload → first result, and a top-p change.

    python benchmarks/app_latency.py [--video assets/samples/sad_10s.mp4] [--checkpoint DIR] [--repeats 3]
                                     [--moves 8] [--threads 1] [--no-client] [--json OUT.json]

Measures, with the app's own callbacks (``mesm_viz.studio.Studio``):

* ``analyze``: upload → first result (decode + MTCNN + mel + text + dense layers + one sparse run +
  all views), with the clip cache cleared before each repeat (the model stays loaded, as in the app);
* ``set_top_p`` on a p the cache has not seen (sparse stage + heads + views), on a p of the
  precomputed grid (drawing only) and on a p already shown (both cached), with the first split into
  the model stage (``Predictor.run``) and the drawing;
* with the client (default): the same slider move through the running app's ``/set_top_p`` endpoint,
  i.e. including Gradio's image encoding and plot serialisation and the HTTP round trip.

Defaults: the bundled 10 s sample clip and the bundled ``mesm_small`` checkpoint; when the checkpoint
is missing, a random-weight ``mesm_small`` is used (latency does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _ten_second_clip(folder: Path) -> tuple[Path, str]:
    """The bundled 10 s sample, or the same kind of synthetic clip rendered now."""
    sample = REPO / "assets" / "samples" / "sad_10s.mp4"
    if sample.is_file():
        return sample, sample.with_suffix(".txt").read_text(encoding="utf-8").strip()
    from mesm_core.data.synthetic import audio as synth_audio
    from mesm_core.data.synthetic.generator import ClipPlan, SynthConfig, render_clip, write_mp4

    config = SynthConfig()
    plan = ClipPlan(index=0, clip_id="bench", labels=["sad"], split="demo", seed=7, duration=10.0,
                    visual_cue=True, audio_cue=True, text_cue=True)
    clip = render_clip(plan, config)
    path = folder / "bench_10s.mp4"
    write_mp4(path, clip.frames, config.fps, clip.audio, synth_audio.SAMPLE_RATE)
    return path, clip.transcript


def _checkpoint(path: str | None, folder: Path) -> tuple[str, str]:
    from mesm_core.checkpoint import is_checkpoint_dir
    from mesm_viz.catalog import BUNDLED_CHECKPOINTS

    candidate = Path(path) if path else BUNDLED_CHECKPOINTS / "mesm_small"
    if is_checkpoint_dir(candidate):
        return str(candidate.resolve()), "given" if path else "bundled"
    if path:
        raise SystemExit(f"{path}: not a checkpoint folder")
    from mesm_core import create_model, save_checkpoint

    out = folder / "mesm_small_random"
    save_checkpoint(create_model("mesm_small"), out)
    return str(out), "random weights (bundled checkpoint missing)"


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", default=None)
    parser.add_argument("--transcript", default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--repeats", type=int, default=3, help="analyze repeats (after one warm-up)")
    parser.add_argument("--moves", type=int, default=8, help="slider moves per kind")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the app's default is 1)")
    parser.add_argument("--no-client", action="store_true", help="skip the end-to-end /set_top_p measurement")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from mesm_core.data.transcript import resolve_transcript
    from mesm_viz.studio import AppSettings, Studio

    work = Path(tempfile.mkdtemp(prefix="mesm_bench_"))
    video, transcript = (Path(args.video), args.transcript) if args.video else _ten_second_clip(work)
    if transcript is None:
        transcript = resolve_transcript(video).text
    checkpoint, checkpoint_kind = _checkpoint(args.checkpoint, work)
    settings = AppSettings(checkpoint=checkpoint, export_dir=str(work / "exports"))
    studio = Studio(settings)

    t0 = time.perf_counter()
    predictor = studio.predictor(checkpoint)
    load_s = time.perf_counter() - t0

    # upload → first result -----------------------------------------------------------------
    cold_start = time.perf_counter()
    state = studio.analyze(str(video), transcript, checkpoint, 0.5)[0]
    cold_s = time.perf_counter() - cold_start
    analyze_s = []
    for _ in range(args.repeats):
        for cache in (studio.clips.entries, studio.clips.jobs, studio.clips.frame_jobs):
            cache.clear()   # nothing prepared: the whole p-independent stage runs again
        start = time.perf_counter()
        state = studio.analyze(str(video), transcript, checkpoint, 0.5)[0]
        analyze_s.append(time.perf_counter() - start)
    entry = studio.entries[state.key]
    record = entry.record

    start = time.perf_counter()
    studio.cost_curve(state)
    sweep_s = time.perf_counter() - start

    # slider moves --------------------------------------------------------------------------
    off_grid = [0.13, 0.87, 0.27, 0.73, 0.37, 0.63, 0.43, 0.57, 0.07, 0.93][: args.moves]   # off the slider steps
    on_grid = [0.3, 0.9, 0.2, 0.8, 0.4, 0.6, 0.7, 0.1, 1.0, 0.5][: args.moves]   # slider positions (swept)
    miss_s, hit_s, again_s, run_s, draw_s = [], [], [], [], []
    for p in off_grid:
        start = time.perf_counter()
        state = studio.set_top_p(state, p)[0]
        miss_s.append(time.perf_counter() - start)
    for p in on_grid:
        start = time.perf_counter()
        state = studio.set_top_p(state, p)[0]
        hit_s.append(time.perf_counter() - start)
    for p in on_grid:  # back to a p already shown: its views are cached too
        start = time.perf_counter()
        state = studio.set_top_p(state, p)[0]
        again_s.append(time.perf_counter() - start)
    for p in off_grid:
        start = time.perf_counter()
        pred = predictor.run(entry.prepared, p + 0.01)
        run_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        studio.p_view(entry, pred)
        studio.frame_view(entry, pred, state.frame, with_frame=False)
        draw_s.append(time.perf_counter() - start)

    client_s: list[float] = []
    if not args.no_client:
        from gradio_client import Client, handle_file

        from mesm_viz.app import build_app, launch_kwargs

        os.environ.setdefault("GRADIO_TEMP_DIR", str(work / "gradio"))
        demo = build_app(studio=studio)
        demo.queue(default_concurrency_limit=1)
        _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True,
                                **launch_kwargs(settings))
        client = Client(url, verbose=False, download_files=False)  # server time, not our downloads
        try:
            client.predict(handle_file(str(video)), transcript, checkpoint, 0.5, None, api_name="/analyze")
            client.predict(api_name="/cost_curve")
            # fresh p values for this session's entry (the in-process caches are shared with the logic runs)
            for p in [0.12, 0.88, 0.22, 0.78, 0.32, 0.68, 0.42, 0.58][: args.moves]:
                start = time.perf_counter()
                client.predict(p, api_name="/set_top_p")
                client_s.append(time.perf_counter() - start)
        finally:
            client.close()
            demo.close()

    result = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine(),
                    "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
        "clip": {"video": str(video), "duration_s": record.meta.duration_s, "frames": int(record.faces.shape[0]),
                 "mel_chunks": int(entry.prepared.batch.chunks.shape[0])},
        "checkpoint": {"path": checkpoint, "kind": checkpoint_kind, "sparse_backend": predictor.config.sparse_backend},
        "model_load_s": load_s,
        "analyze_cold_s": cold_s,
        "analyze_median_s": _median(analyze_s),
        "cost_curve_s": sweep_s,
        "set_top_p_new_p_median_s": _median(miss_s),
        "set_top_p_grid_p_median_s": _median(hit_s),
        "set_top_p_seen_p_median_s": _median(again_s),
        "sparse_stage_median_s": _median(run_s),
        "drawing_median_s": _median(draw_s),
        "client_set_top_p_median_s": _median(client_s) if client_s else None,
        "samples": {"analyze": analyze_s, "new_p": miss_s, "grid_p": hit_s, "seen_p": again_s, "client": client_s},
    }
    print(f"machine: {result['machine']}")
    print(f"clip: {result['clip']}  checkpoint: {checkpoint_kind}, backend {predictor.config.sparse_backend}")
    rows = [("model load (once)", load_s), ("upload → first result, cold (first clip)", cold_s),
            ("upload → first result, median", result["analyze_median_s"]),
            ("cost curve (p-grid, after the first result)", sweep_s),
            ("top-p change, new p (median)", result["set_top_p_new_p_median_s"]),
            ("  of which sparse stage + heads", result["sparse_stage_median_s"]),
            ("  of which drawing the views", result["drawing_median_s"]),
            ("top-p change, grid p: model output cached (median)", result["set_top_p_grid_p_median_s"]),
            ("top-p change, p seen before: views cached (median)", result["set_top_p_seen_p_median_s"])]
    if client_s:
        rows.append(("top-p change through /set_top_p (median, HTTP, no image download)", result["client_set_top_p_median_s"]))
    for name, value in rows:
        print(f"{name:<55} {value:8.3f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
