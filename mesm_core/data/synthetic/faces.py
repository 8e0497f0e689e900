"""Expression rendering for the synthetic dataset: FACS action units as local warps of one photo.

The face is the public-domain NASA astronaut portrait shipped with scikit-image
(``skimage.data.astronaut()``). Everything happens in a *canonical* image (a crop of that photo):

1. a one-off "neutralising" edit closes the photo's toothy smile, so that no expression is
   baked into every clip;
2. each action unit (AU) is a precomputed field on the canonical grid: a smooth displacement
   (forward motion, applied as a backward remap) plus an additive shading (wrinkles, the dark
   mouth opening, teeth), both confined to the AU's FACS region, and a boolean support mask;
3. an emotion is a weighted sum of AU fields (the EMFACS prototypes, see ``EMOTION_AUS``), so at
   any instant the rendered face is ``remap(canonical, Σ a_k·flow_k) + Σ a_k·shade_k``;
4. the result is placed in the video frame by a per-frame similarity transform (pose) over a
   random background.

Regions are specified in the five-point face frame of docs/facs.md ("Face frame"):
a face coordinate ``(s, t)`` maps to ``c + s·d·u + t·h·v`` (eyes at ``t = 0, s = ±0.5``, mouth line
at ``t = 1``). Because every AU field is zero outside its region, the ground-truth cue mask of a
frame is simply the union of the supports of the AUs that are active in it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from mesm_core.geometry import FaceFrame

# MTCNN on skimage.data.astronaut() (facenet-pytorch 2.5.3, default thresholds), measured once and
# frozen here so generation never needs torch. ``tests/test_synthetic.py`` re-measures them.
ASTRONAUT_BOX = (181.051, 62.156, 267.747, 172.050)
ASTRONAUT_PROB = 0.99999774
ASTRONAUT_LANDMARKS = np.array(
    [
        [205.011, 101.727],  # eye, image-left
        [246.763, 103.714],  # eye, image-right
        [224.671, 128.965],  # nose tip
        [201.716, 139.246],  # mouth corner, image-left
        [245.265, 141.857],  # mouth corner, image-right
    ],
    dtype=np.float64,
)

# The canonical image: this crop of the 512×512 photo (x0, y0, size), in photo pixels.
CANON_X0, CANON_Y0, CANON_SIZE = 80, 0, 288


def canonical_landmarks() -> np.ndarray:
    """(5, 2) the astronaut's MTCNN points in canonical-image pixels."""
    return ASTRONAUT_LANDMARKS - np.array([CANON_X0, CANON_Y0], dtype=np.float64)


def canonical_frame() -> FaceFrame:
    return FaceFrame.from_landmarks(canonical_landmarks())


# --- action units -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Blob:
    """One smooth component of an AU, a Gaussian bump in face coordinates.

    ``s0, t0``: centre; ``rs, rt``: radii (s in IOD units, t in eye→mouth units).
    ``bilateral``: mirrored to ``-s0`` (with lateral motion mirrored too).
    kind:
      "shift"   forward displacement (ds·d along u, dt·h along v) times the bump;
      "scale"   local magnification about the centre by (1+ds, 1+dt) at the peak;
      "shade"   additive RGB ``rgb`` times the bump;
      "hlines"/"vlines"  additive ``rgb`` times the bump times a stripe pattern of ``period``
                (t-units for hlines, s-units for vlines): wrinkles and furrows.
    """

    kind: str
    s0: float
    t0: float
    rs: float
    rt: float
    ds: float = 0.0
    dt: float = 0.0
    rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)
    period: float = 0.1
    bilateral: bool = False


# Mouth corners sit at s = ±_MOUTH_S, t = _MOUTH_T in the astronaut's own face frame (t = 1 by
# construction; s is measured below).
def _mouth_s() -> float:
    frame = canonical_frame()
    s, _ = frame.to_face(canonical_landmarks()[4])
    return float(s)


_MS = round(_mouth_s(), 3)   # ≈ 0.52
_EYE_S = 0.5

DARK_MOUTH = (-120.0, -125.0, -115.0)
WRINKLE = (-38.0, -42.0, -40.0)

