"""The tone TTS backend and the hook that registers it (entry point ``tone``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import aclosing

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from voxpipe import PLUGIN_API_VERSION, BackendContext, BackendSpec, hookimpl
from voxpipe.audio import AudioFrame, Framer, StreamResampler
from voxpipe.errors import AuthError, ProviderError, RateLimited
from voxpipe_tone.provider import (
    SAMPLE_RATE,
    SpeechStream,
    Status,
    ToneClient,
    ToneError,
    Transport,
)

PROVIDER = "tone"
KEY_ENV_VAR = "TONE_API_KEY"
_PCM16 = np.dtype("<i2")


class ToneOptions(BaseModel):
    """``[tts]`` options when ``backend = "tone"``; unknown options are config errors."""

    model_config = ConfigDict(extra="forbid")

    pitch_hz: float = Field(440.0, ge=50, le=2_000, description="the tone's pitch")
    first_byte_timeout_ms: float = Field(
        5_000, gt=0, le=60_000, description="longest wait from the request to the first audio"
    )
    idle_timeout_ms: float = Field(
        3_000, gt=0, le=60_000, description="longest wait between two chunks of audio"
    )


class ToneTTS:
    """A per-phrase TTS (plugin API v2): the service's 24 kHz PCM, resampled to the session
    rate and cut into whole frames as it arrives. ``transport`` is for tests."""

    def __init__(
        self, options: ToneOptions, context: BackendContext, *, transport: Transport | None = None
    ) -> None:
        self.options, self.context = options, context
        self._client = ToneClient(api_key(), transport=transport)

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        if not text.strip():
            return
        rate = self.context.sample_rate
        resampler = StreamResampler(SAMPLE_RATE, rate)
        framer = Framer(rate, self.context.frame_ms)  # one per phrase: frames start at 0 ms
        odd = b""  # half a sample, when a chunk ends in the middle of one
        received = 0
        # The call is closed however this stream ends: finished, failed, closed, cancelled.
        async with aclosing(self._client.stream(text, pitch_hz=self.options.pitch_hz)) as call:
            while (chunk := await self._next(call, first=not received)) is not None:
                received += len(chunk)
                data = odd + chunk
                whole = len(data) - len(data) % 2
                odd = data[whole:]
                samples = np.frombuffer(data, _PCM16, whole // 2).astype(np.int16)
                for frame in framer.push(resampler.push(samples)):
                    yield frame
        if not received:
            raise ProviderError(
                f"{PROVIDER}: the call ended before any audio", provider=PROVIDER, retryable=True
            )
        if odd:
            raise ProviderError(
                f"{PROVIDER}: malformed audio: {received} bytes end in half a PCM16 sample",
                provider=PROVIDER,
            )
        # The resampler holds back its last ~20 ms until told the audio has ended; the
        # framer then pads what is left to a whole frame.
        tail = resampler.push(np.zeros(0, dtype=np.int16), last=True)
        for frame in (*framer.push(tail), *framer.flush()):
            yield frame

    async def _next(self, call: SpeechStream, *, first: bool) -> bytes | None:
        """The call's next chunk (None at its end) within the timeout that applies, its
        failures as voxpipe errors. Only the SDK's call is wrapped, never a ``yield``: what
        a consumer throws into the stream is not the provider's error."""
        opts = self.options
        limit_ms, option = (
            (opts.first_byte_timeout_ms, "first_byte_timeout_ms")
            if first
            else (opts.idle_timeout_ms, "idle_timeout_ms")
        )
        try:
            async with asyncio.timeout(limit_ms / 1000):
                return await anext(call, None)
        except TimeoutError:
            raise ProviderError(
                f"{PROVIDER}: no audio for {limit_ms:g} ms; raise {option} if the service is "
                "this slow",
                provider=PROVIDER,
                retryable=True,
            ) from None
        except ToneError as exc:
            raise voxpipe_error(exc) from None

    async def aclose(self) -> None:
        """Each call is closed with its phrase, and the client holds nothing else (one that
        holds a channel or a connection pool closes it here)."""


def api_key() -> str:
    """The key from ``TONE_API_KEY``; an ``AuthError`` naming the variable when it is unset."""
    key = os.environ.get(KEY_ENV_VAR, "").strip()
    if not key:
        raise AuthError(
            f"{PROVIDER}: no API key. Set the {KEY_ENV_VAR} environment variable (keys are "
            "read from the environment only).",
            provider=PROVIDER,
            env_var=KEY_ENV_VAR,
        )
    return key


def voxpipe_error(exc: ToneError) -> ProviderError:
    """The voxpipe error for a failed call, as the budget policies need it."""
    if exc.status is Status.UNAUTHENTICATED:
        return AuthError(
            f"{PROVIDER} rejected the API key ({exc.details}): check {KEY_ENV_VAR}",
            provider=PROVIDER,
            env_var=KEY_ENV_VAR,
        )
    if exc.status is Status.RESOURCE_EXHAUSTED:
        return RateLimited(
            f"{PROVIDER}: rate limited ({exc.details})",
            provider=PROVIDER,
            retry_after=exc.retry_after_s,
        )
    return ProviderError(
        f"{PROVIDER}: {exc.status.name}: {exc.details}",
        provider=PROVIDER,
        retryable=exc.status is Status.UNAVAILABLE,
    )


@hookimpl
def voxpipe_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            "tts",
            "tone",
            ToneTTS,
            ToneOptions,
            PLUGIN_API_VERSION,
            description="a tone per word from a streaming (non-HTTP) speech service",
            env_vars=(KEY_ENV_VAR,),
        )
    ]
