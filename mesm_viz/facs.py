"""FACS face regions from the 5 MTCNN landmarks, EMFACS emotion prototypes, and attention statistics.

Geometry: docs/facs.md ("Face frame", "Region table"). Landmarks are the 5 MTCNN points in *crop* pixel coordinates
``(x, y)``, ordered ``eye_l, eye_r, nose, mouth_l, mouth_r`` with "l" = image-left (the subject's right on
an unmirrored camera). From them a face frame is built (:class:`mesm_core.geometry.FaceFrame`, shared with the
synthetic faces)::

    c = (E_l + E_r) / 2          d = |E_r - E_l|           u = (E_r - E_l) / d      (image right)
    v = (-u_y, u_x)              (image down)              m = (M_l + M_r) / 2     h = (m - c) · v
    (s, t)  ↦  c + s·d·u + t·h·v        eyes at (∓0.5, 0), mouth line at t = 1.

(``FaceFrame`` names c, d and h ``centre``, ``iod`` and ``height``.)

Every region is a box, disc or convex polygon in (s, t) (or around a landmark), rasterised by testing the
*pixel centres* ``(j + 0.5, i + 0.5)`` of the crop, so masks are clipped to the crop by construction and
mirror exactly when the landmarks do. Left/right structures are separate regions (suffix ``_l`` / ``_r``,
image sides) sharing a ``group``; :func:`merge_sides` builds the unions.

These are approximations from 5 points on unaligned crops, and the emotion prototypes are typical EMFACS
patterns, never ground truth: the model is not an AU detector and the statistics here only say where its
attention mass landed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mesm_core.geometry import FaceFrame

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "AU_NAMES",
    "EMFACS_PROTOTYPES",
    "IEMOCAP_LABELS",
    "LANDMARK_NAMES",
    "LabelMapping",
    "MOSEI_LABELS",
    "Prototype",
    "PrototypeVariant",
    "REGION_SPECS",
    "Region",
    "default_landmarks",
    "facs_regions",
    "label_mapping",
    "merge_sides",
    "prototype_attention_share",
    "prototype_for",
    "prototype_regions",
    "region_stats",
    "region_stats_table",
    "resolve_landmarks",
]

LANDMARK_NAMES = ("eye_l", "eye_r", "nose", "mouth_l", "mouth_r")

# ArcFace / InsightFace 112×112 five-point alignment template (x, y), image-left first.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)

_EPS = 1e-9  # inclusive boundary tolerance: keeps mirrored rasterisations identical under round-off

SOURCE_GEOMETRY = "5-point (s,t) construction: docs/facs.md (project proposal, calibrated on the ArcFace template)"
SOURCE_AU = "AU/muscle names: Ekman & Friesen (1978) FACS manual; Py-Feat AU reference (docs/pages/au_reference.md)"

# FACS action-unit names (Ekman & Friesen 1978; same wording as Py-Feat's AU reference).
AU_NAMES: dict[int, str] = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser",
    6: "cheek raiser", 7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser",
    11: "nasolabial deepener", 12: "lip corner puller", 13: "sharp lip puller (cheek puffer)", 14: "dimpler",
    15: "lip corner depressor", 16: "lower lip depressor", 17: "chin raiser", 18: "lip pucker",
    20: "lip stretcher", 22: "lip funneler", 23: "lip tightener", 24: "lip pressor", 25: "lips part",
    26: "jaw drop", 27: "mouth stretch", 28: "lip suck", 38: "nostril dilator", 43: "eyes closed", 45: "blink",
}


def default_landmarks(size: int = 48) -> np.ndarray:
    """The ArcFace 112×112 five-point template scaled to a ``size``×``size`` crop, ``(5, 2)`` float64.

    Used when MTCNN gave no landmarks; regions built from it are marked ``landmark_source="template"``.
    """
    return ARCFACE_TEMPLATE_112 * (float(size) / 112.0)


def resolve_landmarks(landmarks: np.ndarray | None, size: int = 48) -> tuple[np.ndarray, str]:
    """Return ``(points (5, 2), source)``: the MTCNN points (``"mtcnn"``) when present and finite,
    otherwise the scaled template (``"template"``)."""
    if landmarks is not None:
        pts = np.asarray(landmarks, dtype=np.float64)
        if pts.shape == (5, 2) and np.all(np.isfinite(pts)):
            return pts, "mtcnn"
        if pts.shape != (5, 2):
            raise ValueError(f"landmarks must have shape (5, 2), got {pts.shape}")
    return default_landmarks(size), "template"


# --- region specifications -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RegionSpec:
    """How to build one region. ``kind``: "box" (s0, s1, t0, t1), "disc" (landmark, radius in d),
    "nose" (bridge box + alae box around the nose point) or "lips" (hexagon around the mouth corners)."""

    name: str
    label: str
    group: str
    side: str                        # "image_left" | "image_right" | "center"
    aus: tuple[int, ...]
    muscles: tuple[str, ...]
    kind: str
    params: tuple = ()
    construction: str = ""


def _box(name, label, group, aus, muscles, s, t, *, side="center", note=""):
    text = f"s∈[{s[0]:g},{s[1]:g}], t∈[{t[0]:g},{t[1]:g}]" + (f" {note}" if note else "")
    return RegionSpec(name, label, group, side, aus, muscles, "box", (s[0], s[1], t[0], t[1]), text)


def _pair(name, label, group, aus, muscles, s_abs, t, note=""):
    """Image-left (negative s) and image-right (positive s) copies of a lateral box."""
    lo, hi = s_abs
    return [
        _box(f"{name}_l", f"{label} (image left)", group, aus, muscles, (-hi, -lo), t, side="image_left", note=note),
        _box(f"{name}_r", f"{label} (image right)", group, aus, muscles, (lo, hi), t, side="image_right", note=note),
    ]


_FRONTALIS = ("frontalis, pars medialis", "frontalis, pars lateralis")
_BROW_LOWERERS = ("corrugator supercilii", "depressor supercilii", "procerus")
_LIDS = ("levator palpebrae superioris", "orbicularis oculi, pars palpebralis")
_LIPS = ("orbicularis oris", "incisivii labii", "depressor labii inferioris", "mentalis (relaxation, AU25)")

REGION_SPECS: tuple[RegionSpec, ...] = tuple(
    [
        _box("forehead", "Forehead", "forehead", (1, 2), _FRONTALIS, (-0.9, 0.9), (-1.0, -0.55)),
        _box("glabella", "Glabella", "inner brows / glabella", (4,), ("procerus", "corrugator supercilii"),
             (-0.2, 0.2), (-0.45, -0.05)),
        *_pair("inner_brow", "Inner brow", "inner brows / glabella", (1, 4),
               ("frontalis, pars medialis",) + _BROW_LOWERERS[:2], (0.05, 0.45), (-0.5, -0.15)),
        *_pair("outer_brow", "Outer brow", "outer brows", (2,), ("frontalis, pars lateralis",),
               (0.45, 0.95), (-0.5, -0.15)),
        *_pair("upper_lid", "Upper eyelid", "upper eyelids", (5, 7, 43, 45), _LIDS, (0.2, 0.8), (-0.18, 0.0),
               note="(eye box, width 0.6·d)"),
        *_pair("eye", "Eye", "eyes", (5, 7, 43), _LIDS, (0.2, 0.8), (-0.15, 0.12), note="(eye box, width 0.6·d)"),
        *_pair("lower_lid", "Lower eyelid", "lower lids / crow's feet", (6, 7),
               ("orbicularis oculi, pars orbitalis", "orbicularis oculi, pars palpebralis"), (0.2, 0.8), (0.05, 0.25),
               note="(eye box, width 0.6·d)"),
        *_pair("crows_feet", "Crow's feet", "lower lids / crow's feet", (6,), ("orbicularis oculi, pars orbitalis",),
               (0.8, 1.05), (-0.1, 0.25)),
        RegionSpec("nose", "Nose (root and alae)", "nose", "center", (9, 38),
                   ("levator labii superioris alaeque nasi", "nasalis, pars alaris"), "nose",
                   (-0.2, 0.2, -0.1, 0.45, 0.3, 0.12),
                   "bridge s∈[-0.2,0.2], t∈[-0.1,0.45] ∪ alae: nose point ±0.3 in s, ±0.12 in t"),
        *_pair("cheek", "Cheek", "cheeks", (6, 13),
               ("orbicularis oculi, pars orbitalis", "levator anguli oris (caninus)", "zygomaticus major"),
               (0.35, 1.0), (0.2, 0.65)),
        _box("upper_lip", "Upper lip / nasolabial", "upper lip / nasolabial", (10, 11),
             ("levator labii superioris", "zygomaticus minor"), (-0.55, 0.55), (0.55, 0.88)),
        RegionSpec("lip_corner_l", "Lip corner (image left)", "lip corners", "image_left", (12, 13, 14, 15, 20),
                   ("zygomaticus major", "levator anguli oris", "buccinator", "depressor anguli oris", "risorius"),
                   "disc", (3, 0.22), "disc of radius 0.22·d at mouth_l"),
        RegionSpec("lip_corner_r", "Lip corner (image right)", "lip corners", "image_right", (12, 13, 14, 15, 20),
                   ("zygomaticus major", "levator anguli oris", "buccinator", "depressor anguli oris", "risorius"),
                   "disc", (4, 0.22), "disc of radius 0.22·d at mouth_r"),
        RegionSpec("lips", "Lips / mouth", "lips / mouth", "center", (16, 18, 22, 23, 24, 25, 28), _LIPS, "lips",
                   (0.1, 0.12, 0.15),
                   "hexagon: corners pushed out 0.1 in s along the mouth line, top/bottom edges ±0.15 in t "
                   "from 0.12 inside each corner"),
        _box("chin", "Chin", "chin", (17,), ("mentalis",), (-0.45, 0.45), (1.2, 1.65)),
        _box("jaw", "Jaw", "jaw", (26, 27),
             ("masseter (relaxed)", "temporalis (relaxed)", "lateral pterygoid", "digastric"),
             (-0.7, 0.7), (1.1, 1.8), note="(extent guessed: 5 points have no chin)"),
    ]
)


@dataclass
class Region:
    """One FACS region rasterised on a crop.

    mask:     bool ``(R, R)``, pixel-centre test, clipped to the crop (R = raster size)
    polygons: list of ``(K, 2)`` float arrays, (x, y) in raster pixels, clipped to ``[0, R]`` (for drawing)
    box:      ``(x1, y1, x2, y2)`` ints, half-open bounds of the mask (``None`` when the mask is empty)
    """

    name: str
    label: str
    group: str
    side: str
    aus: tuple[int, ...]
    muscles: tuple[str, ...]
    source: str
    construction: str
    mask: np.ndarray
    polygons: list[np.ndarray] = field(default_factory=list)
    box: tuple[int, int, int, int] | None = None
    landmark_source: str = "mtcnn"

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def au_names(self) -> tuple[str, ...]:
        return tuple(f"AU{a} {AU_NAMES.get(a, '')}".strip() for a in self.aus)

    def describe(self) -> str:
        """One line for a tooltip / "explain this region" panel."""
        return f"{self.label}: {', '.join(self.au_names)} — {', '.join(self.muscles)}"


# --- rasterisation helpers ---------------------------------------------------------------------------------

def _in_box(s, t, s0, s1, t0, t1):
    return (s >= s0 - _EPS) & (s <= s1 + _EPS) & (t >= t0 - _EPS) & (t <= t1 + _EPS)


def _in_convex(s, t, verts: np.ndarray):
    """Inclusive point-in-convex-polygon test in (s, t); vertices in either orientation."""
    cross = []
    for k in range(len(verts)):
        (a_s, a_t), (b_s, b_t) = verts[k], verts[(k + 1) % len(verts)]
        cross.append((b_s - a_s) * (t - a_t) - (b_t - a_t) * (s - a_s))
    cross = np.stack(cross)
    return np.all(cross >= -_EPS, axis=0) | np.all(cross <= _EPS, axis=0)


def _lips_vertices(frame: FaceFrame, pts: np.ndarray, params: tuple) -> np.ndarray:
    out_margin, inset, half_height = params
    (s_l,), (t_l,) = (np.atleast_1d(x) for x in frame.to_face(pts[3]))
    (s_r,), (t_r,) = (np.atleast_1d(x) for x in frame.to_face(pts[4]))

    def line(s):  # the mouth line through both corners
        return t_l + (s - s_l) * (t_r - t_l) / (s_r - s_l)

    a, b, c_, e = s_l - out_margin, s_l + inset, s_r - inset, s_r + out_margin
    return np.array([
        (a, line(a)), (b, line(b) - half_height), (c_, line(c_) - half_height),
        (e, line(e)), (c_, line(c_) + half_height), (b, line(b) + half_height),
    ])


def _clip_polygon(poly: np.ndarray, size: float) -> np.ndarray:
    """Sutherland–Hodgman clip of a polygon (x, y) to the square [0, size]²."""
    out = [tuple(p) for p in poly]
    for axis, bound, keep_below in ((0, 0.0, False), (0, size, True), (1, 0.0, False), (1, size, True)):
        if not out:
            break
        src, out = out, []
        inside = (lambda p: p[axis] <= bound) if keep_below else (lambda p: p[axis] >= bound)
        for k, cur in enumerate(src):
            prev = src[k - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(_intersect(prev, cur, axis, bound))
                out.append(cur)
            elif inside(prev):
                out.append(_intersect(prev, cur, axis, bound))
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def _intersect(p, q, axis, bound):
    frac = (bound - p[axis]) / (q[axis] - p[axis])
    return (p[0] + frac * (q[0] - p[0]), p[1] + frac * (q[1] - p[1]))


def _box_corners(s0, s1, t0, t1) -> np.ndarray:
    return np.array([(s0, t0), (s1, t0), (s1, t1), (s0, t1)])


def facs_regions(
    landmarks: np.ndarray | None,
    size: int = 48,
    *,
    raster_size: int | None = None,
    specs: Sequence[RegionSpec] = REGION_SPECS,
) -> list[Region]:
    """Rasterise the FACS regions of one face crop.

    landmarks:   ``(5, 2)`` MTCNN points (x, y) in pixels of the ``size``×``size`` crop, order
                 eye_l, eye_r, nose, mouth_l, mouth_r (image-left first). ``None`` or NaN → the scaled
                 ArcFace template (regions flagged ``landmark_source="template"``).
    size:        crop size the landmarks refer to (48 for MESM).
    raster_size: size of the masks/polygons (default ``size``); e.g. ``384`` for a crop enlarged ×8 for
                 display. Landmarks are rescaled by ``raster_size / size``.
    Returns one :class:`Region` per spec (order of :data:`REGION_SPECS`); regions entirely outside the
    crop keep an empty mask.
    """
    pts, source = resolve_landmarks(landmarks, size)
    frame = FaceFrame.from_landmarks(pts)
    R = int(raster_size or size)
    if R <= 0:
        raise ValueError(f"raster_size must be positive, got {R}")
    scale = R / float(size)
    centres = (np.arange(R, dtype=np.float64) + 0.5) / scale  # pixel centres in landmark units
    grid_x, grid_y = np.meshgrid(centres, centres)
    s_grid, t_grid = frame.to_face(np.stack([grid_x, grid_y], axis=-1))

    regions = []
    for spec in specs:
        polys_st: list[np.ndarray] = []
        if spec.kind == "box":
            mask = _in_box(s_grid, t_grid, *spec.params)
            polys_st.append(_box_corners(*spec.params))
            polys_px = [frame.to_pixels(p[:, 0], p[:, 1]) for p in polys_st]
        elif spec.kind == "nose":
            bs0, bs1, bt0, bt1, half_s, half_t = spec.params
            (n_s,), (n_t,) = (np.atleast_1d(x) for x in frame.to_face(pts[2]))
            alae = (n_s - half_s, n_s + half_s, n_t - half_t, n_t + half_t)
            mask = _in_box(s_grid, t_grid, bs0, bs1, bt0, bt1) | _in_box(s_grid, t_grid, *alae)
            polys_st += [_box_corners(bs0, bs1, bt0, bt1), _box_corners(*alae)]
            polys_px = [frame.to_pixels(p[:, 0], p[:, 1]) for p in polys_st]
        elif spec.kind == "lips":
            verts = _lips_vertices(frame, pts, spec.params)
            mask = _in_convex(s_grid, t_grid, verts)
            polys_px = [frame.to_pixels(verts[:, 0], verts[:, 1])]
        elif spec.kind == "disc":
            index, radius = spec.params
            r_px = radius * frame.iod
            centre = pts[int(index)]
            mask = (grid_x - centre[0]) ** 2 + (grid_y - centre[1]) ** 2 <= r_px ** 2 * (1 + _EPS)
            angles = np.linspace(0.0, 2 * np.pi, 24, endpoint=False)
            polys_px = [centre + r_px * np.stack([np.cos(angles), np.sin(angles)], axis=1)]
        else:
            raise ValueError(f"region {spec.name!r}: unknown kind {spec.kind!r}")
        polygons = [p for p in (_clip_polygon(p * scale, R) for p in polys_px) if len(p) >= 3]
        regions.append(Region(
            name=spec.name, label=spec.label, group=spec.group, side=spec.side, aus=spec.aus,
            muscles=spec.muscles, source=f"{SOURCE_GEOMETRY}; {SOURCE_AU}", construction=spec.construction,
            mask=mask, polygons=polygons, box=_mask_box(mask), landmark_source=source,
        ))
    return regions


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def merge_sides(regions: Sequence[Region]) -> list[Region]:
    """One region per ``group`` (left ∪ right ∪ centre parts), in first-appearance order."""
    merged: dict[str, Region] = {}
    for region in regions:
        if region.group not in merged:
            merged[region.group] = dataclasses.replace(
                region, name=region.group.replace(" / ", "_").replace(" ", "_").replace("'", ""),
                label=region.group[0].upper() + region.group[1:], side="both" if region.side != "center" else "center",
                mask=region.mask.copy(), polygons=list(region.polygons),
            )
            continue
        target = merged[region.group]
        target.mask = target.mask | region.mask
        target.polygons = target.polygons + list(region.polygons)
        target.aus = tuple(sorted(set(target.aus) | set(region.aus)))
        target.muscles = tuple(dict.fromkeys(target.muscles + region.muscles))
        target.box = _mask_box(target.mask)
        if region.side != target.side:
            target.side = "both"
    return list(merged.values())


# --- emotion prototypes -----------------------------------------------------------------------------------

TYPICAL_NOTE = "typical EMFACS prototype, not ground truth: people vary and the model is not an AU detector"

_SRC_WIKI = "Wikipedia 'Facial Action Coding System' emotion table (EMFACS)"
_SRC_TABLE = "Ekman & Friesen (1978) FACS manual Table 11-1 (as cited by the DGPs methods article)"
_SRC_ODBM = "AiCure OpenDBM docs, 'emotional expressivity'"


@dataclass(frozen=True)
class PrototypeVariant:
    notation: str
    aus: tuple[int, ...]
    source: str


@dataclass(frozen=True)
class Prototype:
    """A typical EMFACS action-unit pattern for one emotion (``aus`` without intensity letters)."""

    emotion: str
    notation: str
    aus: tuple[int, ...]
    source: str
    variants: tuple[PrototypeVariant, ...] = ()
    remarks: str = ""
    note: str = TYPICAL_NOTE


EMFACS_PROTOTYPES: dict[str, Prototype] = {
    p.emotion: p
    for p in (
        Prototype("happiness", "6+12", (6, 12), _SRC_WIKI,
                  (PrototypeVariant("6+12+25", (6, 12, 25), _SRC_TABLE),),
                  "AU6 distinguishes felt (Duchenne) smiles"),
        Prototype("sadness", "1+4+15", (1, 4, 15), _SRC_WIKI,
                  (PrototypeVariant("1+4+15", (1, 4, 15), _SRC_TABLE),
                   PrototypeVariant("1+4+6+15+17", (1, 4, 6, 15, 17), "some lists add AU6 and AU17")),
                  ""),
        Prototype("surprise", "1+2+5B+26", (1, 2, 5, 26), _SRC_WIKI,
                  (PrototypeVariant("1+2+5+26", (1, 2, 5, 26), _SRC_TABLE),),
                  "5B = AU5 at intensity B"),
        Prototype("fear", "1+2+4+5+20+26", (1, 2, 4, 5, 20, 26), _SRC_WIKI,
                  (PrototypeVariant("1+2+4+5+7+20+26", (1, 2, 4, 5, 7, 20, 26), _SRC_ODBM),
                   PrototypeVariant("1+2+4+5+20+25", (1, 2, 4, 5, 20, 25), _SRC_TABLE)),
                  "lists disagree on AU7 and on 25 vs 26"),
        Prototype("anger", "4+5+7+23", (4, 5, 7, 23), _SRC_WIKI,
                  (PrototypeVariant("4+5+7+24", (4, 5, 7, 24), _SRC_TABLE),),
                  "AU23 (tighten) and AU24 (press) are used interchangeably"),
        Prototype("disgust", "9+15+16", (9, 15, 16), _SRC_WIKI,
                  (PrototypeVariant("10+17+4", (4, 10, 17), _SRC_TABLE),
                   PrototypeVariant("9+10", (9, 10), "common in AU-detector literature")),
                  "nose-wrinkle vs upper-lip-raise variants"),
        Prototype("contempt", "R12A+R14A", (12, 14), _SRC_WIKI,
                  (PrototypeVariant("12+14", (12, 14), _SRC_ODBM + " (bilateral)"),),
                  "unilateral (R = right) at low intensity A; regions here are bilateral"),
    )
}


@dataclass(frozen=True)
class LabelMapping:
    """How a dataset class maps to an Ekman emotion. ``status``: direct | approximate | none | unknown."""

    class_name: str
    emotion: str | None
    status: str
    note: str


def _direct(name, emotion):
    return LabelMapping(name, emotion, "direct", f"{name} → {emotion} prototype")


IEMOCAP_LABELS: dict[str, LabelMapping] = {
    "ang": _direct("ang", "anger"),
    "hap": _direct("hap", "happiness"),
    "sad": _direct("sad", "sadness"),
    "exc": LabelMapping("exc", "happiness", "approximate",
                        "exc (excited) has no canonical prototype; shown with the happiness prototype as an "
                        "approximation (high arousal, often with AU25/26)"),
    "fru": LabelMapping("fru", None, "none",
                        "no FACS prototype for frustration (often anger-lite: AU4/7/23/24, not canonical)"),
    "neu": LabelMapping("neu", None, "none", "no FACS prototype: neutral means no expected action"),
}
MOSEI_LABELS: dict[str, LabelMapping] = {
    "anger": _direct("anger", "anger"),
    "disgust": _direct("disgust", "disgust"),
    "fear": _direct("fear", "fear"),
    "happy": _direct("happy", "happiness"),
    "sad": _direct("sad", "sadness"),
    "surprise": _direct("surprise", "surprise"),
}
_ALIASES = {
    "happiness": "happiness", "joy": "happiness", "sadness": "sadness", "angry": "anger", "fearful": "fear",
    "disgusted": "disgust", "surprised": "surprise", "contempt": "contempt", "neutral": None,
}


def label_mapping(class_name: str) -> LabelMapping:
    """Map a class name (IEMOCAP short name, MOSEI name or Ekman emotion; case-insensitive) to an emotion."""
    key = str(class_name).strip().lower()
    if key in IEMOCAP_LABELS:
        return IEMOCAP_LABELS[key]
    if key in MOSEI_LABELS:
        return MOSEI_LABELS[key]
    if key in EMFACS_PROTOTYPES:
        return _direct(key, key)
    if key in _ALIASES:
        emotion = _ALIASES[key]
        if emotion is None:
            return LabelMapping(key, None, "none", "no FACS prototype: neutral means no expected action")
        return _direct(key, emotion)
    return LabelMapping(key, None, "unknown", f"no FACS prototype: unknown class {class_name!r}")


def prototype_for(class_name: str) -> Prototype | None:
    """The (typical, not ground-truth) prototype for a class, or ``None`` ("no FACS prototype").

    ``exc`` returns the happiness prototype with a note saying the mapping is approximate.
    """
    mapping = label_mapping(class_name)
    if mapping.emotion is None:
        return None
    proto = EMFACS_PROTOTYPES[mapping.emotion]
    if mapping.status == "approximate":
        return dataclasses.replace(proto, note=f"{TYPICAL_NOTE}; approximate: {mapping.note}")
    return proto


def prototype_regions(class_name: str | Prototype | None, regions: Sequence[Region]) -> list[Region]:
    """Regions whose AUs intersect the class's prototype AUs (empty when there is no prototype)."""
    proto = class_name if isinstance(class_name, Prototype) or class_name is None else prototype_for(class_name)
    if proto is None:
        return []
    wanted = set(proto.aus)
    return [r for r in regions if wanted & set(r.aus)]


