"""Audio for the synthetic dataset: a voiced carrier with emotion-dependent prosody and a
class-specific band-limited component in a known time-frequency box.

Two kinds of acoustic evidence, on purpose of different difficulty:

* **the cue box** (what ``mel_cues`` marks): band-limited noise in a band reserved for the class
  (``CUE_BANDS``), lasting 0.6–1.0 s at a random time. Distractor "clicks" in random bands
  (including the class bands) last ≤ 0.12 s, so one spectrogram cell is never enough: the model
  must see the duration.
* **prosody** (global, not in the mask): pitch level, pitch contour, vibrato and loudness differ
  per class (``PROSODY``), as in acted emotional speech.

The carrier is a harmonic series below 3.8 kHz, its pitch following the contour, shaped by random
per-syllable vowel formants, gated by a syllable envelope that also drives the face's mouth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mesm_core.config import MOSEI_CLASSES

SAMPLE_RATE = 16000
MEL_FMAX = 8000.0


def _hz_to_mel(f: float) -> float:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: float) -> float:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def _cue_bands(classes: tuple[str, ...], lo_hz: float = 900.0, hi_hz: float = 7600.0) -> dict[str, tuple[float, float]]:
    """One band per class, equally spaced on the (HTK) mel scale, each the middle half of its slot,
    so neighbouring bands are separated by several mel bins."""
    lo, hi = _hz_to_mel(lo_hz), _hz_to_mel(hi_hz)
    slot = (hi - lo) / len(classes)
    out = {}
    for i, name in enumerate(classes):
        a = lo + slot * (i + 0.25)
        b = lo + slot * (i + 0.75)
        out[name] = (round(float(_mel_to_hz(a)), 1), round(float(_mel_to_hz(b)), 1))
    return out


CUE_BANDS: dict[str, tuple[float, float]] = _cue_bands(MOSEI_CLASSES)


@dataclass(frozen=True)
class Prosody:
    """Pitch and loudness style. ``pitch`` multiplies the speaker's base f0; ``contour`` names the
    shape of the pitch over the utterance; ``range`` is its relative swing; ``gain_db`` loudness."""

    pitch: float
    contour: str
    range: float
    vibrato_hz: float = 0.0
    vibrato_depth: float = 0.0
    gain_db: float = 0.0
    jitter: float = 0.0


PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(1.0, "declining", 0.08),
    "anger": Prosody(1.15, "falling", 0.18, gain_db=4.0, jitter=0.01),
    "disgust": Prosody(0.9, "dip", 0.1, gain_db=-1.0, jitter=0.03),
    "fear": Prosody(1.3, "flat", 0.08, vibrato_hz=7.0, vibrato_depth=0.05, gain_db=-2.0),
    "happy": Prosody(1.2, "bouncy", 0.25, gain_db=2.0),
    "sad": Prosody(0.85, "falling", 0.05, gain_db=-5.0),
    "surprise": Prosody(1.25, "rising", 0.3, gain_db=2.0),
}


@dataclass
class AudioPlan:
    """Every random choice for one clip's audio (drawn by ``draw_audio_plan``)."""

    duration: float
    f0: float                                        # speaker base pitch, Hz
    prosody: str                                     # key of PROSODY
    syllables: list[tuple[float, float]]             # (start, end) seconds
    vowels: list[tuple[float, float]]                # (F1, F2) Hz per syllable
    cues: list[tuple[str, float, float]]             # (class, start, end) of cue bursts
    cue_level_db: float                              # burst level relative to the voice
    clicks: list[tuple[float, float, float, float]]  # (start, end, f_lo, f_hi) distractors
    noise_db: float                                  # background noise relative to the voice
    loudness_db: float                               # speaker loudness offset
    noise_seed: int = 0
    extra: dict = field(default_factory=dict)


def draw_syllables(rng: np.random.Generator, duration: float) -> list[tuple[float, float]]:
    """Words of 1–4 syllables (0.12–0.26 s) separated by short pauses, from ~0.15 s to the end."""
    out: list[tuple[float, float]] = []
    t = float(rng.uniform(0.08, 0.25))
    end = duration - 0.12
    while t < end - 0.12:
        for _ in range(int(rng.integers(1, 5))):
            length = float(rng.uniform(0.12, 0.26))
            if t + length > end:
                break
            out.append((t, t + length))
            t += length + float(rng.uniform(0.0, 0.03))
        t += float(rng.uniform(0.06, 0.22))
    return out


