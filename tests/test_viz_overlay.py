"""Contracts of mesm_viz.overlay: dtype/range/shape errors, nearest upsampling, kept views, grids."""

import numpy as np
import pytest

from mesm_viz.overlay import (
    COLORMAPS,
    apply_colormap,
    colormap_lut,
    enlarge,
    layer_grid,
    mask_outline,
    normalize_heat,
    overlay,
    overlay_kept,
    to_float_image,
    upsample_nearest,
)


def _image(size=48, dtype=np.uint8):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    return img if dtype == np.uint8 else (img / 255.0).astype(dtype)


@pytest.mark.parametrize("grid", [24, 12, 6])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_overlay_output_contract(grid, dtype):
    heat = np.random.default_rng(1).random((grid, grid)).astype(np.float32)
    out = overlay(_image(dtype=dtype), heat)
    assert out.dtype == np.uint8 and out.shape == (48, 48, 3)


@pytest.mark.parametrize(
    "heat, error",
    [
        (np.full((6, 6), 128, np.uint8), TypeError),          # uint8 heat is ambiguous
        (np.ones((6, 6), bool), TypeError),
        (np.full((6, 6), 1.5, np.float32), ValueError),       # above 1
        (np.full((6, 6), -0.2, np.float32), ValueError),      # below 0
        (np.full((6, 6), np.nan, np.float32), ValueError),
        (np.zeros((5, 5), np.float32), ValueError),           # 48 is not a multiple of 5
        (np.zeros((6, 6, 1), np.float32), ValueError),        # not 2-D
        (np.zeros((96, 96), np.float32), ValueError),         # larger than the image
    ],
)
def test_overlay_rejects_bad_heat(heat, error):
    with pytest.raises(error):
        overlay(_image(), heat)


@pytest.mark.parametrize(
    "image, error",
    [
        (np.full((48, 48, 3), 2.0, np.float32), ValueError),   # float outside [0, 1] (0..255 floats)
        (np.full((48, 48, 3), np.nan, np.float32), ValueError),
        (np.zeros((48, 48, 3), np.int64), TypeError),
        (np.zeros((48, 48, 3), np.uint16), TypeError),
        (np.zeros((48, 48), np.uint8), ValueError),            # grayscale
        (np.zeros((48, 48, 4), np.uint8), ValueError),         # RGBA
        (np.zeros((3, 48, 48), np.uint8), ValueError),         # CHW
    ],
)
def test_overlay_rejects_bad_image(image, error):
    with pytest.raises(error):
        overlay(image, np.zeros((6, 6), np.float32))


def test_overlay_rejects_bad_alpha():
    with pytest.raises(ValueError):
        overlay(_image(), np.zeros((6, 6), np.float32), alpha=1.5)


@pytest.mark.parametrize("grid, cell", [(24, 2), (12, 4), (6, 8)])
def test_single_hot_cell_becomes_exact_block(grid, cell):
    heat = np.zeros((grid, grid), np.float32)
    heat[2, 3] = 1.0
    base = np.zeros((48, 48, 3), np.uint8)
    out = overlay(base, heat, alpha=1.0, colormap="gray")
    hot = np.all(out == 255, axis=-1)
    expected = np.zeros((48, 48), bool)
    expected[2 * cell:3 * cell, 3 * cell:4 * cell] = True
    np.testing.assert_array_equal(hot, expected)
    assert np.all(out[~expected] == 0)


def test_overlay_alpha_zero_returns_image_and_alpha_blends():
    img = _image()
    heat = np.random.default_rng(2).random((12, 12)).astype(np.float32)
    np.testing.assert_array_equal(overlay(img, heat, alpha=0.0), img)
    full = overlay(img, heat, alpha=1.0, colormap="viridis")
    np.testing.assert_array_equal(full, apply_colormap(upsample_nearest(heat, (48, 48)), "viridis"))


def test_overlay_mask_limits_heat_to_kept_cells():
    img = _image()
    heat = np.ones((6, 6), np.float32)
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = True
    out = overlay(img, heat, alpha=1.0, mask=mask)
    np.testing.assert_array_equal(out[8:, 8:], img[8:, 8:])
    assert not np.array_equal(out[:8, :8], img[:8, :8])


def test_overlay_alpha_by_heat_keeps_cold_cells_transparent():
    img = _image()
    heat = np.zeros((6, 6), np.float32)
    heat[1, 1] = 1.0
    out = overlay(img, heat, alpha=1.0, alpha_by_heat=True)
    np.testing.assert_array_equal(out[16:], img[16:])


def test_float_image_equals_uint8_image():
    img = _image()
    heat = np.random.default_rng(3).random((24, 24)).astype(np.float32)
    np.testing.assert_array_equal(overlay(img, heat), overlay(img / 255.0, heat))


