"""OpenAITTS: ``/v1/audio/speech`` as raw 24 kHz PCM, streamed into session-rate frames."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import numpy as np
from openai import omit
from pydantic import Field

from voxpipe.audio import AudioFrame, Framer, StreamResampler
from voxpipe.hookspecs import BackendContext
from voxpipe_openai._body import content_type, read_head
from voxpipe_openai._client import ClientBackend, ConnectionOptions, timeout_ms
from voxpipe_openai._errors import translated, truncated, wrong_content

_WHAT = "speech"
#: ``response_format="pcm"``: 24 kHz, signed 16-bit little-endian, mono.
PCM_RATE = 24_000
_PCM = np.dtype("<i2")
#: Content types that can be raw PCM; none at all means bytes (RFC 9110: octet-stream).
PCM_TYPES = frozenset({"audio/pcm", "audio/l16", "application/octet-stream", ""})


class OpenAITTSOptions(ConnectionOptions):
    model: str = Field("gpt-4o-mini-tts", min_length=1, description="speech model")
    voice: str = Field("alloy", min_length=1, description="voice name (alloy, ash, coral...)")
    instructions: str | None = Field(None, description="how to speak (tone, pace, accent)")
    speed: float | None = Field(None, ge=0.25, le=4.0, description="speaking speed, 1 = normal")
    first_byte_timeout_ms: float = timeout_ms(
        5_000, "longest wait from the request (connecting included) to the first audio"
    )
    idle_timeout_ms: float = timeout_ms(3_000, "longest wait between two chunks of audio")


class OpenAITTS(ClientBackend):
    """Speaks ``text`` as frames of ``context.frame_ms`` at ``context.sample_rate``, each as soon
    as the provider's bytes for it have arrived. A 200 that is not PCM (HTML, JSON, text) and
    a body without a single sample are errors, never silence."""

    def __init__(self, options: OpenAITTSOptions, context: BackendContext | None = None) -> None:
        super().__init__(options)
        self.options = options
        self.context = context or BackendContext()

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        if not text.strip():
            return
        opts, ctx = self.options, self.context
        resampler = StreamResampler(PCM_RATE, ctx.sample_rate)
        framer = Framer(ctx.sample_rate, ctx.frame_ms)
        odd = b""  # a sample split across two chunks
        deadline = self._deadline(_WHAT, "audio")
        async with AsyncExitStack() as stack:  # closes the response however the stream ends
            with translated(_WHAT, self._key):
                request = self._client.audio.speech.with_streaming_response.create(
                    input=text,
                    model=opts.model,
                    voice=opts.voice,
                    response_format="pcm",
                    instructions=omit if opts.instructions is None else opts.instructions,
                    speed=omit if opts.speed is None else opts.speed,
                )
                response = await deadline.wait(stack.enter_async_context(request))
                kind = content_type(response.headers)
                if kind not in PCM_TYPES:  # an HTML page, JSON, an event stream...
                    head = await read_head(response.iter_bytes(), deadline.wait)
                    problem = f"the response is {kind}, not raw PCM audio (audio/pcm)"
                    raise wrong_content(_WHAT, problem, head, self._key)
                chunks = response.iter_bytes()
            received = 0
            while True:
                with translated(_WHAT, self._key):
                    try:
                        chunk = await deadline.wait(anext(chunks))
                    except StopAsyncIteration:
                        break
                if chunk:
                    deadline.output_came()
                    received += len(chunk)
                data = odd + chunk if odd else chunk
                whole = len(data) - len(data) % 2
                odd = data[whole:]
                samples = np.frombuffer(data, dtype=_PCM, count=whole // 2).astype(np.int16)
                for frame in framer.push(resampler.push(samples)):
                    yield frame
            if received < _PCM.itemsize:
                # Audio that ends early cannot be told from a short phrase; none at all can.
                raise truncated(_WHAT, f"the response ended before any audio ({received} bytes)")
            tail = resampler.push(np.zeros(0, dtype=np.int16), last=True)
            for frame in (*framer.push(tail), *framer.flush()):
                yield frame
