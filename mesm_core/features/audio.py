"""Acoustic features: one vector per 400 ms window (the grid of MESM's mel-spectrogram chunks).

Per window (84-d with openSMILE, 34-d without):

* 22 log Bark-band energies (Zwicker band edges 0 … 7,700–9,500 Hz, capped at Nyquist) and
  MFCC 1–12, both computed from the project's power mel spectrogram (16 kHz, 128 HTK mel bands,
  25 ms window, 12.5 ms hop; ``mesm_core.data.audio.melspectrogram``) and averaged over the 32 mel
  frames of each window. These re-create DisVoice's BBE/MFCC block (the paper's "12 BBE + 22 MFCC"
  is really 22 BBE + 12 MFCC, see docs/baselines.md) on all frames instead of voicing onsets.
* 25 eGeMAPSv02 low-level descriptors (loudness, spectral balance, F0, jitter, shimmer, HNR,
  formants …) from openSMILE (``opensmile`` on PyPI, audEERING *research* licence: free for
  research and education, commercial use needs a licence), mean and std per window. They stand in
  for DisVoice's 108 phonological statistics, which need a Spanish phonet model and TensorFlow.

Windows start at t = 0, are non-overlapping, and the last one is partial: a clip of T mel frames
has ceil(T / 32) windows, exactly as many as the E2E models' mel chunks.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

__all__ = ["BARK_EDGES_HZ", "BBE_MFCC_DIM", "EGEMAPS_DIM", "AudioExtractor", "bark_mfcc_windows",
           "egemaps_windows", "opensmile_available", "window_count"]

# Zwicker critical-band edges (Hz); 22 bands below 9.5 kHz as in DisVoice (nB = 22).
BARK_EDGES_HZ = (0, 100, 200, 300, 400, 510, 630, 770, 920, 1080, 1270, 1480, 1720, 2000, 2320, 2700,
                 3150, 3700, 4400, 5300, 6400, 7700, 9500)
N_BARK = len(BARK_EDGES_HZ) - 1
N_MFCC = 12
BBE_MFCC_DIM = N_BARK + N_MFCC   # 34
N_EGEMAPS_LLD = 25
EGEMAPS_DIM = 2 * N_EGEMAPS_LLD  # mean + std
_LOG_FLOOR = 1e-10


def opensmile_available() -> bool:
    try:
        import opensmile  # noqa: F401
    except ImportError:
        return False
    return True


def window_count(n_mel_frames: int, window_frames: int = 32) -> int:
    """Windows of a clip with ``n_mel_frames`` mel frames (ceil; at least 1)."""
    return max(1, -(-int(n_mel_frames) // window_frames))


def _window_means(frames: np.ndarray, window_frames: int) -> np.ndarray:
    """(T, D) per-frame values → (ceil(T / w), D) means over each window (last one partial)."""
    n_windows = window_count(frames.shape[0], window_frames)
    out = np.zeros((n_windows, frames.shape[1]), np.float32)
    for w in range(n_windows):
        block = frames[w * window_frames:(w + 1) * window_frames]
        if len(block):
            out[w] = block.mean(axis=0)
    return out


@lru_cache(maxsize=8)
def _bark_assignment(n_mels: int, sample_rate: int) -> np.ndarray:
    """(N_BARK, n_mels) 0/1 matrix: which mel bands (by centre frequency) fall in which Bark band."""
    import librosa

    centres = librosa.mel_frequencies(n_mels + 2, fmin=0.0, fmax=sample_rate / 2.0, htk=True)[1:-1]
    edges = np.minimum(np.asarray(BARK_EDGES_HZ, dtype=np.float64), sample_rate / 2.0 + 1.0)
    assign = np.zeros((N_BARK, n_mels), np.float32)
    for b in range(N_BARK):
        assign[b] = (centres >= edges[b]) & (centres < edges[b + 1])
    # A Bark band too narrow to hold a mel centre takes the nearest mel band.
    for b in np.flatnonzero(assign.sum(axis=1) == 0):
        middle = 0.5 * (edges[b] + edges[b + 1])
        assign[b, int(np.argmin(np.abs(centres - middle)))] = 1.0
    return assign


def bark_mfcc_windows(mel: np.ndarray, sample_rate: int = 16000, window_frames: int = 32) -> np.ndarray:
    """(n_mels, T) power mel spectrogram → (n_windows, 34): 22 log Bark energies then MFCC 1–12."""
    import librosa

    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2 or mel.shape[0] < 16:
        raise ValueError(f"expected a power mel spectrogram (n_mels ≥ 16, T), got shape {mel.shape}")
    if mel.shape[1] == 0:
        return np.zeros((1, BBE_MFCC_DIM), np.float32)
    bark = np.log(_bark_assignment(mel.shape[0], sample_rate) @ mel + _LOG_FLOOR)        # (22, T)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, ref=1.0, amin=_LOG_FLOOR), n_mfcc=N_MFCC + 1)[1:]
    frames = np.concatenate([bark, mfcc], axis=0).T                                       # (T, 34)
    return _window_means(frames, window_frames)


@lru_cache(maxsize=1)
def _smile():
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.LowLevelDescriptors)


def egemaps_windows(samples: np.ndarray, sample_rate: int, n_windows: int, window_s: float = 0.4) -> np.ndarray:
    """eGeMAPSv02 LLDs (10 ms frames) pooled per window → (n_windows, 50): 25 means then 25 stds.

    A window without any LLD frame (or a clip too short for openSMILE) gets zeros.
    """
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    out = np.zeros((n_windows, EGEMAPS_DIM), np.float32)
    if samples.size == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Segment too short, filling with NaN"
        frame = _smile().process_signal(samples, sample_rate)
    values = np.nan_to_num(frame.to_numpy(dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if values.shape[1] != N_EGEMAPS_LLD:
        raise RuntimeError(f"openSMILE eGeMAPSv02 returned {values.shape[1]} LLDs, expected {N_EGEMAPS_LLD}")
    starts = np.asarray(frame.index.get_level_values("start").total_seconds(), dtype=np.float64)
    index = np.minimum((starts / window_s).astype(int), n_windows - 1)
    for w in range(n_windows):
        block = values[index == w]
        if len(block):
            out[w, :N_EGEMAPS_LLD] = block.mean(axis=0)
            out[w, N_EGEMAPS_LLD:] = block.std(axis=0)
    return out


class AudioExtractor:
    """Callable ``(samples, sample_rate, mel=None) -> (n_windows, dim)`` float32.

    ``use_egemaps``: True requires ``opensmile``; None uses it when installed. ``mel`` (the clip's
    power mel spectrogram, as cached by the preprocessing) is used for the Bark/MFCC part when
    given, else it is computed from ``samples`` with the project's mel settings.
    """

    def __init__(self, use_egemaps: bool | None = None, sample_rate: int = 16000, window_frames: int = 32,
                 hop_length: int = 200) -> None:
        if use_egemaps is None:
            use_egemaps = opensmile_available()
        if use_egemaps and not opensmile_available():
            raise RuntimeError("eGeMAPS features need openSMILE: pip install opensmile==2.6.0 "
                               "(audEERING research licence), or pass use_egemaps=False for the 34-d set")
        self.use_egemaps = bool(use_egemaps)
        self.sample_rate = sample_rate
        self.window_frames = window_frames
        self.window_s = window_frames * hop_length / sample_rate
        self.dim = BBE_MFCC_DIM + (EGEMAPS_DIM if self.use_egemaps else 0)
        self.name = "bbe22_mfcc12" + ("_egemaps25x2" if self.use_egemaps else "")

    def fingerprint(self) -> dict:
        from importlib.metadata import version

        info = {"set": self.name, "dim": self.dim, "window_s": self.window_s, "librosa": version("librosa")}
        if self.use_egemaps:
            info["opensmile"] = version("opensmile")
            info["opensmile_feature_set"] = "eGeMAPSv02 LowLevelDescriptors, mean+std per window"
        return info

    def __call__(self, samples: np.ndarray | None, sample_rate: int | None = None,
                 mel: np.ndarray | None = None) -> np.ndarray:
        sample_rate = sample_rate or self.sample_rate
        if mel is None:
            if samples is None:
                raise ValueError("audio features need the waveform or its mel spectrogram")
            from mesm_core.config import DataConfig
            from mesm_core.data.audio import melspectrogram, resample

            if sample_rate != self.sample_rate:
                samples = resample(np.asarray(samples, np.float32), sample_rate, self.sample_rate)
                sample_rate = self.sample_rate
            mel = melspectrogram(np.asarray(samples, np.float32), DataConfig(sample_rate=self.sample_rate))
        features = bark_mfcc_windows(mel, self.sample_rate, self.window_frames)
        if not self.use_egemaps:
            return features
        if samples is None:
            raise ValueError("the eGeMAPS part needs the waveform (only a mel spectrogram was given); "
                             "use AudioExtractor(use_egemaps=False) for mel-only sources")
        egemaps = egemaps_windows(samples, sample_rate, features.shape[0], self.window_s)
        return np.concatenate([features, egemaps], axis=1).astype(np.float32)