# AU → components. Amplitudes are deliberately exaggerated: the evidence must survive a 48×48
# crop in which the whole face is ~48 px wide (a brow moves by ~2–3 crop pixels).
AU_COMPONENTS: dict[str, tuple[Blob, ...]] = {
    # AU1 inner brow raiser (+ central forehead wrinkles)
    "AU1": (
        Blob("shift", 0.2, -0.36, 0.2, 0.2, dt=-0.22, bilateral=True),
        Blob("hlines", 0.0, -0.85, 0.35, 0.16, rgb=(-26.0, -28.0, -26.0), period=0.13),
    ),
    # AU2 outer brow raiser (+ lateral forehead wrinkles)
    "AU2": (
        Blob("shift", 0.62, -0.32, 0.22, 0.2, dt=-0.26, bilateral=True),
        Blob("hlines", 0.55, -0.85, 0.25, 0.16, rgb=(-22.0, -24.0, -22.0), period=0.13, bilateral=True),
    ),
    # AU4 brow lowerer: brows down and together, vertical glabella furrows
    "AU4": (
        Blob("shift", 0.3, -0.34, 0.28, 0.2, ds=-0.1, dt=0.16, bilateral=True),
        Blob("vlines", 0.0, -0.25, 0.12, 0.16, rgb=(-48.0, -50.0, -48.0), period=0.09),
        Blob("shade", 0.25, -0.28, 0.16, 0.1, rgb=(-22.0, -24.0, -22.0), bilateral=True),
    ),
    # AU5 upper lid raiser: eye opened wider, more sclera
    "AU5": (
        Blob("scale", _EYE_S, -0.02, 0.22, 0.16, ds=0.08, dt=0.38, bilateral=True),
        Blob("shade", _EYE_S, -0.02, 0.12, 0.06, rgb=(22.0, 22.0, 24.0), bilateral=True),
    ),
    # AU6 cheek raiser: cheeks up, lower lid pushed up, crow's feet
    "AU6": (
        Blob("shift", 0.62, 0.45, 0.3, 0.22, dt=-0.14, bilateral=True),
        Blob("shift", _EYE_S, 0.14, 0.2, 0.08, dt=-0.07, bilateral=True),
        Blob("hlines", 0.98, 0.05, 0.1, 0.16, rgb=WRINKLE, period=0.09, bilateral=True),
    ),
    # AU7 lid tightener: narrowed eye aperture, lower lid raised
    "AU7": (
        Blob("scale", _EYE_S, 0.02, 0.22, 0.13, dt=-0.45, bilateral=True),
        Blob("shade", _EYE_S, 0.1, 0.14, 0.05, rgb=(-14.0, -16.0, -14.0), bilateral=True),
    ),
    # AU9 nose wrinkler: nose skin pulled up, horizontal wrinkles over the bridge, deep folds
    "AU9": (
        Blob("shift", 0.0, 0.38, 0.28, 0.22, dt=-0.12),
        Blob("hlines", 0.0, 0.2, 0.16, 0.14, rgb=(-50.0, -52.0, -50.0), period=0.07),
        Blob("shade", 0.32, 0.66, 0.07, 0.18, rgb=(-40.0, -42.0, -40.0), bilateral=True),
    ),
    # AU10 upper lip raiser
    "AU10": (
        Blob("shift", 0.0, 0.9, 0.35, 0.12, dt=-0.1),
    ),
    # AU12 lip corner puller: corners up and out
    "AU12": (
        Blob("shift", _MS, 1.0, 0.22, 0.22, ds=0.1, dt=-0.22, bilateral=True),
        Blob("shade", _MS + 0.12, 0.88, 0.08, 0.14, rgb=(-22.0, -24.0, -22.0), bilateral=True),
    ),
    # AU15 lip corner depressor: corners pulled down
    "AU15": (
        Blob("shift", _MS, 1.02, 0.2, 0.22, ds=-0.03, dt=0.26, bilateral=True),
        Blob("shade", _MS, 1.22, 0.1, 0.1, rgb=(-26.0, -28.0, -26.0), bilateral=True),
    ),
    # AU16 lower lip depressor: lower lip down, a dark gap above it
    "AU16": (
        Blob("shift", 0.0, 1.22, 0.32, 0.16, dt=0.16),
        Blob("shade", 0.0, 1.08, 0.24, 0.05, rgb=(-70.0, -75.0, -70.0)),
    ),
    # AU20 lip stretcher: mouth stretched sideways
    "AU20": (
        Blob("shift", _MS, 1.02, 0.2, 0.16, ds=0.16, dt=0.04, bilateral=True),
        Blob("scale", 0.0, 1.0, 0.45, 0.14, ds=0.25, dt=-0.15),
    ),
    # AU23 lip tightener: lips narrowed and thinned, pressed line
    "AU23": (
        Blob("scale", 0.0, 1.0, 0.5, 0.16, ds=-0.22, dt=-0.5),
        Blob("shade", 0.0, 1.0, 0.34, 0.04, rgb=(-40.0, -48.0, -44.0)),
    ),
    # AU25 lips part (teeth showing, used in the happy prototype)
    "AU25": (
        Blob("shade", 0.0, 1.02, 0.28, 0.04, rgb=(95.0, 92.0, 88.0)),
    ),
    # AU26 jaw drop: the lower face moves down, a dark mouth opening appears
    "AU26": (
        Blob("shift", 0.0, 1.45, 0.7, 0.42, dt=0.32),
        Blob("shade", 0.0, 1.13, 0.25, 0.1, rgb=DARK_MOUTH),
    ),
    # AU45 blink (distractor only)
    "AU45": (
        Blob("scale", _EYE_S, 0.0, 0.2, 0.12, dt=-0.9, bilateral=True),
    ),
    # Speech articulation (distractor only): a small, fast jaw/lip movement
    "TALK": (
        Blob("shift", 0.0, 1.4, 0.6, 0.4, dt=0.1),
        Blob("shade", 0.0, 1.05, 0.2, 0.04, rgb=(-45.0, -48.0, -45.0)),
    ),
}

