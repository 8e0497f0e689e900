"""Audio: decoding (PyAV / soundfile), mono or one-channel selection, the reference mel spectrogram, chunking.

The mel spectrogram reproduces ``torchaudio.transforms.MelSpectrogram`` as the reference used it
(docs/data.md, "One clip", step 4): 16 kHz, n_fft = win_length = 400, hop 200, periodic Hann window, power 2,
HTK mel scale without filter normalisation, f_min 0, f_max = sr/2, ``center=True`` with reflect
padding, no log. ``librosa.feature.melspectrogram(..., htk=True, norm=None)`` computes exactly that.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mesm_core.config import DataConfig
from mesm_core.data.errors import NoAudioStreamError, UnreadableMediaError

# Peak amplitude below half a 16-bit LSB: "all-zero" audio in any integer PCM format.
SILENCE_PEAK = 1.0 / 65536.0


@dataclass
class Waveform:
    """Decoded audio window. ``samples`` float32 (N,) in [-1, 1] at ``sample_rate``."""

    samples: np.ndarray
    sample_rate: int
    source_rate: int
    source_channels: int
    channel: int | None  # the channel kept, or None for the mean of all channels

    @property
    def duration_s(self) -> float:
        return float(len(self.samples)) / float(self.sample_rate)

    @property
    def silent(self) -> bool:
        return len(self.samples) == 0 or float(np.max(np.abs(self.samples))) < SILENCE_PEAK


# --- decoding ----------------------------------------------------------------------------------

def _to_float_planar(frame) -> np.ndarray:
    """One PyAV AudioFrame → float32 (channels, samples), whatever its sample format."""
    array = frame.to_ndarray()
    n_channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        array = array.reshape(-1, n_channels).T
    name = frame.format.name.rstrip("p")
    if name == "s16":
        return array.astype(np.float32) / 32768.0
    if name == "s32":
        return (array.astype(np.float64) / 2147483648.0).astype(np.float32)
    if name == "u8":
        return (array.astype(np.float32) - 128.0) / 128.0
    if name == "s64":
        return (array.astype(np.float64) / 9223372036854775808.0).astype(np.float32)
    return array.astype(np.float32)  # flt / dbl


def _select_channel(planar: np.ndarray, channel: int | None, path: str | Path) -> np.ndarray:
    """(channels, N) → (N,): one channel, or the mean of all channels when ``channel`` is None."""
    if channel is None:
        return planar.mean(axis=0) if planar.shape[0] > 1 else planar[0]
    if not 0 <= channel < planar.shape[0]:
        raise NoAudioStreamError(path, f"audio channel {channel} requested but the audio has {planar.shape[0]} channel(s)")
    return planar[channel]


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, via librosa). float32 (N,) → float32 (N·target/source,)."""
    if source_rate == target_rate or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    import librosa

    return librosa.resample(samples.astype(np.float32), orig_sr=source_rate, target_sr=target_rate,
                            res_type="soxr_hq").astype(np.float32)


def decode_audio_stream(container, path: str | Path, *, sample_rate: int, channel: int | None = None,
                        start: float | None = None, end: float | None = None) -> Waveform:
    """Decode the first audio stream of an open PyAV container, window [start, end) seconds.

    Streams packet by packet (only the window is kept in memory); a corrupt packet is skipped and
    counted rather than aborting the clip. Raises NoAudioStreamError / UnreadableMediaError.
    """
    import av

    if not container.streams.audio:
        raise NoAudioStreamError(path, "no audio stream in the file")
    stream = container.streams.audio[0]
    source_rate = int(stream.rate or stream.codec_context.sample_rate or 0)
    if source_rate <= 0:
        raise UnreadableMediaError(path, "audio stream has no sample rate")
    start_s = float(start or 0.0)
    if start_s > 1.0:
        try:
            container.seek(int(max(start_s - 1.0, 0.0) / stream.time_base), stream=stream, backward=True)
        except av.error.FFmpegError:
            container.seek(0)
    first_sample = int(round(start_s * source_rate))
    last_sample = None if end is None else int(round(float(end) * source_rate))
    pieces: list[np.ndarray] = []
    n_channels = 0
    position = None  # absolute sample index of the next decoded sample
    bad_packets = 0
    done = False
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            bad_packets += 1
            continue
        for frame in frames:
            planar = _to_float_planar(frame)
            n_channels = planar.shape[0]
            if frame.time is not None:
                position = int(round(frame.time * source_rate))
            elif position is None:
                position = 0
            lo, hi = position, position + planar.shape[1]
            position = hi
            keep_lo = max(lo, first_sample)
            keep_hi = hi if last_sample is None else min(hi, last_sample)
            if keep_hi > keep_lo:
                pieces.append(_select_channel(planar[:, keep_lo - lo:keep_hi - lo], channel, path))
            if last_sample is not None and hi >= last_sample:
                done = True
                break
        if done:
            break
    if not pieces and bad_packets:
        raise UnreadableMediaError(path, f"audio stream could not be decoded ({bad_packets} corrupt packet(s))")
    samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return Waveform(resample(samples, source_rate, sample_rate), sample_rate, source_rate, n_channels, channel)


