"""The ``webrtcvad`` VAD: the WebRTC project's voice activity detector (``webrtcvad-wheels``).

WebRTC decides on 10, 20 or 30 ms of audio at 8, 16, 32 or 48 kHz. Each frame's audio is
cut into the longest such pieces that tile the whole 10 ms it has (a 40 ms frame: two of
20 ms); the frame is voiced when at least half of them are. Audio at another rate goes
through a stream resampler to 16 kHz (resampled frame by frame, filter edges would sound
like onsets); what does not fill 10 ms waits for the next frame, and a frame that completes
no piece keeps the last decision.

WebRTC alone holds speech ~100 ms past its end (its hangover), and takes a noise floor that
rises by ~20 dB (a fan turned on) for speech until it adapts, which can take many seconds.
So a frame is voiced only if it is also ``noise_gate_db`` above the quietest frame of the
last ``noise_window_ms``: the hangover is cut at the noise floor, and a new floor stops
being speech within the window.

That state makes an instance one audio stream's: built from config, a session gets its
own. Onset hysteresis is the session's ``[turns] min_speech_ms`` (speech starts after that
much consecutive voiced audio, dated back to its first frame, so the start is not delayed);
the VAD adds none.
"""

from __future__ import annotations

from collections import deque
from typing import Literal, Protocol

import numpy as np
import webrtcvad  # type: ignore[import-untyped]  # the wheel has no type hints
from pydantic import BaseModel, ConfigDict, Field

from voxpipe.audio import AudioFrame, Int16Array, StreamResampler
from voxpipe.errors import ConfigError
from voxpipe.hookspecs import BackendContext

#: Rates WebRTC takes as they are; others are resampled to ``FALLBACK_RATE``.
NATIVE_RATES = frozenset((8_000, 16_000, 32_000, 48_000))
FALLBACK_RATE = 16_000
_PIECES_MS = (30, 20, 10)


class _Vad(Protocol):
    """What this module uses of ``webrtcvad.Vad``."""

    def is_speech(self, buf: bytes, sample_rate: int) -> bool: ...


class WebRTCVADOptions(BaseModel):
    """``[vad]`` options when ``backend = "webrtcvad"``; unknown options are config errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    aggressiveness: Literal[0, 1, 2, 3] = Field(
        2, description="0 calls the most audio speech, 3 the least (noisy rooms)"
    )
    noise_gate_db: float = Field(
        6, ge=0, le=40, description="voiced frames must be this far above the noise floor (0: off)"
    )
    noise_window_ms: float = Field(
        2_000, ge=200, le=20_000, description="the noise floor: the quietest frame this long ago"
    )


class WebRTCVAD:
    """Voiced = WebRTC says so for at least half of the frame, and the frame stands above
    the noise floor (see the module docstring); one instance per audio stream."""

    def __init__(self, options: WebRTCVADOptions, context: BackendContext | None = None) -> None:
        frame_ms = context.frame_ms if context else 20
        if frame_ms % 10:
            raise ConfigError(
                f"[vad] webrtcvad decides on 10, 20 or 30 ms of audio; frames of {frame_ms} ms "
                "cannot be cut into those: set [agent] frame_ms to a multiple of 10"
            )
        self.options = options
        self._vad: _Vad = webrtcvad.Vad(options.aggressiveness)
        self._energies: deque[float] = deque(
            maxlen=max(round(options.noise_window_ms / frame_ms), 1)
        )
        self._resampler: StreamResampler | None = None
        self._pending: Int16Array = np.zeros(0, dtype=np.int16)  # under 10 ms, not decided
        self._pending_rate = 0
        self._webrtc_voiced = False

    def is_voiced(self, frame: AudioFrame) -> bool:
        voiced = self._webrtc(frame)
        energy = frame.energy_db
        self._energies.append(energy)
        gate = self.options.noise_gate_db
        return voiced and (not gate or energy >= min(self._energies) + gate)

    def _webrtc(self, frame: AudioFrame) -> bool:
        """WebRTC's decision for the audio this frame completes (the last one if none)."""
        rate, samples = frame.sample_rate, frame.samples
        if rate not in NATIVE_RATES:
            samples, rate = self._resampled(frame), FALLBACK_RATE
        if self._pending_rate != rate:
            self._pending, self._pending_rate = samples[:0], rate
        if len(self._pending):
            samples = np.concatenate((self._pending, samples))
        per_10ms = rate // 100
        tens = len(samples) // per_10ms
        self._pending = samples[tens * per_10ms :]
        if not tens:
            return self._webrtc_voiced
        piece_ms = next(ms for ms in _PIECES_MS if (tens * 10) % ms == 0)
        step = 2 * per_10ms * piece_ms // 10  # bytes
        data = samples[: tens * per_10ms].astype("<i2").tobytes()
        pieces = range(0, len(data), step)
        voiced = sum(self._vad.is_speech(data[at : at + step], rate) for at in pieces)
        self._webrtc_voiced = 2 * voiced >= len(pieces)
        return self._webrtc_voiced

    def _resampled(self, frame: AudioFrame) -> Int16Array:
        if self._resampler is None or self._resampler.from_rate != frame.sample_rate:
            self._resampler = StreamResampler(frame.sample_rate, FALLBACK_RATE)
        return self._resampler.push(frame.samples)
