"""Pictures of the studio's figures served by URL, so that a figure sent again does not carry them again.

A figure redrawn on a slider move keeps its p-independent pictures (the 48×48 face crop, the coloured
spectrograms): as ``data:`` URIs they would travel, and be decoded by the browser, on every move. Here each
picture is written once, named by its content hash, into one folder the app serves
(``launch(allowed_paths=[image_store.folder()])``), and the figure refers to it by URL; the browser fetches
it once and keeps it. The folder is a temporary one per process; the oldest files go beyond ``keep``.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from mesm_viz.overlay import to_uint8_image

__all__ = ["ImageStore", "folder", "image_url"]

URL_PREFIX = "/gradio_api/file="


class ImageStore:
    """Content-addressed picture files in ``folder`` and the URLs the app serves them at."""

    def __init__(self, folder: str | Path | None = None, keep: int = 4096) -> None:
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="mesm_studio_pictures_"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self.files: OrderedDict[str, Path] = OrderedDict()
        self.lock = threading.Lock()

    def url(self, image: np.ndarray, kind: str = "png", quality: int = 90) -> str:
        """The URL of an RGB (H, W, 3) or RGBA (H, W, 4) picture (uint8, or float in [0, 1] for RGB)."""
        from PIL import Image

        pixels = np.ascontiguousarray(image if image.dtype == np.uint8 else to_uint8_image(image))
        digest = hashlib.sha1(pixels.tobytes() + str(pixels.shape).encode() + kind.encode()).hexdigest()[:20]
        name = f"{digest}.{'jpg' if kind == 'jpeg' else 'png'}"
        with self.lock:
            path = self.files.get(name)
            if path is not None:
                self.files.move_to_end(name)
                return URL_PREFIX + str(path)
        path = self.folder / name
        picture = Image.fromarray(pixels)
        tmp = path.with_suffix(".part")
        if kind == "jpeg":
            picture.convert("RGB").save(tmp, format="JPEG", quality=quality)
        else:
            picture.save(tmp, format="PNG", compress_level=1)
        tmp.replace(path)
        with self.lock:
            self.files[name] = path
            stale = [self.files.popitem(last=False)[1] for _ in range(max(0, len(self.files) - self.keep))]
        for old in stale:
            old.unlink(missing_ok=True)
        return URL_PREFIX + str(path)


_DEFAULT: ImageStore | None = None
_DEFAULT_LOCK = threading.Lock()


def _default() -> ImageStore:
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = ImageStore()
        return _DEFAULT


def folder() -> Path:
    """The process's picture folder (for the app's ``allowed_paths``)."""
    return _default().folder


def image_url(image: np.ndarray, kind: str = "png", quality: int = 90) -> str:
    """:meth:`ImageStore.url` of the process's store."""
    return _default().url(image, kind, quality)
