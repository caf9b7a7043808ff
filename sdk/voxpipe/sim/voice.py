"""Speech-like audio: a voiced buzz with a syllable-rate envelope, never silent while 'talking'."""

from __future__ import annotations

import numpy as np

from voxpipe.audio import Int16Array

#: Words per minute of simulated speech (users and the simulated TTS alike).
WORDS_PER_MINUTE = 150.0


def speech_duration_ms(text: str, words_per_minute: float = WORDS_PER_MINUTE) -> float:
    """How long ``text`` takes to say at ``words_per_minute``."""
    return max(len(text.split()), 1) * 60_000.0 / words_per_minute


def speech_like(
    duration_ms: float,
    sample_rate: int,
    *,
    pitch_hz: float = 140.0,
    level: float = 0.25,
    seed: int = 0,
) -> Int16Array:
    """``duration_ms`` of audible, speech-shaped sound: harmonics of a wavering pitch, shaped
    by a ~4 Hz syllable envelope that never drops below a third of ``level``."""
    n = round(sample_rate * duration_ms / 1000.0)
    t = np.arange(n) / sample_rate
    rng = np.random.default_rng(seed)
    f0 = pitch_hz * (1.0 + 0.08 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6.28)))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    breath = 0.15 * rng.standard_normal(n)
    syllables = 0.66 + 0.34 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.28))
    ramp = np.minimum(1.0, np.minimum(t, t[::-1] if n else t) / 0.01)  # 10 ms fade in/out
    signal = (voice / 2.3 + breath) * syllables * np.maximum(ramp, 0.4) * level
    return np.round(np.clip(signal, -1, 1) * 32767).astype(np.int16)
