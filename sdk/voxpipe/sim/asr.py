"""SimASR: "recognises" simulated speech from the frames' scripts, on the session's VAD.

It has no endpointer of its own: partial transcripts come while the session's VAD says the
user is speaking, and the final one ``finalization_ms`` after the VAD ends the utterance.
Audio without a script (a real recording) is heard as ``[speech 1.2 s]``; a script of ""
is a sound with no words (a cough, a door), heard as nothing. A final that the fault
injection fails is not emitted: the events fail with the error instead.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator

from pydantic import Field

from voxpipe.audio import AudioFrame
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import ASREvent, Transcript
from voxpipe.sim.faults import MAX_DELAY_MS, FailWith, FaultOptions, Faults
from voxpipe.sim.voice import WORDS_PER_MINUTE
from voxpipe.streams import Channel
from voxpipe.vad import Utterance


class SimASROptions(FaultOptions):
    finalization_ms: float = Field(
        100, ge=0, le=MAX_DELAY_MS, description="final delay after the end of speech"
    )
    first_partial_ms: float = Field(
        60, ge=0, le=MAX_DELAY_MS, description="speech heard before the first partial"
    )
    partial_interval_ms: float = Field(
        250, gt=0, le=MAX_DELAY_MS, description="speech between later partials"
    )
    confidence: float = Field(0.95, ge=0, le=1)


class SimASR:
    """One ``SimASRStream`` per session."""

    def __init__(
        self, options: SimASROptions | None = None, context: BackendContext | None = None
    ) -> None:
        self.options = options or SimASROptions()
        self._faults = Faults(self.options, "asr")

    def listen(self) -> SimASRStream:
        return SimASRStream(self.options, self._faults)

    async def aclose(self) -> None:
        return None


class SimASRStream:
    """Partials while the user speaks, the final ``finalization_ms`` after each utterance."""

    def __init__(self, options: SimASROptions, faults: Faults | None = None) -> None:
        self.options = options
        self._faults = faults or Faults(options, "asr")
        self._events: Channel[ASREvent] = Channel()
        self._loop = asyncio.get_running_loop()
        # Loop time of session time 0. Frames arrive once captured, at their end time or a
        # little later; the earliest arrival gives the truest mapping.
        self._origin = math.inf
        self._scripts: list[str] = []  # lines heard since the last final
        self._last_script: str | None = None
        self._unscripted = False  # real audio (no script) heard since the last final
        self._speech_start: float | None = None
        self._last_end_ms = 0.0
        self._next_partial_ms = 0.0
        self._last_partial = ""
        # Finals not yet emitted (loop time due, final, how it fails), in the order spoken;
        # one timer, for the first of them (or for a stalled stream's failure): a final due
        # before the one ahead of it comes right after that one.
        self._finals: deque[tuple[float, Transcript, FailWith | None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._ending = False
        self._failed = False  # a final failed: nothing more comes

    def push(self, frame: AudioFrame) -> None:
        self._origin = min(self._origin, self._loop.time() - frame.end_ms / 1000.0)
        script = frame.script
        if script is None:
            self._unscripted = True
        elif not script:
            self._last_script = None  # silence or a sound: the next line is a new one
        elif script != self._last_script:
            self._scripts.append(script)
            self._last_script = script
        self._last_end_ms = frame.end_ms
        if self._speech_start is not None:
            self._partial(frame.end_ms)

    def speech_started(self, at_ms: float) -> None:
        self._speech_start = at_ms
        self._next_partial_ms = self.options.first_partial_ms
        self._last_partial = ""
        self._partial(self._last_end_ms)  # the frame that confirmed the speech counts

    def speech_ended(self, utterance: Utterance) -> None:
        if self._failed:
            return
        heard = utterance.end_ms - utterance.start_ms
        final = Transcript(
            self._text(heard, final=True),
            True,
            self.options.confidence,
            endpoint_ms=utterance.detected_ms,
        )
        self._scripts, self._speech_start, self._unscripted = [], None, False
        delay_ms = self._faults.first_output_ms(self.options.finalization_ms)
        at = self._origin + (utterance.detected_ms + delay_ms) / 1000.0
        self._finals.append((at, final, self._faults.failure()))
        if self._timer is None:
            self._timer = self._loop.call_at(at, self._emit_final)

    def _emit_final(self) -> None:
        self._timer = None
        _, final, failure = self._finals.popleft()
        if failure is not None:
            self._fail(failure)
            return
        self._events.put(final)
        if self._finals:
            self._timer = self._loop.call_at(self._finals[0][0], self._emit_final)
        elif self._ending:
            self._events.close()

    def _fail(self, failure: FailWith) -> None:
        """Instead of the final, nothing more comes: the events fail with the error now or,
        stalled, ``idle_timeout_ms`` later (a client's idle timeout)."""
        error = self._faults.error(failure)
        self._failed = True
        self._finals.clear()
        if failure == "stall":
            idle_s = self.options.idle_timeout_ms / 1000.0
            self._timer = self._loop.call_later(idle_s, self._events.fail, error)
        else:
            self._events.fail(error)

    def end_input(self) -> None:
        self._ending = True
        if self._timer is None:
            self._events.close()

    def __aiter__(self) -> AsyncIterator[ASREvent]:
        return self._events

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._finals.clear()
        self._events.close()

    def _partial(self, now_ms: float) -> None:
        assert self._speech_start is not None
        heard = now_ms - self._speech_start
        if heard < self._next_partial_ms or self._failed:
            return
        self._next_partial_ms = heard + self.options.partial_interval_ms
        text = self._text(heard)
        if text and text != self._last_partial:
            self._last_partial = text
            self._events.put(Transcript(text, False, self.options.confidence))

    def _text(self, heard_ms: float, final: bool = False) -> str:
        if not self._scripts:
            return f"[speech {heard_ms / 1000:.1f} s]" if self._unscripted else ""
        words = " ".join(self._scripts).split()
        if final:
            return " ".join(words)
        spoken = math.ceil(heard_ms * WORDS_PER_MINUTE / 60_000)
        return " ".join(words[: max(1, spoken)])
