"""The synthetic talking-face dataset: planning, rendering, writing, and the app's sample clips.

Layout written by :func:`generate` (read by the data pipeline's ``folder`` source)::

    SRC/labels.csv        id, video, transcript, split, anger, disgust, fear, happy, sad, surprise
    SRC/videos/<id>.mp4   H.264 (yuv420p) + AAC, 16 kHz mono, browser-playable
    SRC/cues/<id>.npz     ground-truth cue regions (see ``save_cues``)
    SRC/dataset.json      seed, n_clips, generator version, classes, render settings, counts

Every random choice of clip ``i`` comes from ``numpy.random.default_rng([seed, i])`` (and the
plan from ``default_rng(seed)``), so a dataset is reproducible clip by clip, whatever the number
of worker processes.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mesm_core.config import MOSEI_CLASSES
from mesm_core.data.synthetic import audio as synth_audio
from mesm_core.data.synthetic import faces as synth_faces
from mesm_core.data.synthetic.text import make_transcript
from mesm_core.io import atomic_directory

GENERATOR_VERSION = 2
_GENERATOR = "mesm_core.data.synthetic"  # dataset.json["generator"]: who made a folder
DEFAULT_FPS = 12
DEFAULT_SIZE = 160
SPLIT_FRACTIONS = (("train", 0.7), ("valid", 0.1), ("test", 0.2))

# An expression counts as "showing" (its region enters the cue mask) from this intensity up.
MASK_INTENSITY = 0.35

# Classes that commonly co-occur in MOSEI-style multi-label data (second label of a two-label clip).
CO_OCCURRING: dict[str, tuple[str, ...]] = {
    "anger": ("disgust", "sad", "surprise"),
    "disgust": ("anger", "sad"),
    "fear": ("surprise", "sad"),
    "happy": ("surprise",),
    "sad": ("anger", "fear"),
    "surprise": ("happy", "fear"),
}


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator (defaults = the shipped dataset)."""

    fps: int = DEFAULT_FPS
    size: int = DEFAULT_SIZE
    duration_range: tuple[float, float] = (2.0, 4.0)
    p_two_labels: float = 0.15
    # Probability that each modality carries its cue (independent; at least one always does).
    p_visual: float = 0.8
    p_audio: float = 0.75
    p_text: float = 0.55
    crf: int = 20
    id_prefix: str = "syn"


@dataclass
class ClipPlan:
    """The label-level decisions for one clip (everything else is drawn while rendering)."""

    index: int
    clip_id: str
    labels: list[str]
    split: str
    seed: int
    duration: float
    visual_cue: bool
    audio_cue: bool
    text_cue: bool


def plan_dataset(n_clips: int, seed: int = 0, config: SynthConfig = SynthConfig()) -> list[ClipPlan]:
    """Labels, splits, durations and modality-cue flags for ``n_clips`` clips (cheap, no rendering).

    Primary classes are balanced (round-robin over a seeded permutation); ``p_two_labels`` of the
    clips get a co-occurring second class; splits are 70/10/20, stratified by the primary class.
    """
    if n_clips < 1:
        raise ValueError(f"n_clips must be ≥ 1, got {n_clips}")
    rng = np.random.default_rng(seed)
    classes = list(MOSEI_CLASSES)
    primary = np.array([i % len(classes) for i in range(n_clips)])
    primary = primary[rng.permutation(n_clips)]
    splits = [""] * n_clips
    for c in range(len(classes)):
        members = np.flatnonzero(primary == c)
        n_train = int(round(len(members) * SPLIT_FRACTIONS[0][1]))
        n_valid = int(round(len(members) * SPLIT_FRACTIONS[1][1]))
        for rank, index in enumerate(members):
            splits[index] = "train" if rank < n_train else "valid" if rank < n_train + n_valid else "test"
    fps = config.fps
    plans = []
    for i in range(n_clips):
        labels = [classes[primary[i]]]
        if rng.random() < config.p_two_labels:
            options = CO_OCCURRING[labels[0]]
            labels.append(options[int(rng.integers(len(options)))])
        n_frames = int(round(rng.uniform(*config.duration_range) * fps))
        flags = rng.random(3) < np.array([config.p_visual, config.p_audio, config.p_text])
        if not flags.any():
            flags[int(rng.integers(3))] = True
        plans.append(ClipPlan(
            index=i, clip_id=f"{config.id_prefix}{i:05d}", labels=labels, split=splits[i], seed=seed,
            duration=n_frames / fps, visual_cue=bool(flags[0]), audio_cue=bool(flags[1]), text_cue=bool(flags[2]),
        ))
    return plans


