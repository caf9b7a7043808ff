"""SimTTS: audible speech-like PCM whose length follows the text, after a first-chunk delay,
produced ``speed`` times faster than real time."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field

from voxpipe.audio import AudioFrame
from voxpipe.hookspecs import BackendContext
from voxpipe.sim.voice import WORDS_PER_MINUTE, speech_frames


class SimTTSOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_chunk_ms: float = Field(120, ge=0, description="delay before the first audio frame")
    speed: float = Field(4.0, gt=0, description="synthesis speed relative to real time")
    words_per_minute: float = Field(WORDS_PER_MINUTE, gt=0, description="speaking rate")
    pitch_hz: float = Field(200, gt=40, lt=1000, description="voice pitch")


class SimTTS:
    """Speaks any text as a pitched, syllable-shaped buzz in session-rate frames."""

    def __init__(
        self, options: SimTTSOptions | None = None, context: BackendContext | None = None
    ) -> None:
        self.options = options or SimTTSOptions()
        self.context = context or BackendContext()

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        opts, ctx = self.options, self.context
        loop = asyncio.get_running_loop()
        start = loop.time()
        frames = speech_frames(
            text,
            ctx.sample_rate,
            ctx.frame_ms,
            pitch_hz=opts.pitch_hz,
            words_per_minute=opts.words_per_minute,
            seed=zlib.crc32(text.encode()),
        )
        for i, frame in enumerate(frames):
            ready = start + (opts.first_chunk_ms + i * ctx.frame_ms / opts.speed) / 1000.0
            await asyncio.sleep(max(ready - loop.time(), 0))
            yield frame

    async def aclose(self) -> None:
        return None
