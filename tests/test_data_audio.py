"""Audio: the reference mel spectrogram (checked against an independent numpy implementation of
torchaudio's MelSpectrogram defaults), chunking, decoding windows/channels, silence."""

from __future__ import annotations

import numpy as np
import pytest

from mesm_core.config import DataConfig
from mesm_core.data.audio import load_audio, mel_chunks, melspectrogram


def torchaudio_style_mel(y: np.ndarray, sr=16000, n_fft=400, hop=200, n_mels=128) -> np.ndarray:
    """torchaudio.transforms.MelSpectrogram(sample_rate=sr) written out in numpy (float64):
    periodic Hann, center=True reflect pad, |rfft|², HTK mel filterbank without normalisation."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.pad(y.astype(np.float64), n_fft // 2, mode="reflect")
    n_frames = 1 + len(y) // hop
    frames = np.stack([padded[t * hop:t * hop + n_fft] for t in range(n_frames)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2          # (T, n_freqs)
    all_freqs = np.linspace(0, sr // 2, n_fft // 2 + 1)
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)         # noqa: E731
    mel_to_hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)           # noqa: E731
    f_pts = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    filterbank = np.maximum(0.0, np.minimum(down, up))                  # (n_freqs, n_mels)
    return (power @ filterbank).T                                        # (n_mels, T)


@pytest.mark.parametrize("n_samples", [201, 3200, 16000 + 77])
def test_mel_matches_torchaudio_formula(media, n_samples):
    rng = np.random.default_rng(n_samples)
    y = (0.1 * rng.standard_normal(n_samples) + media.tone(n_samples / 16000, freq=700)[:n_samples]).astype(np.float32)
    ours = melspectrogram(y, DataConfig())
    reference = torchaudio_style_mel(y)
    assert ours.dtype == np.float32
    assert ours.shape == (128, 1 + n_samples // 200)
    np.testing.assert_allclose(ours, reference, rtol=2e-4, atol=1e-5 * reference.max())


def test_mel_is_power_not_log(media):
    quiet, loud = media.tone(0.5, amplitude=0.1), media.tone(0.5, amplitude=0.2)
    ratio = melspectrogram(loud).sum() / melspectrogram(quiet).sum()
    assert ratio == pytest.approx(4.0, rel=1e-3)  # power 2: doubling amplitude → ×4


def test_mel_empty_and_very_short_audio():
    assert melspectrogram(np.zeros(0, np.float32)).shape == (128, 0)
    assert melspectrogram(np.ones(10, np.float32) * 0.1).shape == (128, 1)


@pytest.mark.parametrize("n_frames,expected_chunks", [(0, 0), (1, 1), (32, 1), (33, 2), (70, 3)])
def test_mel_chunks_shapes_and_zero_padded_tail(n_frames, expected_chunks):
    mel = np.arange(128 * n_frames, dtype=np.float32).reshape(128, n_frames) + 1
    chunks = mel_chunks(mel, 32)
    assert chunks.shape == (expected_chunks, 1, 128, 32)
    assert chunks.dtype == np.float32
    if n_frames:
        rebuilt = np.concatenate(list(chunks[:, 0]), axis=1)
        np.testing.assert_array_equal(rebuilt[:, :n_frames], mel)
        assert np.all(rebuilt[:, n_frames:] == 0)


def test_load_audio_window_and_channel(media, tmp_path):
    left = media.tone(2.0, freq=300)
    right = np.zeros_like(left)
    path = media.write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1))
    full = load_audio(path)
    assert full.source_channels == 2 and len(full.samples) == 32000
    np.testing.assert_allclose(full.samples, left / 2, atol=1e-4)  # mono = channel mean
    window = load_audio(path, channel=0, start=0.25, end=1.0)
    assert len(window.samples) == int(16000 * 1.0) - int(16000 * 0.25)
    np.testing.assert_allclose(window.samples, left[4000:16000], atol=1e-4)
    assert load_audio(path, channel=1).silent
    assert not load_audio(path, channel=0).silent


def test_load_audio_resamples_to_16k(media, tmp_path):
    path = media.write_wav(tmp_path / "a22.wav", media.tone(1.0, sample_rate=22050), sample_rate=22050)
    waveform = load_audio(path, sample_rate=16000)
    assert waveform.source_rate == 22050 and waveform.sample_rate == 16000
    assert abs(len(waveform.samples) - 16000) <= 1


def test_audio_from_video_container_matches_the_wav(media, tmp_path):
    signal = np.stack([media.tone(1.5, freq=500), media.tone(1.5, freq=900)])
    video = media.write_video(tmp_path / "v.mkv", 15, fps=10, audio=signal)
    import av

    from mesm_core.data.audio import decode_audio_stream

    with av.open(str(video)) as container:
        waveform = decode_audio_stream(container, video, sample_rate=16000, channel=1, start=0.5, end=1.0)
    assert len(waveform.samples) == 8000
    np.testing.assert_allclose(waveform.samples, signal[1, 8000:16000], atol=2e-4)
