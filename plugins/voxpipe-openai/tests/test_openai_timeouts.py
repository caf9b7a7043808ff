"""connect_timeout_ms, first_byte_timeout_ms and idle_timeout_ms against the mocked API, on
virtual time (looptime), so each limit is checked to the millisecond at its default value.
``test_openai_local_server.py`` checks the same against real sockets."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import httpx
import httpx2
import pytest
from openai_wire import (
    PCM_HEADERS,
    SSE_HEADERS,
    FakeBody,
    Wire,
    chat_chunk,
    chat_events,
    pcm_24k,
    pieces,
    sse,
    transcription_events,
)
from timed import KINDS, backend, drive, retryable

import voxpipe_openai.plugin
from voxpipe import Registry, load_config
from voxpipe.errors import ConfigError
from voxpipe.testing import ServerControl
from voxpipe_openai import OpenAIASROptions, OpenAILLMOptions, OpenAITTSOptions

kinds = pytest.mark.parametrize("kind", KINDS)
#: Documented defaults, ms: (connect, first byte, idle).
DEFAULTS = {"llm": (3000, 10_000, 5000), "tts": (3000, 5000, 3000), "asr": (3000, 10_000, 5000)}
OPTIONS = {"llm": OpenAILLMOptions, "tts": OpenAITTSOptions, "asr": OpenAIASROptions}
PATHS = {"llm": "/chat/completions", "tts": "/audio/speech", "asr": "/audio/transcriptions"}
HEADERS = {"llm": SSE_HEADERS, "tts": PCM_HEADERS, "asr": SSE_HEADERS}
FIRST = {"llm": "no first token", "tts": "no audio", "asr": "no transcript"}


def answer(kind: str) -> list[bytes]:
    """A whole answer whose first chunk is the first output (the LLM's role delta with its
    first word, 100 ms of audio, the ASR's first text delta)."""
    if kind == "llm":
        events = chat_events(["Hello", " there", "."])
        first = sse(*events[:2], done=False)
        return [first, *(sse(event, done=False) for event in events[2:]), sse()]
    if kind == "tts":
        return pieces(pcm_24k(400), 4800)
    return [sse(e, done=False) for e in transcription_events("Hello there.")]


def hold_after(wire: Wire, kind: str, parts: int) -> None:
    """The mocked ``kind`` endpoint sends headers and ``parts`` chunks, then nothing."""
    control = ServerControl()  # never released
    wire.route(PATHS[kind], answer(kind), headers=HEADERS[kind], control=control, hold_after=parts)


class Paced(FakeBody):
    """A body whose ``i``-th part comes ``delays_s[i]`` after the one before. Iterated again
    (the SDK drains a stream after ``[DONE]``), it goes on where it was, as a socket would."""

    def __init__(self, parts: Sequence[bytes], delays_s: Sequence[float]) -> None:
        super().__init__(parts)
        self.delays_s = delays_s

    async def __aiter__(self) -> Any:
        while self.sent < len(self.parts):
            await asyncio.sleep(self.delays_s[self.sent])
            self.sent += 1
            yield self.parts[self.sent - 1]


def paced(
    wire: Wire, kind: str, first_s: float, between_s: float, *, headers_s: float = 0.0
) -> None:
    """The mocked ``kind`` endpoint answers after ``headers_s``; its first chunk comes
    ``first_s`` after the headers, each later one ``between_s`` after the one before."""
    parts = answer(kind)
    delays = [first_s] + [between_s] * (len(parts) - 1)

    async def respond(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(headers_s)
        body = Paced(parts, delays)
        wire.bodies.append(body)
        return httpx.Response(200, headers=HEADERS[kind], stream=body)

    wire.router.post(wire.base_url + PATHS[kind]).mock(side_effect=respond)


def registry() -> Registry:
    registry = Registry(entry_points=False)
    registry.register(voxpipe_openai.plugin, name="openai")
    return registry


@kinds
def test_defaults_are_seconds_and_reach_the_http_client(kind: str) -> None:
    connect, first, idle = DEFAULTS[kind]
    options = OPTIONS[kind]()
    assert (options.connect_timeout_ms, options.first_byte_timeout_ms) == (connect, first)
    assert options.idle_timeout_ms == idle
    timeout = backend(kind)._client.timeout
    assert isinstance(timeout, httpx2.Timeout)
    assert (timeout.connect, timeout.pool, timeout.write) == (connect / 1000,) * 2 + (idle / 1000,)
    assert timeout.read == max(first, idle) / 1000  # a backstop: the deadlines come first


@kinds
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"idle_timeout_ms": 0}, "idle_timeout_ms"),
        ({"first_byte_timeout_ms": -5}, "first_byte_timeout_ms"),
        ({"connect_timeout_ms": math.inf}, "connect_timeout_ms"),
        ({"idle_timeout_ms": math.nan}, "idle_timeout_ms"),
        ({"first_byte_timeout_ms": 600_000}, "first_byte_timeout_ms"),
    ],
)
def test_bad_timeouts_are_refused(kind: str, options: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config({kind: {"backend": "openai", **options}}, registry=registry())


@kinds
async def test_timeouts_are_set_from_config(kind: str) -> None:
    timeouts = {"connect_timeout_ms": 500, "first_byte_timeout_ms": 1500, "idle_timeout_ms": 250}
    config = load_config({kind: {"backend": "openai", **timeouts}}, registry=registry())
    built = config.build(kind)
    assert {name: getattr(built.options, name) for name in timeouts} == timeouts
    assert built._client.timeout.connect == 0.5 and built._client.timeout.write == 0.25
    await built.aclose()


@pytest.mark.looptime
@kinds
async def test_headers_then_nothing_fails_at_the_first_byte_timeout(wire: Wire, kind: str) -> None:
    hold_after(wire, kind, 0)
    client = backend(kind)
    run = await drive(client)
    first = DEFAULTS[kind][1]
    retryable(run, f"{FIRST[kind]} within {first} ms of the request", "first_byte_timeout_ms")
    assert run.took == pytest.approx(first / 1000, abs=1e-3) and not run.outputs
    assert wire.bodies[0].closed
    await client.aclose()


@pytest.mark.looptime
@kinds
async def test_a_stall_after_the_first_chunk_fails_at_the_idle_timeout(
    wire: Wire, kind: str
) -> None:
    hold_after(wire, kind, 1)
    client = backend(kind)
    run = await drive(client)
    idle = DEFAULTS[kind][2]
    retryable(run, f"stream stalled: nothing for {idle} ms", "idle_timeout_ms")
    assert run.outputs and run.after_last_output == pytest.approx(idle / 1000, abs=1e-3)
    assert wire.bodies[0].closed
    await client.aclose()


@pytest.mark.looptime
async def test_a_role_delta_alone_is_not_the_first_token(wire: Wire) -> None:
    role = sse(chat_chunk({"role": "assistant", "content": ""}), done=False)
    control = ServerControl()  # never released: nothing after the role delta
    wire.route(PATHS["llm"], [role, *answer("llm")], headers=SSE_HEADERS, control=control)
    client = backend("llm")
    run = await drive(client)
    retryable(run, "no first token within 10000 ms")
    assert run.took == pytest.approx(10.0, abs=1e-3)
    await client.aclose()


@pytest.mark.looptime
async def test_a_json_transcription_that_stalls_fails_at_the_first_byte_timeout(
    wire: Wire,
) -> None:
    control = ServerControl()
    json_headers = {"content-type": "application/json"}
    wire.route(
        PATHS["asr"], [b'{"text": "Hi"}'], headers=json_headers, control=control, hold_after=0
    )
    client = backend("asr")
    run = await drive(client)
    retryable(run, "no transcript within 10000 ms")
    assert run.took == pytest.approx(10.0, abs=1e-3)
    await client.aclose()


@pytest.mark.looptime
@kinds
@pytest.mark.parametrize(
    ("first_late", "idle_late"), [(False, False), (True, False), (False, True)]
)
async def test_each_limit_holds_to_the_millisecond(
    wire: Wire, kind: str, first_late: bool, idle_late: bool
) -> None:
    """The first output 100 ms before (or after) the first-byte timeout, every later chunk
    100 ms before (or after) the idle timeout: the stream passes (or fails at the limit)."""
    _, first, idle = DEFAULTS[kind]
    first_s = (first + (100 if first_late else -100)) / 1000
    between_s = (idle + (100 if idle_late else -100)) / 1000
    paced(wire, kind, first_s, between_s)
    client = backend(kind)
    run = await drive(client)
    await client.aclose()
    if first_late:
        retryable(run, "first_byte_timeout_ms")
        assert run.took == pytest.approx(first / 1000, abs=1e-3)
    elif idle_late:
        retryable(run, "idle_timeout_ms")
        assert run.outputs[0] == pytest.approx(first_s, abs=1e-3)
        assert run.after_last_output == pytest.approx(idle / 1000, abs=1e-3)
    else:
        assert run.error is None
        chunks = len(answer(kind))
        assert run.took == pytest.approx(first_s + (chunks - 1) * between_s, abs=1e-3)


@pytest.mark.looptime
@kinds
async def test_the_first_byte_timeout_counts_from_the_request_not_the_headers(
    wire: Wire, kind: str
) -> None:
    first = DEFAULTS[kind][1] / 1000
    paced(wire, kind, 0.6 * first, 0.1, headers_s=0.6 * first)
    client = backend(kind)
    run = await drive(client)
    await client.aclose()
    retryable(run, "first_byte_timeout_ms")
    assert run.took == pytest.approx(first, abs=1e-3) and not run.outputs


@pytest.mark.looptime
@kinds
async def test_a_slow_consumer_is_not_a_stalled_server(wire: Wire, kind: str) -> None:
    wire.route(PATHS[kind], answer(kind), headers=HEADERS[kind])
    client = backend(kind)
    idle = DEFAULTS[kind][2]
    # Twice the idle timeout over each output: that time is the consumer's, not the server's.
    run = await drive(client, pause_s=2 * idle / 1000, within_s=600)
    await client.aclose()
    assert run.error is None and len(run.outputs) > 2


@pytest.mark.parametrize(
    ("exception", "expected", "option"),
    [
        (httpx2.ConnectTimeout("x"), "could not connect within 3000 ms", "connect_timeout_ms"),
        (httpx2.PoolTimeout("x"), "could not connect within 3000 ms", "connect_timeout_ms"),
        (httpx2.WriteTimeout("x"), "sending the request stalled for 5000 ms", "idle_timeout_ms"),
        (httpx2.ReadTimeout("x"), "no first token within 10000 ms", "first_byte_timeout_ms"),
    ],
)
async def test_the_http_clients_own_timeouts_name_their_option(
    wire: Wire, exception: Exception, expected: str, option: str
) -> None:
    wire.router.post(wire.base_url + PATHS["llm"]).mock(side_effect=exception)
    client = backend("llm")
    run = await drive(client)
    await client.aclose()
    retryable(run, expected, f"raise {option}")
