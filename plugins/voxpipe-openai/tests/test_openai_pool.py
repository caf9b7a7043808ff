"""Building backends does not block the event loop: the process has one TLS context, and the
backends of one loop share one connection pool, which the last of them to close closes."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

import pytest
from openai_wire import SSE_HEADERS, Wire, chat_events, sse

from voxpipe.errors import AuthError
from voxpipe.protocols import Message, TextDelta
from voxpipe_openai import (
    OpenAIASR,
    OpenAIASROptions,
    OpenAILLM,
    OpenAILLMOptions,
    OpenAITTS,
    OpenAITTSOptions,
)
from voxpipe_openai._client import _pools, tls_context

LOCAL = "http://127.0.0.1:8000/v1"


def session_backends() -> list[OpenAIASR | OpenAILLM | OpenAITTS]:
    """One session's worth, each with options of its own."""
    return [
        OpenAIASR(OpenAIASROptions(language="en")),
        OpenAILLM(OpenAILLMOptions(base_url=LOCAL, first_byte_timeout_ms=20_000)),
        OpenAITTS(OpenAITTSOptions(organization="org-1", idle_timeout_ms=1_000)),
    ]


async def say_hi(backend: OpenAILLM) -> list[str]:
    async with aclosing(backend.chat([Message("user", "Hi")])) as events:
        return [e.text async for e in events if isinstance(e, TextDelta)]


async def test_the_backends_of_a_loop_share_one_pool_whatever_their_options() -> None:
    backends = session_backends() + session_backends()
    assert len({id(b._http) for b in backends}) == 1
    assert len({id(b._client) for b in backends}) == len(backends)  # options of their own
    (pool,) = [p for p in _pools.values() if p.loop is asyncio.get_running_loop()]
    assert pool.users == 6 and pool.http is backends[0]._http
    # Each request still carries its own backend's timeouts and base URL.
    assert backends[1]._client.timeout.read == 20.0 and backends[2]._client.timeout.write == 1.0
    assert str(backends[1]._client.base_url) == LOCAL + "/"
    for backend in backends:
        await backend.aclose()
    assert pool.http.is_closed and pool not in _pools.values()


async def test_closing_one_backend_leaves_the_others_working(wire: Wire) -> None:
    wire.route("/chat/completions", [sse(*chat_events(["Hi"]))], headers=SSE_HEADERS)
    first, second = OpenAILLM(OpenAILLMOptions()), OpenAILLM(OpenAILLMOptions())
    assert await say_hi(first) == ["Hi"]
    await first.aclose()
    await first.aclose()  # a second close gives up nothing more
    assert not second._client.is_closed()
    assert await say_hi(second) == ["Hi"]
    await second.aclose()
    assert second._client.is_closed() and first._client.is_closed()


async def test_a_new_backend_after_the_last_one_closed_gets_a_new_pool(wire: Wire) -> None:
    wire.route("/chat/completions", [sse(*chat_events(["Hi"]))], headers=SSE_HEADERS)
    old = OpenAILLM(OpenAILLMOptions())
    await old.aclose()
    new = OpenAILLM(OpenAILLMOptions())
    assert new._http is not old._http and not new._client.is_closed()
    assert await say_hi(new) == ["Hi"]
    await new.aclose()


def test_each_event_loop_has_a_pool_of_its_own() -> None:
    # Connections belong to the loop that opened them: no pool is shared across loops.
    async def build() -> OpenAILLM:
        return OpenAILLM(OpenAILLMOptions())

    one, two = asyncio.run(build()), asyncio.run(build())
    assert one._http is not two._http
    for backend in (one, two):
        asyncio.run(backend.aclose())
        assert backend._client.is_closed()


def test_a_backend_built_outside_a_loop_has_a_pool_of_its_own() -> None:
    backend = OpenAILLM(OpenAILLMOptions())
    assert backend._pool is None
    asyncio.run(backend.aclose())
    assert backend._client.is_closed()


async def test_a_backend_that_cannot_be_built_takes_no_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keep = OpenAILLM(OpenAILLMOptions())
    users = keep._pool.users if keep._pool else 0
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(AuthError):
        OpenAILLM(OpenAILLMOptions())
    assert keep._pool is not None and keep._pool.users == users
    await keep.aclose()
    assert keep._client.is_closed()


def test_one_tls_context_per_process_until_the_ca_settings_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    certifi = pytest.importorskip("certifi")
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    default = tls_context()
    assert tls_context() is default
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    custom = tls_context()
    assert custom is not default and tls_context() is custom
    monkeypatch.delenv("SSL_CERT_FILE")
    assert tls_context() is default


async def test_building_50_sessions_of_backends_hardly_blocks_the_loop() -> None:
    # Each backend used to load the CA certificates into a TLS context of its own: about
    # 145 ms of blocked loop per session here, 7 s for 50 sessions. (The first backend of
    # the process still makes the one context: it is made before the clock starts.)
    tls_context()
    backends = []
    start = time.perf_counter()
    for _ in range(50):
        backends += session_backends()
    took = time.perf_counter() - start
    for backend in backends:
        await backend.aclose()
    assert took < 50 * 0.010, f"{took * 1000:.0f} ms for 50 sessions"  # measured: about 25 ms
