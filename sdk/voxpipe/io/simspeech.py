"""SimSpeechSource: lines of text spoken as speech-like audio, paced in real time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from voxpipe.audio import AudioFrame
from voxpipe.clock import SessionClock
from voxpipe.sim.voice import WORDS_PER_MINUTE, speech_frames


class _Announcer(Protocol):
    def on(self, event: str, callback: Any) -> Any: ...


class SimSpeechSource:
    """A simulated caller. Says each line at ``words_per_minute`` (voiced frames carry the line
    as ``script``), then stays silent: until ``agent`` has answered and ``pause_ms`` more, when
    an agent is given (at most ``max_wait_ms``), else for ``gap_ms``. Silence is digital zero."""

    def __init__(
        self,
        lines: Sequence[str],
        *,
        sample_rate: int = 16_000,
        frame_ms: int = 20,
        agent: _Announcer | None = None,
        lead_ms: float = 400,
        pause_ms: float = 600,
        gap_ms: float = 4000,
        max_wait_ms: float = 30_000,
        words_per_minute: float = WORDS_PER_MINUTE,
    ) -> None:
        self.lines = list(lines)
        self.sample_rate, self.frame_ms = sample_rate, frame_ms
        self.lead_ms, self.pause_ms, self.gap_ms = lead_ms, pause_ms, gap_ms
        self.max_wait_ms = max_wait_ms
        self.words_per_minute = words_per_minute
        self._answered = 0
        self._waits_for_agent = agent is not None
        if agent is not None:
            agent.on("turn", self._on_turn)
        self._silence = np.zeros(int(sample_rate * frame_ms / 1000), dtype=np.int16)

    def _on_turn(self, _turn: object) -> None:
        self._answered += 1

    async def frames(self, clock: SessionClock) -> AsyncIterator[AudioFrame]:
        for frame in self._plan(clock.now_ms()):
            await clock.sleep_until(frame.end_ms)  # delivered once captured
            yield frame

    def _plan(self, t: float) -> Iterator[AudioFrame]:
        """The frames to deliver; lazy, so waiting for the agent sees its answers live."""
        end = t + self.lead_ms
        while t < end:
            yield self._quiet(t)
            t += self.frame_ms
        for i, line in enumerate(self.lines):
            for frame in self._speech(line, i, t):
                yield frame
            t = frame.end_ms
            deadline = t + self.max_wait_ms
            while self._waits_for_agent and self._answered <= i and t < deadline:
                yield self._quiet(t)
                t += self.frame_ms
            end = t + (self.pause_ms if self._waits_for_agent else self.gap_ms)
            while t < end:
                yield self._quiet(t)
                t += self.frame_ms

    def _quiet(self, start_ms: float) -> AudioFrame:
        return AudioFrame(self._silence, self.sample_rate, start_ms)

    def _speech(self, line: str, index: int, start_ms: float) -> Iterator[AudioFrame]:
        return speech_frames(
            line,
            self.sample_rate,
            self.frame_ms,
            pitch_hz=130.0,
            seed=index,
            words_per_minute=self.words_per_minute,
            start_ms=start_ms,
            script=line,
        )
