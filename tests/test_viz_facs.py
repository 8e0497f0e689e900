"""FACS region geometry, prototypes/label mappings and attention statistics (mesm_viz.facs)."""

import dataclasses

import numpy as np
import pytest

from mesm_core.config import IEMOCAP_CLASSES, MOSEI_CLASSES
from mesm_core.geometry import FaceFrame
from mesm_viz.facs import (
    ARCFACE_TEMPLATE_112,
    AU_NAMES,
    EMFACS_PROTOTYPES,
    REGION_SPECS,
    default_landmarks,
    facs_regions,
    label_mapping,
    merge_sides,
    prototype_attention_share,
    prototype_for,
    prototype_regions,
    region_stats,
    region_stats_table,
    resolve_landmarks,
)

SIZE = 48


def _mirror(points, size=SIZE):
    """Mirror about the crop's vertical axis and swap left/right so the order stays image-left first."""
    pts = np.asarray(points, np.float64).copy()
    pts[:, 0] = size - pts[:, 0]
    return pts[[1, 0, 2, 4, 3]]


def _symmetric_template(size=SIZE):
    return (default_landmarks(size) + _mirror(default_landmarks(size), size)) / 2.0


def _tilted(size=SIZE):
    """An asymmetric, slightly rotated and shifted face to exercise the general geometry."""
    pts = default_landmarks(size)
    centre = pts.mean(axis=0)
    angle = np.deg2rad(12.0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (pts - centre) @ rot.T + centre + np.array([1.7, -0.9])


def _by_name(regions):
    return {r.name: r for r in regions}


def _swap_side(name):
    if name.endswith("_l"):
        return name[:-2] + "_r"
    if name.endswith("_r"):
        return name[:-2] + "_l"
    return name


def test_template_geometry_matches_anchors():
    frame = FaceFrame.from_landmarks(ARCFACE_TEMPLATE_112)
    assert frame.iod == pytest.approx(35.2, abs=0.1)
    assert frame.height == pytest.approx(40.7, abs=0.1)
    s_nose, t_nose = frame.to_face(ARCFACE_TEMPLATE_112[2])
    assert float(t_nose) == pytest.approx(0.49, abs=0.01)
    s_eyes, t_eyes = frame.to_face(ARCFACE_TEMPLATE_112[:2])
    np.testing.assert_allclose(s_eyes, [-0.5, 0.5], atol=1e-9)
    np.testing.assert_allclose(t_eyes, [0.0, 0.0], atol=1e-9)
    _, t_mouth = frame.to_face(ARCFACE_TEMPLATE_112[3:].mean(axis=0))
    assert float(t_mouth) == pytest.approx(1.0)
    np.testing.assert_allclose(frame.to_pixels(*frame.to_face(ARCFACE_TEMPLATE_112)), ARCFACE_TEMPLATE_112)


@pytest.mark.parametrize("landmarks", [default_landmarks(SIZE), _mirror(default_landmarks(SIZE)), _tilted()],
                         ids=["template", "mirrored", "tilted"])
def test_regions_inside_crop_and_well_formed(landmarks):
    regions = facs_regions(landmarks, SIZE)
    assert [r.name for r in regions] == [s.name for s in REGION_SPECS]
    for region in regions:
        assert region.mask.shape == (SIZE, SIZE) and region.mask.dtype == np.bool_
        assert region.area > 0, region.name
        assert region.aus and all(a in AU_NAMES for a in region.aus)
        assert region.muscles and region.source and region.construction
        x1, y1, x2, y2 = region.box
        assert 0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE
        assert region.mask[y1:y2, x1:x2].sum() == region.area
        for poly in region.polygons:
            assert poly.shape[1] == 2 and np.all(poly >= -1e-9) and np.all(poly <= SIZE + 1e-9)


@pytest.mark.parametrize("landmarks", [default_landmarks(SIZE), _tilted()], ids=["template", "tilted"])
def test_eyes_contain_eye_points_and_mouth_contains_corners(landmarks):
    regions = _by_name(facs_regions(landmarks, SIZE))

    def at(region, point):
        x, y = np.floor(point).astype(int)
        return bool(regions[region].mask[y, x])

    assert at("eye_l", landmarks[0]) and at("eye_r", landmarks[1])
    assert not at("eye_l", landmarks[1]) and not at("eye_r", landmarks[0])
    assert at("lips", landmarks[3]) and at("lips", landmarks[4])
    assert at("lip_corner_l", landmarks[3]) and at("lip_corner_r", landmarks[4])
    assert at("nose", landmarks[2])


def test_vertical_order_forehead_eyes_mouth_chin():
    regions = _by_name(facs_regions(default_landmarks(SIZE), SIZE))

    def centre_row(name):
        return np.nonzero(regions[name].mask)[0].mean()

    rows = [centre_row(n) for n in ("forehead", "eye_l", "nose", "lips", "chin")]
    assert rows == sorted(rows) and len(set(rows)) == len(rows)
    assert centre_row("eye_r") < centre_row("lips")
    assert centre_row("inner_brow_l") < centre_row("eye_l") < centre_row("cheek_l")


def test_symmetric_points_give_mirror_symmetric_regions():
    regions = _by_name(facs_regions(_symmetric_template(), SIZE))
    for name, region in regions.items():
        partner = regions[_swap_side(name)]
        np.testing.assert_array_equal(region.mask, partner.mask[:, ::-1], err_msg=name)
        if name.endswith("_l"):
            assert not np.array_equal(region.mask, partner.mask)


@pytest.mark.parametrize("landmarks", [default_landmarks(SIZE), _tilted()], ids=["template", "tilted"])
@pytest.mark.parametrize("raster", [None, 96])
def test_mirrored_landmarks_mirror_the_mask_set(landmarks, raster):
    original = _by_name(facs_regions(landmarks, SIZE, raster_size=raster))
    mirrored = _by_name(facs_regions(_mirror(landmarks), SIZE, raster_size=raster))
    for name, region in mirrored.items():
        np.testing.assert_array_equal(region.mask, original[_swap_side(name)].mask[:, ::-1], err_msg=name)


def test_raster_size_scales_regions():
    small = _by_name(facs_regions(default_landmarks(SIZE), SIZE))
    big = _by_name(facs_regions(default_landmarks(SIZE), SIZE, raster_size=SIZE * 8))
    for name in small:
        assert big[name].mask.shape == (SIZE * 8, SIZE * 8)
        # same region, finer raster: the area in crop pixels agrees to within the boundary pixels
        assert big[name].area / 64 == pytest.approx(small[name].area, rel=0.35, abs=4)


def test_region_partially_outside_is_clipped():
    pts = default_landmarks(SIZE) + np.array([0.0, 4.0])  # face low in the crop: the jaw leaves the frame
    jaw = _by_name(facs_regions(pts, SIZE))["jaw"]
    assert jaw.box[3] == SIZE and jaw.mask[-1].any()
    assert all(np.all(p[:, 1] <= SIZE + 1e-9) for p in jaw.polygons)
    # entirely below the crop: kept in the list, empty mask, no box, no polygon
    gone = _by_name(facs_regions(default_landmarks(SIZE) + np.array([0.0, 12.0]), SIZE))["jaw"]
    assert gone.area == 0 and gone.box is None and gone.polygons == []


def test_missing_landmarks_fall_back_to_template():
    nan = np.full((5, 2), np.nan)
    pts, source = resolve_landmarks(nan, SIZE)
    assert source == "template"
    np.testing.assert_allclose(pts, ARCFACE_TEMPLATE_112 * SIZE / 112)
    regions = facs_regions(None, SIZE)
    assert all(r.landmark_source == "template" for r in regions)
    assert all(r.landmark_source == "mtcnn" for r in facs_regions(default_landmarks(SIZE), SIZE))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 2)),                          # wrong shape
        default_landmarks(SIZE)[[1, 0, 2, 4, 3]],  # right-to-left order
        default_landmarks(SIZE) * [1, -1] + [0, SIZE],  # flipped vertically: mouth above the eyes
    ],
    ids=["shape", "order", "upside-down"],
)
def test_bad_landmarks_raise(bad):
    with pytest.raises(ValueError):
        facs_regions(bad, SIZE)


