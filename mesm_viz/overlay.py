"""Heat-map overlays on RGB images: the small, strict core every view of the app is built from.

Contracts (pytorch-grad-cam's ``show_cam_on_image`` contract, made explicit and enforced):

* **image**: RGB, shape ``(H, W, 3)``, either ``uint8`` in 0..255 or a float array in ``[0, 1]``.
  Channel order is RGB. BGR input (OpenCV's ``imread`` order) cannot be detected from the values, so
  convert with ``image[..., ::-1]`` before calling. Grayscale ``(H, W)`` and RGBA are rejected.
* **heat**: a float array in ``[0, 1]`` of shape ``(h, w)`` where ``H`` and ``W`` are integer
  multiples of ``h`` and ``w`` (attention grids such as 24×24, 12×12 or 6×6 on a 48×48 crop).
  It is upsampled with **nearest neighbour**, so every grid cell becomes an exact block of pixels and
  the picture never suggests detail finer than the model's cells.
* **output**: always ``uint8`` RGB ``(H, W, 3)``.

Colormaps are small numpy look-up tables (no matplotlib, no OpenCV, hence never BGR), interpolated from
the control points of the matplotlib/Plotly colorscales of the same names.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = [
    "COLORMAPS",
    "apply_colormap",
    "colormap_lut",
    "enlarge",
    "layer_grid",
    "mask_outline",
    "normalize_heat",
    "overlay",
    "overlay_kept",
    "to_float_image",
    "to_uint8_image",
    "upsample_nearest",
]

# Control points (evenly spaced) of the perceptual colormaps, as in Plotly's `plotly.colors.sequential`
# (which samples matplotlib's). Interpolated linearly to a 256-entry table.
_CONTROL_POINTS: dict[str, tuple[str, ...]] = {
    "inferno": ("#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06",
                "#f7d13d", "#fcffa4"),
    "viridis": ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
                "#b5de2b", "#fde725"),
    "magma": ("#000004", "#180f3d", "#440f76", "#721f81", "#9e2f7f", "#cd4071", "#f1605d", "#fd9668",
              "#feca8d", "#fcfdbf"),
    "plasma": ("#0d0887", "#46039f", "#7201a8", "#9c179e", "#bd3786", "#d8576b", "#ed7953", "#fb9f3a",
               "#fdca26", "#f0f921"),
    "cividis": ("#00224e", "#123570", "#3b496c", "#575d6d", "#707173", "#8a8678", "#a59c74", "#c3b369",
                "#e1cc55", "#fee838"),
    "turbo": ("#30123b", "#4145ab", "#4675ed", "#39a2fc", "#1bcfd4", "#24eca6", "#61fc6c", "#a4fc3b",
              "#d1e834", "#f3c63a", "#fe9b2d", "#f36315", "#d93806", "#b11901", "#7a0402"),
    "jet": ("#000083", "#003caa", "#05ffff", "#ffff00", "#fa0000", "#800000"),
    "hot": ("#000000", "#e60000", "#ffd200", "#ffffff"),
    "gray": ("#000000", "#ffffff"),
}
COLORMAPS: tuple[str, ...] = tuple(_CONTROL_POINTS)

_RANGE_TOLERANCE = 1e-6  # float round-off allowed outside [0, 1] before an input counts as out of range


def _hex_to_rgb(code: str) -> tuple[int, int, int]:
    code = code.lstrip("#")
    return int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16)


@lru_cache(maxsize=None)
def _lut(name: str, n: int) -> np.ndarray:
    points = np.array([_hex_to_rgb(c) for c in _CONTROL_POINTS[name]], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(points))
    samples = np.linspace(0.0, 1.0, n)
    table = np.stack([np.interp(samples, positions, points[:, k]) for k in range(3)], axis=1)
    table = np.round(table).astype(np.uint8)
    table.setflags(write=False)
    return table


def colormap_lut(name: str = "inferno", n: int = 256) -> np.ndarray:
    """Return the colormap ``name`` as a read-only ``uint8`` RGB table of shape ``(n, 3)``.

    Names: see :data:`COLORMAPS` (append ``"_r"`` for the reversed map, e.g. ``"gray_r"``).
    """
    reverse = name.endswith("_r")
    base = name[:-2] if reverse else name
    if base not in _CONTROL_POINTS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)} (optionally with '_r')")
    if n < 2:
        raise ValueError(f"a colormap needs at least 2 entries, got n={n}")
    table = _lut(base, int(n))
    return table[::-1] if reverse else table


def apply_colormap(values: np.ndarray, colormap: str = "inferno") -> np.ndarray:
    """Map floats in ``[0, 1]`` of any shape ``(...)`` to ``uint8`` RGB of shape ``(..., 3)``."""
    values = _check_unit_float(values, "values")
    table = colormap_lut(colormap)
    index = np.clip(np.rint(values * (len(table) - 1)), 0, len(table) - 1).astype(np.intp)
    return table[index]


# --- validation ---------------------------------------------------------------------------------------

def _check_unit_float(array: np.ndarray, what: str) -> np.ndarray:
    """Float array with finite values in [0, 1] (clipped after a round-off tolerance) → float32."""
    array = np.asarray(array)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"{what} must be a float array with values in [0, 1], got dtype {array.dtype}"
            + (" (uint8 heat maps are ambiguous: divide by 255 or use normalize_heat)"
               if array.dtype == np.uint8 else "")
        )
    if array.size and not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or infinite values")
    if array.size:
        low, high = float(array.min()), float(array.max())
        if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
            raise ValueError(
                f"{what} must lie in [0, 1], got range [{low:.4g}, {high:.4g}] "
                "(scale it first, e.g. with normalize_heat)"
            )
    return np.clip(array.astype(np.float32, copy=False), 0.0, 1.0)


def to_float_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate an RGB image and return it as ``float32`` in ``[0, 1]``, shape ``(H, W, 3)``.

    Accepts ``uint8`` (0..255) or float in ``[0, 1]``. Raises ``TypeError`` for other dtypes and
    ``ValueError`` for a wrong shape, NaN/inf or floats outside ``[0, 1]``. Channel order is assumed RGB.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must be an RGB array of shape (H, W, 3), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{what} is empty (shape {image.shape})")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError(f"{what} contains NaN or infinite values")
        low, high = float(image.min()), float(image.max())
        if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
            raise ValueError(
                f"float {what} must lie in [0, 1], got range [{low:.4g}, {high:.4g}] "
                "(pass uint8 for 0..255 images)"
            )
        return np.clip(image.astype(np.float32), 0.0, 1.0)
    raise TypeError(f"{what} must be uint8 (0..255) or float in [0, 1], got dtype {image.dtype}")


def to_uint8_image(image: np.ndarray) -> np.ndarray:
    """Validated RGB image (uint8 or float in [0, 1]) → ``uint8`` ``(H, W, 3)``."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        to_float_image(image)  # shape check only
        return image
    return np.rint(to_float_image(image) * 255.0).astype(np.uint8)