# --- attention statistics ---------------------------------------------------------------------------------

def _pixel_mass(attention: np.ndarray, size: int) -> np.ndarray:
    """Spread each cell's weight evenly over the pixels it covers (nearest upsampling / cell area)."""
    att = np.asarray(attention)
    if att.dtype == np.bool_ or not np.issubdtype(att.dtype, np.number):
        raise TypeError(f"attention must be a float array, got dtype {att.dtype}")
    if att.ndim != 2:
        raise ValueError(f"attention must have shape (h, w), got {att.shape}")
    if not np.all(np.isfinite(att)) or (att.size and att.min() < 0):
        raise ValueError("attention must be finite and non-negative (softmax weights)")
    h, w = att.shape
    if size % h or size % w:
        raise ValueError(f"attention grid {h}×{w} does not divide the region raster {size}×{size}")
    fy, fx = size // h, size // w
    return np.repeat(np.repeat(att.astype(np.float64), fy, 0), fx, 1) / (fy * fx)


def _kept_pixels(kept: np.ndarray, size: int) -> np.ndarray:
    kept = np.asarray(kept)
    if kept.dtype != np.bool_ or kept.ndim != 2:
        raise ValueError(f"kept must be a 2-D bool grid, got dtype {kept.dtype} shape {kept.shape}")
    h, w = kept.shape
    if size % h or size % w:
        raise ValueError(f"kept grid {h}×{w} does not divide the region raster {size}×{size}")
    return np.repeat(np.repeat(kept, size // h, 0), size // w, 1)


def _raster_size(regions: Sequence[Region]) -> int:
    if not regions:
        raise ValueError("no regions given")
    shapes = {r.mask.shape for r in regions}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or next(iter(shapes))[0] != next(iter(shapes))[1]:
        raise ValueError(f"regions must share one square raster, got mask shapes {sorted(shapes)}")
    return next(iter(shapes))[0]


def region_stats(
    regions: Sequence[Region],
    attention: np.ndarray | None,
    kept: np.ndarray | None = None,
) -> list[dict]:
    """Attention mass and kept fraction per region for one layer of one frame.

    attention: ``(h, w)`` non-negative softmax weights (e.g. 24×24 / 12×12 / 6×6) or ``None``; each
               cell's weight is spread evenly over its pixels of the region raster (nearest upsampling).
    kept:      ``(h', w')`` bool nucleus mask or ``None``.
    Returns one dict per region: ``name, label, group, aus, area_px, area_share`` (region pixels /
    crop pixels), ``attention_mass`` (weight inside the region), ``attention_share`` (mass / total
    mass; ``None`` if the total is 0), ``lift`` (share / area share; >1 = more attention than its area),
    ``kept_fraction`` (kept pixels ∩ region / region pixels; ``None`` for an empty region or no mask).
    Regions overlap, so masses do not add up to 1 across regions.
    """
    size = _raster_size(regions)
    mass = _pixel_mass(attention, size) if attention is not None else None
    total = float(mass.sum()) if mass is not None else 0.0
    kept_px = _kept_pixels(kept, size) if kept is not None else None
    rows = []
    for region in regions:
        area = region.area
        area_share = area / float(size * size)
        row = {
            "name": region.name, "label": region.label, "group": region.group, "aus": region.aus,
            "area_px": area, "area_share": area_share,
            "attention_mass": None, "attention_share": None, "lift": None, "kept_fraction": None,
        }
        if mass is not None:
            inside = float(mass[region.mask].sum())
            row["attention_mass"] = inside
            if total > 0:
                row["attention_share"] = inside / total
                row["lift"] = (inside / total) / area_share if area_share > 0 else None
        if kept_px is not None and area > 0:
            row["kept_fraction"] = float((kept_px & region.mask).sum()) / area
        rows.append(row)
    return rows


def region_stats_table(
    regions: Sequence[Region],
    layers: Sequence[tuple[str, np.ndarray | None, np.ndarray | None]],
) -> list[dict]:
    """:func:`region_stats` for several layers, flattened: ``layers`` = ``[(layer_name, attention, kept)]``;
    every row gets a ``"layer"`` key (handy for a table component)."""
    table = []
    for layer_name, attention, kept in layers:
        for row in region_stats(regions, attention, kept):
            table.append({"layer": layer_name, **row})
    return table


def prototype_attention_share(
    regions: Sequence[Region],
    attention: np.ndarray,
    class_name: str,
) -> dict:
    """How much attention lands in the class's prototype regions compared with their area (chance).

    The prototype regions are united first (overlaps count once). Returns a dict: ``class_name``,
    ``emotion``, ``status`` (direct | approximate | none | unknown), ``prototype`` (notation or None),
    ``regions`` (names), ``attention_share`` (mass in the union / total mass), ``area_share`` (union pixels
    / crop pixels = the share uniform attention would give), ``lift`` (ratio), ``note``. Shares are
    ``None`` when the class has no prototype or the attention is all zero.
    """
    mapping = label_mapping(class_name)
    proto = prototype_for(class_name)
    size = _raster_size(regions)
    result = {
        "class_name": class_name, "emotion": mapping.emotion, "status": mapping.status,
        "prototype": proto.notation if proto else None, "regions": [],
        "attention_share": None, "area_share": None, "lift": None,
        "note": proto.note if proto else mapping.note,
    }
    chosen = prototype_regions(proto, regions)
    if not chosen:
        return result
    union = np.logical_or.reduce([r.mask for r in chosen])
    mass = _pixel_mass(attention, size)
    total = float(mass.sum())
    area_share = float(union.sum()) / (size * size)
    result["regions"] = [r.name for r in chosen]
    result["area_share"] = area_share
    if total > 0:
        share = float(mass[union].sum()) / total
        result["attention_share"] = share
        result["lift"] = share / area_share if area_share > 0 else None
    return result