# --- visual timeline -----------------------------------------------------------------------------

def _envelope(times: np.ndarray, onset: float, rise: float, offset: float, fall: float) -> np.ndarray:
    up = np.clip((times - onset) / rise, 0.0, 1.0)
    down = np.clip((offset - times) / fall, 0.0, 1.0)
    return np.sin(0.5 * np.pi * np.minimum(up, down)) ** 2


@dataclass
class VisualPlan:
    """Per-frame drivers of one clip's video."""

    times: np.ndarray                 # (n,) seconds
    expression: np.ndarray            # (n, k) intensity of each label's prototype
    au_weights: list[dict[str, float]]  # per frame: emotion or AU → intensity (see render_expression)
    poses: np.ndarray                 # (n, 2, 3) canonical → frame
    background: np.ndarray            # (S, S, 3) float32
    keep_photo: float
    gains: np.ndarray                 # (3,) colour gains
    offset: float
    contrast: float
    light: np.ndarray                 # (S, S) additive lighting ramp
    noise_sigma: float
    distractors: list[str] = field(default_factory=list)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    import cv2

    c0, c1 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size] / size
    ramp = np.clip(0.5 + (xs - 0.5) * np.cos(angle) + (ys - 0.5) * np.sin(angle), 0, 1)
    bg = (c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]).astype(np.float32)
    for _ in range(int(rng.integers(2, 7))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(size // 16, size // 4))
        if rng.random() < 0.5:
            cv2.circle(bg, (x, y), r, colour, -1)
        else:
            cv2.rectangle(bg, (x - r, y - r // 2), (x + r, y + r // 2), colour, -1)
    return cv2.GaussianBlur(bg, (0, 0), size / 80)


def draw_visual_plan(rng: np.random.Generator, plan: ClipPlan, fps: int, size: int,
                     speech: np.ndarray) -> VisualPlan:
    """Expression timeline, distractors (speech, blinks, a weak foreign AU), pose and colour.

    ``speech``: (n,) syllable envelope at the frame times (drives the talking mouth).
    """
    n = int(round(plan.duration * fps))
    times = np.arange(n) / fps
    k = len(plan.labels)
    expression = np.zeros((n, k))
    if plan.visual_cue:
        for j in range(k):
            lo, hi = plan.duration * j / k, plan.duration * (j + 1) / k
            onset = lo + rng.uniform(0.0, 0.25) * (hi - lo)
            rise = rng.uniform(0.2, 0.45)
            offset = hi - rng.uniform(0.0, 0.1) * (hi - lo) if j < k - 1 else plan.duration + 1.0
            peak = rng.uniform(0.75, 1.1)
            expression[:, j] = peak * _envelope(times, onset, rise, offset, 0.3)
    talk_amp = rng.uniform(0.4, 0.9)
    blinks = rng.uniform(0, plan.duration, int(rng.integers(0, 3)))
    blink = np.zeros(n)
    for b in blinks:
        blink = np.maximum(blink, np.clip(1.0 - np.abs(times - b) / 0.12, 0.0, 1.0))
    # A weak AU from outside the clip's prototypes (non-cue change in a face region).
    own = {au for label in plan.labels for au in synth_faces.EMOTION_AUS[label]}
    distractors: list[str] = []
    foreign = np.zeros(n)
    if rng.random() < 0.35:
        options = [au for au in synth_faces.DISTRACTOR_AUS if au not in own]
        distractors.append(options[int(rng.integers(len(options)))])
        start = rng.uniform(0, max(plan.duration - 0.8, 0.01))
        foreign = rng.uniform(0.2, 0.35) * _envelope(times, start, 0.2, start + rng.uniform(0.8, 1.5), 0.2)
    au_weights = []
    for f in range(n):
        weights: dict[str, float] = {}
        for j, label in enumerate(plan.labels):
            weights[label] = float(expression[f, j])  # the whole prototype (synth_faces.emotion_fields)
        weights["TALK"] = talk_amp * float(speech[f])
        weights["AU45"] = float(blink[f])
        for au in distractors:
            weights[au] = weights.get(au, 0.0) + float(foreign[f])
        au_weights.append(weights)
    # Pose: a random base placement plus a slow drift.
    iod = rng.uniform(0.16, 0.21) * size
    base_scale = iod / synth_faces.canonical_frame().iod
    base_angle = rng.uniform(-8.0, 8.0)
    base_centre = np.array([size * (0.5 + rng.uniform(-0.06, 0.06)), size * (0.53 + rng.uniform(-0.05, 0.05))])
    freq = rng.uniform(0.1, 0.4, 4)
    phase = rng.uniform(0, 2 * np.pi, 4)
    poses = np.zeros((n, 2, 3))
    for f, t in enumerate(times):
        wave = np.sin(2 * np.pi * freq * t + phase)
        angle = base_angle + 3.0 * wave[0]
        scale = base_scale * (1.0 + 0.03 * wave[1])
        centre = base_centre + 0.02 * size * wave[2:4]
        poses[f] = synth_faces.pose_matrix(scale, angle, (float(centre[0]), float(centre[1])))
    light_angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size] / size - 0.5
    light = (rng.uniform(0, 30) * (xs * np.cos(light_angle) + ys * np.sin(light_angle))).astype(np.float32)
    return VisualPlan(
        times=times, expression=expression, au_weights=au_weights, poses=poses,
        background=_background(rng, size), keep_photo=float(rng.uniform(0.0, 1.0)),
        gains=rng.uniform(0.85, 1.15, 3).astype(np.float32), offset=float(rng.uniform(-18, 18)),
        contrast=float(rng.uniform(0.85, 1.15)), light=light, noise_sigma=float(rng.uniform(1.0, 4.0)),
        distractors=distractors,
    )


def render_frames(vplan: VisualPlan, size: int, noise_seed: int) -> np.ndarray:
    """uint8 (n, S, S, 3) RGB frames."""
    rng = np.random.default_rng(noise_seed)
    out = np.empty((len(vplan.times), size, size, 3), dtype=np.uint8)
    for f in range(len(vplan.times)):
        face = synth_faces.render_expression(vplan.au_weights[f])
        frame = synth_faces.compose_frame(face, vplan.poses[f], vplan.background, vplan.keep_photo)
        frame = (frame - 128.0) * vplan.contrast + 128.0 + vplan.offset
        frame = frame * vplan.gains + vplan.light[..., None]
        frame += rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(vplan.noise_sigma)
        out[f] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


# --- writing ----------------------------------------------------------------------------------

def write_mp4(path: Path, frames: np.ndarray, fps: int, audio: np.ndarray, sample_rate: int, crf: int = 20) -> None:
    """H.264 (libx264, yuv420p, faststart) + AAC mono MP4 with PyAV. frames uint8 (n, H, W, 3)."""
    import av

    path = Path(path)
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = int(frames.shape[2]), int(frames.shape[1])
        video.pix_fmt = "yuv420p"
        # One encoder thread (the generator parallelises over clips) and no macroblock-tree rate
        # control: with mbtree, x264's output changed once torch was loaded in the process (float
        # paths), so the same seed gave different frames in a pytest run than in the CLI.
        video.options = {"crf": str(crf), "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}
        sound = container.add_stream("aac", rate=sample_rate, layout="mono")
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        step = 1024  # the AAC frame size
        for start in range(0, len(audio), step):
            chunk = np.ascontiguousarray(audio[start:start + step], dtype=np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in sound.encode(frame):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)


def save_cues(path: Path, plan: ClipPlan, vplan: VisualPlan, aplan: synth_audio.AudioPlan, fps: int,
              size: int) -> None:
    """``cues/<id>.npz``: the cue regions, compactly.

    face_masks   uint8 (k, ceil(C·C/8)) packed bool canonical masks, one per label (C = CANON_SIZE)
    face_poses   float32 (n, 2, 3)  canonical → frame affine per video frame
    face_active  bool (n, k)        label j's expression shows in frame f (intensity ≥ MASK_INTENSITY)
    face_intensity float32 (n, k)
    mel_boxes    float32 (m, 4)     audio cue boxes (t0, t1, f_lo, f_hi) in s and Hz
    mel_box_labels  str (m,)
    labels       str (k,), fps, frame_size (H, W), canon_size, modality flags, sample_rate
    """
    masks = synth_faces.emotion_masks()
    packed = np.stack([np.packbits(masks[label].reshape(-1)) for label in plan.labels])
    np.savez_compressed(
        path,
        face_masks=packed,
        face_poses=vplan.poses.astype(np.float32),
        face_active=vplan.expression >= MASK_INTENSITY,
        face_intensity=vplan.expression.astype(np.float32),
        mel_boxes=synth_audio.cue_boxes(aplan),
        mel_box_labels=np.array([c[0] for c in aplan.cues], dtype="U16"),
        labels=np.array(plan.labels, dtype="U16"),
        fps=np.int32(fps),
        frame_size=np.array([size, size], np.int32),
        canon_size=np.int32(synth_faces.CANON_SIZE),
        sample_rate=np.int32(synth_audio.SAMPLE_RATE),
        visual_cue=np.bool_(plan.visual_cue),
        audio_cue=np.bool_(plan.audio_cue),
        text_cue=np.bool_(plan.text_cue),
        version=np.int32(GENERATOR_VERSION),
    )


@dataclass
class RenderedClip:
    clip_id: str
    transcript: str
    frames: np.ndarray
    audio: np.ndarray
    vplan: VisualPlan
    aplan: synth_audio.AudioPlan


def render_clip(plan: ClipPlan, config: SynthConfig = SynthConfig()) -> RenderedClip:
    """Draw and render one clip in memory (frames, waveform, transcript, and the drivers)."""
    rng = np.random.default_rng([plan.seed, plan.index])
    aplan = synth_audio.draw_audio_plan(rng, plan.duration, plan.labels, plan.audio_cue)
    waveform = synth_audio.synthesize(aplan)
    transcript, _ = make_transcript(rng, plan.labels, plan.text_cue)
    n = int(round(plan.duration * config.fps))
    speech = synth_audio.syllable_envelope(aplan, np.arange(n) / config.fps)
    vplan = draw_visual_plan(rng, plan, config.fps, config.size, speech)
    frames = render_frames(vplan, config.size, int(rng.integers(0, 2**31 - 1)))
    return RenderedClip(plan.clip_id, transcript, frames, waveform, vplan, aplan)


def _write_clip(args: tuple[ClipPlan, SynthConfig, str]) -> dict:
    plan, config, root = args
    clip = render_clip(plan, config)
    root_path = Path(root)
    write_mp4(root_path / "videos" / f"{plan.clip_id}.mp4", clip.frames, config.fps, clip.audio,
              synth_audio.SAMPLE_RATE, config.crf)
    save_cues(root_path / "cues" / f"{plan.clip_id}.npz", plan, clip.vplan, clip.aplan, config.fps, config.size)
    return {"id": plan.clip_id, "transcript": clip.transcript}


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from the process pool


def labels_csv(plans: list[ClipPlan], transcripts: dict[str, str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "video", "transcript", "split", *MOSEI_CLASSES])
    for plan in plans:
        writer.writerow([plan.clip_id, f"videos/{plan.clip_id}.mp4", transcripts[plan.clip_id], plan.split,
                         *(int(c in plan.labels) for c in MOSEI_CLASSES)])
    return buffer.getvalue()


def dataset_params(n_clips: int, seed: int, config: SynthConfig) -> dict:
    """What identifies a generated dataset (compared by :func:`ensure_dataset`)."""
    return {
        "generator": _GENERATOR,
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "n_clips": int(n_clips),
        "classes": list(MOSEI_CLASSES),
        "config": json.loads(json.dumps(asdict(config))),
    }


def _summary(plans: list[ClipPlan]) -> dict:
    counts = {c: sum(c in p.labels for p in plans) for c in MOSEI_CLASSES}
    splits = {s: sum(p.split == s for p in plans) for s, _ in SPLIT_FRACTIONS}
    return {
        "class_counts": counts,
        "split_counts": splits,
        "two_label_clips": sum(len(p.labels) == 2 for p in plans),
        "modality_cue_clips": {
            "visual": sum(p.visual_cue for p in plans),
            "audio": sum(p.audio_cue for p in plans),
            "text": sum(p.text_cue for p in plans),
        },
        "sample_rate": synth_audio.SAMPLE_RATE,
        "audio_cue_bands_hz": {k: list(v) for k, v in synth_audio.CUE_BANDS.items()},
        "emfacs_prototypes": {k: list(v) for k, v in synth_faces.EMFACS_PROTOTYPES.items()},
        "license": "faces: warps of the public-domain NASA astronaut photo (skimage.data.astronaut); "
                   "audio and text: generated",
    }


def _progress(iterable, total: int, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc="synthetic clips", unit="clip")


def generate(out_dir: str | Path, n_clips: int = 1200, seed: int = 0, workers: int = 2, fps: int = DEFAULT_FPS,
             size: int = DEFAULT_SIZE, *, config: SynthConfig | None = None, overwrite: bool = False,
             progress: bool = False) -> Path:
    """Generate the dataset into ``out_dir`` atomically (a temp dir beside it, renamed at the end).

    Returns ``out_dir``. Raises FileExistsError when ``out_dir`` exists and ``overwrite`` is False.
    """
    out = Path(out_dir)
    if size % 2 or size < 64:
        raise ValueError(f"size must be an even number ≥ 64 (H.264 4:2:0 and a detectable face), got {size}")
    config = config or SynthConfig(fps=int(fps), size=int(size))
    if out.exists() and not overwrite and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite=True to replace it)")
    plans = plan_dataset(n_clips, seed, config)
    with atomic_directory(out) as tmp:
        (tmp / "videos").mkdir()
        (tmp / "cues").mkdir()
        jobs = [(plan, config, str(tmp)) for plan in plans]
        if workers <= 1:
            _worker_init()
            rows = [_write_clip(job) for job in _progress(jobs, len(jobs), progress)]
        else:
            # "spawn", not fork: a forked child of a process that already runs torch/OpenCV thread
            # pools can deadlock (seen under pytest after MTCNN had run).
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_worker_init) as pool:
                rows = list(_progress(pool.map(_write_clip, jobs, chunksize=4), len(jobs), progress))
        transcripts = {row["id"]: row["transcript"] for row in rows}
        (tmp / "labels.csv").write_text(labels_csv(plans, transcripts), encoding="utf-8")
        meta = dataset_params(n_clips, seed, config) | _summary(plans)
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


def read_dataset_json(source_dir: str | Path) -> dict | None:
    path = Path(source_dir) / "dataset.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _recorded_params(found: dict) -> dict:
    """The parameters a user can ask for, as a dataset.json records them."""
    config = found.get("config") or {}
    return {"n_clips": found.get("n_clips"), "seed": found.get("seed"), "fps": config.get("fps"),
            "size": config.get("size")}


def ensure_dataset(source_dir: str | Path, n_clips: int | None = None, seed: int | None = None, workers: int = 2,
                   fps: int | None = None, size: int | None = None, progress: bool = False) -> Path:
    """Return ``source_dir``, generating the dataset first unless a matching one is already there.

    A parameter left at None means "whatever the dataset already there has": a folder made with
    ``--n-clips 400`` is used as it is. Only a parameter given explicitly and different from the
    existing dataset's (or a newer generator version) regenerates it, and a warning says what
    changes. With no dataset there, None means the defaults (1,200 clips, seed 0, ``DEFAULT_FPS``,
    ``DEFAULT_SIZE``). ``dataset.json`` is written last, inside the atomic rename, so its presence
    means the dataset is complete. An existing directory that is not a dataset of this generator is
    never deleted: it raises ``FileExistsError``.
    """
    source = Path(source_dir)
    asked = {"n_clips": n_clips, "seed": seed, "fps": fps, "size": size}
    found = read_dataset_json(source)
    ours = found is not None and found.get("generator") == _GENERATOR
    if ours:
        have = _recorded_params(found)
        changes = {k: (have[k], v) for k, v in asked.items() if v is not None and v != have[k]}
        if found.get("version") != GENERATOR_VERSION:
            changes["generator version"] = (found.get("version"), GENERATOR_VERSION)
        if not changes:
            return source
        warnings.warn(f"{source}: replacing the synthetic dataset there, because other parameters were asked for: "
                      + ", ".join(f"{k} {old} → {new}" for k, (old, new) in changes.items()), stacklevel=2)
    elif source.exists() and any(source.iterdir()):
        raise FileExistsError(f"{source} exists but is not a synthetic dataset (no matching dataset.json); "
                              "choose another directory or remove it")
    n_clips = 1200 if n_clips is None else int(n_clips)
    seed = 0 if seed is None else int(seed)
    config = SynthConfig(fps=int(DEFAULT_FPS if fps is None else fps), size=int(DEFAULT_SIZE if size is None else size))
    wanted = dataset_params(n_clips, seed, config)
    try:
        return generate(source, n_clips, seed, workers, config=config, overwrite=True, progress=progress)
    except OSError:
        # Another process may have finished the same dataset first.
        found = read_dataset_json(source)
        if found is not None and all(found.get(k) == v for k, v in wanted.items()):
            return source
        raise


# --- sample clips for the app --------------------------------------------------------------------

@dataclass(frozen=True)
class SampleSpec:
    name: str
    labels: tuple[str, ...]
    duration: float


SAMPLE_SPECS: tuple[SampleSpec, ...] = (
    SampleSpec("happy", ("happy",), 4.0),
    SampleSpec("surprise", ("surprise",), 4.0),
    SampleSpec("anger", ("anger",), 4.0),
    SampleSpec("sad_10s", ("sad",), 10.0),
    SampleSpec("fear", ("fear",), 4.0),
    SampleSpec("disgust", ("disgust",), 4.0),
)
SAMPLE_SEED = 90210  # never used for training datasets (their default seed is 0)
SAMPLE_PREFIX = "demo-"


def make_samples(out_dir: str | Path, seed: int = SAMPLE_SEED, size: int = DEFAULT_SIZE, crf: int = 26,
                 specs: tuple[SampleSpec, ...] = SAMPLE_SPECS, cues_only: bool = False) -> list[dict]:
    """Write the app's sample clips: ``<name>.mp4`` + ``<name>.txt`` + ``cues/<id>.npz`` + ``samples.json``
    + README.md.

    Every modality carries its cue in these clips (they demonstrate the model, not its failure cases).
    The cue files (a few KB each) let the studio show the true cue regions beside the attention;
    ``samples.json`` names each clip's cue file and the SHA-1 of its video, so an uploaded copy of a
    sample is recognised by its content. ``cues_only`` keeps the videos and transcripts already in
    ``out_dir`` and writes only the cue files and ``samples.json`` (a newer encoder may not reproduce
    the videos byte for byte; the cues come from the plan, not from the encoded bytes).
    """
    from mesm_core.io import file_sha1

    out = Path(out_dir)
    (out / "cues").mkdir(parents=True, exist_ok=True)
    config = SynthConfig(size=size, crf=crf)
    entries = []
    for index, spec in enumerate(specs):
        n_frames = int(round(spec.duration * config.fps))
        plan = ClipPlan(index=index, clip_id=f"{SAMPLE_PREFIX}{spec.name}", labels=list(spec.labels), split="demo",
                        seed=seed, duration=n_frames / config.fps, visual_cue=True, audio_cue=True, text_cue=True)
        clip = render_clip(plan, config)
        video = out / f"{spec.name}.mp4"
        if cues_only:
            if not video.is_file():
                raise FileNotFoundError(f"{video}: cues_only needs the sample videos already in {out}")
        else:
            write_mp4(video, clip.frames, config.fps, clip.audio, synth_audio.SAMPLE_RATE, crf)
            (out / f"{spec.name}.txt").write_text(clip.transcript + "\n", encoding="utf-8")
        cue_file = Path("cues") / f"{plan.clip_id}.npz"
        save_cues(out / cue_file, plan, clip.vplan, clip.aplan, config.fps, config.size)
        entries.append({
            "file": video.name, "transcript_file": f"{spec.name}.txt", "id": plan.clip_id,
            "labels": list(spec.labels), "duration_s": round(plan.duration, 3), "transcript": clip.transcript,
            "bytes": video.stat().st_size, "sha1": file_sha1(video), "cue_file": cue_file.as_posix(),
        })
    (out / "samples.json").write_text(json.dumps({"seed": seed, "generator_version": GENERATOR_VERSION,
                                                  "classes": list(MOSEI_CLASSES), "samples": entries},
                                                 indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_samples_readme(entries, seed), encoding="utf-8")
    return entries


def _samples_readme(entries: list[dict], seed: int) -> str:
    rows = "\n".join(
        f"| `{e['file']}` | {', '.join(e['labels'])} | {e['duration_s']:g} s | {e['bytes'] // 1024} KB | {e['transcript']} |"
        for e in entries)
    return f"""# Sample clips

Synthetic talking-face clips for the app's examples and its latency benchmark (`sad_10s.mp4` is the
10-second clip). Each `.mp4` is H.264 (yuv420p) + AAC (16 kHz mono), 160×160, 12 fps; the
transcript is the sidecar `.txt` with the same stem. `samples.json` lists the ground-truth labels, the
SHA-1 of each video and its cue file: `cues/<id>.npz` holds the true cue regions (face masks per frame,
time–frequency boxes of the audio cue; docs/synthetic.md), which the studio draws beside the attention.

| file | ground truth | length | size | transcript |
|---|---|---|---|---|
{rows}

Regenerate (byte-identical labels and transcripts; decoded frames identical):

```
.venv/bin/python -m mesm_core.data.synthetic --samples assets/samples              # everything
.venv/bin/python -m mesm_core.data.synthetic --samples assets/samples --cues-only  # keep the videos
```

These come from the sample seed {seed} with ids `demo-*`, which no training dataset uses (training
datasets use ids `syn*` and, by default, seed 0), so the demo never shows a training clip.
In every sample all three modalities carry their cue. See `docs/synthetic.md` for what the cues are.

## Provenance and licence

- Face: local warps of the NASA portrait of astronaut Eileen Collins, a public-domain work of the
  U.S. government, as shipped by scikit-image (`skimage.data.astronaut()`, scikit-image is BSD-3).
- Audio: synthesised by `mesm_core/data/synthetic/audio.py` (harmonic carrier, band-limited noise).
- Transcripts: generated from templates in `mesm_core/data/synthetic/text.py`.
- The clips are released with this project under its MIT licence.
"""


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mesm_core.data.synthetic",
                                     description="Generate the synthetic talking-face emotion dataset.")
    parser.add_argument("--out", type=Path, help="dataset directory to create")
    parser.add_argument("--n-clips", type=int, default=None, help="clips to generate (default 1200; with "
                        "--ensure, an existing dataset's)")
    parser.add_argument("--seed", type=int, default=None, help="default 0 (with --ensure, an existing dataset's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fps", type=int, default=None, help=f"default {DEFAULT_FPS} (with --ensure, an existing "
                        "dataset's)")
    parser.add_argument("--size", type=int, default=None, help=f"default {DEFAULT_SIZE} (with --ensure, an "
                        "existing dataset's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    parser.add_argument("--ensure", action="store_true",
                        help="only generate when --out has no dataset.json with the same parameters")
    parser.add_argument("--samples", type=Path, help="write the app's sample clips to this directory instead")
    parser.add_argument("--cues-only", action="store_true",
                        help="with --samples: keep the videos there, write only the cue files and samples.json")
    args = parser.parse_args(argv)
    if args.samples is None and args.out is None:
        parser.error("give --out DIR (a dataset) or --samples DIR (the app's sample clips)")
    if args.samples is not None:
        for entry in make_samples(args.samples, cues_only=args.cues_only):
            print(f"{args.samples / entry['file']}  {entry['labels']}  {entry['bytes'] // 1024} KB  {entry['transcript']}")
        return 0
    if args.ensure:
        path = ensure_dataset(args.out, args.n_clips, args.seed, args.workers, args.fps, args.size, progress=True)
    else:
        path = generate(args.out, 1200 if args.n_clips is None else args.n_clips, args.seed or 0, args.workers,
                        args.fps or DEFAULT_FPS, args.size or DEFAULT_SIZE, overwrite=args.overwrite,
                        progress=sys.stderr.isatty())
    made = read_dataset_json(path) or {}
    print(f"synthetic dataset: {path} ({made.get('n_clips')} clips, seed {made.get('seed')})")
    return 0
