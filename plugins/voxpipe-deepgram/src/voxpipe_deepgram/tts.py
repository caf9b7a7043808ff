"""DeepgramTTS: Aura over ``POST /v1/speak`` as raw 16-bit PCM (``container=none``), streamed
into frames at the session rate as the bytes arrive."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Literal

import numpy as np
from pydantic import Field

from voxpipe.audio import AudioFrame, Framer, StreamResampler
from voxpipe.hookspecs import BackendContext
from voxpipe_deepgram._connection import timeout_ms
from voxpipe_deepgram._errors import transport, wrong_content
from voxpipe_deepgram._http import HTTPBackend, HTTPOptions, close_iterator, read_head

_WHAT = "speech"
#: The rates Deepgram speaks linear16 at.
RATES = (8_000, 16_000, 24_000, 32_000, 48_000)
#: Deepgram's own default rate, asked for when the session's is not among ``RATES``.
DEFAULT_RATE = 24_000
_PCM = np.dtype("<i2")


class DeepgramTTSOptions(HTTPOptions):
    """``[tts] backend = "deepgram"``."""

    model: str = Field("aura-2-thalia-en", min_length=1, description="Aura voice model")
    sample_rate: Literal[8_000, 16_000, 24_000, 32_000, 48_000] | None = Field(
        None,
        description="the rate asked of Deepgram, Hz (resampled to the session's); default: "
        "the session's rate when Deepgram has it (no resampling), else 24000",
    )
    first_byte_timeout_ms: float = timeout_ms(
        5_000, "longest wait from the request (connecting included) to the first audio"
    )
    idle_timeout_ms: float = timeout_ms(3_000, "longest wait between two chunks of audio")


class DeepgramTTS(HTTPBackend):
    """Speaks ``text`` as frames of ``context.frame_ms`` at ``context.sample_rate``, each as soon
    as the provider's bytes for it have arrived. A success that is not audio (HTML, JSON) and
    an answer without a single sample are errors, never silence."""

    def __init__(self, options: DeepgramTTSOptions, context: BackendContext | None = None) -> None:
        super().__init__(options)
        self.options = options
        self.context = context or BackendContext()
        session_rate = self.context.sample_rate
        #: The rate asked of Deepgram.
        self.rate = options.sample_rate or (session_rate if session_rate in RATES else DEFAULT_RATE)

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        if not text.strip():
            return
        ctx = self.context
        resampler = StreamResampler(self.rate, ctx.sample_rate)
        framer = Framer(ctx.sample_rate, ctx.frame_ms)
        query = {
            "model": self.options.model,
            "encoding": "linear16",
            "sample_rate": self.rate,
            "container": "none",
        }
        body = json.dumps({"text": text}).encode()
        async with self._post(_WHAT, "/v1/speak", query, body, "application/json") as (
            response,
            deadline,
        ):
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if not (kind in ("", "application/octet-stream") or kind.startswith("audio/")):
                head = await read_head(response, deadline)
                raise wrong_content(_WHAT, f"the answer is {kind}, not audio", head, self._key)
            chunks = response.aiter_bytes()
            received, odd = 0, b""  # odd: a sample split across two chunks
            try:
                while True:
                    try:
                        chunk = await deadline.wait(anext(chunks))
                    except StopAsyncIteration:
                        break
                    received += len(chunk)
                    data = odd + chunk if odd else chunk
                    whole = len(data) - len(data) % 2
                    odd = data[whole:]
                    samples = np.frombuffer(data, dtype=_PCM, count=whole // 2).astype(np.int16)
                    for frame in framer.push(resampler.push(samples)):
                        yield frame
            finally:
                await close_iterator(chunks)
        if received < _PCM.itemsize:
            # Audio that ends early cannot be told from a short phrase; none at all can.
            raise transport(_WHAT, f"the answer ended before any audio ({received} bytes)")
        tail = resampler.push(np.zeros(0, dtype=np.int16), last=True)
        for frame in (*framer.push(tail), *framer.flush()):
            yield frame
