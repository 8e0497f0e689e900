"""Write visualisations to disk: PNG files and in-memory PNG bytes (for exports and the app's downloads)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from mesm_viz.overlay import to_uint8_image

__all__ = ["png_bytes", "save_png"]


def png_bytes(image: np.ndarray) -> bytes:
    """RGB ``(H, W, 3)`` uint8 or float in [0, 1] → PNG-encoded bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(to_uint8_image(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an RGB image as PNG (atomically: temp file + rename); returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: expected a .png file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(png_bytes(image))
    os.replace(tmp, path)
    return path
