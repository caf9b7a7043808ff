"""The ``silero`` VAD: the Silero VAD neural network (v6, MIT, ``data/silero_vad.onnx``) run
with onnxruntime.

The model decides on windows of exactly 32 ms: 512 samples at 16 kHz (256 at 8 kHz, which
it takes as they are), each given with the last 64 (32) samples of the window before it,
and it carries a recurrent state from window to window; it answers with a speech
probability. Audio at another rate goes through a stream resampler to 16 kHz (which holds
back ~21 ms at 24 to 48 kHz; at 8 kHz it would hold back 66 ms, hence the native 8 kHz).
Frames of any length are buffered into whole windows. Speech starts when a window's
probability reaches ``threshold`` and stops when one falls 0.15 below it (Silero's own
hysteresis).

The model tells speech from steady noise where an energy threshold cannot, but in noise it
holds speech ~150-300 ms past its end. So, as for ``webrtcvad``, a window is voiced only if
it also stands ``noise_gate_db`` above the quietest window of the last ``noise_window_ms``:
the hold ends at the noise floor. In noise within ~8 dB of the speech the gate can also cut
the quiet words of real speech (an utterance heard as two); ``noise_gate_db = 0`` keeps
them, and speech then ends late by the model's hold.

A frame is voiced when any window it completes is; a frame that completes no window (a 20
ms frame completes one in 1.6) keeps the last decision. The model is loaded once per
process, on first use, and shared (onnxruntime's ``run`` is thread-safe); a window costs
~0.2 ms of one core (~0.3 ms with resampling). The recurrent state, the buffered audio and
the noise floor are per instance, so an instance is one audio stream's: built from config,
a session gets its own. Onset hysteresis is the session's ``[turns] min_speech_ms``; the
VAD adds none.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from importlib.resources import as_file, files
from typing import Any

import numpy as np
import onnxruntime  # type: ignore[import-untyped]  # the wheel has no type hints
from pydantic import BaseModel, ConfigDict, Field

from voxpipe.audio import AudioFrame, Int16Array, StreamResampler
from voxpipe.hookspecs import BackendContext

#: Rates the model takes as they are; others are resampled to ``FALLBACK_RATE``.
MODEL_RATES = frozenset((8_000, 16_000))
FALLBACK_RATE = 16_000
WINDOW_MS = 32
#: Speech stops when the probability falls this far below ``threshold``.
HYSTERESIS = 0.15

_model: Any = None
_model_lock = threading.Lock()


def model() -> Any:
    """The process's ``onnxruntime.InferenceSession`` of the Silero model, loaded on first
    call; it runs on one thread (it never takes more than one core)."""
    global _model
    with _model_lock:
        if _model is None:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            with as_file(files("voxpipe_local") / "data" / "silero_vad.onnx") as path:
                _model = onnxruntime.InferenceSession(
                    str(path), sess_options=options, providers=["CPUExecutionProvider"]
                )
        return _model


class SileroVADOptions(BaseModel):
    """``[vad]`` options when ``backend = "silero"``; unknown options are config errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    threshold: float = Field(
        0.5,
        ge=0.2,
        le=0.95,
        description="speech probability at which speech starts (it stops 0.15 below)",
    )
    noise_gate_db: float = Field(
        3, ge=0, le=40, description="voiced audio must be this far above the noise floor (0: off)"
    )
    noise_window_ms: float = Field(
        2_000, ge=200, le=20_000, description="the noise floor: the quietest window this long ago"
    )


class SileroVAD:
    """Voiced = the Silero model is in speech and the audio stands above the noise floor
    (see the module docstring); one instance per audio stream."""

    def __init__(self, options: SileroVADOptions, context: BackendContext | None = None) -> None:
        # Any rate and frame length will do: the stream starts at its first frame.
        self.options = options
        self._model = model()
        #: Window energies (dBFS) of the last ``noise_window_ms``: the noise floor.
        self._energies: deque[float] = deque(maxlen=round(options.noise_window_ms / WINDOW_MS))
        self._rate = 0  # of the frames
        self._resampler: StreamResampler | None = None
        self._pending: Int16Array = np.zeros(0, dtype=np.int16)  # under a window
        self._window = 0
        self._sr = np.array(0, dtype=np.int64)
        #: The model's input: the previous window's last samples (its context), the window.
        self._input = np.zeros((1, 0), dtype=np.float32)
        self._state = np.zeros(0, dtype=np.float32)
        self._speech = False  # the model's decision
        self._voiced = False  # and the gate's

    def is_voiced(self, frame: AudioFrame) -> bool:
        if frame.sample_rate != self._rate:
            self._start(frame.sample_rate)
        samples = frame.samples if self._resampler is None else self._resampler.push(frame.samples)
        if len(self._pending):
            samples = np.concatenate((self._pending, samples))
        size = self._window
        windows = len(samples) // size
        self._pending = samples[windows * size :].copy()
        if not windows:
            return self._voiced
        voiced = False
        for at in range(0, windows * size, size):
            voiced |= self._decide(samples[at : at + size])
        return voiced

    def _start(self, rate: int) -> None:
        """A new stream at ``rate``: fresh state, no context."""
        model_rate = rate if rate in MODEL_RATES else FALLBACK_RATE
        self._rate = rate
        self._resampler = None if model_rate == rate else StreamResampler(rate, model_rate)
        self._pending = np.zeros(0, dtype=np.int16)
        self._window = model_rate * WINDOW_MS // 1000
        self._sr = np.array(model_rate, dtype=np.int64)
        self._input = np.zeros((1, self._window * 9 // 8), dtype=np.float32)  # context: 1/8
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._energies.clear()
        self._speech = self._voiced = False

    def _decide(self, window: Int16Array) -> bool:
        """Run one window through the model and the gate; whether it is voiced."""
        context = self._input.shape[1] - self._window
        self._input[0, :context] = self._input[0, -context:]
        audio = self._input[0, context:]
        np.multiply(window, 1 / 32768, out=audio, casting="unsafe")
        probability, self._state = self._model.run(
            None, {"input": self._input, "state": self._state, "sr": self._sr}
        )
        p = float(probability[0, 0])
        if p >= self.options.threshold:
            self._speech = True
        elif p < self.options.threshold - HYSTERESIS:
            self._speech = False
        energy = 10 * math.log10(max(float(np.dot(audio, audio)) / len(audio), 1e-12))
        self._energies.append(energy)
        gate = self.options.noise_gate_db
        self._voiced = self._speech and (not gate or energy >= min(self._energies) + gate)
        return self._voiced