def draw_audio_plan(rng: np.random.Generator, duration: float, labels: list[str], cue_present: bool) -> AudioPlan:
    """Draw the audio of one clip. ``labels``: its classes (1 or 2); ``cue_present``: False makes the
    audio uninformative (neutral prosody, no cue burst)."""
    syllables = draw_syllables(rng, duration)
    vowels = [(float(rng.uniform(300, 800)), float(rng.uniform(900, 2300))) for _ in syllables]
    cues: list[tuple[str, float, float]] = []
    if cue_present:
        # Two classes: two bursts in their own bands, ordered in time like the face's expressions.
        n = len(labels)
        for i, name in enumerate(labels):
            length = float(rng.uniform(0.6, 1.0))
            lo = duration * i / n + 0.1
            hi = duration * (i + 1) / n - length - 0.05
            start = float(rng.uniform(lo, max(lo, hi)))
            cues.append((name, start, min(start + length, duration - 0.02)))
    clicks = []
    for _ in range(int(rng.integers(0, 4))):
        length = float(rng.uniform(0.04, 0.12))
        start = float(rng.uniform(0.0, duration - length))
        centre = _mel_to_hz(rng.uniform(_hz_to_mel(800.0), _hz_to_mel(7600.0)))
        width = centre * float(rng.uniform(0.08, 0.2))
        clicks.append((start, start + length, float(centre - width / 2), float(centre + width / 2)))
    return AudioPlan(
        duration=duration,
        f0=float(rng.uniform(105.0, 230.0)),
        prosody=labels[0] if cue_present else "neutral",
        syllables=syllables,
        vowels=vowels,
        cues=cues,
        cue_level_db=float(rng.uniform(-16.0, -10.0)),
        clicks=clicks,
        noise_db=float(rng.uniform(-34.0, -24.0)),
        loudness_db=float(rng.uniform(-3.0, 3.0)),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


def syllable_envelope(plan: AudioPlan, times: np.ndarray) -> np.ndarray:
    """float (len(times),) in [0, 1]: raised-cosine syllable envelope (also drives the mouth)."""
    env = np.zeros(len(times))
    for start, end in plan.syllables:
        inside = (times >= start) & (times < end)
        phase = (times[inside] - start) / (end - start)
        env[inside] = np.maximum(env[inside], np.sin(np.pi * phase) ** 0.7)
    return env


def _pitch_contour(style: Prosody, plan: AudioPlan, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = times / plan.duration
    shape = {
        "declining": 0.5 - x,
        "falling": 1.0 - 2.0 * x,
        "rising": -0.6 + 1.6 * x ** 2,
        "dip": 4.0 * (x - 0.5) ** 2 - 0.5,
        "flat": np.zeros_like(x),
        "bouncy": np.sin(2 * np.pi * 1.7 * x + 0.3),
    }[style.contour]
    # Word accents: a small rise inside each syllable.
    accent = np.zeros_like(times)
    for start, end in plan.syllables:
        inside = (times >= start) & (times < end)
        accent[inside] = 0.3 * np.sin(np.pi * (times[inside] - start) / (end - start))
    f0 = plan.f0 * style.pitch * (1.0 + style.range * (shape + accent))
    if style.vibrato_depth:
        f0 *= 1.0 + style.vibrato_depth * np.sin(2 * np.pi * style.vibrato_hz * times)
    if style.jitter:
        f0 *= 1.0 + style.jitter * rng.standard_normal(len(times))
    return np.maximum(f0, 60.0)


def _band_noise(rng: np.random.Generator, n: int, f_lo: float, f_hi: float, sr: int) -> np.ndarray:
    """Unit-RMS noise restricted to [f_lo, f_hi] Hz (FFT brick-wall with 5 % cosine edges)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    edge = 0.05 * (f_hi - f_lo)
    gain = np.clip(np.minimum(freqs - f_lo, f_hi - freqs) / edge + 0.5, 0.0, 1.0)
    out = np.fft.irfft(spec * gain, n)
    return out / (np.sqrt(np.mean(out ** 2)) + 1e-12)


def _gate(times: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    up = np.clip((times - start) / ramp, 0.0, 1.0)
    down = np.clip((end - times) / ramp, 0.0, 1.0)
    return np.sin(0.5 * np.pi * np.minimum(up, down)) ** 2


def synthesize(plan: AudioPlan, sr: int = SAMPLE_RATE) -> np.ndarray:
    """float32 (round(duration·sr),) mono waveform in [-1, 1]."""
    rng = np.random.default_rng(plan.noise_seed)
    n = int(round(plan.duration * sr))
    times = np.arange(n) / sr
    style = PROSODY[plan.prosody]
    # Pitch and amplitudes are smooth: compute them every 80 samples (5 ms) and interpolate.
    coarse_t = np.arange(0.0, plan.duration + 0.01, 0.005)
    f0_coarse = _pitch_contour(style, plan, coarse_t, rng)
    f0 = np.interp(times, coarse_t, f0_coarse)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    n_harm = int(3800.0 // f0_coarse.max()) + 1
    # Per-syllable vowel formants (held between syllables).
    f1 = np.full(len(coarse_t), 500.0)
    f2 = np.full(len(coarse_t), 1500.0)
    for (start, end), (a, b) in zip(plan.syllables, plan.vowels):
        inside = (coarse_t >= start - 0.03) & (coarse_t < end + 0.03)
        f1[inside], f2[inside] = a, b
    voice = np.zeros(n)
    for k in range(1, n_harm + 1):
        fk = k * f0_coarse
        amp = (k ** -0.9) * (1.0 + 5.0 * np.exp(-((fk - f1) / 160.0) ** 2) + 3.0 * np.exp(-((fk - f2) / 260.0) ** 2))
        amp = np.where(fk < 3800.0, amp, 0.0)
        voice += np.interp(times, coarse_t, amp) * np.sin(k * phase)
    voice *= syllable_envelope(plan, times)
    voice_rms = np.sqrt(np.mean(voice ** 2)) + 1e-9
    voice *= 0.08 / voice_rms * 10 ** ((style.gain_db + plan.loudness_db) / 20)
    ref = 0.08 * 10 ** (plan.loudness_db / 20)   # level reference that ignores the class gain
    out = voice
    for name, start, end in plan.cues:
        f_lo, f_hi = CUE_BANDS[name]
        burst = _band_noise(rng, n, f_lo, f_hi, sr) * _gate(times, start, end, 0.04)
        out = out + burst * ref * 10 ** (plan.cue_level_db / 20)
    for start, end, f_lo, f_hi in plan.clicks:
        burst = _band_noise(rng, n, f_lo, f_hi, sr) * _gate(times, start, end, 0.01)
        out = out + burst * ref * 10 ** ((plan.cue_level_db - 4.0) / 20)
    out = out + rng.standard_normal(n) * ref * 10 ** (plan.noise_db / 20)
    return np.clip(out, -0.99, 0.99).astype(np.float32)


def cue_boxes(plan: AudioPlan) -> np.ndarray:
    """float32 (k, 4): the cue bursts as (t_start, t_end, f_lo, f_hi) in seconds and Hz."""
    boxes = [(s, e, *CUE_BANDS[name]) for name, s, e in plan.cues]
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def mel_centre_frequencies(n_mels: int = 128, fmax: float = MEL_FMAX) -> np.ndarray:
    """float (n_mels,) the centre frequency of each HTK mel filter (librosa's filter bank places
    filter i at ``mel_frequencies(n_mels + 2)[i + 1]``)."""
    import librosa

    return librosa.mel_frequencies(n_mels=n_mels + 2, fmin=0.0, fmax=fmax, htk=True)[1:-1]


def mel_cue_mask(boxes: np.ndarray, n_frames: int, *, n_mels: int = 128, sample_rate: int = SAMPLE_RATE,
                 hop_length: int = 200, fmax: float | None = None, time_offset: float = 0.0) -> np.ndarray:
    """bool (n_mels, n_frames): mel cells inside any (t0, t1, f_lo, f_hi) box.

    Frame j is centred at ``j·hop/sr`` (centre=True framing); a bin is in the box when its filter's
    centre frequency is. ``time_offset`` shifts the boxes (e.g. a codec delay).
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    centres = mel_centre_frequencies(n_mels, fmax)
    frame_t = np.arange(n_frames) * hop_length / sample_rate
    mask = np.zeros((n_mels, n_frames), dtype=bool)
    for t0, t1, f_lo, f_hi in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        rows = (centres >= f_lo) & (centres <= f_hi)
        cols = (frame_t >= t0 + time_offset) & (frame_t <= t1 + time_offset)
        mask |= rows[:, None] & cols[None, :]
    return mask