def test_merge_sides_unions_groups():
    regions = facs_regions(default_landmarks(SIZE), SIZE)
    merged = {r.group: r for r in merge_sides(regions)}
    by_name = _by_name(regions)
    np.testing.assert_array_equal(merged["eyes"].mask, by_name["eye_l"].mask | by_name["eye_r"].mask)
    assert merged["eyes"].side == "both" and merged["chin"].side == "center"
    assert set(merged["inner brows / glabella"].aus) == {1, 4}
    assert len(merged) == len({s.group for s in REGION_SPECS})


# --- prototypes and label mappings ---------------------------------------------------------------------

def test_prototypes_have_sources_and_typical_note():
    assert set(EMFACS_PROTOTYPES) == {"happiness", "sadness", "surprise", "fear", "anger", "disgust", "contempt"}
    for proto in EMFACS_PROTOTYPES.values():
        assert proto.source and "not ground truth" in proto.note
        assert all(a in AU_NAMES for a in proto.aus)
        for variant in proto.variants:
            assert variant.source and all(a in AU_NAMES for a in variant.aus)
    assert EMFACS_PROTOTYPES["happiness"].aus == (6, 12)
    assert EMFACS_PROTOTYPES["anger"].aus == (4, 5, 7, 23)


@pytest.mark.parametrize("name", IEMOCAP_CLASSES + MOSEI_CLASSES)
def test_every_dataset_class_has_a_mapping(name):
    mapping = label_mapping(name)
    assert mapping.status in ("direct", "approximate", "none")
    proto = prototype_for(name)
    assert (proto is None) == (mapping.status == "none")