# EMFACS prototypes (docs/facs.md, "EMFACS prototypes") → AU amplitudes, in MOSEI class order.
EMOTION_AUS: dict[str, dict[str, float]] = {
    "anger": {"AU4": 1.2, "AU5": 0.35, "AU7": 0.8, "AU23": 1.0},
    "disgust": {"AU9": 1.0, "AU10": 0.5, "AU15": 0.8, "AU16": 1.0},
    "fear": {"AU1": 1.0, "AU2": 0.7, "AU4": 0.6, "AU5": 1.0, "AU20": 1.0, "AU26": 0.5},
    "happy": {"AU6": 1.0, "AU12": 1.0, "AU25": 0.6},
    "sad": {"AU1": 1.0, "AU4": 0.6, "AU15": 1.0},
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU26": 1.0},
}

# The prototype AU lists as cited (for docs and the app); EMOTION_AUS adds AU10/AU25 variants.
EMFACS_PROTOTYPES: dict[str, tuple[int, ...]] = {
    "anger": (4, 5, 7, 23),
    "disgust": (9, 15, 16),
    "fear": (1, 2, 4, 5, 20, 26),
    "happy": (6, 12),
    "sad": (1, 4, 15),
    "surprise": (1, 2, 5, 26),
}

# AUs that may appear as low-intensity distractors (never part of the cue mask).
DISTRACTOR_AUS = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU9", "AU12", "AU15", "AU23")

# A weight above this marks the AU's support (its cue region).
MASK_LEVEL = 0.45


@dataclass
class AUField:
    """One AU on the canonical grid."""

    flow: np.ndarray    # float32 (H, W, 2) forward displacement in canonical pixels (x, y)
    shade: np.ndarray   # float32 (H, W, 3) additive RGB
    mask: np.ndarray    # bool    (H, W)    support (where this AU changes the image)


def _bump(s: np.ndarray, t: np.ndarray, blob: Blob, s0: float) -> np.ndarray:
    return np.exp(-(((s - s0) / blob.rs) ** 2) - ((t - blob.t0) / blob.rt) ** 2)


def _au_field(name: str, size: int = CANON_SIZE) -> AUField:
    frame = canonical_frame()
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    s, t = frame.to_face(np.stack([xs, ys], axis=-1))
    flow = np.zeros((size, size, 2))
    shade = np.zeros((size, size, 3))
    mask = np.zeros((size, size), dtype=bool)
    for blob in AU_COMPONENTS[name]:
        sides = (1.0, -1.0) if blob.bilateral else (1.0,)
        for side in sides:
            s0 = blob.s0 * side
            w = _bump(s, t, blob, s0)
            mask |= w > MASK_LEVEL
            if blob.kind == "shift":
                motion = blob.ds * side * frame.iod * frame.u + blob.dt * frame.height * frame.v
                flow += w[..., None] * motion
                # The content moves, so the region it moves into is part of the evidence too.
                ds_face = blob.ds * side
                w_dest = np.exp(-(((s - s0 - ds_face) / blob.rs) ** 2) - ((t - blob.t0 - blob.dt) / blob.rt) ** 2)
                mask |= w_dest > MASK_LEVEL
            elif blob.kind == "scale":
                rel_s = (s - s0) * frame.iod
                rel_t = (t - blob.t0) * frame.height
                motion = (blob.ds * rel_s)[..., None] * frame.u + (blob.dt * rel_t)[..., None] * frame.v
                flow += w[..., None] * motion
            elif blob.kind == "shade":
                shade += w[..., None] * np.asarray(blob.rgb)
            elif blob.kind in ("hlines", "vlines"):
                coord = t if blob.kind == "hlines" else s
                stripes = np.cos(2 * np.pi * coord / blob.period) ** 8
                shade += (w * stripes)[..., None] * np.asarray(blob.rgb)
            else:
                raise ValueError(f"unknown blob kind {blob.kind!r} in {name}")
    return AUField(flow=flow.astype(np.float32), shade=shade.astype(np.float32), mask=mask)


