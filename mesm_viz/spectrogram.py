"""Mel-spectrogram views: dB conversion, images, and chunk-grid masks/attention stitched onto the mel axis.

Orientation — two conventions, kept strictly apart:

* **Natural (data) order**: every array *input* here is ``(n_mels, T)`` with row 0 = the LOWEST mel bin
  and column 0 = the first frame, exactly as ``ClipRecord.mel`` and the model's chunk grids store it
  (chunk grids: rows = mel axis from low to high, columns = time).
* **Display order**: every *image* returned here (``spectrogram_image``, ``spectrogram_overlay``) is
  flipped vertically so that row 0 is the HIGHEST mel bin and low frequencies are at the bottom, like a
  spectrogram plotted with ``origin="lower"``. Time still runs left → right.

Flip with :func:`to_display` in one place only; the Plotly heatmap in ``figures.mel_figure`` takes the
natural order (Plotly draws ``z[0]`` at the bottom).

Mel frames: hop 200 samples at 16 kHz = 12.5 ms per frame; a chunk is 32 frames = 400 ms
(DataConfig defaults).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mesm_viz.overlay import apply_colormap, mask_outline, overlay, overlay_kept, upsample_nearest

__all__ = [
    "chunk_attention_to_mel",
    "chunk_masks_to_mel",
    "frame_times",
    "mel_bin_of_hz",
    "mel_to_db",
    "spectrogram_image",
    "spectrogram_overlay",
    "to_display",
]


def _check_mel(mel: np.ndarray, what: str = "mel") -> np.ndarray:
    mel = np.asarray(mel)
    if mel.ndim != 2 or mel.shape[0] == 0 or mel.shape[1] == 0:
        raise ValueError(f"{what} must have shape (n_mels, T) with both > 0, got {mel.shape}")
    if mel.dtype == np.bool_ or not np.issubdtype(mel.dtype, np.number):
        raise TypeError(f"{what} must be numeric, got dtype {mel.dtype}")
    if not np.all(np.isfinite(mel)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return mel


def mel_to_db(
    mel: np.ndarray,
    ref: float | Callable[[np.ndarray], float] = np.max,
    top_db: float | None = 80.0,
    amin: float = 1e-10,
) -> np.ndarray:
    """Power mel spectrogram ``(n_mels, T)`` → decibels ``10·log10(max(amin, S) / ref)``.

    Same definition as ``librosa.power_to_db``: ``ref`` is a number or a function of the array
    (default: its maximum, so the loudest bin is 0 dB); values below ``max - top_db`` are clamped
    (``top_db=None`` disables). Input must be non-negative power (not already dB). Returns float32.
    """
    mel = _check_mel(mel).astype(np.float64)
    if mel.min() < 0:
        raise ValueError(f"mel must be a non-negative power spectrogram, got minimum {mel.min():.4g} (already dB?)")
    if amin <= 0:
        raise ValueError(f"amin must be positive, got {amin}")
    ref_value = float(ref(mel)) if callable(ref) else float(ref)
    db = 10.0 * np.log10(np.maximum(amin, mel)) - 10.0 * np.log10(max(amin, abs(ref_value)))
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db must be non-negative, got {top_db}")
        db = np.maximum(db, db.max() - top_db)
    return db.astype(np.float32)


def to_display(array: np.ndarray) -> np.ndarray:
    """Natural order ``(n_mels, T[, C])`` (row 0 = lowest mel) → display order (row 0 = highest mel)."""
    return np.asarray(array)[::-1].copy()


def frame_times(n_frames: int, hop_length: int = 200, sample_rate: int = 16000) -> np.ndarray:
    """Start time in seconds of each mel frame, ``(n_frames,)`` float64."""
    return np.arange(int(n_frames)) * (hop_length / float(sample_rate))


def mel_bin_of_hz(hz: float, n_mels: int = 128, fmax: float = 8000.0) -> float:
    """Position on the mel-bin axis (0 = lowest filter's centre, natural order) of a frequency in Hz.

    The data pipeline's filter bank is HTK mel from 0 Hz to ``fmax`` (``librosa`` ``htk=True``): filter i
    is centred at the (i + 1)-th of ``n_mels + 2`` points evenly spaced in mel, ``mel = 2595·log10(1 + f/700)``.
    """
    def mel(f: float) -> float:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    return float(mel(hz) / mel(fmax) * (n_mels + 1) - 1)


def spectrogram_image(
    mel: np.ndarray,
    colormap: str = "magma",
    *,
    is_db: bool = False,
    top_db: float = 80.0,
) -> np.ndarray:
    """Colour image of a mel spectrogram, ``uint8`` RGB ``(n_mels, T, 3)`` in DISPLAY order.

    mel: ``(n_mels, T)`` natural order (row 0 = lowest mel bin); power unless ``is_db``.
    The dB range ``[max - top_db, max]`` maps to the colormap; row 0 of the result is the highest mel bin.
    """
    db = _check_mel(mel).astype(np.float32) if is_db else mel_to_db(mel, top_db=top_db)
    high = float(db.max())
    low = max(float(db.min()), high - top_db)
    scaled = np.zeros_like(db) if high <= low else np.clip((db - low) / (high - low), 0.0, 1.0)
    return to_display(apply_colormap(scaled, colormap))


def chunk_masks_to_mel(
    grids: np.ndarray,
    n_frames: int,
    n_mels: int = 128,
    chunk_frames: int = 32,
) -> np.ndarray:
    """Stitch per-chunk grids into one ``(n_mels, n_frames)`` map in natural order.

    grids: ``(n_chunks, h, w)`` (bool masks or float attention), rows = mel axis from low to high,
           columns = time, e.g. 64×16, 32×8 or 16×4 for 128×32 chunks. Each grid is upsampled
           nearest-neighbour to ``(n_mels, chunk_frames)``, chunks are concatenated along time and the
           zero-padded tail of the last chunk is trimmed to ``n_frames`` (the mel length T).
    ``n_chunks`` must equal ``ceil(n_frames / chunk_frames)`` (how ``mel_chunks`` cuts the mel).
    Returns the input dtype, shape ``(n_mels, n_frames)``. Values are not rescaled: for attention,
    each cell's value is repeated over its pixels (use ``normalize_heat`` first for display).
    """
    grids = np.asarray(grids)
    if grids.ndim != 3:
        raise ValueError(f"grids must have shape (n_chunks, h, w), got {grids.shape}")
    n_chunks = grids.shape[0]
    expected = -(-int(n_frames) // int(chunk_frames))
    if n_frames <= 0 or n_chunks != expected:
        raise ValueError(
            f"{n_chunks} chunks of {chunk_frames} frames do not match a mel of T={n_frames} frames "
            f"(expected ceil(T/{chunk_frames}) = {expected} chunks)"
        )
    pieces = [upsample_nearest(grid, (n_mels, chunk_frames)) for grid in grids]
    return np.concatenate(pieces, axis=1)[:, : int(n_frames)]


chunk_attention_to_mel = chunk_masks_to_mel  # same stitching for float attention grids


def spectrogram_overlay(
    mel: np.ndarray,
    heat_or_mask: np.ndarray,
    *,
    colormap: str = "gray",
    heat_colormap: str = "inferno",
    alpha: float = 0.55,
    alpha_by_heat: bool = True,
    mask_color: tuple[int, int, int] = (0, 220, 255),
    outline: bool = False,
    is_db: bool = False,
) -> np.ndarray:
    """Spectrogram with attention or a kept mask on top, ``uint8`` RGB ``(n_mels, T, 3)``, DISPLAY order.

    mel:          ``(n_mels, T)`` natural order (power unless ``is_db``).
    heat_or_mask: natural order, shape ``(n_mels, T)`` or a coarse grid dividing it (e.g. the output of
                  :func:`chunk_masks_to_mel`). Float in [0, 1] → colour-mapped heat (``heat_colormap``);
                  bool → kept cells tinted in ``mask_color``, dropped cells dimmed.
    Both arrays are flipped identically, so a cell over a low-frequency band appears at the bottom.
    ``outline`` draws the boundary of the heat support / mask.
    """
    mel = _check_mel(mel)
    marks = np.asarray(heat_or_mask)
    if marks.ndim != 2:
        raise ValueError(f"heat_or_mask must be 2-D (n_mels, T) in natural order, got {marks.shape}")
    base = spectrogram_image(mel, colormap, is_db=is_db)  # display order already
    marks_display = to_display(marks)
    if marks.dtype == np.bool_:
        return overlay_kept(base, marks_display, color=mask_color, outline=outline)
    out = overlay(base, marks_display, alpha=alpha, colormap=heat_colormap, alpha_by_heat=alpha_by_heat)
    if outline:
        support = upsample_nearest(marks_display > 0, base.shape[:2])
        out[mask_outline(support)] = np.asarray(mask_color, dtype=np.uint8)
    return out