@pytest.mark.parametrize(
    "name, emotion, status",
    [("ang", "anger", "direct"), ("hap", "happiness", "direct"), ("sad", "sadness", "direct"),
     ("exc", "happiness", "approximate"), ("fru", None, "none"), ("neu", None, "none"),
     ("happy", "happiness", "direct"), ("surprise", "surprise", "direct"), ("Disgust", "disgust", "direct")],
)
def test_label_mappings(name, emotion, status):
    mapping = label_mapping(name)
    assert (mapping.emotion, mapping.status) == (emotion, status)
    if status == "none":
        assert "no FACS prototype" in mapping.note


def test_exc_prototype_is_marked_approximate():
    proto = prototype_for("exc")
    assert proto.emotion == "happiness" and "approximate" in proto.note and "not ground truth" in proto.note
    assert "approximate" not in prototype_for("hap").note


def test_unknown_class_has_no_prototype():
    assert prototype_for("bored") is None
    assert label_mapping("bored").status == "unknown"


def test_prototype_regions_for_happiness_and_none():
    regions = facs_regions(default_landmarks(SIZE), SIZE)
    names = {r.name for r in prototype_regions("hap", regions)}
    assert {"lip_corner_l", "lip_corner_r", "cheek_l", "crows_feet_r"} <= names
    assert "forehead" not in names and "chin" not in names
    assert prototype_regions("neu", regions) == []


# --- statistics ---------------------------------------------------------------------------------------

def _whole_crop_region(regions):
    region = regions[0]
    return dataclasses.replace(region, name="all", mask=np.ones_like(region.mask))


@pytest.mark.parametrize("grid", [24, 12, 6])
def test_region_stats_mass_of_whole_crop_is_one(grid):
    rng = np.random.default_rng(grid)
    att = rng.random((grid, grid))
    att /= att.sum()
    kept = att > np.median(att)
    regions = facs_regions(default_landmarks(SIZE), SIZE)
    rows = region_stats([_whole_crop_region(regions)] + regions, att, kept)
    whole = rows[0]
    assert whole["attention_mass"] == pytest.approx(1.0)
    assert whole["attention_share"] == pytest.approx(1.0) and whole["lift"] == pytest.approx(1.0)
    assert whole["kept_fraction"] == pytest.approx(kept.mean())
    for row in rows[1:]:
        assert 0.0 <= row["attention_mass"] <= 1.0 + 1e-9
        assert 0.0 <= row["kept_fraction"] <= 1.0


def test_region_stats_spreads_cell_mass_over_pixels():
    regions = facs_regions(default_landmarks(SIZE), SIZE)
    att = np.zeros((6, 6))
    att[0, 0] = 1.0                     # one 8×8 cell at the top-left corner
    half = _whole_crop_region(regions)
    half.mask = np.zeros((SIZE, SIZE), bool)
    half.mask[:4, :8] = True            # half of that cell
    (row,) = region_stats([half], att, None)
    assert row["attention_mass"] == pytest.approx(0.5)
    assert row["kept_fraction"] is None
    assert row["area_share"] == pytest.approx(32 / SIZE**2)


def test_uniform_attention_has_lift_one():
    regions = facs_regions(default_landmarks(SIZE), SIZE)
    att = np.full((24, 24), 1 / 576)
    for row in region_stats(regions, att):
        assert row["attention_share"] == pytest.approx(row["area_share"])
        assert row["lift"] == pytest.approx(1.0)


def test_region_stats_errors():
    regions = facs_regions(default_landmarks(SIZE), SIZE)
    with pytest.raises(ValueError):
        region_stats(regions, np.zeros((5, 5)))
    with pytest.raises(ValueError):
        region_stats(regions, np.full((6, 6), -1.0))
    with pytest.raises(ValueError):
        region_stats(regions, np.zeros((6, 6)), np.zeros((6, 6), np.float32))


def test_region_stats_table_has_layer_column():
    regions = facs_regions(default_landmarks(SIZE), SIZE)
    layers = [(f"block{i}", np.full((g, g), 1 / g**2), np.ones((g, g), bool)) for i, g in enumerate((24, 12, 6), 1)]
    table = region_stats_table(regions, layers)
    assert len(table) == 3 * len(regions)
    assert {row["layer"] for row in table} == {"block1", "block2", "block3"}


def test_prototype_attention_share():
    regions = facs_regions(default_landmarks(SIZE), SIZE)
    chosen = prototype_regions("hap", regions)
    union = np.logical_or.reduce([r.mask for r in chosen])
    # all attention on pixels of the prototype union → share 1, lift = 1 / area share
    att = union.astype(np.float64) / union.sum()
    result = prototype_attention_share(regions, att, "hap")
    assert result["attention_share"] == pytest.approx(1.0)
    assert result["area_share"] == pytest.approx(union.mean())
    assert result["lift"] == pytest.approx(1.0 / union.mean())
    assert result["prototype"] == "6+12" and result["status"] == "direct"
    uniform = prototype_attention_share(regions, np.full((12, 12), 1 / 144), "exc")
    assert uniform["lift"] == pytest.approx(1.0) and uniform["status"] == "approximate"
    none = prototype_attention_share(regions, att, "neu")
    assert none["attention_share"] is None and "no FACS prototype" in none["note"]