@pytest.mark.parametrize("name", COLORMAPS)
def test_colormaps_are_rgb_luts(name):
    lut = colormap_lut(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    np.testing.assert_array_equal(colormap_lut(name + "_r"), lut[::-1])


def test_inferno_is_rgb_not_bgr():
    lut = colormap_lut("inferno")
    top = lut[-1]  # pale yellow: red and green high, blue lower
    assert top[0] > top[2] and top[1] > top[2]
    np.testing.assert_array_equal(lut[0], [0, 0, 4])


def test_unknown_colormap():
    with pytest.raises(ValueError, match="unknown colormap"):
        colormap_lut("rainbow-bgr")


def test_upsample_nearest_blocks_and_errors():
    grid = np.arange(6).reshape(2, 3)
    up = upsample_nearest(grid, (4, 9))
    assert up.shape == (4, 9)
    np.testing.assert_array_equal(up[:2, :3], np.zeros((2, 3)))
    np.testing.assert_array_equal(up[2:, 6:], np.full((2, 3), 5))
    rgb = upsample_nearest(np.zeros((2, 2, 3), np.uint8), (4, 4))
    assert rgb.shape == (4, 4, 3)
    with pytest.raises(ValueError, match="does not divide"):
        upsample_nearest(grid, (5, 9))


def test_enlarge():
    img = _image(4)
    big = enlarge(img, 8)
    assert big.shape == (32, 32, 3) and big.dtype == np.uint8
    np.testing.assert_array_equal(big[::8, ::8], img)
    assert enlarge(np.zeros((2, 3), bool), (2, 3)).shape == (4, 9)
    with pytest.raises(ValueError):
        enlarge(img, 1.5)
    with pytest.raises(ValueError):
        enlarge(img, 0)


def test_normalize_heat_per_frame():
    att = np.zeros((2, 4, 4), np.float32)
    att[0, 0, 0], att[0, 1, 1] = 0.2, 0.1
    out = normalize_heat(att)  # second frame all zero stays zero
    assert out.dtype == np.float32 and out.shape == att.shape
    assert out[0].max() == pytest.approx(1.0) and out[0, 1, 1] == pytest.approx(0.5)
    assert np.all(out[1] == 0)
    kept = np.zeros_like(att, bool)
    kept[0, 1, 1] = True
    only_kept = normalize_heat(att, kept)
    assert only_kept[0, 1, 1] == pytest.approx(1.0) and only_kept[0, 0, 0] == 0
    mm = normalize_heat(att[0], mode="minmax")
    assert mm[0, 0] == pytest.approx(1.0) and mm[1, 1] == pytest.approx(0.0)


@pytest.mark.parametrize("bad, error", [(np.full((3, 3), -1.0), ValueError), (np.full((3, 3), np.nan), ValueError),
                                        (np.zeros(5), ValueError)])
def test_normalize_heat_errors(bad, error):
    with pytest.raises(error):
        normalize_heat(bad)


def test_mask_outline():
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    edge = mask_outline(mask)
    assert edge.sum() == 12  # 4×4 square: 16 pixels minus the 2×2 interior
    assert not edge[3:5, 3:5].any() and edge[2, 2:6].all()
    assert not mask_outline(np.zeros((4, 4), bool)).any()


def test_overlay_kept_tints_kept_and_dims_dropped():
    img = np.full((48, 48, 3), 200, np.uint8)
    kept = np.zeros((6, 6), bool)
    kept[0, 0] = True
    out = overlay_kept(img, kept, color=(255, 0, 0), outline=True)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])          # outline pixel
    assert out[4, 4, 0] > out[4, 4, 2]                               # tinted interior
    np.testing.assert_array_equal(out[20, 20], np.rint(np.full(3, 200 * 0.55)))  # dimmed
    with pytest.raises(ValueError):
        overlay_kept(img, np.zeros((5, 5), bool))
    with pytest.raises(TypeError):
        overlay_kept(img, np.zeros((6, 6), np.float32))


@pytest.mark.parametrize("with_labels", [False, True])
def test_layer_grid_nested_and_flat(with_labels):
    tiles = [[np.full((8, 8, 3), 10 * (r * 3 + c), np.uint8) for c in range(3)] for r in range(2)]
    labels = [[f"L{r} F{c}" for c in range(3)] for r in range(2)] if with_labels else None
    grid = layer_grid(tiles, labels, pad=2)
    lab = 14 if with_labels else 0
    assert grid.dtype == np.uint8
    assert grid.shape == (2 * (8 + lab + 2) + 2, 3 * (8 + 2) + 2, 3)
    y, x = 2 + (8 + lab + 2) + lab, 2 + 2 * 10      # tile (1, 2)
    np.testing.assert_array_equal(grid[y:y + 8, x:x + 8], tiles[1][2])
    flat = layer_grid([t for row in tiles for t in row], ncols=3, pad=2)
    assert flat.shape == layer_grid(tiles, pad=2).shape
    with pytest.raises(ValueError):
        layer_grid([np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)])


def test_to_float_image_accepts_tiny_roundoff():
    img = np.full((2, 2, 3), 1.0 + 1e-8, np.float64)
    assert to_float_image(img).max() == 1.0


def test_package_keeps_submodules_importable():
    import mesm_viz
    import mesm_viz.overlay as overlay_module

    assert mesm_viz.overlay is overlay_module and callable(overlay_module.overlay)


def test_save_png_round_trip(tmp_path):
    from PIL import Image

    from mesm_viz.report import save_png

    img = _image(8)
    path = save_png(img / 255.0, tmp_path / "sub" / "x.png")
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), img)
    assert not list(path.parent.glob(".*.tmp"))
    with pytest.raises(ValueError):
        save_png(img, tmp_path / "x.jpg")
