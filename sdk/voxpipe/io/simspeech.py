"""SimSpeechSource: a simulated caller whose lines are timed against the agent, in real time.

Each line is spoken as speech-like audio whose frames carry the line as ``script`` (so the
sim ASR can "recognise" it), or, given a ``voice`` (any TTS), as that TTS's speech, which a
real ASR can hear; silence and non-speech sounds carry ``""``. A line starts
``delay_ms`` after what it waits for: the agent's answer to the previous line ("answer",
the default), the start of that answer ("answer_start": talking over the agent), or the
end of the previous line ("line"). The session that runs the source binds it to itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from voxpipe.audio import AudioFrame, Int16Array, iter_frames, resample
from voxpipe.clock import SessionClock
from voxpipe.compat import as_v2
from voxpipe.sim.voice import WORDS_PER_MINUTE, speech_frames

After = Literal["answer", "answer_start", "line"]


@dataclass(frozen=True, slots=True)
class Line:
    """One thing the simulated user says, and when.

    ``text=""`` is a sound with no words (a cough, a knock) lasting ``sound_ms``.
    """

    text: str
    after: After = "answer"
    delay_ms: float = 600.0
    sound_ms: float = 100.0


@dataclass(frozen=True, slots=True)
class Said:
    """A line as it was said, on the session clock."""

    text: str
    start_ms: float
    end_ms: float


class SimSpeechSource:
    """Says each line at ``words_per_minute`` when its cue comes (``str`` lines wait for the
    agent's answer and ``pause_ms`` more), then stays silent. Waits for the agent last at
    most ``max_wait_ms``. The first line starts after ``lead_ms`` of silence.

    With a ``voice`` (a TTS backend), the lines are that TTS's speech instead, synthesised
    before the first frame; the source closes the voice once it has them. ``said`` lists
    each line as it was said."""

    def __init__(
        self,
        lines: Sequence[str | Line],
        *,
        sample_rate: int = 16_000,
        frame_ms: int = 20,
        lead_ms: float = 400,
        pause_ms: float = 600,
        max_wait_ms: float = 30_000,
        words_per_minute: float = WORDS_PER_MINUTE,
        voice: Any = None,
    ) -> None:
        self.lines = [
            line if isinstance(line, Line) else Line(line, delay_ms=pause_ms) for line in lines
        ]
        self.sample_rate, self.frame_ms = sample_rate, frame_ms
        self.lead_ms, self.max_wait_ms = lead_ms, max_wait_ms
        self.words_per_minute = words_per_minute
        self._speaking: list[float] = []  # when the agent started speaking, session ms
        self._answered: list[float] = []  # when a turn's reply ended
        self._clock: SessionClock | None = None
        self._silence = np.zeros(int(sample_rate * frame_ms / 1000), dtype=np.int16)
        self.voice = None if voice is None else as_v2("tts", voice)
        self._spoken: dict[str, Int16Array] = {}  # each line in the voice's speech
        self.said: list[Said] = []

    def bind(self, session: Any) -> None:
        """Follow ``session``'s events to time the lines."""
        session.on("state", self._on_state)
        session.on("turn", self._on_turn)

    def _on_state(self, change: Any) -> None:
        if change.new == "speaking":
            self._speaking.append(change.at_ms)

    def _on_turn(self, _turn: object) -> None:
        if self._clock is not None:
            self._answered.append(self._clock.now_ms())

    async def frames(self, clock: SessionClock) -> AsyncIterator[AudioFrame]:
        self._clock = clock
        start_ms = clock.now_ms()
        if self.voice is not None:  # the frames due meanwhile follow at once
            await self._synthesise_lines(self.voice)
        for frame in self._plan(start_ms):
            await clock.sleep_until(frame.end_ms)  # delivered once captured
            yield frame

    def _plan(self, t: float) -> Iterator[AudioFrame]:
        """The frames to deliver; lazy, so waiting for the agent sees its events live."""
        start = t + self.lead_ms
        previous_end = t
        for i, line in enumerate(self.lines):
            if i:
                deadline = t + self.max_wait_ms
                while (cue := self._cue(line, previous_end)) is None and t < deadline:
                    yield self._quiet(t)
                    t += self.frame_ms
                start = (cue if cue is not None else t) + line.delay_ms
            while t < start:
                yield self._quiet(t)
                t += self.frame_ms
            started = t
            for frame in self._say(line, i, t):
                yield frame
                t = frame.end_ms
            self.said.append(Said(line.text, started, t))
            previous_end = t
        end = t + self.lines[-1].delay_ms if self.lines else t
        while t < end:  # room for the last answer to start
            yield self._quiet(t)
            t += self.frame_ms

    def _cue(self, line: Line, previous_end: float) -> float | None:
        """When what ``line`` waits for happened (session ms), if it has."""
        if line.after == "line":
            return previous_end
        events = self._speaking if line.after == "answer_start" else self._answered
        return next((at for at in events if at >= previous_end), None)

    def _quiet(self, start_ms: float) -> AudioFrame:
        return AudioFrame(self._silence, self.sample_rate, start_ms, "")

    async def _synthesise_lines(self, voice: Any) -> None:
        """Each line's words in ``voice``'s speech, at this source's rate; then close it."""
        try:
            for text in dict.fromkeys(line.text for line in self.lines if line.text):
                async with aclosing(voice.synthesize(text)) as stream:
                    frames = [item async for item in stream if isinstance(item, AudioFrame)]
                if not frames:
                    raise ValueError(f"the voice {voice!r} said nothing for {text!r}")
                speech = np.concatenate([frame.samples for frame in frames])
                self._spoken[text] = resample(speech, frames[0].sample_rate, self.sample_rate)
        finally:
            self.voice = None
            if (aclose := getattr(voice, "aclose", None)) is not None:
                await aclose()

    def _say(self, line: Line, index: int, start_ms: float) -> Iterator[AudioFrame]:
        if not line.text:
            return self._sound(line.sound_ms, index, start_ms)
        if line.text in self._spoken:
            speech = self._spoken[line.text]
            return iter_frames(speech, self.sample_rate, self.frame_ms, start_ms, line.text)
        return speech_frames(
            line.text,
            self.sample_rate,
            self.frame_ms,
            pitch_hz=130.0,
            seed=index,
            words_per_minute=self.words_per_minute,
            start_ms=start_ms,
            script=line.text,
        )

    def _sound(self, duration_ms: float, index: int, start_ms: float) -> Iterator[AudioFrame]:
        """A burst of noise with no words in it."""
        rng = np.random.default_rng(index)
        n = len(self._silence)
        for i in range(max(round(duration_ms / self.frame_ms), 1)):
            noise = (rng.standard_normal(n) * 6000).clip(-32768, 32767).astype(np.int16)
            yield AudioFrame(noise, self.sample_rate, start_ms + i * self.frame_ms, "")
