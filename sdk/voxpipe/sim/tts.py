"""SimTTS: audible speech-like PCM whose length follows the text, after a first-chunk delay,
produced ``speed`` times faster than real time, with the time each word is spoken.
SimStreamTTS takes the text as it is written and speaks each word once it is complete.
Faults are injected as their options say."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator

from pydantic import Field

from voxpipe.audio import AudioFrame
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Alignment, TTSOutput
from voxpipe.sim.faults import (
    MAX_DELAY_MS,
    MAX_RATE,
    MIN_RATE,
    MIN_WORDS_PER_MINUTE,
    FaultOptions,
    Faults,
)
from voxpipe.sim.voice import WORDS_PER_MINUTE, speech_frames


class SimTTSOptions(FaultOptions):
    first_chunk_ms: float = Field(
        120, ge=0, le=MAX_DELAY_MS, description="delay before the first audio frame"
    )
    speed: float = Field(
        4.0, ge=MIN_RATE, le=MAX_RATE, description="synthesis speed relative to real time"
    )
    words_per_minute: float = Field(
        WORDS_PER_MINUTE, ge=MIN_WORDS_PER_MINUTE, le=MAX_RATE, description="speaking rate"
    )
    pitch_hz: float = Field(200, gt=40, lt=1000, description="voice pitch")


class SimTTS:
    """Speaks any text as a pitched, syllable-shaped buzz in session-rate frames; each word
    gets an equal share of the audio, announced by an ``Alignment`` before its first frame."""

    def __init__(
        self, options: SimTTSOptions | None = None, context: BackendContext | None = None
    ) -> None:
        self.options = options or SimTTSOptions()
        self.context = context or BackendContext()
        self._faults = Faults(self.options, "tts")

    def synthesize(self, text: str) -> AsyncGenerator[TTSOutput, None]:
        first_ms = self._faults.first_output_ms(self.options.first_chunk_ms)
        return self._faults.inject(self._synthesize(text, first_ms), AudioFrame)

    async def _synthesize(self, text: str, first_ms: float) -> AsyncGenerator[TTSOutput, None]:
        pace = _Pace(self.options, self.context, first_ms)
        async for item in pace.speak(self._speak(text, 0.0)):
            yield item

    def _speak(self, text: str, offset_ms: float, tail: str = "") -> Iterator[TTSOutput]:
        """Frames of ``text`` with each word's alignment (audio time from ``offset_ms``) put
        before the frame its speech starts in; ``tail`` follows the last word."""
        opts, ctx = self.options, self.context
        words = text.split()
        if not words:
            return
        frames = speech_frames(
            text,
            ctx.sample_rate,
            ctx.frame_ms,
            pitch_hz=opts.pitch_hz,
            words_per_minute=opts.words_per_minute,
            seed=zlib.crc32(text.encode()),
        )
        word_ms = 60_000.0 / opts.words_per_minute
        next_word, at = 0, 0.0
        for frame in frames:
            while next_word < len(words) and next_word * word_ms < at + frame.duration_ms:
                piece = words[next_word] + (" " if next_word + 1 < len(words) else tail)
                begin = offset_ms + next_word * word_ms
                yield Alignment(piece, begin, begin + word_ms)
                next_word += 1
            at += frame.duration_ms
            yield frame

    async def aclose(self) -> None:
        return None


class SimStreamTTS(SimTTS):
    """A streaming-input TTS: reads the reply's text deltas as they come and speaks each word
    as soon as it is complete (a space after it, or the end of the text)."""

    def synthesize_stream(self, text: AsyncIterator[str]) -> AsyncGenerator[TTSOutput, None]:
        first_ms = self._faults.first_output_ms(self.options.first_chunk_ms)
        return self._faults.inject(self._synthesize_stream(text, first_ms), AudioFrame)

    async def _synthesize_stream(
        self, text: AsyncIterator[str], first_ms: float
    ) -> AsyncGenerator[TTSOutput, None]:
        pace = _Pace(self.options, self.context, first_ms)
        buffer = ""
        async for delta in text:
            *complete, buffer = (buffer + delta).split(" ")  # the last may be half-written
            for word in complete:
                if word:
                    async for item in pace.speak(self._speak(word, pace.offset_ms, " ")):
                        yield item
        for word in buffer.split():
            async for item in pace.speak(self._speak(word, pace.offset_ms, " ")):
                yield item


class _Pace:
    """Releases frames ``speed`` times faster than real time, the first ``first_ms`` after
    the first request; counts the audio released (``offset_ms``)."""

    def __init__(self, options: SimTTSOptions, context: BackendContext, first_ms: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._first_s = first_ms / 1000.0
        self._frame_s = context.frame_ms / 1000.0 / options.speed
        self._ready: float | None = None  # loop time the next frame is ready
        self.offset_ms = 0.0

    async def speak(self, items: Iterator[TTSOutput]) -> AsyncIterator[TTSOutput]:
        """Release ``items``, text that has just arrived: synthesis of it starts now."""
        loop = self._loop
        now = loop.time()
        ready = now + self._first_s if self._ready is None else max(self._ready, now)
        for item in items:
            if type(item) is AudioFrame:
                # Absolute deadlines: pacing does not drift with scheduling delays.
                await asyncio.sleep(max(ready - loop.time(), 0))
                ready += self._frame_s
                self.offset_ms += item.duration_ms
            yield item
        self._ready = ready
