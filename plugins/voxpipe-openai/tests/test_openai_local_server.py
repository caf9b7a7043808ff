"""The three backends against a real misbehaving server on 127.0.0.1 (``local_server.py``):
a stall, a mid-stream disconnect, a server that never answers and a 503 each end in bounded
time with a retryable ``ProviderError``, and leave no task and no connection behind. 200s
that are not what was asked for (a stream cut before its end, an HTML page, JSON, garbage)
end at once in a ``ProviderError`` naming what came, never as a short or empty answer.

Real sockets, so real time: the timeouts are a few hundred ms and each test takes at most
about half a second."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from local_server import GARBAGE, TRANSCRIPT, LocalServer, Mode
from openai_wire import Wire
from timed import Backend, backend, drive, retryable

from voxpipe.errors import ProviderError

CONNECT_MS, FIRST_BYTE_MS, IDLE_MS = 200, 400, 200
#: How late past its timeout a failure may come (scheduling, a loaded machine); smaller than
#: FIRST_BYTE_MS - IDLE_MS, so a stall timed by the wrong timeout fails the test.
MARGIN_S = 0.15
#: A failure that needs no timeout (a 503, a disconnect) comes within this.
PROMPT_S = 0.1
PATHS = {
    "llm": "/v1/chat/completions",
    "tts": "/v1/audio/speech",
    "asr": "/v1/audio/transcriptions",
}
kinds = pytest.mark.parametrize("kind", list(PATHS))


@pytest.fixture(autouse=True)
def local_only(wire: Wire) -> None:
    """respx lets requests for 127.0.0.1 through to the real server; any other still fails."""
    wire.router.route(host="127.0.0.1").pass_through()


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    server = LocalServer()
    await server.start()
    yield server
    await server.stop()


def local(kind: str, base_url: str) -> Backend:
    """A backend for the server at ``base_url``, with short timeouts."""
    return backend(
        kind,
        base_url=base_url,
        connect_timeout_ms=CONNECT_MS,
        first_byte_timeout_ms=FIRST_BYTE_MS,
        idle_timeout_ms=IDLE_MS,
    )


async def nothing_left(any_backend: Backend, server: LocalServer) -> None:
    """Once the backend is closed the server sees every connection closed, and no task is
    left but this test's."""
    await any_backend.aclose()
    await server.all_closed(within_s=0.5)
    assert asyncio.all_tasks() == {asyncio.current_task()}


@kinds
async def test_a_good_answer_comes_whole(kind: str, server: LocalServer) -> None:
    # The server speaks the API: the failures below are the modes', not the wire format's.
    client = local(kind, server.base_url)
    run = await drive(client, within_s=2)
    assert run.error is None
    if kind == "llm":
        assert run.text == "Hello there."
    elif kind == "tts":
        assert len(run.outputs) == 30  # 600 ms in 20 ms frames
    else:
        assert run.text == TRANSCRIPT
    assert server.requests == [PATHS[kind]]
    await nothing_left(client, server)


@kinds
async def test_a_stalled_stream_fails_within_the_idle_timeout(
    kind: str, server: LocalServer
) -> None:
    server.mode = Mode.STALL
    client = local(kind, server.base_url)
    run = await drive(client, within_s=2)
    retryable(run, "stream stalled", f"nothing for {IDLE_MS} ms", "idle_timeout_ms")
    assert run.outputs  # the chunks before the stall came through
    assert IDLE_MS / 1000 - 0.01 <= run.after_last_output < IDLE_MS / 1000 + MARGIN_S
    # The failed stream released its connection itself, before the backend was closed.
    await server.all_closed(within_s=PROMPT_S)
    assert server.closed_by_client == 1
    await nothing_left(client, server)


@kinds
async def test_a_server_that_never_answers_fails_within_the_first_byte_timeout(
    kind: str, server: LocalServer
) -> None:
    server.mode = Mode.NEVER
    client = local(kind, server.base_url)
    run = await drive(client, within_s=2)
    retryable(run, f"within {FIRST_BYTE_MS} ms of the request", "first_byte_timeout_ms")
    assert not run.outputs
    assert FIRST_BYTE_MS / 1000 - 0.01 <= run.took < FIRST_BYTE_MS / 1000 + MARGIN_S
    await server.all_closed(within_s=PROMPT_S)
    assert server.closed_by_client == 1
    await nothing_left(client, server)


@kinds
async def test_a_disconnect_mid_stream_fails_at_once(kind: str, server: LocalServer) -> None:
    server.mode = Mode.DISCONNECT
    client = local(kind, server.base_url)
    run = await drive(client, within_s=2)
    error = retryable(run)
    assert "onnection" in str(error) and "_timeout_ms" not in str(error)
    assert run.outputs and run.after_last_output < PROMPT_S  # no timeout was waited for
    await nothing_left(client, server)


