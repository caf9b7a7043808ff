"""ElevenLabsTTS: one ``POST /v1/text-to-speech/{voice_id}/stream`` per phrase, its raw PCM
streamed into session-rate frames as it arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import httpx2
from pydantic import Field

from voxpipe.audio import AudioFrame
from voxpipe.hookspecs import BackendContext
from voxpipe_elevenlabs._audio import PcmFrames
from voxpipe_elevenlabs._connection import SharedPool
from voxpipe_elevenlabs._errors import (
    api_key,
    http_error,
    malformed,
    stalled,
    truncated,
    unreachable,
    wrong_content,
)
from voxpipe_elevenlabs._options import ElevenLabsOptions

T = TypeVar("T")
_WHAT = "speech"
#: Content types that can be raw PCM; none at all means bytes (RFC 9110: octet-stream).
PCM_TYPES = frozenset({"audio/pcm", "audio/l16", "application/octet-stream", ""})
#: How much of a body that is not audio is read, to show it in the error.
_HEAD_BYTES = 4_096


class ElevenLabsTTSOptions(ElevenLabsOptions):
    """``[tts]`` options when ``backend = "elevenlabs"``."""

    optimize_streaming_latency: int | None = Field(
        None,
        ge=0,
        le=4,
        description="latency optimizations at some cost in quality, 0 (none) to 4 (most, "
        "text normalization off); default: the API's (0)",
    )


class ElevenLabsTTS:
    """A per-phrase TTS (plugin API v2): each phrase is one streaming request whose PCM
    becomes frames of ``context.frame_ms`` at ``context.sample_rate`` as soon as its bytes
    arrive. A 200 that is not PCM and a body without a sample are errors, never silence.
    Requests go through the loop's shared connection pool."""

    def __init__(
        self, options: ElevenLabsTTSOptions, context: BackendContext | None = None
    ) -> None:
        self._key = api_key()  # no key: fail before taking a share of the pool
        self.options = options
        self.context = context or BackendContext()
        self.rate = options.output_rate(self.context.sample_rate)
        self._url = f"{options.base_url}/v1/text-to-speech/{options.voice_id}/stream"
        connect, idle = options.connect_timeout_ms / 1000, options.idle_timeout_ms / 1000
        # The client's own limits; _Deadline bounds every wait for the response sooner.
        read = max(options.first_byte_timeout_ms / 1000, idle)
        self._timeout = httpx2.Timeout(connect=connect, read=read, write=idle, pool=connect)
        self._pool = SharedPool()

    def _request(self, text: str) -> httpx2.Request:
        opts = self.options
        params: dict[str, Any] = {"output_format": f"pcm_{self.rate}"}
        if opts.optimize_streaming_latency is not None:
            params["optimize_streaming_latency"] = opts.optimize_streaming_latency
        body: dict[str, Any] = {"text": text, "model_id": opts.model_id}
        if settings := opts.voice_settings():
            body["voice_settings"] = settings
        return self._pool.http.build_request(
            "POST",
            self._url,
            params=params,
            json=body,
            headers={"xi-api-key": self._key},
            timeout=self._timeout,
        )

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        if not text.strip():
            return
        deadline = _Deadline(self.options)
        audio = PcmFrames(self.rate, self.context)
        response = await deadline.wait(self._pool.http.send(self._request(text), stream=True))
        try:
            await self._check(response, deadline)
            chunks = response.aiter_bytes()
            while (chunk := await deadline.wait(anext(chunks, None))) is not None:
                if chunk:
                    deadline.flowing = True
                for frame in audio.push(chunk):
                    yield frame
        finally:
            await response.aclose()
        if audio.received < 2:
            # Audio that ends early cannot be told from a short phrase; none at all can.
            raise truncated(_WHAT, f"the response ended before any audio ({audio.received} bytes)")
        if audio.half_sample:
            raise malformed(_WHAT, f"the {audio.received} bytes of PCM end in half a sample")
        for frame in audio.end():
            yield frame

    async def _check(self, response: httpx2.Response, deadline: _Deadline) -> None:
        """Raise the error an answer that is not PCM audio stands for."""
        if response.status_code != 200:
            body = await _head(response, deadline)
            raise http_error(response.status_code, response.headers, body, _WHAT, self._key)
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in PCM_TYPES:  # an HTML page, JSON, MP3...
            body = await _head(response, deadline)
            problem = f"the response is {kind}, not the raw PCM audio asked for"
            raise wrong_content(_WHAT, problem, body, self._key)

    async def aclose(self) -> None:
        await self._pool.aclose()


async def _head(response: httpx2.Response, deadline: _Deadline) -> bytes:
    """The first ``_HEAD_BYTES`` of a body (for an error message)."""
    head = b""
    chunks = response.aiter_bytes()
    while len(head) < _HEAD_BYTES and (chunk := await deadline.wait(anext(chunks, None))):
        head += chunk
    return head[:_HEAD_BYTES]


class _Deadline:
    """The limits of one request from its start: the first audio within
    ``first_byte_timeout_ms`` (connecting included), then each chunk within
    ``idle_timeout_ms`` of asking for it. Running out is a retryable ``ProviderError``
    naming the option to raise; the awaited step is cancelled, which releases its
    connection. Transport failures become ``ProviderError`` too."""

    def __init__(self, options: ElevenLabsOptions) -> None:
        self._options = options
        self._loop = asyncio.get_running_loop()
        self._first_at = self._loop.time() + options.first_byte_timeout_ms / 1000
        #: Audio has come: the idle timeout applies from now on.
        self.flowing = False

    async def wait(self, step: Awaitable[T]) -> T:
        opts = self._options
        when = self._loop.time() + opts.idle_timeout_ms / 1000 if self.flowing else self._first_at
        timeout = asyncio.timeout_at(when)
        try:
            async with timeout:
                return await step
        except TimeoutError:
            if not timeout.expired():
                raise
            raise self._stalled() from None
        except (httpx2.ConnectTimeout, httpx2.PoolTimeout):
            raise stalled(
                _WHAT,
                f"could not connect within {opts.connect_timeout_ms:g} ms; check base_url, or "
                "raise connect_timeout_ms if the server is this slow to accept",
            ) from None
        except httpx2.TimeoutException:
            raise self._stalled() from None
        except httpx2.HTTPError as exc:
            raise unreachable(_WHAT, exc, None) from None

    def _stalled(self) -> Exception:
        opts = self._options
        if self.flowing:
            return stalled(
                _WHAT,
                f"the audio stalled: nothing for {opts.idle_timeout_ms:g} ms after the last "
                "chunk; raise idle_timeout_ms if the server pauses this long",
            )
        return stalled(
            _WHAT,
            f"no audio within {opts.first_byte_timeout_ms:g} ms of the request; raise "
            "first_byte_timeout_ms if the server is this slow",
        )
