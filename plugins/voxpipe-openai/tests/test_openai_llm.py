"""OpenAILLM against mocked Chat Completions streams."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from typing import Any

import httpx
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
    tool_call_delta,
)

from voxpipe.errors import AuthError, ProviderError
from voxpipe.protocols import Finish, LLMEvent, Message, TextDelta, ToolCall, Usage
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


async def collect(backend: OpenAILLM, messages: list[Message] = MESSAGES) -> list[LLMEvent]:
    async with aclosing(backend.chat(messages)) as stream:
        return [event async for event in stream]


def texts(events: list[LLMEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


async def test_streams_content_deltas_reassembled_from_7_byte_pieces(wire: Wire) -> None:
    route = wire.route("/chat/completions", pieces(sse(*chat_events(REPLY))), headers=SSE_HEADERS)
    backend = llm()
    try:
        events = await collect(backend)
    finally:
        await backend.aclose()
    # The role-only delta yields nothing, the finish chunk its reason; the usage chunk last.
    assert events == [*(TextDelta(w) for w in REPLY), Finish("stop"), Usage(**USAGE)]
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
    assert request.headers["accept-encoding"] == "identity"  # the bytes as they are sent
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
    assert texts(await collect(backend)) == ["Yo"]
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
    async with aclosing(backend.chat(MESSAGES)) as stream:
        assert await anext(stream) == TextDelta("Hello")
        assert not control.release.is_set() and wire.bodies[0].sent == 1
        control.release.set()
        rest = [e async for e in stream]
        assert rest == [*(TextDelta(w) for w in REPLY[1:]), Finish("stop"), Usage(**USAGE)]
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
    assert await collect(backend) == [TextDelta("Hi"), Finish("length"), Usage(3, 1, 4)]
    await backend.aclose()


async def test_no_usage_event_when_the_server_reports_none(wire: Wire) -> None:
    wire.route("/chat/completions", [sse(*chat_events(["A"])[:-1])], headers=SSE_HEADERS)
    backend = llm()
    assert await collect(backend) == [TextDelta("A"), Finish("stop")]
    await backend.aclose()


async def test_a_refusal_is_text_too(wire: Wire) -> None:
    events = [
        chat_chunk({"role": "assistant", "content": None, "refusal": "I can't"}),
        chat_chunk({"refusal": " help with that."}),
        chat_chunk({}, "stop"),
    ]
    wire.route("/chat/completions", [sse(*events)], headers=SSE_HEADERS)
    backend = llm()
    assert texts(await collect(backend)) == ["I can't", " help with that."]
    await backend.aclose()


async def test_concurrent_chats_on_one_backend_keep_their_own_events(wire: Wire) -> None:
    # One backend object serves every session: nothing of one chat may leak into another.
    def reply(request: httpx.Request) -> httpx.Response:
        said = json.loads(request.content)["messages"][-1]["content"]
        counts = {"prompt_tokens": len(said), "completion_tokens": 1, "total_tokens": len(said) + 1}
        body = sse(*chat_events([said.upper()], usage=counts))
        return httpx.Response(200, headers=SSE_HEADERS, content=body)

    wire.router.post("https://api.openai.com/v1/chat/completions").mock(side_effect=reply)
    backend = llm()
    one, two = await asyncio.gather(
        collect(backend, [Message("user", "a")]), collect(backend, [Message("user", "bcd")])
    )
    await backend.aclose()
    assert one == [TextDelta("A"), Finish("stop"), Usage(1, 1, 2)]
    assert two == [TextDelta("BCD"), Finish("stop"), Usage(3, 1, 4)]


WEATHER_CALL = ToolCall("call_w1", "get_weather", '{"city": "Paris", "unit": "c"}')
TIME_CALL = ToolCall("call_t2", "get_time", '{"zone": "CET"}')


def tool_call_events() -> list[dict[str, Any]]:
    """Two tool calls whose fragments interleave across chunks, the second one first; a
    later fragment repeats its call's id, as some compatible servers do."""
    repeated_id = {"index": 1, "id": "call_t2", "function": {"arguments": 'ne": "CET"}'}}
    return [
        chat_chunk(
            {
                "role": "assistant",
                "content": None,
                **tool_call_delta(1, id="call_t2", name="get_time", arguments='{"zo'),
            }
        ),
        chat_chunk(tool_call_delta(0, id="call_w1", name="get_weather")),
        chat_chunk(tool_call_delta(0, arguments='{"city": ')),
        chat_chunk({"tool_calls": [repeated_id]}),
        chat_chunk(tool_call_delta(0, arguments='"Paris", "unit": "c"}')),
        chat_chunk({}, "tool_calls"),
    ]


async def test_tool_calls_are_assembled_from_interleaved_fragments(wire: Wire) -> None:
    route = wire.route(
        "/chat/completions",
        pieces(sse(*tool_call_events(), chat_chunk(None, usage=USAGE))),
        headers=SSE_HEADERS,
    )
    backend = llm()
    events = await collect(backend)
    await backend.aclose()
    assert events == [WEATHER_CALL, TIME_CALL, Finish("tool_calls"), Usage(**USAGE)]
    assert route.call_count == 1 and wire.bodies[0].closed


