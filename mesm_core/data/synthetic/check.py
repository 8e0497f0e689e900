"""Measurements behind docs/synthetic.md: face detection rate on the real MTCNN path, generation
speed, and whether the expressions are distinguishable in 48×48 crops.

    python -m mesm_core.data.synthetic.check --src DIR [--n 36] [--probe-per-class 40]

``--src`` must be a generated dataset (``python -m mesm_core.data.synthetic --out DIR``).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from mesm_core.config import MOSEI_CLASSES, DataConfig


def _stratified_rows(src: Path, n: int) -> list[dict]:
    with open(src / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_class: dict[str, list[dict]] = {c: [] for c in MOSEI_CLASSES}
    for row in rows:
        first = next(c for c in MOSEI_CLASSES if row[c] == "1")
        by_class[first].append(row)
    picked: list[dict] = []
    while len(picked) < min(n, len(rows)):
        for c in MOSEI_CLASSES:
            if by_class[c] and len(picked) < n:
                picked.append(by_class[c].pop(0))
    return picked


def detection_report(src: Path, n: int) -> dict:
    """Run the data pipeline (PyAV + MTCNN every 500 ms + mel) and attach_cues on ``n`` clips."""
    from mesm_core.data.clip import preprocess_clip
    from mesm_core.data.faces import FaceDetector
    from mesm_core.data.synthetic.cues import attach_cues

    detector = FaceDetector()
    per_class = {c: [0, 0] for c in MOSEI_CLASSES}   # a two-label clip counts for both classes
    probs, face_cue_frac, mel_cue_frac = [], [], []
    frames_detected = frames_total = 0
    start = time.perf_counter()
    rows = _stratified_rows(src, n)
    for row in rows:
        record = preprocess_clip(src / row["video"], row["transcript"], detector=detector, clip_id=row["id"])
        attach_cues(record, src, DataConfig())
        for c in MOSEI_CLASSES:
            if row[c] == "1":
                per_class[c][0] += int(record.face_detected.sum())
                per_class[c][1] += len(record.face_detected)
        frames_detected += int(record.face_detected.sum())
        frames_total += len(record.face_detected)
        probs.extend(record.face_probs[record.face_detected].tolist())
        shown = record.face_cues.reshape(len(record.faces), -1).any(axis=1)
        if shown.any():
            face_cue_frac.append(float(record.face_cues[shown].mean()))
        if record.mel_cues.any():
            mel_cue_frac.append(float(record.mel_cues.mean()))
    return {
        "clips": len(rows),
        "frames_detected": f"{frames_detected}/{frames_total}",
        "detection_rate": round(frames_detected / max(frames_total, 1), 4),
        "per_class_detected": {c: f"{a}/{b}" for c, (a, b) in per_class.items()},
        "min_prob": round(min(probs), 4) if probs else None,
        "mean_face_cue_fraction_of_crop": round(float(np.mean(face_cue_frac)), 3) if face_cue_frac else None,
        "mean_mel_cue_fraction": round(float(np.mean(mel_cue_frac)), 4) if mel_cue_frac else None,
        "seconds": round(time.perf_counter() - start, 1),
    }


def timing_report(n: int, seed: int) -> dict:
    """Render + encode + write ``n`` clips in this process (one thread); CPU and wall seconds per clip."""
    import tempfile

    import cv2

    from mesm_core.data.synthetic.generator import SynthConfig, _write_clip, plan_dataset

    cv2.setNumThreads(1)
    plans = plan_dataset(n + 1, seed)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "videos").mkdir()
        (Path(tmp) / "cues").mkdir()
        _write_clip((plans[0], SynthConfig(), tmp))  # warm-up: canonical image and AU fields
        cpu, wall = time.process_time(), time.perf_counter()
        for plan in plans[1:]:
            _write_clip((plan, SynthConfig(), tmp))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    per_clip = cpu / n
    return {"clips": n, "cpu_s_per_clip": round(per_clip, 3), "wall_s_per_clip": round(wall / n, 3),
            "estimated_1200_clips_2_free_cores_min": round(1200 * per_clip / 2 / 60, 1)}


def face_probe(per_class: int, seed: int, visual_cue: bool = True) -> dict:
    """5-fold logistic-regression accuracy on MTCNN 48×48 crops of single rendered frames.

    Each sample is one clip's most intense frame (random pose, colour, background, speech and
    distractor AUs). With ``visual_cue=False`` every face is neutral: the control must sit at chance.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mesm_core.data.faces import FaceDetector, crop_region
    from mesm_core.data.synthetic import audio as synth_audio
    from mesm_core.data.synthetic.generator import ClipPlan, SynthConfig, draw_visual_plan, render_frames

    config = SynthConfig()
    frames, labels = [], []
    for i in range(per_class * len(MOSEI_CLASSES)):
        cls = MOSEI_CLASSES[i % len(MOSEI_CLASSES)]
        plan = ClipPlan(index=i, clip_id=f"probe{i}", labels=[cls], split="probe", seed=seed, duration=2.0,
                        visual_cue=visual_cue, audio_cue=True, text_cue=True)
        rng = np.random.default_rng([seed, i])
        aplan = synth_audio.draw_audio_plan(rng, plan.duration, plan.labels, True)
        n = int(round(plan.duration * config.fps))
        speech = synth_audio.syllable_envelope(aplan, np.arange(n) / config.fps)
        vplan = draw_visual_plan(rng, plan, config.fps, config.size, speech)
        f = int(np.argmax(vplan.expression[:, 0])) if visual_cue else n // 2
        one = replace(vplan, times=vplan.times[f:f + 1], expression=vplan.expression[f:f + 1],
                      au_weights=vplan.au_weights[f:f + 1], poses=vplan.poses[f:f + 1])
        frames.append(render_frames(one, config.size, int(rng.integers(0, 2**31 - 1)))[0])
        labels.append(cls)
    detections = FaceDetector().detect(frames)
    crops, ys = [], []
    for frame, det, cls in zip(frames, detections, labels):
        if det is not None:
            crops.append(crop_region(frame, det.box).astype(np.float32).reshape(-1) / 255.0)
            ys.append(cls)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
    scores = cross_val_score(model, np.stack(crops), np.array(ys), cv=5)
    return {"samples": len(ys), "detected": f"{len(ys)}/{len(frames)}", "visual_cue": visual_cue,
            "cv5_accuracy": round(float(scores.mean()), 3), "chance": round(1 / len(MOSEI_CLASSES), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesm_core.data.synthetic.check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, required=True, help="a generated synthetic dataset")
    parser.add_argument("--n", type=int, default=36, help="clips for the detection check (stratified by class)")
    parser.add_argument("--probe-per-class", type=int, default=40, help="0 skips the face probe")
    parser.add_argument("--timing", type=int, default=24, help="clips for the CPU timing (0 skips it)")
    parser.add_argument("--seed", type=int, default=777, help="seed of the probe's renders (not a dataset seed)")
    args = parser.parse_args(argv)
    report: dict = {}
    if args.timing:
        report["timing"] = timing_report(args.timing, args.seed)
    report["detection"] = detection_report(args.src, args.n)
    if args.probe_per_class:
        report["face_probe"] = face_probe(args.probe_per_class, args.seed, visual_cue=True)
        report["face_probe_control_no_expression"] = face_probe(args.probe_per_class, args.seed, visual_cue=False)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
