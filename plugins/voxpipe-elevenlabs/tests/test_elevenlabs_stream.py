"""ElevenLabsStreamTTS (``backend = "elevenlabs-ws"``) against the fake stream-input server
on 127.0.0.1: the messages sent, the audio and alignment received, every way the socket can
fail, every wait bounded, and nothing left open or running when a reply is cut."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import pytest
from el_wire import KEY, cancel_after_first, leftover_tasks

from voxpipe.audio import AudioFrame
from voxpipe.errors import AuthError, ProviderError, RateLimited
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Alignment, TTSOutput
from voxpipe_elevenlabs import ElevenLabsStreamOptions, ElevenLabsStreamTTS
from voxpipe_elevenlabs.testing import (
    HTML_PAGE,
    ErrorMessage,
    FakeElevenLabs,
    Refusal,
    Trouble,
    Voice,
)

TEXT = "Hello there. How can I help you today?"
FLUSH = {"text": " ", "flush": True}
FIRST_SIX = ["The", "weather", "is", "sunny", "with", "a"]


def tts(
    server: FakeElevenLabs, context: BackendContext | None = None, **options: Any
) -> ElevenLabsStreamTTS:
    options = {"base_url": server.ws_url, **options}
    return ElevenLabsStreamTTS(ElevenLabsStreamOptions.model_validate(options), context)


async def words(text: str, hold: asyncio.Event | None = None, after: int = 0) -> AsyncIterator[str]:
    """``text`` as an LLM streams it ("Hello", " there.", ...); with ``hold``, the stream
    stops after ``after`` deltas until it is set."""
    for i, word in enumerate(text.split(" ")):
        if hold is not None and i == after:
            await hold.wait()
        yield word if i == 0 else " " + word


async def spoken(stream: AsyncIterator[TTSOutput]) -> list[TTSOutput]:
    async with aclosing(stream) as items:  # type: ignore[type-var]
        return [item async for item in items]


def audio_ms(items: Sequence[TTSOutput]) -> float:
    return sum(i.duration_ms for i in items if type(i) is AudioFrame)


@pytest.mark.looptime
async def test_the_socket_and_the_messages_sent(server: FakeElevenLabs) -> None:
    backend = tts(server, stability=0.5, speed=1.1, inactivity_timeout_s=60)
    items = await spoken(backend.synthesize_stream(words(TEXT)))
    (sock,) = server.sockets
    assert sock.path == "/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb/stream-input"
    assert sock.query == {
        "model_id": "eleven_flash_v2_5",
        "output_format": "pcm_16000",
        "inactivity_timeout": "60",
    }
    assert sock.key_ok
    assert sock.messages == [
        {
            "text": " ",
            "voice_settings": {"stability": 0.5, "speed": 1.1},
            "generation_config": {"chunk_length_schedule": [120, 160, 250, 290]},
        },
        {"text": "Hello "},
        {"text": "there. "},
        FLUSH,  # the first phrase is spoken at once: 12 characters, far below the schedule
        *({"text": w} for w in ["How ", "can ", "I ", "help ", "you ", "today? "]),
        FLUSH,
        {"text": ""},
    ]
    assert sock.closed_by == "server"  # after the final message; the client answered
    assert audio_ms(items) == pytest.approx(sock.audio_ms, abs=20)


@pytest.mark.looptime
async def test_alignment_is_the_servers_on_the_streams_audio_time(
    server: FakeElevenLabs,
) -> None:
    items = await spoken(tts(server).synthesize_stream(words(TEXT)))
    aligned = [(a.text, a.start_ms, a.end_ms) for a in items if type(a) is Alignment]
    # The server's times count from each message's audio: here they are moved onto the
    # stream's, character by character.
    assert aligned == server.sockets[0].alignment
    assert "".join(a for a, _, _ in aligned).split() == TEXT.split()
    assert max(end for _, _, end in aligned) > 2_000  # several messages: offsets were added


@pytest.mark.looptime
async def test_a_48k_session_asks_for_pcm_44100(server: FakeElevenLabs) -> None:
    items = await spoken(tts(server, BackendContext(sample_rate=48_000)).synthesize(TEXT))
    assert server.sockets[0].query["output_format"] == "pcm_44100"
    frames = [i for i in items if type(i) is AudioFrame]
    assert all(f.sample_rate == 48_000 and len(f.samples) == 960 for f in frames)
    assert audio_ms(frames) == pytest.approx(server.sockets[0].audio_ms, abs=20)


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("flush_at", "heard_by_then"),
    [
        ("phrase", FIRST_SIX),
        ("sentence", [*FIRST_SIX, "temperature", "of", "72", "degrees."]),
    ],
)
async def test_the_first_audio_comes_at_the_first_flush(
    server: FakeElevenLabs, flush_at: str, heard_by_then: list[str]
) -> None:
    text = "The weather is sunny with a temperature of 72 degrees. Anything else?"
    more = asyncio.Event()
    hold_after = len(heard_by_then) + 1  # the word after the phrase decides its end
    stream = tts(server, flush_at=flush_at).synthesize_stream(words(text, more, hold_after))
    async with aclosing(stream):
        async for item in stream:
            if type(item) is AudioFrame:
                break
        sent = server.sockets[0].messages
        assert FLUSH in sent
        flushed = "".join(m["text"] for m in sent[1 : sent.index(FLUSH)])
        assert flushed.split() == heard_by_then
        more.set()
        rest = [item async for item in stream]
    assert audio_ms(rest) > 3_000


@pytest.mark.looptime
async def test_text_that_stops_after_a_sentence_is_spoken_meanwhile(
    server: FakeElevenLabs,
) -> None:
    # "there." is the end of what has come: a sentence end or "3." of "3.5"? After a short
    # pause without more text, it is spoken as one.
    more = asyncio.Event()
    loop = asyncio.get_running_loop()
    stream = tts(server).synthesize_stream(words(TEXT, more, 2))
    async with aclosing(stream):
        start = loop.time()
        while type(await anext(stream)) is not AudioFrame:
            pass
        waited = loop.time() - start
        more.set()
        await spoken(stream)
    assert server.sockets[0].messages[1:4] == [{"text": "Hello "}, {"text": "there. "}, FLUSH]
    assert waited == pytest.approx(0.1 + 0.12, abs=0.01)  # the pause, then the first audio


@pytest.mark.looptime
async def test_the_schedule_starts_synthesis_before_a_flush(server: FakeElevenLabs) -> None:
    text = "Well I think that the weather will be quite sunny and warm for the rest of the week"
    more = asyncio.Event()
    backend = tts(server, flush_at="sentence", chunk_length_schedule=[50])
    stream = backend.synthesize_stream(words(text, more, 12))  # 57 characters, no mark
    async with aclosing(stream):
        async for item in stream:
            if type(item) is AudioFrame:
                break
        assert FLUSH not in server.sockets[0].messages
        more.set()
        await spoken(stream)


@pytest.mark.looptime
async def test_no_text_is_no_audio_and_no_error(server: FakeElevenLabs) -> None:
    assert await spoken(tts(server).synthesize_stream(words(""))) == []
    assert server.sockets[0].messages[1:] == [{"text": ""}]
    assert await spoken(tts(server).synthesize("  ")) == []
    assert len(server.sockets) == 1  # a blank text opens no socket


async def error_of(backend: ElevenLabsStreamTTS, text: str = TEXT) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await spoken(backend.synthesize(text))
    assert KEY not in str(info.value)
    return info.value


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("answer", "kind", "retryable", "words_"),
    [
        (Refusal.error(401, "invalid_api_key", "Invalid API key"), AuthError, False, ["401"]),
        (
            Refusal.error(429, "system_busy", "Heavy traffic.", retry_after=7),
            RateLimited,
            True,
            ["HTTP 429 system_busy", "retry after 7 s"],
        ),
        (
            Refusal.error(400, "voice_not_found", "No such voice."),
            ProviderError,
            False,
            ["voice_not_found", "check voice_id"],
        ),
        (
            ErrorMessage("quota_exceeded", "This request exceeds your quota of 10000."),
            ProviderError,
            False,
            ["quota_exceeded: This request exceeds your quota", "code 1008", "out of credits"],
        ),
        (
            ErrorMessage("too_many_concurrent_requests", "Too many."),
            RateLimited,
            True,
            ["too_many_concurrent_requests"],
        ),
        (Trouble.TRUNCATE, ProviderError, True, ["before its final message", "(1000)"]),
        (Trouble.DROP, ProviderError, True, ["the connection was cut"]),
        (Trouble.GARBAGE, ProviderError, False, ["not JSON", "upstream connect error"]),
        (
            Refusal(200, HTML_PAGE, "text/html"),
            ProviderError,
            False,
            ["WebSocket upgrade with HTTP 200 text/html", "502 Bad Gateway"],
        ),
    ],
)
async def test_failures_are_voxpipe_errors(
    server: FakeElevenLabs,
    answer: Any,
    kind: type[ProviderError],
    retryable: bool,
    words_: list[str],
) -> None:
    server.answer_next(answer)
    error = await error_of(tts(server))
    assert type(error) is kind and error.retryable is retryable and error.provider == "elevenlabs"
    for word in words_:
        assert word in str(error)
    if kind is RateLimited and isinstance(answer, Refusal):
        assert isinstance(error, RateLimited) and error.retry_after == 7
    await server.all_closed()


@pytest.mark.looptime
async def test_a_wrong_key_is_an_auth_error_naming_the_variable(
    server: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_not_the_right_one_0123456789")
    error = await error_of(tts(server))
    assert isinstance(error, AuthError) and error.env_var == "ELEVENLABS_API_KEY"
    assert "sk_not_the_right_one" not in str(error)


@pytest.mark.looptime
async def test_text_that_stops_coming_ends_in_the_servers_input_timeout(
    server: FakeElevenLabs,
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    stream = tts(server, inactivity_timeout_s=2).synthesize_stream(
        words(TEXT, asyncio.Event(), 1)  # "Hello", then nothing: no mark, no flush
    )
    with pytest.raises(ProviderError) as info:
        await spoken(stream)
    assert loop.time() - start == pytest.approx(2, abs=0.05)  # the server's timer, not ours
    message = str(info.value)
    assert "input_timeout_exceeded: Have not received a new text input" in message
    assert "raise inactivity_timeout_s" in message and not info.value.retryable


@pytest.mark.looptime
async def test_a_stall_after_audio_is_bounded_by_the_idle_timeout(server: FakeElevenLabs) -> None:
    server.answer_next(Trouble.STALL)
    loop = asyncio.get_running_loop()
    backend = tts(server, idle_timeout_ms=700)
    async with aclosing(backend.synthesize(TEXT)) as stream:
        await anext(stream)
        stalled_at = loop.time()
        with pytest.raises(ProviderError, match="nothing for 700 ms") as info:
            await spoken(stream)
    assert loop.time() - stalled_at == pytest.approx(0.7, abs=0.05)
    assert info.value.retryable and "raise idle_timeout_ms" in str(info.value)
    await server.all_closed()
    assert server.sockets[0].closed_by == "client"


@pytest.mark.looptime
async def test_slow_first_audio_is_bounded_by_the_first_byte_timeout(
    server: FakeElevenLabs,
) -> None:
    server.voice = Voice(first_audio_ms=10_000)
    loop = asyncio.get_running_loop()
    start = loop.time()
    error = await error_of(tts(server, first_byte_timeout_ms=1_500))
    assert loop.time() - start == pytest.approx(1.5, abs=0.05)
    assert "no audio within 1500 ms of the first flush" in str(error) and error.retryable


@pytest.mark.looptime
async def test_a_server_that_never_answers_the_handshake_is_bounded() -> None:
    given_up = asyncio.Event()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; reads until the client gives up
        given_up.set()
        writer.close()

    silent = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    start = loop.time()
    backend = ElevenLabsStreamTTS(
        ElevenLabsStreamOptions(base_url=f"ws://127.0.0.1:{port}", connect_timeout_ms=1_200)
    )
    error = await error_of(backend)
    assert loop.time() - start == pytest.approx(1.2, abs=0.05)
    assert "could not connect within 1200 ms" in str(error) and error.retryable
    await asyncio.wait_for(given_up.wait(), 1)  # the half-open connection was closed
    silent.close()
    await silent.wait_closed()


async def test_a_refused_connection_is_retryable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = ElevenLabsStreamTTS(ElevenLabsStreamOptions(base_url=f"http://127.0.0.1:{port}"))
    error = await error_of(backend)
    assert "connection failed" in str(error) and error.retryable


@pytest.mark.looptime
@pytest.mark.parametrize("how", ["aclose", "cancel"])
async def test_a_cut_reply_closes_its_socket_and_leaves_nothing_running(
    server: FakeElevenLabs, how: str
) -> None:
    closed = asyncio.Event()

    async def text() -> AsyncIterator[str]:
        try:
            yield "Hello there. How are"
            await asyncio.Event().wait()  # the LLM is still writing when the user barges in
            yield " you?"
        finally:
            closed.set()

    stream = tts(server).synthesize_stream(text())
    if how == "aclose":
        await anext(stream)
        await stream.aclose()
    else:
        await cancel_after_first(stream)
    assert server.sockets[0].closed_by == "client"  # reported before close() returned
    assert closed.is_set()  # the text was closed too, not left to the garbage collector
    await server.all_closed()
    assert not await leftover_tasks()  # the sender task is gone


@pytest.mark.looptime
async def test_a_failing_text_fails_the_stream_and_closes_the_socket(
    server: FakeElevenLabs,
) -> None:
    async def text() -> AsyncIterator[str]:
        yield "Hello"
        raise RuntimeError("the LLM stream broke")

    with pytest.raises(RuntimeError, match="the LLM stream broke"):
        await spoken(tts(server).synthesize_stream(text()))
    await server.all_closed()
    assert server.sockets[0].closed_by == "client"
    assert not await leftover_tasks()


@pytest.mark.looptime
async def test_the_key_is_not_logged(
    server: FakeElevenLabs, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="voxpipe_elevenlabs.websocket"):
        await spoken(tts(server).synthesize(TEXT))
    assert "xi-api-key: ***" in caplog.text  # the handshake was logged, the key masked
    assert KEY not in caplog.text


@pytest.mark.looptime
async def test_closing_a_reply_whose_audio_waits_unread_is_prompt(server: FakeElevenLabs) -> None:
    # Playout lags synthesis: the server has sent far more than the consumer has read when
    # the user barges in. The close must not wait behind unread audio (a full TCP buffer
    # holding back the server's close reply until CLOSE_TIMEOUT_S).
    loop = asyncio.get_running_loop()
    stream = tts(server).synthesize(" ".join([TEXT] * 6))  # about 15 s of audio
    await anext(stream)
    await asyncio.sleep(5)  # the server has sent everything by now; none of it was read
    start = loop.time()
    await stream.aclose()
    assert loop.time() - start < 0.05
    await server.all_closed()