async def test_tool_calls_come_at_their_finish_reason_not_at_the_end(wire: Wire) -> None:
    control = ServerControl()
    parts = [sse(*tool_call_events(), done=False), sse(chat_chunk(None, usage=USAGE))]
    wire.route("/chat/completions", parts, headers=SSE_HEADERS, control=control)
    backend = llm()
    async with aclosing(backend.chat(MESSAGES)) as stream:
        first = [await asyncio.wait_for(anext(stream), 1.0) for _ in range(3)]
        assert first == [WEATHER_CALL, TIME_CALL, Finish("tool_calls")]
        assert not control.release.is_set()  # the usage chunk is still held back
        control.release.set()
        assert [e async for e in stream] == [Usage(**USAGE)]
    await backend.aclose()


async def test_tool_calls_finished_with_stop_come_before_the_finish(wire: Wire) -> None:
    # Some compatible servers finish a tool-calling reply with "stop".
    events = [*tool_call_events()[:-1], chat_chunk({"content": "Checking."}, "stop")]
    wire.route("/chat/completions", [sse(*events)], headers=SSE_HEADERS)
    backend = llm()
    expected = [TextDelta("Checking."), WEATHER_CALL, TIME_CALL, Finish("stop")]
    assert await collect(backend) == expected
    await backend.aclose()


async def test_tool_calls_without_any_finish_reason_come_at_done(wire: Wire) -> None:
    # Others send no finish reason at all, only [DONE].
    wire.route("/chat/completions", [sse(*tool_call_events()[:-1])], headers=SSE_HEADERS)
    backend = llm()
    assert await collect(backend) == [WEATHER_CALL, TIME_CALL]
    await backend.aclose()


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ({"function": {"arguments": "{}"}}, "without an integer 'index'"),
        ({"index": 0, "function": {"arguments": "{}"}}, "tool call 0 without an id"),
        ({"index": 0, "id": "call_1", "function": {"name": 7}}, "name is int, not text"),
        ({"index": 0, "id": ["x"], "function": {"name": "f"}}, "id is list, not text"),
    ],
)
async def test_malformed_tool_calls_are_provider_errors(
    wire: Wire, fragment: dict[str, object], expected: str
) -> None:
    events = [chat_chunk({"tool_calls": [fragment]}), chat_chunk({}, "tool_calls")]
    wire.route("/chat/completions", [sse(*events)], headers=SSE_HEADERS)
    backend = llm()
    with pytest.raises(ProviderError) as info:
        await collect(backend)
    await backend.aclose()
    assert type(info.value) is ProviderError and not info.value.retryable
    assert "openai chat completion: malformed" in str(info.value)
    assert expected in str(info.value)
    assert wire.bodies[0].closed


async def test_tool_messages_and_assistant_tool_calls_reach_the_request(wire: Wire) -> None:
    route = wire.route("/chat/completions", [sse(*chat_events(["Sunny."]))], headers=SSE_HEADERS)
    messages = [
        Message("system", "You are brief."),
        Message("user", "Weather and time in Paris?"),
        Message("assistant", "", tool_calls=(WEATHER_CALL, TIME_CALL)),
        Message("tool", '{"sky": "sunny"}', tool_call_id="call_w1"),
        Message("tool", '{"time": "15:00"}', tool_call_id="call_t2"),
        Message("assistant", "It is sunny and", interrupted=True),
    ]
    backend = llm()
    await collect(backend, messages)
    await backend.aclose()
    assert json.loads(route.calls.last.request.content)["messages"] == [
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_w1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": WEATHER_CALL.arguments},
                },
                {
                    "id": "call_t2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": TIME_CALL.arguments},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_w1", "content": '{"sky": "sunny"}'},
        {"role": "tool", "tool_call_id": "call_t2", "content": '{"time": "15:00"}'},
        {"role": "assistant", "content": "It is sunny and"},
    ]


async def test_a_tool_message_without_its_call_id_is_refused_before_any_request(
    wire: Wire,
) -> None:
    route = wire.route("/chat/completions", [sse(*chat_events(["x"]))], headers=SSE_HEADERS)
    backend = llm()
    with pytest.raises(ValueError, match="tool_call_id"):
        await collect(backend, [Message("tool", "{}")])
    await backend.aclose()
    assert route.call_count == 0


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
    got: list[LLMEvent] = []
    with pytest.raises(ProviderError) as info:
        async with aclosing(backend.chat(MESSAGES)) as stream:
            async for event in stream:
                got.append(event)
    await backend.aclose()
    assert got == [TextDelta("Hel"), TextDelta("lo")]
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
    stream = backend.chat(MESSAGES)
    assert await anext(stream) == TextDelta("Hello")
    await stream.aclose()
    assert wire.bodies[0].closed and control.closed.is_set()
    assert not await leftover_tasks()
    await backend.aclose()
    assert backend._client.is_closed()


async def test_cancelling_the_consumer_releases_the_response(wire: Wire) -> None:
    control = ServerControl()
    wire.route("/chat/completions", chat_body_parts(), headers=SSE_HEADERS, control=control)
    backend = llm()
    await cancel_after_first(backend.chat(MESSAGES))
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