@kinds
async def test_a_503_is_retryable_and_comes_at_once(kind: str, server: LocalServer) -> None:
    server.mode = Mode.UNAVAILABLE
    client = local(kind, server.base_url)
    run = await drive(client, within_s=2)
    retryable(run, "HTTP 503", "server had an error")
    assert not run.outputs and run.took < PROMPT_S
    assert server.requests == [PATHS[kind]]  # the SDK's own retries are off
    await nothing_left(client, server)


#: What each backend says of each broken 200: (retryable, words in the message).
BROKEN: dict[tuple[Mode, str], tuple[bool, tuple[str, ...]]] = {
    (Mode.TRUNCATED, "llm"): (
        True,
        ("without a finish reason or [DONE] after 4 chunks ('Hello there.'...)",),
    ),
    (Mode.TRUNCATED, "tts"): (True, ("ended before any audio (0 bytes)",)),
    (Mode.TRUNCATED, "asr"): (
        True,
        (f"without transcript.text.done after 5 events ({TRANSCRIPT!r}...)",),
    ),
    (Mode.HTML, "llm"): (False, ("text/html, not an event stream", "<!DOCTYPE html>")),
    (Mode.HTML, "tts"): (False, ("text/html, not raw PCM audio", "Welcome to nginx!")),
    (Mode.HTML, "asr"): (False, ("text/html, neither an event stream", "<html>")),
    (Mode.JSON, "llm"): (False, ("application/json, not an event stream", "chat.completion")),
    (Mode.JSON, "tts"): (False, ("application/json, not raw PCM audio", "audio.speech")),
    (Mode.GARBAGE, "llm"): (
        False,
        (f"not an event stream (no event in its {len(GARBAGE)} bytes)",),
    ),
    (Mode.GARBAGE, "tts"): (False, ("text/event-stream, not raw PCM audio", "upstream connect")),
    (Mode.GARBAGE, "asr"): (
        False,
        (f"not an event stream (no event in its {len(GARBAGE)} bytes)",),
    ),
}


@pytest.mark.parametrize(("mode", "kind"), list(BROKEN))
async def test_a_broken_200_is_an_error_naming_what_came(
    mode: Mode, kind: str, server: LocalServer
) -> None:
    server.mode = mode
    client = local(kind, server.base_url)
    run = await drive(client, within_s=2)
    error = run.error
    retryable, words = BROKEN[mode, kind]
    assert type(error) is ProviderError, f"{mode} passed as success: {run}"
    assert error.provider == "openai" and error.retryable is retryable
    for word in words:
        assert word in str(error), str(error)
    assert run.took < PROMPT_S  # no timeout was waited for
    assert server.requests == [PATHS[kind]]
    # The broken answer's connection went back to the pool or was closed; none is left.
    await nothing_left(client, server)


async def test_a_json_transcription_is_a_final_after_all(server: LocalServer) -> None:
    server.mode = Mode.JSON  # what whisper-1 answers
    client = local("asr", server.base_url)
    run = await drive(client, within_s=2)
    assert run.error is None and run.text == TRANSCRIPT
    await nothing_left(client, server)


async def test_backends_share_their_connections_and_closing_one_keeps_them(
    server: LocalServer,
) -> None:
    # Three sessions' LLMs, one after another over one kept-alive connection (no new TCP or
    # TLS handshake per session); closing the first does not close the pool under the rest.
    llms = [local("llm", server.base_url) for _ in range(3)]
    for llm in llms:
        run = await drive(llm, within_s=2)
        assert run.error is None and run.text == "Hello there."
    assert len(server._connections) == 1 and len(server.requests) == 3
    await llms[0].aclose()
    run = await drive(llms[1], within_s=2)
    assert run.error is None and len(server._connections) == 1
    await llms[1].aclose()
    await nothing_left(llms[2], server)  # the last one closes the pool, and its connection


