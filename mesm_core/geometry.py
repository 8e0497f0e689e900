"""Shared geometry as plain arithmetic (no torch, no model): the encoder's feature-map shapes and the
five-point face frame.

* :func:`encoder_geometry`: the models size their layers with it and the analytic FLOPs count
  (``mesm_core.flops``) walks the same shapes, so both live below the models: ``flops`` needs no
  ``models`` import (docs/architecture.md).
* :class:`FaceFrame`: face coordinates ``(s, t)`` from 5 landmarks (docs/facs.md, "Face frame"), shared by
  the synthetic faces (drawn in it) and the FACS regions of ``mesm_viz.facs`` (read in it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["encoder_geometry", "FaceFrame"]


def encoder_geometry(
    input_hw: tuple[int, int], block_channels: tuple[int, ...], pool_after: tuple[int, ...], stem_channels: int
) -> list[tuple[int, int, int]]:
    """(C, H, W) after the stem (conv + 2×2 max-pool) and after each VGG block, for an input of size
    ``input_hw``; a block in ``pool_after`` halves H and W."""
    h, w = input_hw[0] // 2, input_hw[1] // 2
    shapes = [(stem_channels, h, w)]
    for index, c in enumerate(block_channels):
        if index in pool_after:
            h, w = h // 2, w // 2
        shapes.append((c, h, w))
    return shapes


@dataclass(frozen=True)
class FaceFrame:
    """The five-point face frame of docs/facs.md ("Face frame"), in the pixel units of its landmarks.

    From the 5 MTCNN points ``eye_l, eye_r, nose, mouth_l, mouth_r`` (image-left first)::

        centre = (E_l + E_r) / 2     iod = |E_r - E_l|     u = (E_r - E_l) / iod      (image right)
        v = (-u_y, u_x)              (image down)          height = ((M_l + M_r) / 2 - centre) · v

    and a face coordinate ``(s, t)`` is the pixel ``centre + s·iod·u + t·height·v``: the eyes sit at
    ``(∓0.5, 0)`` and the mouth line at ``t = 1``. The synthetic faces are drawn in it
    (``mesm_core.data.synthetic.faces``) and the FACS regions are read in it (``mesm_viz.facs``).
    """

    centre: np.ndarray   # (2,) midpoint of the eyes (x, y)
    u: np.ndarray        # (2,) unit vector eye_l → eye_r
    v: np.ndarray        # (2,) unit vector perpendicular to u, pointing down the face
    iod: float           # inter-ocular distance (px)
    height: float        # eye line → mouth midpoint along v (px)

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray) -> "FaceFrame":
        """The frame of 5 landmarks ``(5, 2)`` (x, y). Raises ``ValueError`` saying what is wrong with them:
        another shape, NaN/inf (no face detected), eyes in right-to-left order, coinciding eyes, or a
        mouth that is not below the eyes."""
        points = _check_landmarks(landmarks)
        eye_l, eye_r, _, mouth_l, mouth_r = points
        iod = float(np.linalg.norm(eye_r - eye_l))
        if iod < 1e-6:
            raise ValueError("landmarks: the two eyes coincide (inter-ocular distance 0)")
        u = (eye_r - eye_l) / iod
        v = np.array([-u[1], u[0]])
        centre = (eye_l + eye_r) / 2
        height = float(((mouth_l + mouth_r) / 2 - centre) @ v)
        if height <= 1e-6:
            raise ValueError("landmarks: the mouth is not below the eyes in the face frame; expected the MTCNN "
                             "order eye_l, eye_r, nose, mouth_l, mouth_r with image-left points first")
        return cls(centre=centre, u=u, v=v, iod=iod, height=height)

    def to_pixels(self, s: np.ndarray | float, t: np.ndarray | float) -> np.ndarray:
        """Face coordinates ``s``, ``t`` (equal shapes ``(...)``) → pixel points ``(..., 2)`` as (x, y)."""
        s = np.asarray(s, dtype=np.float64)[..., None]
        t = np.asarray(t, dtype=np.float64)[..., None]
        return self.centre + s * self.iod * self.u + t * self.height * self.v

    def to_face(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel points ``(..., 2)`` (x, y) → face coordinates ``(s, t)``, each of shape ``(...)``."""
        points = np.asarray(points, dtype=np.float64)
        # Element-wise, not a matmul: BLAS may fuse multiply-adds, and the synthetic faces' pixels (drawn
        # from these coordinates) must not depend on the BLAS build.
        dx, dy = points[..., 0] - self.centre[0], points[..., 1] - self.centre[1]
        return (dx * self.u[0] + dy * self.u[1]) / self.iod, (dx * self.v[0] + dy * self.v[1]) / self.height


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"landmarks must have shape (5, 2) (x, y per point), got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("landmarks contain NaN or infinite values (no face detected?)")
    if points[0, 0] >= points[1, 0]:
        raise ValueError(f"landmarks: eye_l x={points[0, 0]:.2f} is not left of eye_r x={points[1, 0]:.2f}; "
                         "MTCNN order is image-left first")
    return points
