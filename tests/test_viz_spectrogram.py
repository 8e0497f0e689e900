"""Orientation, dB conversion and chunk stitching of mesm_viz.spectrogram."""

import numpy as np
import pytest

from mesm_viz.spectrogram import (
    chunk_attention_to_mel,
    chunk_masks_to_mel,
    frame_times,
    mel_to_db,
    spectrogram_image,
    spectrogram_overlay,
    to_display,
)

N_MELS, CHUNK = 128, 32


def _high_band_mel(T=70):
    """Power only in the top 16 mel bins (natural order: high bins = high row indices)."""
    mel = np.full((N_MELS, T), 1e-8, np.float32)
    mel[-16:] = 1.0
    return mel


def test_mel_to_db_matches_definition():
    mel = np.array([[1.0, 0.1], [0.01, 1e-12]], np.float32)
    db = mel_to_db(mel, top_db=None)
    np.testing.assert_allclose(db, [[0.0, -10.0], [-20.0, -100.0]], atol=1e-4)
    assert mel_to_db(mel, top_db=80.0).min() == pytest.approx(-80.0)
    np.testing.assert_allclose(mel_to_db(mel, ref=0.1, top_db=None)[0, 0], 10.0, atol=1e-4)


def test_mel_to_db_agrees_with_librosa():
    librosa = pytest.importorskip("librosa")
    mel = np.random.default_rng(0).random((16, 20)).astype(np.float32) ** 4
    np.testing.assert_allclose(mel_to_db(mel), librosa.power_to_db(mel, ref=np.max), atol=1e-3)


@pytest.mark.parametrize("bad", [np.full((4, 4), -1.0), np.full((4, 4), np.nan), np.zeros(4), np.zeros((0, 3))])
def test_mel_to_db_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        mel_to_db(bad)


def test_high_mel_bins_show_at_the_top():
    img = spectrogram_image(_high_band_mel(), "gray")
    assert img.shape == (N_MELS, 70, 3) and img.dtype == np.uint8
    assert np.all(img[:16] == 255)        # loud high band: top rows, bright
    assert np.all(img[16:] == 0)          # quiet low bins: bottom rows, dark


def test_to_display_flips_rows_only():
    a = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(to_display(a), a[::-1])


def test_chunk_masks_stitch_and_trim():
    T = 70                                 # 3 chunks: 32 + 32 + 6 real frames
    grids = np.zeros((3, 64, 16), bool)
    grids[0, 0, 0] = True                  # chunk 0, lowest mel cell, first time cell
    grids[2, 63, 2] = True                 # chunk 2, highest mel cell, frames 4..5 of chunk 2
    grids[2, :, 5] = True                  # frames 10..11 of chunk 2: in the trimmed tail
    out = chunk_masks_to_mel(grids, T)
    assert out.shape == (N_MELS, T) and out.dtype == np.bool_
    expected = np.zeros((N_MELS, T), bool)
    expected[0:2, 0:2] = True
    expected[126:128, 64 + 4:64 + 6] = True
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("grid", [(64, 16), (32, 8), (16, 4)])
def test_chunk_grids_of_every_block(grid):
    grids = np.zeros((2, *grid), np.float32)
    grids[1, 0, 0] = 0.7
    out = chunk_attention_to_mel(grids, 40)
    fy, fx = N_MELS // grid[0], CHUNK // grid[1]
    assert out.dtype == np.float32 and out.shape == (N_MELS, 40)
    np.testing.assert_array_equal(np.argwhere(out > 0).min(0), [0, CHUNK])
    assert (out > 0).sum() == fy * min(fx, 40 - CHUNK)


@pytest.mark.parametrize("n_chunks, T", [(2, 70), (4, 70), (3, 0)])
def test_chunk_count_must_match_mel_length(n_chunks, T):
    with pytest.raises(ValueError):
        chunk_masks_to_mel(np.zeros((n_chunks, 64, 16), bool), T)


def test_chunk_grid_must_divide_chunk():
    with pytest.raises(ValueError):
        chunk_masks_to_mel(np.zeros((1, 60, 16), bool), 20)


def test_mask_on_chunk0_lands_left_and_low_bins_bottom():
    T = 96
    grids = np.zeros((3, 16, 4), bool)
    grids[0, :2] = True                    # chunk 0, the two lowest mel cells (bins 0..15)
    mask = chunk_masks_to_mel(grids, T)
    mel = np.ones((N_MELS, T), np.float32)
    img = spectrogram_overlay(mel, mask, colormap="gray", mask_color=(255, 0, 0))
    assert img.shape == (N_MELS, T, 3)
    tinted = img[..., 0].astype(int) - img[..., 2].astype(int) > 30
    rows, cols = np.nonzero(tinted)
    assert cols.max() < CHUNK                # left: first chunk only
    assert rows.min() >= N_MELS - 16         # bottom rows: low mel bins


def test_heat_overlay_flips_like_the_spectrogram():
    T = 64
    mel = _high_band_mel(T)
    heat = np.zeros((N_MELS, T), np.float32)
    heat[-16:] = 1.0                        # heat exactly on the loud high band
    img = spectrogram_overlay(mel, heat, colormap="gray", heat_colormap="viridis", alpha=1.0)
    assert np.all(img[16:] == 0)            # no heat over the dark low band (alpha scales with heat)
    assert np.all(img[:16] != 255)          # the top band is coloured by the heat map
    with pytest.raises(ValueError):
        spectrogram_overlay(mel, heat * 2.0)


def test_frame_times():
    np.testing.assert_allclose(frame_times(3), [0.0, 0.0125, 0.025])
