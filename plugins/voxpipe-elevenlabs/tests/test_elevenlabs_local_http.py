"""ElevenLabsTTS over a real connection to the fake server on 127.0.0.1: the whole HTTP path
(connection pool, chunked transfer, the key header), and the waits it bounds."""

from __future__ import annotations

import asyncio
import socket
from contextlib import aclosing

import numpy as np
import pytest

from voxpipe.audio import AudioFrame
from voxpipe.errors import AuthError, ProviderError, RateLimited
from voxpipe.testing import Failure
from voxpipe_elevenlabs import ElevenLabsTTS, ElevenLabsTTSOptions
from voxpipe_elevenlabs.testing import FakeElevenLabs, Trouble, kit_failure


def tts(base_url: str, **options: object) -> ElevenLabsTTS:
    return ElevenLabsTTS(ElevenLabsTTSOptions.model_validate({"base_url": base_url, **options}))


async def frames_of(backend: ElevenLabsTTS, text: str) -> list[AudioFrame]:
    async with aclosing(backend.synthesize(text)) as stream:
        return [frame async for frame in stream]


@pytest.mark.looptime
async def test_phrases_are_spoken_over_one_kept_alive_connection(server: FakeElevenLabs) -> None:
    backend = tts(server.http_url)
    try:
        first = await frames_of(backend, "Hello there.")
        second = await frames_of(backend, "How can I help you today?")
    finally:
        await backend.aclose()
    for frames, received in zip((first, second), server.requests, strict=True):
        assert received.key_ok and received.query == {"output_format": "pcm_16000"}
        audio = sum(f.duration_ms for f in frames)
        assert received.audio_ms <= audio < received.audio_ms + 20
        assert np.abs(np.concatenate([f.samples for f in frames])).max() > 1000  # speech
    assert server.connections == 1  # one kept-alive connection served both requests
    await server.all_closed()  # closing the backend closed the pool


@pytest.mark.looptime
async def test_the_first_audio_comes_as_the_server_sends_it(server: FakeElevenLabs) -> None:
    loop = asyncio.get_running_loop()
    backend = tts(server.http_url)
    start = loop.time()
    async with aclosing(backend.synthesize("Hello there.")) as stream:
        await anext(stream)
        assert loop.time() - start == pytest.approx(0.12, abs=0.005)  # the fake's latency
    await backend.aclose()


@pytest.mark.looptime
async def test_a_stall_is_bounded_by_the_idle_timeout(server: FakeElevenLabs) -> None:
    server.answer_next(Trouble.STALL)
    loop = asyncio.get_running_loop()
    backend = tts(server.http_url, idle_timeout_ms=800)
    with pytest.raises(ProviderError, match="nothing for 800 ms after the last chunk") as info:
        async with aclosing(backend.synthesize("Hello there.")) as stream:
            await anext(stream)
            start = loop.time()
            async for _ in stream:
                pass
    assert loop.time() - start == pytest.approx(0.8, abs=0.05) and info.value.retryable
    await backend.aclose()
    await server.all_closed()  # the stalled connection was closed, not kept in the pool


@pytest.mark.looptime
async def test_a_dropped_connection_is_retryable(server: FakeElevenLabs) -> None:
    server.answer_next(Trouble.DROP)
    backend = tts(server.http_url)
    with pytest.raises(ProviderError, match="connection failed") as info:
        await frames_of(backend, "Hello there.")
    assert info.value.retryable
    await backend.aclose()


@pytest.mark.looptime
async def test_a_wrong_key_is_an_auth_error(
    server: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_wrong_0123456789")
    backend = tts(server.http_url)
    with pytest.raises(AuthError, match="HTTP 401 invalid_api_key"):
        await frames_of(backend, "Hello there.")
    await backend.aclose()


async def test_a_refused_connection_is_retryable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = tts(f"http://127.0.0.1:{port}")
    with pytest.raises(ProviderError, match="connection failed") as info:
        await frames_of(backend, "Hello there.")
    assert info.value.retryable
    await backend.aclose()


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("failure", "kind", "retryable"),
    [
        (Failure.AUTH, AuthError, False),
        (Failure.RATE_LIMIT, RateLimited, True),
        (Failure.SERVER, ProviderError, True),
        (Failure.MALFORMED, ProviderError, False),  # a JSON document instead of PCM
        (Failure.TRUNCATED, ProviderError, True),  # a 200 without a byte
        (Failure.WRONG_CONTENT_TYPE, ProviderError, False),
    ],
)
async def test_the_fakes_kit_failures_over_a_real_connection(
    server: FakeElevenLabs, failure: Failure, kind: type[ProviderError], retryable: bool
) -> None:
    server.answer_next(kit_failure(failure))
    backend = tts(server.http_url)
    with pytest.raises(ProviderError) as info:
        await frames_of(backend, "Hello there.")
    await backend.aclose()
    assert type(info.value) is kind and info.value.retryable is retryable
    if isinstance(info.value, RateLimited):
        assert info.value.retry_after == Failure.RETRY_AFTER_S