def load_audio(path: str | Path, *, sample_rate: int = 16000, channel: int | None = None,
               start: float | None = None, end: float | None = None) -> Waveform:
    """Read an audio file (wav/flac/ogg via soundfile; anything else via PyAV), window [start, end) s.

    Returns a mono (or single-channel) float32 waveform at ``sample_rate``.
    Sample positions follow the reference: ``int(sr * start)`` to ``int(sr * end)``.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise UnreadableMediaError(path, "audio file does not exist")
    try:
        info = sf.info(str(path))
    except Exception:  # not a soundfile format → PyAV
        return _load_audio_pyav(path, sample_rate=sample_rate, channel=channel, start=start, end=end)
    first = int(info.samplerate * float(start or 0.0))
    last = info.frames if end is None else min(int(info.samplerate * float(end)), info.frames)
    try:
        data = sf.read(str(path), start=min(first, info.frames), stop=max(last, min(first, info.frames)),
                       dtype="float32", always_2d=True)[0]
    except Exception as exc:
        raise UnreadableMediaError(path, f"cannot read audio ({exc})") from exc
    if info.frames > 0 and data.shape[0] == 0 and last > first:
        raise UnreadableMediaError(path, "audio data is truncated")
    samples = _select_channel(data.T, channel, path)
    return Waveform(resample(samples, info.samplerate, sample_rate), sample_rate, info.samplerate, info.channels, channel)


def _load_audio_pyav(path: Path, **kwargs) -> Waveform:
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise UnreadableMediaError(path, f"cannot open audio ({exc})") from exc
    with container:
        return decode_audio_stream(container, path, **kwargs)


# --- features ----------------------------------------------------------------------------------

def melspectrogram(samples: np.ndarray, config: DataConfig | None = None) -> np.ndarray:
    """Power mel spectrogram, torchaudio-default style. float (N,) → float32 (n_mels, 1 + N // hop).

    Audio shorter than n_fft//2 + 1 samples is zero-padded to that length first (reflect padding
    needs it; torchaudio would raise) and the frame count kept at 1 + N // hop. Empty audio gives (n_mels, 0).
    """
    import librosa

    config = config or DataConfig()
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"melspectrogram expects a 1-D waveform, got shape {samples.shape}")
    if len(samples) == 0:
        return np.zeros((config.n_mels, 0), np.float32)
    n_frames = 1 + len(samples) // config.hop_length
    min_len = config.n_fft // 2 + 1
    if len(samples) < min_len:
        samples = np.pad(samples, (0, min_len - len(samples)))
    with warnings.catch_warnings():
        # 128 HTK mels over 201 FFT bins leave a few empty low filters; torchaudio has them too.
        warnings.filterwarnings("ignore", message="Empty filters detected")
        warnings.filterwarnings("ignore", message="n_fft=.* is too large")
        mel = librosa.feature.melspectrogram(
            y=samples, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
            win_length=config.win_length, window="hann", center=True, pad_mode="reflect",
            power=2.0, n_mels=config.n_mels, fmin=0.0, fmax=config.sample_rate / 2.0, htk=True, norm=None,
        )
    return mel[:, :n_frames].astype(np.float32)


def mel_chunks(mel: np.ndarray, chunk_frames: int = 32) -> np.ndarray:
    """Cut (n_mels, T) into non-overlapping chunks → float32 (ceil(T / chunk_frames), 1, n_mels, chunk_frames).

    The last chunk is zero-padded on the right (reference ``cutSpecToPieces``). T = 0 gives 0 chunks.
    """
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2:
        raise ValueError(f"mel_chunks expects (n_mels, T), got shape {mel.shape}")
    n_mels, n_frames = mel.shape
    n_chunks = -(-n_frames // chunk_frames)
    padded = np.zeros((n_mels, n_chunks * chunk_frames), np.float32)
    padded[:, :n_frames] = mel
    return np.ascontiguousarray(padded.reshape(n_mels, n_chunks, chunk_frames).transpose(1, 0, 2)[:, None])


__all__ = ["Waveform", "SILENCE_PEAK", "load_audio", "decode_audio_stream", "resample", "melspectrogram",
           "mel_chunks"]
