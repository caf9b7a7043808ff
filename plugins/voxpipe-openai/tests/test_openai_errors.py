"""HTTP errors, connection errors and the key, for all three backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import httpx
import numpy as np
import pytest
from openai_wire import KEY, Wire, error_response

from voxpipe.audio import split_frames
from voxpipe.errors import AuthError, ProviderError, RateLimited, retry_after_s
from voxpipe.protocols import Message
from voxpipe.sim.voice import speech_like
from voxpipe.vad import Utterance
from voxpipe_openai import (
    OpenAIASR,
    OpenAIASROptions,
    OpenAILLM,
    OpenAILLMOptions,
    OpenAITTS,
    OpenAITTSOptions,
)
from voxpipe_openai._errors import redact


async def run_llm() -> list[Any]:
    backend = OpenAILLM(OpenAILLMOptions())
    try:
        async with aclosing(backend.chat([Message("user", "hi")])) as stream:
            return [event async for event in stream]
    finally:
        await backend.aclose()


async def run_tts() -> list[Any]:
    backend = OpenAITTS(OpenAITTSOptions())
    try:
        async with aclosing(backend.synthesize("Hello.")) as stream:
            return [f async for f in stream]
    finally:
        await backend.aclose()


async def run_asr() -> list[Any]:
    """One utterance, marked where the session's VAD would: 200-800 ms, ended at 1000 ms."""
    backend = OpenAIASR(OpenAIASROptions())
    stream = backend.listen()
    try:
        voice = np.concatenate([np.zeros(3200, np.int16), speech_like(600, 16_000)])
        for frame in split_frames(np.concatenate([voice, np.zeros(3200, np.int16)]), 16_000, 20):
            stream.push(frame)
        stream.speech_started(200.0)
        stream.speech_ended(Utterance(200.0, 800.0, 1000.0))
        stream.end_input()
        return [event async for event in stream]
    finally:
        await stream.aclose()
        await backend.aclose()


BACKENDS: dict[str, tuple[str, Callable[[], Awaitable[list[Any]]]]] = {
    "llm": ("/chat/completions", run_llm),
    "tts": ("/audio/speech", run_tts),
    "asr": ("/audio/transcriptions", run_asr),
}
kinds = pytest.mark.parametrize("kind", list(BACKENDS))


async def fail_with(wire: Wire, kind: str, status: int, **headers: str) -> ProviderError:
    path, run = BACKENDS[kind]
    route = wire.fail(path, status, headers)
    with pytest.raises(ProviderError) as info:
        await run()
    assert route.call_count == 1  # the SDK's own retries are off
    error = info.value
    assert error.provider == "openai"
    assert KEY not in str(error) and KEY not in repr(error) and KEY not in str(error.args)
    return error


@kinds
async def test_401_is_an_auth_error_pointing_at_the_variable(wire: Wire, kind: str) -> None:
    error = await fail_with(wire, kind, 401)
    assert isinstance(error, AuthError)
    assert error.env_var == "OPENAI_API_KEY" and not error.retryable
    assert "OPENAI_API_KEY" in str(error) and "Incorrect API key" in str(error)
    assert "sk-proj-*" not in str(error) and "6a0f" not in str(error)  # not even masked


@kinds
async def test_429_is_rate_limited_with_retry_after(wire: Wire, kind: str) -> None:
    error = await fail_with(wire, kind, 429, **{"retry-after": "7"})
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0 and error.retryable
    assert "Rate limit reached" in str(error)


@kinds
async def test_429_without_retry_after(wire: Wire, kind: str) -> None:
    error = await fail_with(wire, kind, 429)
    assert isinstance(error, RateLimited) and error.retry_after is None


@kinds
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_a_retryable_provider_error(wire: Wire, kind: str, status: int) -> None:
    error = await fail_with(wire, kind, status)
    assert type(error) is ProviderError and error.retryable
    assert f"HTTP {status}" in str(error) and "server had an error" in str(error)


@kinds
@pytest.mark.parametrize("status", [400, 403, 404, 422])
async def test_other_4xx_carry_the_providers_message(wire: Wire, kind: str, status: int) -> None:
    error = await fail_with(wire, kind, status)
    assert type(error) is ProviderError and not error.retryable
    assert "'gpt-nope' does not exist" in str(error)


async def test_insufficient_quota_429_is_not_worth_retrying(wire: Wire) -> None:
    body = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    wire.router.post("https://api.openai.com/v1/chat/completions").respond(429, json=body)
    with pytest.raises(ProviderError, match="quota") as info:
        await run_llm()
    assert type(info.value) is ProviderError and not info.value.retryable


async def test_non_json_error_body(wire: Wire) -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    wire.router.post("https://api.openai.com/v1/chat/completions").respond(502, text=html)
    with pytest.raises(ProviderError, match="502 Bad Gateway") as info:
        await run_llm()
    assert info.value.retryable


@kinds
async def test_connection_errors_are_retryable(wire: Wire, kind: str) -> None:
    path, run = BACKENDS[kind]
    wire.router.post(f"https://api.openai.com/v1{path}").mock(
        side_effect=httpx.ConnectError("connection refused")
    )
    with pytest.raises(ProviderError) as info:
        await run()
    assert type(info.value) is ProviderError and info.value.retryable
    assert "openai" in str(info.value) and "Connection error" in str(info.value)


@kinds
async def test_timeouts_are_retryable(wire: Wire, kind: str) -> None:
    path, run = BACKENDS[kind]
    wire.router.post(f"https://api.openai.com/v1{path}").mock(
        side_effect=httpx.ReadTimeout("timed out")
    )
    with pytest.raises(ProviderError, match="ms of the request") as info:
        await run()
    assert info.value.retryable and "raise first_byte_timeout_ms" in str(info.value)


async def test_unmocked_requests_fail_the_test_and_never_reach_the_network() -> None:
    # The autouse respx router has no route here: the request must not get out.
    with pytest.raises(AssertionError, match="not mocked"):
        await run_llm()


def test_redact_removes_the_key_and_key_shaped_words() -> None:
    text = f"bad key {KEY} and sk-abc***************wxyz and sk-proj-12ab."
    assert redact(text, KEY) == "bad key *** and sk-*** and sk-***"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "junk", "retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-4"}, None),
        ({}, None),
    ],
)
def test_retry_after_header(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(httpx.Headers(headers)) == expected


def test_error_response_helper_is_openai_shaped() -> None:
    body = error_response(401).json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
