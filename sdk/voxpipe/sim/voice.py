"""Speech-like audio: a voiced buzz with a syllable-rate envelope, never silent while 'talking'."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from voxpipe.audio import AudioFrame, Int16Array, iter_frames

#: Words per minute of simulated speech (users and the simulated TTS alike).
WORDS_PER_MINUTE = 150.0


def speech_duration_ms(text: str, words_per_minute: float = WORDS_PER_MINUTE) -> float:
    """How long ``text`` takes to say at ``words_per_minute``."""
    return max(len(text.split()), 1) * 60_000.0 / words_per_minute


_VOICE_SECONDS = 12.0
_FADE_MS = 10.0


def speech_like(
    duration_ms: float,
    sample_rate: int,
    *,
    pitch_hz: float = 140.0,
    level: float = 0.25,
    seed: int = 0,
) -> Int16Array:
    """``duration_ms`` of audible, speech-shaped sound: harmonics of a wavering pitch, shaped
    by a ~4 Hz syllable envelope that never drops below a third of ``level``.

    Cut from one cached stretch of voice per (rate, pitch, level) at an offset chosen by
    ``seed``, so simulating speech costs a copy, not a synthesis."""
    n = round(sample_rate * duration_ms / 1000.0)
    voice = _voice(sample_rate, pitch_hz, level)
    if n > len(voice):
        voice = np.tile(voice, -(-n // len(voice)))
    start = (seed * 7919) % (len(voice) - n + 1)
    out = voice[start : start + n].copy()
    fade = min(round(sample_rate * _FADE_MS / 1000.0), n // 2)
    if fade:
        ramp = np.linspace(0.4, 1.0, fade)
        out[:fade] = out[:fade] * ramp
        out[n - fade :] = out[n - fade :] * ramp[::-1]
    return out


@functools.lru_cache(maxsize=16)
def _voice(sample_rate: int, pitch_hz: float, level: float) -> Int16Array:
    n = round(sample_rate * _VOICE_SECONDS)
    t = np.arange(n) / sample_rate
    rng = np.random.default_rng(0)
    f0 = pitch_hz * (1.0 + 0.08 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    breath = 0.15 * rng.standard_normal(n)
    syllables = 0.66 + 0.34 * np.sin(2 * np.pi * 4.0 * t)
    signal = (voice / 2.3 + breath) * syllables * level
    samples = np.round(np.clip(signal, -1, 1) * 32767).astype(np.int16)
    samples.flags.writeable = False
    return samples


def speech_frames(
    text: str,
    sample_rate: int,
    frame_ms: int,
    *,
    words_per_minute: float = WORDS_PER_MINUTE,
    pitch_hz: float = 140.0,
    seed: int = 0,
    start_ms: float = 0.0,
    script: str | None = None,
) -> Iterator[AudioFrame]:
    """``text`` spoken as speech-like audio, frame by frame."""
    duration_ms = speech_duration_ms(text, words_per_minute)
    samples = speech_like(duration_ms, sample_rate, pitch_hz=pitch_hz, seed=seed)
    return iter_frames(samples, sample_rate, frame_ms, start_ms, script)
