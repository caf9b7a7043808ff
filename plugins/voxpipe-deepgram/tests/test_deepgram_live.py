"""The live ASR against ``FakeDeepgram`` on a real WebSocket on 127.0.0.1: what goes over the
wire (query, key, audio, Finalize, CloseStream), how Deepgram's messages become voxpipe
events on the session clock, one connection per stream. Real sockets, so real time: the
audio is played ten times faster than real time, and every test takes well under a second."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from dg import KEY, finals, hear, of_type, partials, play, talk, tasks_left

from voxpipe.audio import AudioFrame
from voxpipe.protocols import EndOfTurn, SpeechStarted
from voxpipe_deepgram import DeepgramASR, DeepgramASROptions
from voxpipe_deepgram.testing import FakeDeepgram

TEXT = "Hello there, how are you?"


def asr(base_url: str, **options: object) -> DeepgramASR:
    return DeepgramASR(
        DeepgramASROptions.model_validate(
            {"base_url": base_url, "idle_timeout_ms": 1000, **options}
        )
    )


async def test_the_handshake_carries_the_query_and_the_key() -> None:
    fake = FakeDeepgram([TEXT], key=KEY)
    async with fake.serve() as url:
        await hear(asr(url, language="en", endpointing_ms=500).listen(), talk(("silence", 100)))
    (connection,) = fake.connections
    assert connection.path == "/v1/listen"
    assert connection.query == {
        "model": "nova-3",
        "encoding": "linear16",
        "sample_rate": "16000",
        "channels": "1",
        "interim_results": "true",
        "endpointing": "500",
        "utterance_end_ms": "1000",
        "vad_events": "true",
        "smart_format": "true",
        "punctuate": "true",
        "language": "en",
    }
    assert connection.headers["authorization"] == f"Token {KEY}"


async def test_audio_goes_out_as_it_came_then_finalize_and_closestream() -> None:
    fake = FakeDeepgram([TEXT])
    audio = talk(("silence", 300), ("speech", 1200), ("silence", 600))
    async with fake.serve() as url:
        await hear(asr(url).listen(), audio)
    (connection,) = fake.connections
    assert bytes(connection.audio) == audio.pcm()  # every sample, in order, nothing else
    assert connection.controls == ["Finalize", "CloseStream"]
    assert connection.ended_by == "server"  # it closed after CloseStream, as Deepgram does


async def test_a_turn_becomes_speech_started_partials_and_one_final() -> None:
    fake = FakeDeepgram([TEXT])
    audio = talk(("silence", 300), ("speech", 1200), ("silence", 600))
    async with fake.serve() as url:
        events = await hear(asr(url).listen(), audio)
    (started,) = of_type(events, SpeechStarted)
    assert started.at_ms == pytest.approx(300)  # Deepgram's timestamp, on the session clock
    texts = [p.text for p in partials(events)]
    assert texts[0] == "Hello" and texts[-1].startswith("Hello there, how")
    assert len(texts) == len(set(texts))  # a partial that says nothing new is not repeated
    (final,) = finals(events)
    assert final.text == TEXT and final.confidence == pytest.approx(0.98)
    # The session's VAD ended it (Finalize): its decision is the endpoint.
    assert final.endpoint_ms == audio.utterances[0].detected_ms
    assert not of_type(events, EndOfTurn)  # the session's endpointer decided, not Deepgram's


async def test_the_final_comes_while_the_audio_still_flows() -> None:
    fake = FakeDeepgram([TEXT])
    audio = talk(("silence", 300), ("speech", 1200), ("silence", 3000))
    async with fake.serve() as url:
        stream = asr(url).listen()
        player = asyncio.create_task(play(stream, audio))
        async with asyncio.timeout(5):
            async for event in stream:
                if finals([event]):
                    break
        assert not player.done()  # 2.5 s of audio still to come
        connection = fake.connections[0]
        assert connection.controls == ["Finalize"]
        player.cancel()
        await stream.aclose()


async def test_deepgrams_endpointing_is_a_final_and_an_end_of_turn() -> None:
    # end_of_turn = "asr": the session sends no speech_ended; speech_final ends the turn.
    fake = FakeDeepgram([TEXT])
    audio = talk(("silence", 300), ("speech", 1200), ("silence", 800))
    async with fake.serve() as url:
        events = await hear(asr(url, endpointing_ms=300).listen(), audio, vad=False)
    (final,) = finals(events)
    (end,) = of_type(events, EndOfTurn)
    assert events.index(end) == events.index(final) + 1
    assert final.text == TEXT
    # The last of 5 words spread over 300-1500 ms ends 0.15 of a slot before the voice does.
    slot = 1200 / 5
    assert end.speech_end_ms == pytest.approx(1500 - 0.15 * slot, abs=1)
    assert final.endpoint_ms == pytest.approx(1500 + 300, abs=21)  # where Deepgram decided
    assert fake.connections[0].controls == ["CloseStream"]


async def test_utterance_end_ends_an_utterance_without_speech_final() -> None:
    fake = FakeDeepgram(["Noisy room here."], speech_final=False)
    audio = talk(("silence", 300), ("speech", 900), ("silence", 1600))
    async with fake.serve() as url:
        events = await hear(asr(url, endpointing_ms=300).listen(), audio, vad=False)
    sent = [m["type"] for m in fake.connections[0].sent]
    assert "UtteranceEnd" in sent
    (final,) = finals(events)
    (end,) = of_type(events, EndOfTurn)
    assert final.text == "Noisy room here."
    assert events.index(end) == events.index(final) + 1
    assert end.speech_end_ms == pytest.approx(1200 - 0.15 * 300, abs=1)
    # UtteranceEnd comes utterance_end_ms after the last word: that is where it was decided.
    assert final.endpoint_ms == pytest.approx(end.speech_end_ms + 1000, abs=1)


async def test_one_connection_per_stream_kept_open_across_turns() -> None:
    fake = FakeDeepgram(["First turn.", "Second turn."])
    audio = talk(
        ("silence", 200), ("speech", 800), ("silence", 600), ("speech", 800), ("silence", 400)
    )
    async with fake.serve() as url:
        backend = asr(url)
        events = await hear(backend.listen(), audio)
        assert [f.text for f in finals(events)] == ["First turn.", "Second turn."]
        assert len(fake.connections) == 1
        await hear(backend.listen(), talk(("silence", 100)))  # a new session: its own
        assert len(fake.connections) == 2
    assert fake.connections[0].controls == ["Finalize", "Finalize", "CloseStream"]


async def test_keepalive_goes_out_while_no_audio_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("voxpipe_deepgram.live.KEEPALIVE_S", 0.1)
    fake = FakeDeepgram([TEXT])
    audio = talk(("silence", 200), ("speech", 600), ("silence", 400))
    async with fake.serve() as url:
        # The frames stop for 0.35 s after 400 ms (a source that pauses): three KeepAlives.
        events = await hear(asr(url).listen(), audio, pause_after_ms=400, pause_s=0.35)
    assert fake.connections[0].controls == ["KeepAlive"] * 3 + ["Finalize", "CloseStream"]
    assert [f.text for f in finals(events)] == [TEXT]


async def test_end_input_finishes_the_pending_final() -> None:
    # The input ends right after the speech: the final comes from CloseStream's flush.
    fake = FakeDeepgram([TEXT])
    audio = talk(("silence", 300), ("speech", 1200))
    async with fake.serve() as url:
        events = await hear(asr(url).listen(), audio)
    assert [f.text for f in finals(events)] == [TEXT]
    assert fake.connections[0].controls == ["CloseStream"]


async def test_closing_mid_stream_closes_the_socket_and_the_tasks() -> None:
    fake = FakeDeepgram([TEXT])
    audio = talk(("silence", 300), ("speech", 1200), ("silence", 3000))
    async with fake.serve() as url:
        stream = asr(url).listen()
        player = asyncio.create_task(play(stream, audio))

        async def consume() -> None:
            async for _ in stream:
                pass

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        consumer.cancel()  # the session's hearing task is cancelled
        await asyncio.gather(consumer, return_exceptions=True)
        player.cancel()
        await asyncio.gather(player, return_exceptions=True)
        await fake.all_ended(within_s=0.5)
        assert fake.connections[0].ended_by == "client"
        assert fake.connections[0].controls == []  # closed, not CloseStream'd: it was cancelled
        await stream.aclose()
    assert not await tasks_left()


async def test_empty_frames_are_not_sent() -> None:
    # An empty binary message makes Deepgram close the connection.
    fake = FakeDeepgram([TEXT])
    async with fake.serve() as url:
        stream = asr(url).listen()
        stream.push(AudioFrame(np.zeros(0, np.int16), 16_000, 0.0))
        stream.push(AudioFrame(np.ones(320, np.int16), 16_000, 0.0))
        stream.end_input()
        async with asyncio.timeout(2):
            assert [e async for e in stream] == []
        await stream.aclose()
    assert len(fake.connections[0].audio) == 640


async def test_frames_at_another_rate_are_resampled_to_the_session_rate() -> None:
    fake = FakeDeepgram([TEXT])
    async with fake.serve() as url:
        stream = asr(url).listen()
        stream.push(AudioFrame(np.zeros(960, np.int16), 48_000, 0.0))  # 20 ms at 48 kHz
        stream.end_input()
        async with asyncio.timeout(2):
            [e async for e in stream]
        await stream.aclose()
    assert len(fake.connections[0].audio) == 320 * 2  # 20 ms at 16 kHz


async def test_the_final_carries_its_words_on_the_session_clock_and_the_request_id() -> None:
    fake = FakeDeepgram([TEXT])
    audio = talk(("silence", 300), ("speech", 1200), ("silence", 600))
    async with fake.serve() as url:
        events = await hear(asr(url).listen(), audio)
    (final,) = finals(events)
    words = final.words
    assert [w.text for w in words] == TEXT.split()  # punctuated, as Deepgram gives them
    slot = 1200 / 5  # Deepgram's seconds since the stream began, on the session clock
    assert words[0].start_ms == pytest.approx(300, abs=1)
    assert words[-1].end_ms == pytest.approx(1500 - 0.15 * slot, abs=1)
    assert final.request_id == fake.connections[0].request_id
