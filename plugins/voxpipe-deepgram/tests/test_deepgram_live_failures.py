"""The live ASR when the connection goes wrong, against ``FakeDeepgram`` on 127.0.0.1: a drop
mid-turn is reconnected once (the audio since the last final sent again), a second drop, a
refused handshake, a server that goes silent or never answers, Deepgram's close codes and a
message that is not JSON each end the stream in a ``ProviderError`` naming what happened,
within its timeout, leaving no task and no connection behind."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from dg import KEY, finals, hear, of_type, talk, tasks_left

from voxpipe.errors import AuthError, ProviderError, RateLimited
from voxpipe.protocols import EndOfTurn
from voxpipe_deepgram import DeepgramASR, DeepgramASROptions
from voxpipe_deepgram.testing import FakeDeepgram, Misbehaviour

IDLE_MS, CONNECT_MS = 300, 300
#: How late past its timeout a failure may come (scheduling, a loaded machine).
#: Slack for a loaded machine (tests run in parallel); the bounds still tell a timeout from
#: the end of the audio or a hang.
MARGIN_S = 1.0


def asr(base_url: str, **options: object) -> DeepgramASR:
    return DeepgramASR(
        DeepgramASROptions.model_validate(
            {
                "base_url": base_url,
                "idle_timeout_ms": IDLE_MS,
                "connect_timeout_ms": CONNECT_MS,
                **options,
            }
        )
    )


async def failure(stream: object, audio: object, **how: object) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await hear(stream, audio, **how)  # type: ignore[arg-type]
    return info.value


async def test_a_drop_mid_turn_reconnects_and_sends_the_audio_since_the_last_final() -> None:
    fake = FakeDeepgram(
        ["First turn here.", "Second turn now.", "Second turn now."],
        plan=[Misbehaviour(drop_after_ms=2_400)],
    )
    # Turn 1 ends (a final at its Finalize); turn 2 is cut 400 ms into its speech.
    audio = talk(
        ("silence", 300), ("speech", 900), ("silence", 800), ("speech", 900), ("silence", 700)
    )
    async with fake.serve() as url:
        events = await hear(asr(url).listen(), audio, vad=False)
    first, second = fake.connections
    assert first.ended_by == "server" and second.ended_by == "server"
    # What the second connection got first: the audio after the last final of the first.
    last_final = [m for m in first.sent if m["type"] == "Results" and m["is_final"]][-1]
    covered_ms = (last_final["start"] + last_final["duration"]) * 1000
    assert covered_ms < 2_000  # turn 2 started at 2000 ms: none of it had a final
    assert bytes(second.audio) == audio.pcm(covered_ms)
    assert [f.text for f in finals(events)] == ["First turn here.", "Second turn now."]
    # Deepgram's times on the new connection start from the audio sent again: mapped back
    # onto the session clock, turn 2's last word ends where its voice does (2900 ms).
    ends = [e.speech_end_ms for e in of_type(events, EndOfTurn)]
    assert ends == [
        pytest.approx(1200 - 0.15 * 300, abs=1),
        pytest.approx(2900 - 0.15 * 300, abs=1),
    ]


async def test_a_second_drop_before_a_final_is_a_provider_error() -> None:
    fake = FakeDeepgram(plan=[Misbehaviour(drop_after_ms=800), Misbehaviour(drop_after_ms=300)])
    audio = talk(("silence", 300), ("speech", 1200), ("silence", 600))
    async with fake.serve() as url:
        error = await failure(asr(url).listen(), audio)
        await fake.all_ended(within_s=0.5)
    assert type(error) is ProviderError and error.retryable
    assert "connection was cut" in str(error) and "dropped too" in str(error)
    assert len(fake.connections) == 2
    assert not await tasks_left()


@pytest.mark.parametrize(
    ("how", "kind", "words"),
    [
        (
            Misbehaviour(reject=401),
            AuthError,
            ["rejected the API key", "Invalid credentials", "DEEPGRAM_API_KEY"],
        ),
        (Misbehaviour(reject=429, retry_after=3), RateLimited, ["HTTP 429", "retry after 3 s"]),
        (Misbehaviour(reject=503), ProviderError, ["HTTP 503", "temporarily unavailable"]),
        (Misbehaviour(html=True), ProviderError, ["HTTP 200", "text/html", "Welcome to nginx"]),
    ],
)
async def test_a_refused_handshake_is_the_error_of_its_status(
    how: Misbehaviour, kind: type[ProviderError], words: list[str]
) -> None:
    fake = FakeDeepgram(plan=[how])
    async with fake.serve() as url:
        error = await failure(asr(url).listen(), talk(("silence", 200)))
    assert type(error) is kind
    for word in words:
        assert word in str(error), str(error)
    assert fake.refused[0].request_id in str(error) or how.html  # for Deepgram's support
    assert KEY not in str(error)
    assert error.retryable is (how.reject in (429, 503))
    if isinstance(error, RateLimited):
        assert error.retry_after == 3
    if isinstance(error, AuthError):
        assert error.env_var == "DEEPGRAM_API_KEY"


async def test_a_silent_server_times_out_without_a_hang_or_a_leak() -> None:
    fake = FakeDeepgram(plan=[Misbehaviour(silent_after_ms=600)])
    audio = talk(("silence", 300), ("speech", 1200), ("silence", 30_000))  # ends after 3.15 s
    async with fake.serve() as url:
        stream = asr(url).listen()
        started = time.monotonic()
        error = await failure(stream, audio)
        took = time.monotonic() - started
        await fake.all_ended(within_s=0.5)
    assert type(error) is ProviderError and error.retryable
    assert f"Deepgram sent nothing for {IDLE_MS} ms" in str(error) and "idle_timeout_ms" in str(
        error
    )
    # Silent from 600 ms of audio on (60 ms at 10x): the error IDLE_MS later, not at the end.
    assert 0.06 + IDLE_MS / 1000 - 0.05 <= took <= 0.06 + IDLE_MS / 1000 + MARGIN_S
    assert fake.connections[0].ended_by == "client"
    assert not await tasks_left()


@pytest.fixture
async def unresponsive() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers the handshake."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client goes

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    for writer in held:
        writer.close()
    await server.wait_closed()


async def test_a_server_that_never_answers_the_handshake_times_out(unresponsive: str) -> None:
    started = time.monotonic()
    error = await failure(asr(unresponsive).listen(), talk(("silence", 200)))
    took = time.monotonic() - started
    assert type(error) is ProviderError and error.retryable
    assert f"could not connect within {CONNECT_MS} ms" in str(error)
    assert CONNECT_MS / 1000 - 0.05 <= took <= CONNECT_MS / 1000 + MARGIN_S
    assert not await tasks_left()


async def test_nothing_listening_is_a_prompt_retryable_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    error = await failure(asr(f"ws://127.0.0.1:{port}").listen(), talk(("silence", 200)))
    assert type(error) is ProviderError and error.retryable
    assert "could not connect" in str(error) and "check base_url" in str(error)


async def test_undecodable_audio_is_not_reconnected() -> None:
    fake = FakeDeepgram(
        plan=[Misbehaviour(close_after_ms=400, close_code=1008, close_reason="DATA-0000")]
    )
    async with fake.serve() as url:
        error = await failure(asr(url).listen(), talk(("silence", 300), ("speech", 600)))
    assert type(error) is ProviderError and not error.retryable
    assert "could not decode the audio (DATA-0000)" in str(error) and "1008" in str(error)
    assert len(fake.connections) == 1


async def test_a_server_timeout_close_is_reconnected() -> None:
    fake = FakeDeepgram(
        ["Still here.", "Still here."],
        plan=[Misbehaviour(close_after_ms=500, close_code=1011, close_reason="NET-0000")],
    )
    async with fake.serve() as url:
        events = await hear(
            asr(url).listen(), talk(("silence", 300), ("speech", 800), ("silence", 500))
        )
    assert [f.text for f in finals(events)] == ["Still here."]
    assert len(fake.connections) == 2


async def test_a_message_that_is_not_json_is_malformed() -> None:
    fake = FakeDeepgram(plan=[Misbehaviour(garbage_after_ms=400)])
    async with fake.serve() as url:
        error = await failure(asr(url).listen(), talk(("silence", 300), ("speech", 600)))
    assert type(error) is ProviderError and not error.retryable
    assert "malformed response" in str(error) and "not JSON" in str(error)


async def test_the_key_is_masked_in_websockets_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeDeepgram(plan=[Misbehaviour(reject=401)])
    with caplog.at_level(logging.DEBUG):
        async with fake.serve() as url:
            await failure(asr(url).listen(), talk(("silence", 100)))
    client = [r.getMessage() for r in caplog.records if r.name == "voxpipe_deepgram.websocket"]
    assert "> Authorization: Token ***" in client  # the handshake was logged, masked
    assert not [r for r in caplog.records if KEY in r.getMessage()]