@functools.lru_cache(maxsize=None)
def au_fields() -> dict[str, AUField]:
    """All AU fields on the canonical grid (computed once per process, ~10 MB)."""
    return {name: _au_field(name) for name in AU_COMPONENTS}


@functools.lru_cache(maxsize=None)
def emotion_masks() -> dict[str, np.ndarray]:
    """Class → bool (H, W) canonical cue mask (union of its prototype AUs' supports)."""
    fields = au_fields()
    out = {}
    for emotion, aus in EMOTION_AUS.items():
        mask = np.zeros((CANON_SIZE, CANON_SIZE), dtype=bool)
        for au in aus:
            mask |= fields[au].mask
        out[emotion] = mask
    return out


# --- the canonical (neutralised) photo ----------------------------------------------------------

@functools.lru_cache(maxsize=None)
def canonical_image() -> np.ndarray:
    """float32 (H, W, 3) RGB 0..255: the astronaut crop with the smile neutralised.

    The photo shows a broad toothy smile (AU6+12+25). Left alone, every clip would carry a
    "happy" mouth, so the teeth are inpainted with lip colour, the lips closed and the corners
    lowered once here; the happy prototype then adds the smile back where the cue mask says.
    """
    from skimage import data as skdata

    photo = skdata.astronaut()
    crop = np.ascontiguousarray(photo[CANON_Y0:CANON_Y0 + CANON_SIZE, CANON_X0:CANON_X0 + CANON_SIZE])
    frame = canonical_frame()
    ys, xs = np.mgrid[0:CANON_SIZE, 0:CANON_SIZE].astype(np.float64)
    s, t = frame.to_face(np.stack([xs, ys], axis=-1))
    # Teeth: bright, low-saturation pixels inside the mouth ellipse.
    mouth = ((s / 0.46) ** 2 + ((t - 1.02) / 0.16) ** 2) < 1.0
    rgb = crop.astype(np.float64)
    bright = rgb.mean(axis=2) > 150
    low_sat = (rgb.max(axis=2) - rgb.min(axis=2)) < 70
    teeth = (mouth & bright & low_sat).astype(np.uint8)
    teeth = cv2.dilate(teeth, np.ones((3, 3), np.uint8))
    bgr = cv2.inpaint(crop[:, :, ::-1].copy(), teeth, 4, cv2.INPAINT_TELEA)
    img = bgr[:, :, ::-1].astype(np.float32)
    # Close the lips vertically and relax the corners (a fixed, neutralising warp).
    neutral = [
        Blob("scale", 0.0, 1.02, 0.5, 0.2, ds=0.0, dt=-0.45),
        Blob("shift", _MS, 0.98, 0.2, 0.22, dt=0.12, bilateral=True),
        Blob("shift", 0.6, 0.45, 0.3, 0.22, dt=0.06, bilateral=True),
    ]
    flow = np.zeros((CANON_SIZE, CANON_SIZE, 2))
    for blob in neutral:
        for side in ((1.0, -1.0) if blob.bilateral else (1.0,)):
            w = _bump(s, t, blob, blob.s0 * side)
            if blob.kind == "shift":
                flow += w[..., None] * (blob.ds * side * frame.iod * frame.u + blob.dt * frame.height * frame.v)
            else:
                rel_s = (s - blob.s0 * side) * frame.iod
                rel_t = (t - blob.t0) * frame.height
                flow += w[..., None] * ((blob.ds * rel_s)[..., None] * frame.u + (blob.dt * rel_t)[..., None] * frame.v)
    img = warp_canonical(img, flow.astype(np.float32))
    # A thin, darker lip line where the lips now meet.
    line = np.exp(-((s / 0.36) ** 2) - ((t - 1.0) / 0.03) ** 2)
    img = img + (line[..., None] * np.array([-55.0, -60.0, -55.0])).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _identity_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return xs, ys


