"""Aura over ``POST /v1/speak`` against respx: the request (query, JSON body, key), the
audio as session-rate frames as it streams in (asked at the session's rate when Deepgram has
it, resampled otherwise), and answers that are not audio as errors."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing

import httpx
import numpy as np
import pytest
import respx
from deepgram_wire import SPEAK, FakeBody, error, pcm, pieces, route
from dg import KEY

from voxpipe.audio import AudioFrame
from voxpipe.errors import AuthError, ProviderError
from voxpipe.hookspecs import BackendContext
from voxpipe.testing import ServerControl
from voxpipe_deepgram import DeepgramTTS, DeepgramTTSOptions

pytestmark = pytest.mark.looptime
AUDIO = {"content-type": "audio/l16"}


def tts(rate: int = 16_000, **options: object) -> DeepgramTTS:
    return DeepgramTTS(DeepgramTTSOptions.model_validate(options), BackendContext(sample_rate=rate))


async def speak(backend: DeepgramTTS, text: str = "Hello there.") -> list[AudioFrame]:
    try:
        async with aclosing(backend.synthesize(text)) as frames:
            return [frame async for frame in frames]
    finally:
        await backend.aclose()


async def test_the_request_asks_for_raw_linear16_at_the_session_rate(wire: respx.Router) -> None:
    calls = route(wire, SPEAK, pieces(pcm(500, 16_000), 3201), headers=AUDIO)
    frames = await speak(tts(16_000, model="aura-2-luna-en"), "Hi, I'm Luna.")
    request = calls.calls[0].request
    assert dict(request.url.params) == {
        "model": "aura-2-luna-en",
        "encoding": "linear16",
        "sample_rate": "16000",
        "container": "none",
    }
    assert json.loads(request.content) == {"text": "Hi, I'm Luna."}
    assert request.headers["authorization"] == f"Token {KEY}"
    assert request.headers["content-type"] == "application/json"
    # Deepgram has the session's rate: the samples pass through as they came (odd chunks).
    assert [f.sample_rate for f in frames] == [16_000] * 25
    joined = np.concatenate([f.samples for f in frames])
    assert joined.tobytes() == pcm(500, 16_000)


async def test_a_session_rate_deepgram_lacks_is_asked_at_24k_and_resampled(
    wire: respx.Router,
) -> None:
    calls = route(wire, SPEAK, pieces(pcm(500, 24_000), 4801), headers=AUDIO)
    frames = await speak(tts(22_050))
    assert calls.calls[0].request.url.params["sample_rate"] == "24000"
    assert {f.sample_rate for f in frames} == {22_050}
    assert sum(f.duration_ms for f in frames) == pytest.approx(500, abs=20)


async def test_frames_come_as_the_audio_streams_in(wire: respx.Router) -> None:
    control = ServerControl()
    route(wire, SPEAK, [pcm(100, 16_000), pcm(400, 16_000)], headers=AUDIO, control=control)
    backend = tts(16_000)
    async with aclosing(backend.synthesize("Hello.")) as frames:
        first = [await anext(frames) for _ in range(5)]  # the first 100 ms, held before the rest
        assert len(first) == 5 and not control.release.is_set()
        control.release.set()
        rest = [frame async for frame in frames]
    assert len(rest) == 20
    assert control.open_streams == 0
    await backend.aclose()


async def test_empty_text_is_no_request(wire: respx.Router) -> None:
    assert await speak(tts(), "   ") == []


@pytest.mark.parametrize(
    ("headers", "body", "problem"),
    [
        (
            {"content-type": "application/json"},
            b'{"err_code": "x"}',
            "the answer is application/json, not audio",
        ),
        (
            {"content-type": "text/html"},
            b"<html>captive portal</html>",
            "the answer is text/html, not audio",
        ),
    ],
)
async def test_a_success_that_is_not_audio_is_an_error(
    wire: respx.Router, headers: dict[str, str], body: bytes, problem: str
) -> None:
    route(wire, SPEAK, [body], headers=headers)
    with pytest.raises(ProviderError) as info:
        await speak(tts())
    assert problem in str(info.value) and not info.value.retryable


async def test_an_answer_without_audio_is_a_retryable_error(wire: respx.Router) -> None:
    route(wire, SPEAK, [], headers=AUDIO)
    with pytest.raises(ProviderError, match="ended before any audio") as info:
        await speak(tts())
    assert info.value.retryable


async def test_a_rejected_key_is_an_auth_error(wire: respx.Router) -> None:
    error(wire, SPEAK, 401)
    with pytest.raises(AuthError, match="Invalid credentials") as info:
        await speak(tts())
    assert KEY not in str(info.value) and info.value.env_var == "DEEPGRAM_API_KEY"


async def test_a_stream_that_stalls_times_out_and_closes_its_response(wire: respx.Router) -> None:
    body = FakeBody([pcm(100, 16_000), pcm(100, 16_000)], ServerControl())  # never released

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=AUDIO, stream=body)

    wire.post(SPEAK).mock(side_effect=respond)
    loop = asyncio.get_running_loop()
    with pytest.raises(ProviderError, match="nothing for 700 ms after the last chunk"):
        await speak(tts(16_000, idle_timeout_ms=700))
    assert loop.time() == pytest.approx(0.7, abs=0.01)
    assert body.closed