def _scale_factors(grid_shape: tuple[int, int], size: tuple[int, int], what: str) -> tuple[int, int]:
    h, w = int(grid_shape[0]), int(grid_shape[1])
    H, W = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"{what} grid is empty (shape {grid_shape})")
    if H % h or W % w:
        raise ValueError(
            f"{what} grid {h}×{w} does not divide the target size {H}×{W}: nearest upsampling needs integer "
            "scale factors so cell boundaries stay exact"
        )
    return H // h, W // w


# --- resampling -----------------------------------------------------------------------------------

def upsample_nearest(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of ``grid`` ``(h, w[, C])`` to ``(H, W[, C])`` (any dtype).

    ``H`` and ``W`` must be integer multiples of ``h`` and ``w``; each cell becomes an exact
    ``(H/h) × (W/w)`` block. Raises ``ValueError`` otherwise.
    """
    grid = np.asarray(grid)
    if grid.ndim not in (2, 3):
        raise ValueError(f"grid must have shape (h, w) or (h, w, C), got {grid.shape}")
    fy, fx = _scale_factors(grid.shape[:2], size, "grid")
    if fy == 1 and fx == 1:
        return grid.copy()
    return np.repeat(np.repeat(grid, fy, axis=0), fx, axis=1)


def enlarge(image: np.ndarray, factor: int | tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour enlargement of ``(H, W[, C])`` by an integer ``factor`` (or ``(fy, fx)``)."""
    image = np.asarray(image)
    fy, fx = (factor, factor) if np.isscalar(factor) else factor
    if int(fy) != fy or int(fx) != fx or fy < 1 or fx < 1:
        raise ValueError(f"enlarge factor must be a positive integer (or a pair), got {factor!r}")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got {image.shape}")
    return upsample_nearest(image, (image.shape[0] * int(fy), image.shape[1] * int(fx)))


def normalize_heat(
    attention: np.ndarray,
    kept: np.ndarray | None = None,
    *,
    mode: str = "max",
) -> np.ndarray:
    """Scale attention maps to ``[0, 1]`` per frame.

    attention: non-negative floats, shape ``(h, w)`` or ``(N, h, w)`` (one map per frame/chunk).
    kept:      optional bool mask of the same shape; cells outside it are set to 0 before scaling
               (e.g. show only the cells the nucleus kept).
    mode:      ``"max"`` divides by each frame's maximum (0 stays 0, so "no attention" stays dark);
               ``"minmax"`` maps each frame's [min, max] over its non-zero cells to [0, 1].
    Frames that are all zero stay all zero. Returns ``float32`` of the input shape.
    """
    att = np.asarray(attention)
    if att.dtype == np.bool_ or not np.issubdtype(att.dtype, np.number):
        raise TypeError(f"attention must be numeric, got dtype {att.dtype}")
    att = att.astype(np.float32)
    if att.ndim not in (2, 3):
        raise ValueError(f"attention must have shape (h, w) or (N, h, w), got {att.shape}")
    if not np.all(np.isfinite(att)):
        raise ValueError("attention contains NaN or infinite values")
    if att.size and att.min() < 0:
        raise ValueError(f"attention must be non-negative, got minimum {float(att.min()):.4g}")
    if kept is not None:
        kept = np.asarray(kept)
        if kept.dtype != np.bool_:
            raise TypeError(f"kept must be a bool mask, got dtype {kept.dtype}")
        if kept.shape != att.shape:
            raise ValueError(f"kept has shape {kept.shape}, attention has shape {att.shape}")
        att = np.where(kept, att, 0.0).astype(np.float32)
    frames = att.reshape(-1, *att.shape[-2:]) if att.ndim == 3 else att[None]
    out = np.zeros_like(frames)
    for i, frame in enumerate(frames):
        peak = float(frame.max()) if frame.size else 0.0
        if peak <= 0.0:
            continue
        if mode == "max":
            out[i] = frame / peak
        elif mode == "minmax":
            support = frame > 0
            low = float(frame[support].min())
            if peak > low:
                out[i] = np.where(support, (frame - low) / (peak - low), 0.0)
            else:
                out[i] = support.astype(np.float32)
        else:
            raise ValueError(f"unknown normalisation mode {mode!r}; use 'max' or 'minmax'")
    return out.reshape(att.shape)


# --- drawing -------------------------------------------------------------------------------------------

def _check_mask(mask: np.ndarray, size: tuple[int, int], what: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"{what} must be a bool array, got dtype {mask.dtype}")
    if mask.ndim != 2:
        raise ValueError(f"{what} must have shape (h, w), got {mask.shape}")
    return upsample_nearest(mask, size)


def overlay(
    image: np.ndarray,
    heat: np.ndarray,
    *,
    alpha: float = 0.5,
    colormap: str = "inferno",
    mask: np.ndarray | None = None,
    alpha_by_heat: bool = False,
) -> np.ndarray:
    """Blend a colour-mapped heat map onto an RGB image.

    image:  RGB ``(H, W, 3)``, ``uint8`` or float in ``[0, 1]`` (see the module contract).
    heat:   float in ``[0, 1]``, shape ``(h, w)`` with ``H % h == 0`` and ``W % w == 0``; upsampled
            nearest-neighbour. ``uint8`` heat raises ``TypeError`` (0..255 vs 0..1 is ambiguous).
    alpha:  weight of the heat colour, in ``[0, 1]``: ``out = (1 - a) * image + a * colormap(heat)``.
    mask:   optional bool ``(h', w')`` dividing ``(H, W)``; the heat is drawn only where it is True
            (elsewhere the image shows through unchanged), e.g. only the kept cells.
    alpha_by_heat: scale the blend weight per pixel by the heat value (cold cells stay transparent,
            as in Gradio's AnnotatedImage), instead of a uniform ``alpha``.
    Returns ``uint8`` RGB ``(H, W, 3)``.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    base = to_float_image(image)
    heat = _check_unit_float(heat, "heat")
    if heat.ndim != 2:
        raise ValueError(f"heat must have shape (h, w), got {heat.shape}")
    size = base.shape[:2]
    heat_full = upsample_nearest(heat, size)
    colour = apply_colormap(heat_full, colormap).astype(np.float32) / 255.0
    weight = np.full(size, float(alpha), dtype=np.float32)
    if alpha_by_heat:
        weight = weight * heat_full
    if mask is not None:
        weight = weight * _check_mask(mask, size, "mask")
    blended = base * (1.0 - weight[..., None]) + colour * weight[..., None]
    return np.rint(np.clip(blended, 0.0, 1.0) * 255.0).astype(np.uint8)


def mask_outline(mask: np.ndarray, *, thickness: int = 1) -> np.ndarray:
    """Boundary pixels of a bool mask ``(H, W)``: pixels of the mask with a 4-neighbour outside it.

    Pixels on the image border count as boundary. ``thickness`` > 1 erodes repeatedly (thicker line,
    drawn inside the mask). Returns bool ``(H, W)``.
    """
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D bool array, got dtype {mask.dtype} shape {mask.shape}")
    interior = mask.copy()
    for _ in range(max(1, int(thickness))):
        padded = np.pad(interior, 1, constant_values=False)
        interior = (
            interior & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        )
    return mask & ~interior


def overlay_kept(
    image: np.ndarray,
    kept: np.ndarray,
    *,
    color: tuple[int, int, int] = (0, 220, 255),
    tint: float = 0.35,
    dim_dropped: float = 0.55,
    outline: bool = True,
    outline_thickness: int = 1,
) -> np.ndarray:
    """Show which cells the nucleus kept: kept cells tinted (and outlined), dropped cells dimmed.

    image: RGB ``(H, W, 3)`` uint8 or float in [0, 1].
    kept:  bool ``(h, w)`` with ``H % h == 0`` and ``W % w == 0`` (upsampled nearest).
    color: RGB tint of the kept cells (0..255). ``tint``: its blend weight in [0, 1].
    dim_dropped: brightness multiplier in [0, 1] for dropped cells (1 = unchanged).
    outline: draw the boundary of the kept region in ``color``.
    Returns ``uint8`` RGB ``(H, W, 3)``. Draw at display size (``enlarge`` the crop first, the kept grid
    still divides it): on a raw 48×48 crop a 1-pixel outline covers most of a 2×2 cell.
    """
    for name, value in (("tint", tint), ("dim_dropped", dim_dropped)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    base = to_float_image(image)
    kept_full = _check_mask(kept, base.shape[:2], "kept")
    rgb = np.asarray(color, dtype=np.float32).reshape(1, 1, 3) / 255.0
    out = np.where(kept_full[..., None], base * (1.0 - tint) + rgb * tint, base * dim_dropped)
    if outline and kept_full.any():
        edge = mask_outline(kept_full, thickness=outline_thickness)
        out[edge] = rgb[0, 0]
    return np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


def _label_strip(text: str, width: int, height: int, background: tuple[int, int, int]) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont  # pillow is a core dependency; imported lazily

    strip = Image.new("RGB", (width, height), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default()
    ink = (255, 255, 255) if sum(background) < 3 * 128 else (0, 0, 0)
    draw.text((2, max(0, (height - 11) // 2)), text, fill=ink, font=font)
    return np.asarray(strip, dtype=np.uint8)


def layer_grid(
    images: Sequence[np.ndarray] | Sequence[Sequence[np.ndarray]],
    labels: Sequence[str] | Sequence[Sequence[str]] | None = None,
    ncols: int | None = None,
    *,
    pad: int = 2,
    background: tuple[int, int, int] = (24, 24, 24),
    label_height: int = 14,
) -> np.ndarray:
    """Tile equally sized RGB thumbnails into one ``uint8`` image (e.g. sparse layer × frame).

    images: a flat list (tiled row-major with ``ncols`` columns, default: all in one row) or a list of
            rows (``images[layer][frame]``; ``ncols`` is then the longest row). Each tile is RGB
            ``(h, w, 3)`` uint8 or float in [0, 1], all the same size.
    labels: optional, same structure as ``images``; drawn in a strip above each tile.
    Returns ``uint8`` ``(rows*(h+pad+label)+pad, cols*(w+pad)+pad, 3)``; empty cells are background.
    """
    if len(images) == 0:
        raise ValueError("layer_grid needs at least one image")
    nested = not isinstance(images[0], np.ndarray)
    if nested:
        rows = [list(r) for r in images]
        ncols = max(len(r) for r in rows)
        label_rows = [list(r) for r in labels] if labels is not None else None
    else:
        flat = list(images)
        ncols = len(flat) if ncols is None else int(ncols)
        if ncols < 1:
            raise ValueError(f"ncols must be >= 1, got {ncols}")
        rows = [flat[i:i + ncols] for i in range(0, len(flat), ncols)]
        flat_labels = list(labels) if labels is not None else None
        if flat_labels is not None and len(flat_labels) != len(flat):
            raise ValueError(f"{len(flat_labels)} labels for {len(flat)} images")
        label_rows = [flat_labels[i:i + ncols] for i in range(0, len(flat), ncols)] if flat_labels else None
    tiles = [[to_uint8_image(t) for t in row] for row in rows]
    shapes = {t.shape for row in tiles for t in row}
    if len(shapes) != 1:
        raise ValueError(f"layer_grid tiles must all have the same shape, got {sorted(shapes)}")
    h, w, _ = shapes.pop()
    lab_h = label_height if label_rows is not None else 0
    cell_h, cell_w = h + lab_h + pad, w + pad
    canvas = np.empty((len(tiles) * cell_h + pad, ncols * cell_w + pad, 3), dtype=np.uint8)
    canvas[:] = np.asarray(background, dtype=np.uint8)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            y, x = pad + r * cell_h, pad + c * cell_w
            if lab_h:
                try:
                    text = str(label_rows[r][c])
                except IndexError:
                    text = ""
                if text:
                    canvas[y:y + lab_h, x:x + w] = _label_strip(text, w, lab_h, background)
            canvas[y + lab_h:y + lab_h + h, x:x + w] = tile
    return canvas