def warp_canonical(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Move image content by the forward displacement ``flow`` (H, W, 2), via a backward remap.

    For smooth, small displacements ``out(p) = img(p − flow(p))`` is the usual first-order inverse.
    """
    xs, ys = _identity_grid(img.shape[0])
    return cv2.remap(img, xs - flow[..., 0], ys - flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@functools.lru_cache(maxsize=None)
def emotion_fields() -> dict[str, AUField]:
    """Class → its prototype as one field (Σ amplitude·AU field), so a frame sums a few fields, not ~10."""
    fields = au_fields()
    out = {}
    for emotion, aus in EMOTION_AUS.items():
        flow = sum(np.float32(a) * fields[au].flow for au, a in aus.items())
        shade = sum(np.float32(a) * fields[au].shade for au, a in aus.items())
        out[emotion] = AUField(flow=flow.astype(np.float32), shade=shade.astype(np.float32),
                               mask=emotion_masks()[emotion])
    return out


def render_expression(weights: dict[str, float]) -> np.ndarray:
    """float32 (H, W, 3) canonical image with the given intensities (0 = neutral).

    Keys are AU names (``AU_COMPONENTS``) or emotion names (``EMOTION_AUS``: the whole prototype).
    """
    fields = au_fields()
    prototypes = emotion_fields()
    flow = np.zeros((CANON_SIZE, CANON_SIZE, 2), dtype=np.float32)
    shade = np.zeros((CANON_SIZE, CANON_SIZE, 3), dtype=np.float32)
    for name, a in weights.items():
        if a == 0.0:
            continue
        field = prototypes[name] if name in prototypes else fields[name]
        flow += np.float32(a) * field.flow
        shade += np.float32(a) * field.shade
    return warp_canonical(canonical_image(), flow) + shade


@functools.lru_cache(maxsize=None)
def head_alpha() -> np.ndarray:
    """float32 (H, W) soft mask of head, hair and shoulders in the canonical image (1 = keep photo)."""
    frame = canonical_frame()
    ys, xs = np.mgrid[0:CANON_SIZE, 0:CANON_SIZE].astype(np.float64)
    s, t = frame.to_face(np.stack([xs, ys], axis=-1))
    head = ((s / 1.55) ** 2 + ((t - 0.35) / 2.75) ** 2)
    alpha = np.clip((1.25 - head) / 0.35, 0.0, 1.0)
    # Fade out at the canonical border so the warp never shows a hard photo edge.
    edge = np.minimum.reduce([xs, ys, CANON_SIZE - 1 - xs, CANON_SIZE - 1 - ys])
    return (alpha * np.clip(edge / 12.0, 0.0, 1.0)).astype(np.float32)


# --- pose and compositing ----------------------------------------------------------------------

def pose_matrix(scale: float, angle_deg: float, centre_xy: tuple[float, float]) -> np.ndarray:
    """(2, 3) canonical → frame similarity that puts the face centre (midpoint of eyes and mouth)
    at ``centre_xy``, scaled by ``scale`` and rotated by ``angle_deg`` (counter-clockwise)."""
    frame = canonical_frame()
    face_centre = frame.centre + 0.5 * frame.height * frame.v
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    shift = np.asarray(centre_xy, dtype=np.float64) - rot @ face_centre
    return np.hstack([rot, shift[:, None]]).astype(np.float64)


def compose_frame(face: np.ndarray, pose: np.ndarray, background: np.ndarray, keep_photo: float) -> np.ndarray:
    """float32 (S, S, 3): the canonical ``face`` warped by ``pose`` over ``background`` (S, S, 3).

    ``keep_photo`` in [0, 1]: how much of the photo's own backdrop survives outside the head mask.
    """
    size = background.shape[0]
    alpha = np.maximum(head_alpha(), np.float32(keep_photo) * _border_alpha())
    fg = cv2.warpAffine(face, pose, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a = cv2.warpAffine(alpha, pose, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return fg * a[..., None] + background * (1.0 - a[..., None])


@functools.lru_cache(maxsize=None)
def _border_alpha() -> np.ndarray:
    ys, xs = np.mgrid[0:CANON_SIZE, 0:CANON_SIZE].astype(np.float32)
    edge = np.minimum.reduce([xs, ys, CANON_SIZE - 1 - xs, CANON_SIZE - 1 - ys])
    return np.clip(edge / 12.0, 0.0, 1.0).astype(np.float32)
