"""The live ASR's reading of Deepgram's protocol, message by message, under virtual time: a
scripted connection (``Scripted``) says exactly what a test needs, and records what the
stream sent. Plus the in-memory ``FakeDeepgram`` where timing is the point (KeepAlive, the
send backlog)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from dg import RATE, finals, partials, talk

from voxpipe.audio import AudioFrame
from voxpipe.errors import ProviderError
from voxpipe.protocols import EndOfTurn, Transcript
from voxpipe.vad import Utterance
from voxpipe_deepgram import DeepgramASR, DeepgramASROptions, DeepgramASRStream
from voxpipe_deepgram._socket import SocketClosed
from voxpipe_deepgram._transcripts import Timeline
from voxpipe_deepgram.live import FINALIZE, KEEPALIVE_S, MAX_BACKLOG_MS
from voxpipe_deepgram.testing import FakeDeepgram, results_message

pytestmark = pytest.mark.looptime


class Scripted:
    """A connection whose server says what the test tells it to (``say``)."""

    request_id = "handshake-request-id"

    def __init__(self, send_s: float = 0.0) -> None:
        self.sent: list[bytes | str] = []
        self.inbox: asyncio.Queue[str | SocketClosed] = asyncio.Queue()
        self.send_s = send_s  # how long each send takes
        self.closed = False

    async def connect(self, url: str, headers: Mapping[str, str]) -> Scripted:
        return self

    async def send(self, message: bytes | str) -> None:
        await asyncio.sleep(self.send_s)
        self.sent.append(message)

    async def recv(self) -> bytes | str:
        item = await self.inbox.get()
        if isinstance(item, SocketClosed):
            raise item
        return item

    def abort(self) -> None:
        self.inbox.put_nowait(SocketClosed(None))

    async def aclose(self) -> None:
        self.closed = True

    def say(self, message: dict[str, Any]) -> None:
        self.inbox.put_nowait(json.dumps(message))

    @property
    def controls(self) -> list[str]:
        return [json.loads(m)["type"] for m in self.sent if isinstance(m, str)]


def stream_on(socket: Scripted | FakeDeepgram, **options: object) -> DeepgramASRStream:
    backend = DeepgramASR(DeepgramASROptions.model_validate(options), connect=socket.connect)
    return backend.listen()


def second(n: int = 50, at_ms: float = 0.0, level: int = 0) -> list[AudioFrame]:
    """``n`` 20 ms frames from ``at_ms`` (silence, or a constant ``level``)."""
    return [AudioFrame(np.full(320, level, np.int16), RATE, at_ms + 20 * i) for i in range(n)]


async def settle() -> None:
    """Let every task run until all wait (virtual time moves on only then)."""
    await asyncio.sleep(0.001)


async def drain(stream: DeepgramASRStream) -> list[Any]:
    """The events queued so far, without waiting for more."""
    got: list[Any] = []
    channel = stream._events
    while channel._items:
        got.append(channel._items.popleft())
    return got


def results(text: str, start_s: float, duration_s: float, **flags: bool) -> dict[str, Any]:
    return results_message(text, start_s, duration_s, is_final=flags.pop("is_final", True), **flags)


async def test_final_results_accumulate_into_one_final_per_utterance() -> None:
    socket = Scripted()
    stream = stream_on(socket)
    for frame in second(100):
        stream.push(frame)
    await settle()
    socket.say(results("Hello", 0.0, 0.5, is_final=False))
    socket.say(results("Hello there,", 0.0, 1.0))  # is_final, no speech_final: more to come
    socket.say(results("how", 1.0, 0.4, is_final=False))
    await settle()
    stream.speech_ended(Utterance(100.0, 1800.0, 2000.0))
    await settle()
    assert socket.controls == ["Finalize"]
    socket.say(results("how are you?", 1.0, 1.0, from_finalize=True))
    await settle()
    events = await drain(stream)
    assert [(t.text, t.is_final) for t in events] == [
        ("Hello", False),
        ("Hello there,", False),  # the final result so far, as a partial of the utterance
        ("Hello there, how", False),
        ("Hello there, how are you?", True),
    ]
    assert events[-1].endpoint_ms == 2000.0  # the session's VAD decided
    await stream.aclose()


async def test_a_final_result_that_covers_the_utterance_answers_finalize() -> None:
    # Deepgram need not mark its answer from_finalize (it does when audio was buffered).
    socket = Scripted()
    stream = stream_on(socket)
    for frame in second(100):
        stream.push(frame)
    await settle()
    stream.speech_ended(Utterance(100.0, 900.0, 1100.0))
    socket.say(results("Yes.", 0.0, 1.2))  # covers the audio to 1200 ms, past 900
    await settle()
    (final,) = finals(await drain(stream))
    assert final.text == "Yes." and final.endpoint_ms == 1100.0
    socket.say(results("", 1.2, 0.8, from_finalize=True))  # a late flush: nothing owed
    await settle()
    assert await drain(stream) == []
    await stream.aclose()


async def test_words_revised_away_still_answer_speech_ended_with_an_empty_final() -> None:
    socket = Scripted()
    stream = stream_on(socket)
    for frame in second(60):
        stream.push(frame)
    await settle()
    socket.say(results("Uh", 0.0, 0.6, is_final=False))
    socket.say(results("", 0.0, 1.0))  # Deepgram dropped the word (a cough)
    stream.speech_ended(Utterance(100.0, 500.0, 700.0))
    await settle()
    socket.say(results("", 1.0, 0.2, from_finalize=True))
    await settle()
    events = await drain(stream)
    assert [(t.text, t.is_final) for t in events] == [("Uh", False), ("", True)]
    await stream.aclose()


async def test_speech_ended_after_deepgrams_own_final_sends_no_finalize() -> None:
    socket = Scripted()
    stream = stream_on(socket)
    for frame in second(100):
        stream.push(frame)
    await settle()
    socket.say(results("Done.", 0.0, 1.5, speech_final=True))
    await settle()
    final, end = await drain(stream)
    assert final.text == "Done." and type(end) is EndOfTurn
    stream.speech_ended(Utterance(100.0, 1300.0, 1500.0))  # the VAD agrees, later
    await settle()
    assert FINALIZE not in socket.sent
    await stream.aclose()


async def test_request_ids_come_from_the_handshake_then_deepgrams_messages() -> None:
    socket = Scripted()
    stream = stream_on(socket)
    stream.push(second(1)[0])
    await settle()
    assert stream.request_id == "handshake-request-id"
    socket.say({**results("", 0.0, 0.02), "metadata": {"request_id": "from-results"}})
    await settle()
    assert stream.request_id == "from-results"
    socket.say({"type": "Metadata", "request_id": "from-metadata", "duration": 0.02})
    await settle()
    assert stream.request_id == "from-metadata"
    await stream.aclose()


async def test_unknown_messages_are_ignored_and_an_error_message_ends_the_stream() -> None:
    socket = Scripted()
    stream = stream_on(socket)
    stream.push(second(1)[0])
    socket.say({"type": "SomethingNew", "detail": 1})
    socket.say({"type": "Error", "variant": "SchemaError", "description": "Bad Configure message"})
    with pytest.raises(ProviderError, match="the server reported an error: Bad Configure message"):
        async with asyncio.timeout(5):
            [e async for e in stream]
    await stream.aclose()
    assert socket.closed


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"type": "Results", "start": 0.0}, "without start, duration and channel.alternatives"),
        ({**results("x", 0.0, 1.0), "channel": {"alternatives": []}}, "no alternatives"),
        ({"type": "SpeechStarted", "channel": [0]}, "without a 'timestamp'"),
        ({"type": "UtteranceEnd", "channel": [0, 1]}, "without 'last_word_end'"),
    ],
)
async def test_malformed_messages_are_named(message: dict[str, Any], problem: str) -> None:
    socket = Scripted()
    stream = stream_on(socket)
    stream.push(second(1)[0])
    socket.say(message)
    with pytest.raises(ProviderError, match="malformed response") as info:
        async with asyncio.timeout(5):
            [e async for e in stream]
    assert problem in str(info.value) and not info.value.retryable
    await stream.aclose()


async def test_the_idle_timeout_runs_from_the_first_unanswered_send() -> None:
    socket = Scripted()
    stream = stream_on(socket, idle_timeout_ms=700)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(3)  # nothing sent, nothing owed: no timeout however long
    started = loop.time()
    for frame in second(49):  # 980 ms of audio: Deepgram may wait for more before it answers
        stream.push(frame)
    await asyncio.sleep(2)
    stream.push(second(1, 980)[0])  # a second of audio unanswered: owed from now
    with pytest.raises(ProviderError, match="sent nothing for 700 ms"):
        async with asyncio.timeout(5):
            [e async for e in stream]
    assert loop.time() - started == pytest.approx(2.7)
    await stream.aclose()


async def test_keepalive_every_few_seconds_without_audio() -> None:
    fake = FakeDeepgram()
    stream = stream_on(fake)
    for frame in second(10):
        stream.push(frame)
        await asyncio.sleep(0.02)
    await asyncio.sleep(2.5 * KEEPALIVE_S)  # the source pauses: no frames
    (connection,) = fake.connections
    assert connection.controls == ["KeepAlive", "KeepAlive"]
    stream.end_input()
    async with asyncio.timeout(5):
        [e async for e in stream]
    assert connection.controls == ["KeepAlive", "KeepAlive", "CloseStream"]
    await stream.aclose()


async def test_a_connection_that_cannot_keep_up_fails_the_stream() -> None:
    socket = Scripted(send_s=0.03)  # 30 ms to send 20 ms of audio
    stream = stream_on(socket, idle_timeout_ms=60_000)

    async def source() -> None:
        for frame in second(2_000):
            stream.push(frame)
            await asyncio.sleep(0.02)

    pushing = asyncio.create_task(source())
    loop = asyncio.get_running_loop()
    with pytest.raises(ProviderError, match="cannot keep up") as info:
        async with asyncio.timeout(60):
            [e async for e in stream]
    # A third of the audio stays unsent: past MAX_BACKLOG_MS after three times as long.
    assert loop.time() == pytest.approx(3 * MAX_BACKLOG_MS / 1000, abs=0.1)
    assert info.value.retryable
    pushing.cancel()
    await asyncio.gather(pushing, return_exceptions=True)
    await stream.aclose()


async def test_a_send_that_stalls_fails_the_stream() -> None:
    socket = Scripted(send_s=3600)
    stream = stream_on(socket, idle_timeout_ms=400)
    stream.push(second(1)[0])
    with pytest.raises(ProviderError, match="sending stalled for 400 ms"):
        async with asyncio.timeout(5):
            [e async for e in stream]
    await stream.aclose()


async def test_pushes_after_the_stream_failed_are_dropped() -> None:
    socket = Scripted()
    stream = stream_on(socket, idle_timeout_ms=100)
    for frame in second(50):  # a second of audio that the server never answers
        stream.push(frame)
    with pytest.raises(ProviderError, match="sent nothing"):
        async with asyncio.timeout(5):
            [e async for e in stream]
    for frame in second(500):
        stream.push(frame)
    assert not stream._outbox and not stream._resend  # nothing more is kept
    await stream.aclose()


def test_the_timeline_maps_sent_audio_onto_the_session_clock() -> None:
    timeline = Timeline()
    assert timeline.session(500) == 0.0  # nothing sent yet
    for at in (1000.0, 1020.0, 1040.0):  # contiguous frames: one stretch
        timeline.add(at, 20.0)
    timeline.add(5000.0, 20.0)  # a gap in the source: a stretch of its own
    assert timeline.sent_ms == 80.0
    assert timeline.session(0) == 1000.0
    assert timeline.session(30) == 1030.0
    assert timeline.session(60) == 5000.0
    assert timeline.session(70) == 5010.0
    assert len(timeline._audio_ms) == 2


async def test_a_fake_session_under_virtual_time_gives_the_final() -> None:
    fake = FakeDeepgram(["Virtual hello."])
    stream = stream_on(fake)
    audio = talk(("silence", 300), ("speech", 800), ("silence", 400))
    for frame in audio.frames():
        stream.push(frame)
        if frame.end_ms == audio.utterances[0].detected_ms:
            stream.speech_ended(audio.utterances[0])
        await asyncio.sleep(0.02)
    stream.end_input()
    async with asyncio.timeout(5):
        events = [e async for e in stream]
    assert [f.text for f in finals(events)] == ["Virtual hello."]
    assert partials(events) and all(type(e) is not Transcript or e.text for e in events[:-1])
    await stream.aclose()
