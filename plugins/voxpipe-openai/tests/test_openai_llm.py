"""OpenAILLM against mocked Chat Completions streams."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing

import pytest
from openai_wire import (
    KEY,
    REPLY,
    SSE_HEADERS,
    USAGE,
    Wire,
    cancel_after_first,
    chat_body_parts,
    chat_chunk,
    chat_events,
    leftover_tasks,
    pieces,
    sse,
)

from voxpipe.errors import AuthError, ProviderError
from voxpipe.protocols import Message
from voxpipe.testing import ServerControl
from voxpipe_openai import OpenAILLM, OpenAILLMOptions

MESSAGES = [
    Message("system", "You are brief."),
    Message("user", "Hi there"),
    Message("assistant", "Hello!"),
    Message("user", "Say hello again."),
]


def llm(**options: object) -> OpenAILLM:
    return OpenAILLM(OpenAILLMOptions.model_validate(options))


async def collect(backend: OpenAILLM) -> list[str]:
    async with aclosing(backend.stream(MESSAGES)) as stream:
        return [delta async for delta in stream]


async def test_streams_content_deltas_reassembled_from_7_byte_pieces(wire: Wire) -> None:
    route = wire.route("/chat/completions", pieces(sse(*chat_events(REPLY))), headers=SSE_HEADERS)
    backend = llm()
    try:
        deltas = await collect(backend)
    finally:
        await backend.aclose()
    assert deltas == REPLY  # the role-only delta and the empty usage chunk yield nothing
    assert backend.last_usage == USAGE
    assert backend.last_finish_reason == "stop"
    assert route.call_count == 1
    assert wire.bodies[0].closed


async def test_request_url_key_and_body(wire: Wire) -> None:
    route = wire.route("/chat/completions", [sse(*chat_events(["Hi"]))], headers=SSE_HEADERS)
    backend = llm()
    await collect(backend)
    await backend.aclose()
    request = route.calls.last.request
    assert str(request.url) == "https://api.openai.com/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert "openai-organization" not in request.headers
    body = json.loads(request.content)
    assert body == {
        "model": "gpt-4o-mini",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": m.role, "content": m.content} for m in MESSAGES],
    }


async def test_options_reach_the_request_and_base_url_picks_the_server(wire: Wire) -> None:
    base = "http://127.0.0.1:11434/v1"
    route = wire.route(
        "/chat/completions", [sse(*chat_events(["Yo"]))], headers=SSE_HEADERS, base_url=base
    )
    backend = llm(
        model="llama3.2", temperature=0.3, max_tokens=64, base_url=base, organization="org-xyz"
    )
    assert await collect(backend) == ["Yo"]
    await backend.aclose()
    request = route.calls.last.request
    assert str(request.url) == "http://127.0.0.1:11434/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["openai-organization"] == "org-xyz"
    body = json.loads(request.content)
    assert body["model"] == "llama3.2"
    assert body["temperature"] == 0.3 and body["max_tokens"] == 64
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_api_openai_com_gets_max_completion_tokens(wire: Wire) -> None:
    route = wire.route("/chat/completions", [sse(*chat_events(["Hi"]))], headers=SSE_HEADERS)
    backend = llm(max_tokens=50)
    await collect(backend)
    await backend.aclose()
    body = json.loads(route.calls.last.request.content)
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body


async def test_first_delta_arrives_before_the_rest_of_the_response(wire: Wire) -> None:
    control = ServerControl()
    wire.route("/chat/completions", chat_body_parts(), headers=SSE_HEADERS, control=control)
    backend = llm()
    async with aclosing(backend.stream(MESSAGES)) as stream:
        assert await anext(stream) == "Hello"
        assert not control.release.is_set() and wire.bodies[0].sent == 1
        control.release.set()
        assert [d async for d in stream] == REPLY[1:]
    assert backend.last_usage == USAGE
    await backend.aclose()


async def test_usage_on_a_content_chunk_and_no_done_marker(wire: Wire) -> None:
    # Some compatible servers put usage on the last chunk with choices, and send no [DONE].
    events = [
        chat_chunk({"role": "assistant", "content": "Hi"}),
        chat_chunk(
            {}, "length", usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        ),
    ]
    wire.route("/chat/completions", pieces(sse(*events, done=False), 5), headers=SSE_HEADERS)
    backend = llm()
    assert await collect(backend) == ["Hi"]
    assert backend.last_usage == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    assert backend.last_finish_reason == "length"
    await backend.aclose()


async def test_last_usage_is_reset_for_each_stream(wire: Wire) -> None:
    wire.route("/chat/completions", [sse(*chat_events(["A"])[:-1])], headers=SSE_HEADERS)
    backend = llm()
    backend.last_usage = dict(USAGE)
    assert await collect(backend) == ["A"]
    assert backend.last_usage is None  # this stream reported none
    await backend.aclose()


async def test_mid_stream_error_event_is_a_provider_error(wire: Wire) -> None:
    error = {
        "error": {
            "message": "The server is overloaded. Please retry your request later.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    events = chat_events(["Hel", "lo"])[:3]
    wire.route("/chat/completions", pieces(sse(*events, error)), headers=SSE_HEADERS)
    backend = llm()
    got: list[str] = []
    with pytest.raises(ProviderError) as info:
        async with aclosing(backend.stream(MESSAGES)) as stream:
            async for delta in stream:
                got.append(delta)
    await backend.aclose()
    assert got == ["Hel", "lo"]
    assert type(info.value) is ProviderError
    assert info.value.provider == "openai" and info.value.retryable
    assert "overloaded" in str(info.value)
    assert wire.bodies[0].closed


async def test_mid_stream_invalid_request_error_is_not_retryable(wire: Wire) -> None:
    error = {"error": {"message": "Bad things.", "type": "invalid_request_error", "code": None}}
    wire.route("/chat/completions", [sse(error)], headers=SSE_HEADERS)
    backend = llm()
    with pytest.raises(ProviderError, match="Bad things") as info:
        await collect(backend)
    await backend.aclose()
    assert not info.value.retryable


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ('{"id": "chatcmpl-1", "choices": [{"delta": {"content": "Hi"', "malformed"),
        ("not json at all", "malformed"),
        ('{"id": "chatcmpl-1", "object": "chat.completion.chunk"}', "without 'choices'"),
        ('{"choices": [{"index": 0, "delta": {"content": 42}}]}', "not text"),
        ('{"choices": [], "usage": {"prompt_tokens": 1}}', "usage"),
        ('["a", "list"]', "without 'choices'"),
    ],
)
async def test_malformed_payloads_are_provider_errors_naming_openai(
    wire: Wire, event: str, expected: str
) -> None:
    events = [sse(chat_chunk({"content": "Hi"}), done=False), sse(event)]
    wire.route("/chat/completions", pieces(b"".join(events)), headers=SSE_HEADERS)
    backend = llm()
    with pytest.raises(ProviderError) as info:
        await collect(backend)
    await backend.aclose()
    assert type(info.value) is ProviderError
    assert "openai" in str(info.value) and expected in str(info.value)
    assert not info.value.retryable
    assert wire.bodies[0].closed


async def test_missing_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(AuthError, match="OPENAI_API_KEY") as info:
        llm()
    assert info.value.env_var == "OPENAI_API_KEY" and info.value.provider == "openai"


async def test_blank_key_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "  ")
    with pytest.raises(AuthError, match="OPENAI_API_KEY"):
        llm()


async def test_aclose_mid_stream_releases_the_response(wire: Wire) -> None:
    control = ServerControl()
    wire.route("/chat/completions", chat_body_parts(), headers=SSE_HEADERS, control=control)
    backend = llm()
    stream = backend.stream(MESSAGES)
    assert await anext(stream) == "Hello"
    await stream.aclose()
    assert wire.bodies[0].closed and control.closed.is_set()
    assert not await leftover_tasks()
    await backend.aclose()
    assert backend._client.is_closed()


async def test_cancelling_the_consumer_releases_the_response(wire: Wire) -> None:
    control = ServerControl()
    wire.route("/chat/completions", chat_body_parts(), headers=SSE_HEADERS, control=control)
    backend = llm()
    await cancel_after_first(backend.stream(MESSAGES))
    assert wire.bodies[0].closed
    assert not await leftover_tasks()
    await backend.aclose()


async def test_cancelling_while_waiting_for_the_response_headers(wire: Wire) -> None:
    started = asyncio.Event()

    async def slow(request: object) -> object:
        started.set()
        await asyncio.Event().wait()  # never answers
        raise AssertionError

    wire.router.post("https://api.openai.com/v1/chat/completions").mock(side_effect=slow)
    backend = llm()

    async def consume() -> None:
        await collect(backend)

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await leftover_tasks()
    await backend.aclose()


async def test_async_with_closes_the_client(wire: Wire) -> None:
    async with llm() as backend:
        pass
    assert backend._client.is_closed()