@pytest.fixture
def unaccepting() -> Iterator[str]:
    """A listening socket on 127.0.0.1 whose accept queue is full: a connect hangs."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    filler = socket.create_connection(listener.getsockname())  # takes the only place
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    filler.close()
    listener.close()


@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux dropping SYNs to a full queue")
@kinds
async def test_a_connect_that_hangs_fails_within_the_connect_timeout(
    kind: str, unaccepting: str
) -> None:
    client = local(kind, unaccepting)
    run = await drive(client, within_s=2)
    retryable(run, f"could not connect within {CONNECT_MS} ms", "connect_timeout_ms")
    assert CONNECT_MS / 1000 - 0.01 <= run.took < CONNECT_MS / 1000 + MARGIN_S
    await client.aclose()
    assert asyncio.all_tasks() == {asyncio.current_task()}


def conversation(server: LocalServer, budget: dict[str, object], **llm: object) -> object:
    """An agent whose LLM is OpenAI at the local server (sim ASR and TTS around it; a failed
    turn's apology is short, it is played in real time)."""
    from voxpipe import VoiceAgent

    return VoiceAgent.from_config(
        {
            "agent": {"apology": "Sorry."},
            "llm": {
                "backend": "openai",
                "base_url": server.base_url,
                "first_byte_timeout_ms": FIRST_BYTE_MS,
                "idle_timeout_ms": IDLE_MS,
                **llm,
            },
            "tts": {"backend": "sim", "first_chunk_ms": 20, "speed": 20},
            "turns": {"endpoint_ms": 100},
            "budgets": {"llm_first_token": budget},
        }
    )


async def talk(agent: object) -> object:
    from voxpipe import SimSpeechSource

    (turn,) = (await agent.run(SimSpeechSource(["hi"], lead_ms=0, pause_ms=200))).turns  # type: ignore[attr-defined]
    return turn


async def test_with_retry_a_503_costs_a_retry_and_the_turn_is_answered(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "local")
    server.next_modes = [Mode.UNAVAILABLE]
    turn = await talk(conversation(server, {"ms": 2000, "action": "retry"}))
    assert (turn.outcome, turn.agent_text) == ("ok", "Hello there.")  # type: ignore[attr-defined]
    assert turn.finish_reason == "stop"  # type: ignore[attr-defined]
    (attempt,) = [a for a in turn.attempts if a.stage == "llm"]  # type: ignore[attr-defined]
    assert (attempt.outcome, attempt.retries) == ("ok", 1)
    assert server.requests.count(PATHS["llm"]) == 2
    await server.all_closed(within_s=0.5)


async def test_with_fallback_a_silent_server_is_hedged_and_closed(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "local")
    server.mode = Mode.NEVER
    agent = conversation(
        server,
        {"ms": 150, "action": "fallback"},
        fallback=[{"backend": "sim", "first_token_ms": 50}],
    )
    turn = await talk(agent)
    assert turn.outcome == "ok"  # type: ignore[attr-defined]
    assert [(a.backend, a.outcome) for a in turn.attempts if a.stage == "llm"] == [  # type: ignore[attr-defined]
        ("openai", "lost"),
        ("sim", "ok"),
    ]
    assert 150 + 50 <= turn.latency("llm_ttft") < 150 + 50 + 100  # type: ignore[attr-defined]
    await server.all_closed(within_s=0.5)  # the lost request's connection is closed
    assert server.closed_by_client == 1


async def test_a_stall_after_the_first_words_fails_the_turn_not_the_session(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "local")
    server.mode = Mode.STALL
    turn = await talk(conversation(server, {"ms": 2000, "action": "retry"}))
    assert turn.outcome == "failed"  # type: ignore[attr-defined]
    assert "stalled" in turn.error and "idle_timeout_ms" in turn.error  # type: ignore[attr-defined]
    await server.all_closed(within_s=0.5)


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        (Mode.TRUNCATED, "without a finish reason or [DONE]"),
        (Mode.HTML, "text/html, not an event stream"),
        (Mode.GARBAGE, "not an event stream"),
    ],
)
async def test_a_broken_reply_fails_the_turn_with_its_reason(
    mode: Mode, words: str, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, a cut stream was the turn's whole reply ("Hello there." said as if complete),
    # and an HTML or garbage body an empty one.
    monkeypatch.setenv("OPENAI_API_KEY", "local")
    server.mode = mode
    turn = await talk(conversation(server, {"ms": 2000, "action": "warn"}))
    assert turn.outcome == "failed"  # type: ignore[attr-defined]
    assert words in turn.error  # type: ignore[attr-defined]
    await server.all_closed(within_s=0.5)


async def test_a_transcription_that_is_not_one_fails_the_turn_with_its_reason(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, an HTML answer gave no transcript and no turn at all (and `voxpipe run` then
    # blamed the input level).
    from voxpipe import SimSpeechSource, VoiceAgent

    monkeypatch.setenv("OPENAI_API_KEY", "local")
    server.mode = Mode.HTML
    agent = VoiceAgent.from_config(
        {
            "agent": {"apology": "Sorry."},
            "asr": {"backend": "openai", "base_url": server.base_url},
            "tts": {"backend": "sim", "speed": 20},
            "turns": {"endpoint_ms": 100},
        }
    )
    metrics = await agent.run(SimSpeechSource(["hi there"], lead_ms=0, pause_ms=200))
    (turn,) = metrics.turns
    assert turn.outcome == "failed" and turn.user_text == ""
    assert "openai transcription: the response is text/html" in turn.error
    await server.all_closed(within_s=0.5)
