"""Broken 200 responses never pass as success: a stream cut before its end is a retryable
``ProviderError`` naming what came, a body that is not what was asked for (an HTML page,
JSON, bytes that are no event stream) a ``ProviderError`` naming its content type and first
bytes, redacted. ``test_openai_local_server.py`` checks the same over real sockets."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import pytest
from openai_wire import (
    KEY,
    PCM_HEADERS,
    SSE_HEADERS,
    Wire,
    chat_chunk,
    chat_events,
    pieces,
    sse,
    transcription_events,
)
from test_openai_errors import run_asr, run_tts

from voxpipe.errors import ProviderError
from voxpipe.protocols import Finish, Message, TextDelta, Transcript, Usage
from voxpipe_openai import OpenAILLM, OpenAILLMOptions

CHAT, SPEECH, TRANSCRIPTIONS = "/chat/completions", "/audio/speech", "/audio/transcriptions"
HTML = b"<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body></body></html>"


async def chat(wire: Wire, parts: list[bytes], headers: dict[str, str] = SSE_HEADERS) -> Any:
    """The events of one chat answered with ``parts``; (events, None) or (events, error)."""
    wire.route(CHAT, parts, headers=headers)
    backend = OpenAILLM(OpenAILLMOptions())
    got: list[Any] = []
    try:
        async with aclosing(backend.chat([Message("user", "Hi")])) as stream:
            async for event in stream:
                got.append(event)
    except ProviderError as exc:
        return got, exc
    finally:
        await backend.aclose()
    return got, None


def refused(error: ProviderError | None, *words: str) -> ProviderError:
    """A plain ``ProviderError`` for a body that is not the format asked for: not retryable,
    naming openai and ``words``; the key nowhere."""
    assert type(error) is ProviderError, f"expected a ProviderError, got {error!r}"
    assert error.provider == "openai" and not error.retryable
    assert "base_url" in str(error)  # where to look
    for word in words:
        assert word in str(error), str(error)
    assert KEY not in str(error)
    return error


def cut(error: ProviderError | None, *words: str) -> ProviderError:
    """A retryable ``ProviderError`` for a stream that was cut, naming ``words``."""
    assert type(error) is ProviderError, f"expected a ProviderError, got {error!r}"
    assert error.provider == "openai" and error.retryable
    for word in words:
        assert word in str(error), str(error)
    return error


# --- the LLM --------------------------------------------------------------------------------


async def test_a_stream_without_finish_reason_or_done_is_cut_not_a_short_reply(
    wire: Wire,
) -> None:
    events = chat_events(["Sure", ", the"])[:3]  # role, two words: no finish, no [DONE]
    got, error = await chat(wire, pieces(sse(*events, done=False)))
    assert got == [TextDelta("Sure"), TextDelta(", the")]  # what came, came at once
    cut(
        error,
        "openai chat completion: the stream ended without a finish reason or [DONE] "
        "after 3 chunks ('Sure, the'...)",
    )
    assert wire.bodies[0].closed


async def test_an_empty_event_stream_is_cut_after_0_chunks(wire: Wire) -> None:
    got, error = await chat(wire, [b""])
    assert got == []
    cut(error, "after 0 chunks (no text)")


async def test_keep_alives_and_then_nothing_is_a_cut_stream(wire: Wire) -> None:
    _, error = await chat(wire, [b": keep-alive\n\n", b": keep-alive\n\n"])
    cut(error, "without a finish reason or [DONE] after 0 chunks")


async def test_done_without_a_finish_reason_is_a_whole_reply(wire: Wire) -> None:
    events = [chat_chunk({"role": "assistant", "content": "Hi"}), chat_chunk({"content": "!"})]
    got, error = await chat(wire, pieces(sse(*events), 3))  # [DONE] split across pieces
    assert error is None and got == [TextDelta("Hi"), TextDelta("!")]


async def test_done_without_a_space_counts_too(wire: Wire) -> None:
    events = b"data: " + sse(chat_chunk({"content": "Hi"}), done=False)[6:] + b"data:[DONE]\n\n"
    got, error = await chat(wire, [events])
    assert error is None and got == [TextDelta("Hi")]


@pytest.mark.parametrize("reason", ["stop", "length", "content_filter", "tool_calls"])
async def test_the_finish_reason_comes_once_as_finish(wire: Wire, reason: str) -> None:
    # Some servers repeat the finish reason on a later chunk: it is still one Finish.
    events = [
        chat_chunk({"role": "assistant", "content": "Hi"}),
        chat_chunk({}, reason),
        chat_chunk(
            {}, reason, usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        ),
    ]
    got, error = await chat(wire, [sse(*events)])
    assert error is None
    assert got == [TextDelta("Hi"), Finish(reason), Usage(1, 1, 2)]


async def test_a_finish_reason_without_done_is_whole(wire: Wire) -> None:
    got, error = await chat(wire, [sse(*chat_events(["Ok"]), done=False)])
    assert error is None and Finish("stop") in got


@pytest.mark.parametrize(
    ("content_type", "body", "shown"),
    [
        ("text/html; charset=utf-8", HTML, "'<!DOCTYPE html> <html><head><title>Welcome to nginx!"),
        (
            "application/json",
            b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0}]}',
            '\'{"id": "chatcmpl-1", "object": "chat.completion"',
        ),
        ("text/plain", b"upstream connect error", "'upstream connect error'"),
    ],
)
async def test_a_200_that_is_not_an_event_stream_names_what_it_is(
    wire: Wire, content_type: str, body: bytes, shown: str
) -> None:
    got, error = await chat(wire, pieces(body, 11), {"content-type": content_type})
    assert got == []
    kind = content_type.split(";")[0]
    refused(error, f"the response is {kind}, not an event stream (text/event-stream)", shown)
    assert wire.bodies[0].closed


async def test_an_event_stream_of_garbage_is_refused(wire: Wire) -> None:
    got, error = await chat(wire, [b"Internal error: upstream\nclosed\n"])
    assert got == []
    refused(
        error, "not an event stream (no event in its 32 bytes)", "'Internal error: upstream closed'"
    )


async def test_no_content_type_and_good_events_is_fine(wire: Wire) -> None:
    got, error = await chat(wire, [sse(*chat_events(["Hi"]))], headers={})
    assert error is None and got[0] == TextDelta("Hi")


async def test_the_body_shown_is_short_and_redacted(wire: Wire) -> None:
    # A proxy's page that echoes the request's headers, the key among them.
    page = (
        b"<html><pre>POST /v1/chat/completions\nAuthorization: Bearer " + KEY.encode() + b"\n"
        b"x-other: Bearer abc.def-123\n" + b"x" * 2000 + b"</pre></html>"
    )
    _, error = await chat(wire, [page], {"content-type": "text/html"})
    message = str(refused(error))
    assert KEY not in message and "VOXPIPE" not in message and "abc.def" not in message
    assert "Bearer ***" in message
    assert len(message) < 300 and "x" * 81 not in message


async def test_a_key_cut_by_the_head_is_masked_too() -> None:
    from voxpipe_openai._errors import snippet

    # A local server's key need not look like one: its first characters, cut, are masked.
    assert snippet(b"token: local-secr", "local-secret-1234") == "'token: ***'"
    assert snippet(b"token: " + KEY[:9].encode(), KEY) == "'token: sk-***'"
    assert snippet(b"", KEY) == "an empty body"
    assert snippet(b"\x00\x01bin\xffary", None) == "'bin\ufffdary'"


# --- the TTS --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html", HTML),
        ("application/json", b'{"error": {"message": "no"}}'),
        ("text/event-stream", b'data: {"type": "speech.audio.delta"}\n\n'),
        ("audio/mpeg", b"ID3\x04\x00\x00"),
    ],
)
async def test_speech_that_is_not_pcm_is_refused(
    wire: Wire, content_type: str, body: bytes
) -> None:
    wire.route(SPEECH, [body], headers={"content-type": content_type})
    with pytest.raises(ProviderError) as info:
        await run_tts()
    refused(info.value, f"openai speech: the response is {content_type}, not raw PCM audio")
    assert wire.bodies[0].closed


@pytest.mark.parametrize("content_type", ["audio/pcm", "application/octet-stream", None])
async def test_pcm_by_any_of_its_names_is_audio(wire: Wire, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    wire.route(SPEECH, [b"\x00\x01" * 2400], headers=headers)
    assert len(await run_tts()) == 5  # 100 ms in 20 ms frames


async def test_speech_without_a_single_sample_is_an_error(wire: Wire) -> None:
    wire.route(SPEECH, [b"", b"\x00"], headers=PCM_HEADERS)  # one byte: half a sample
    with pytest.raises(ProviderError) as info:
        await run_tts()
    cut(info.value, "openai speech: the response ended before any audio (1 bytes)")


# --- the ASR --------------------------------------------------------------------------------


async def test_a_transcription_stream_without_its_done_event_is_cut(wire: Wire) -> None:
    events = transcription_events("Hello there")[:-1]
    wire.route(TRANSCRIPTIONS, [sse(*events, done=False)], headers=SSE_HEADERS)
    with pytest.raises(ProviderError) as info:
        await run_asr()
    cut(
        info.value,
        "openai transcription: the stream ended without transcript.text.done after 2 events "
        "('Hello there'...)",
    )


@pytest.mark.parametrize(
    ("content_type", "body", "words"),
    [
        ("text/html", HTML, ["the response is text/html, neither an event stream", "<!DOCTYPE"]),
        ("text/plain", b"Hello there", ["the response is text/plain", "'Hello there'"]),
        ("text/event-stream", b"<html>oops</html>", ["no event in its 17 bytes", "'<html>oops"]),
        ("application/json", b'{"object": "error"}', ["without 'text'", '\'{"object": "error"}\'']),
        ("application/json", b"<html>", ["JSON that does not parse: '<html>'"]),
    ],
)
async def test_a_transcription_that_is_neither_events_nor_json_text_is_refused(
    wire: Wire, content_type: str, body: bytes, words: list[str]
) -> None:
    # Before, such an answer gave no transcript at all, and the session blamed the input level.
    wire.route(TRANSCRIPTIONS, [body], headers={"content-type": content_type})
    with pytest.raises(ProviderError) as info:
        await run_asr()
    error = info.value
    assert type(error) is ProviderError and not error.retryable
    for word in words:
        assert word in str(error), str(error)
    assert wire.bodies[0].closed


async def test_json_with_text_is_still_a_final(wire: Wire) -> None:
    wire.route(
        TRANSCRIPTIONS, [b'{"text": "Plain."}'], headers={"content-type": "application/json"}
    )
    assert await run_asr() == [Transcript("Plain.", True, endpoint_ms=1000.0)]
