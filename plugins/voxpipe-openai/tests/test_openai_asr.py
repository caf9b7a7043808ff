"""OpenAIASR: local endpointing on live frames, one streamed transcription per utterance."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import io
import json
import wave
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing

import httpx
import numpy as np
import pytest
from openai_wire import (
    KEY,
    SSE_HEADERS,
    Wire,
    cancel_after_first,
    leftover_tasks,
    pieces,
    sse,
    transcription_body,
    transcription_events,
)

from voxpipe.audio import AudioFrame, Int16Array, split_frames
from voxpipe.errors import AuthError, ProviderError
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Transcript
from voxpipe.sim.voice import speech_like
from voxpipe.testing import ServerControl
from voxpipe_openai import OpenAIASR, OpenAIASROptions

RATE = 16_000
TEXT = "Hello there, how are you?"
PATH = "/audio/transcriptions"


def audio(*segments: tuple[str, float], rate: int = RATE) -> Int16Array:
    """("speech" | "silence", ms) segments as one run of samples."""
    parts = [
        speech_like(ms, rate, seed=i) if kind == "speech" else np.zeros(round(rate * ms / 1000))
        for i, (kind, ms) in enumerate(segments)
    ]
    return np.concatenate(parts).astype(np.int16)


async def feed(
    frames: Sequence[AudioFrame], *, paced: bool = False, log: list[float] | None = None
) -> AsyncIterator[AudioFrame]:
    for frame in frames:
        if paced:
            await asyncio.sleep(frame.duration_ms / 1000)
        if log is not None:
            log.append(frame.end_ms)
        yield frame


def asr(context: BackendContext | None = None, **options: object) -> OpenAIASR:
    return OpenAIASR(OpenAIASROptions.model_validate(options), context or BackendContext())


async def transcripts_of(backend: OpenAIASR, frames: AsyncIterator[AudioFrame]) -> list[Transcript]:
    try:
        async with aclosing(backend.transcribe(frames)) as stream:
            return [t async for t in stream]
    finally:
        await backend.aclose()


def form(request: httpx.Request) -> dict[str, tuple[str | None, bytes]]:
    """The multipart form of ``request``: name -> (filename, content)."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.content)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        fields[name] = (part.get_filename(), part.get_payload(decode=True))
    return fields


def wav_samples(data: bytes) -> tuple[Int16Array, int]:
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2"), wav.getframerate()


@pytest.mark.looptime
async def test_utterance_is_uploaded_as_wav_and_streamed_back(wire: Wire) -> None:
    samples = audio(("silence", 300), ("speech", 1000), ("silence", 1000))
    route = wire.route(PATH, pieces(transcription_body(TEXT)), headers=SSE_HEADERS)
    frames = split_frames(samples, RATE, 20)
    got = await transcripts_of(asr(), feed(frames, paced=True))

    assert [(t.text, t.is_final) for t in got] == [
        ("Hello", False),
        ("Hello there,", False),
        ("Hello there, how", False),
        ("Hello there, how are", False),
        ("Hello there, how are you?", False),
        ("Hello there, how are you?", True),
    ]
    # Speech ends at 1300 ms; the endpointer waits 500 ms of silence.
    assert {t.endpoint_ms for t in got} == {1800.0}

    request = route.calls.last.request
    assert str(request.url) == "https://api.openai.com/v1/audio/transcriptions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    fields = form(request)
    assert fields["model"] == (None, b"gpt-4o-transcribe")
    assert fields["stream"] == (None, b"true")
    assert "language" not in fields and "prompt" not in fields
    filename, data = fields["file"]
    assert filename == "utterance.wav"
    uploaded, rate = wav_samples(data)
    # 200 ms before the speech, the speech, 200 ms of the silence after it.
    assert rate == RATE and np.array_equal(uploaded, samples[1_600:24_000])


@pytest.mark.looptime
async def test_audio_keeps_flowing_while_an_upload_is_in_flight(wire: Wire) -> None:
    control = ServerControl()
    events = transcription_events(TEXT)
    parts = [sse(events[0], done=False), *pieces(sse(*events[1:], done=False))]
    wire.route(PATH, parts, headers=SSE_HEADERS, control=control)
    samples = audio(("silence", 300), ("speech", 600), ("silence", 4000))
    consumed: list[float] = []
    backend = asr()
    loop = asyncio.get_running_loop()
    async with aclosing(
        backend.transcribe(feed(split_frames(samples, RATE, 20), paced=True, log=consumed))
    ) as stream:
        first = await anext(stream)
        assert (first.text, first.is_final) == ("Hello", False)
        assert loop.time() == pytest.approx(1.4, abs=0.021)  # endpoint at 900 + 500 ms
        heard = consumed[-1]
        await asyncio.sleep(1.0)  # the provider holds the rest of its answer
        assert consumed[-1] == pytest.approx(heard + 1000, abs=20)
        control.release.set()
        rest = [t async for t in stream]
    await backend.aclose()
    assert rest[-1] == Transcript(TEXT, True, endpoint_ms=1400.0)
    assert consumed[-1] == 4900.0  # the whole input was heard


@pytest.mark.looptime
async def test_utterances_are_transcribed_in_order(wire: Wire) -> None:
    texts = iter(["First one.", "And the second."])
    route = wire.route(PATH, lambda: pieces(transcription_body(next(texts))), headers=SSE_HEADERS)
    samples = audio(
        ("silence", 200), ("speech", 700), ("silence", 800), ("speech", 500), ("silence", 700)
    )
    got = await transcripts_of(asr(), feed(split_frames(samples, RATE, 20), paced=True))
    finals = [(t.text, t.endpoint_ms) for t in got if t.is_final]
    assert finals == [("First one.", 1400.0), ("And the second.", 2700.0)]
    assert [t.text for t in got[:3]] == ["First", "First one.", "First one."]
    assert route.call_count == 2
    second, _ = wav_samples(form(route.calls[1].request)["file"][1])
    assert len(second) == RATE * (200 + 500 + 200) // 1000


async def test_end_of_input_finalizes_the_pending_utterance(wire: Wire) -> None:
    route = wire.route(PATH, [transcription_body("Cut off")], headers=SSE_HEADERS)
    samples = audio(("silence", 300), ("speech", 800))
    got = await transcripts_of(asr(), feed(split_frames(samples, RATE, 20)))
    assert got[-1] == Transcript("Cut off", True, endpoint_ms=1100.0)
    uploaded, _ = wav_samples(form(route.calls.last.request)["file"][1])
    assert np.array_equal(uploaded, samples[1_600:])


async def test_silence_makes_no_request(wire: Wire) -> None:
    route = wire.route(PATH, [transcription_body("x")], headers=SSE_HEADERS)
    samples = audio(("silence", 2000))
    assert await transcripts_of(asr(), feed(split_frames(samples, RATE, 20))) == []
    assert route.call_count == 0


async def test_options_reach_the_request(wire: Wire) -> None:
    base = "http://127.0.0.1:8000/v1"
    route = wire.route(PATH, [transcription_body("Hola")], headers=SSE_HEADERS, base_url=base)
    backend = asr(
        model="gpt-4o-mini-transcribe",
        language="es",
        prompt="Vocabulario: voxpipe.",
        endpoint_ms=200,
        threshold_db=-30,
        base_url=base,
        organization="org-9",
    )
    samples = audio(("silence", 300), ("speech", 400), ("silence", 400))
    got = await transcripts_of(backend, feed(split_frames(samples, RATE, 20)))
    assert got[-1] == Transcript("Hola", True, endpoint_ms=900.0)
    request = route.calls.last.request
    assert str(request.url) == "http://127.0.0.1:8000/v1/audio/transcriptions"
    assert request.headers["openai-organization"] == "org-9"
    fields = form(request)
    assert fields["model"] == (None, b"gpt-4o-mini-transcribe")
    assert fields["language"] == (None, b"es")
    assert fields["prompt"] == (None, b"Vocabulario: voxpipe.")


async def test_frames_at_another_rate_are_uploaded_at_the_session_rate(wire: Wire) -> None:
    route = wire.route(PATH, [transcription_body("Hi")], headers=SSE_HEADERS)
    samples = audio(("silence", 300), ("speech", 400), ("silence", 800), rate=48_000)
    await transcripts_of(asr(), feed(split_frames(samples, 48_000, 20)))
    uploaded, rate = wav_samples(form(route.calls.last.request)["file"][1])
    assert rate == RATE and len(uploaded) == RATE * 800 // 1000


async def test_a_server_that_answers_json_gives_the_final_only(wire: Wire) -> None:
    body = json.dumps({"text": "Plain JSON.", "usage": {"type": "duration", "seconds": 1}})
    wire.route(PATH, [body.encode()], headers={"content-type": "application/json"})
    samples = audio(("silence", 300), ("speech", 400), ("silence", 800))
    got = await transcripts_of(asr(model="whisper-1"), feed(split_frames(samples, RATE, 20)))
    assert got == [Transcript("Plain JSON.", True, endpoint_ms=1200.0)]


async def test_a_stream_without_a_done_event_ends_with_its_text(wire: Wire) -> None:
    events = transcription_events("Two words")[:-1]
    wire.route(PATH, [sse(*events, done=False)], headers=SSE_HEADERS)
    samples = audio(("silence", 300), ("speech", 400), ("silence", 800))
    got = await transcripts_of(asr(), feed(split_frames(samples, RATE, 20)))
    assert got[-1] == Transcript("Two words", True, endpoint_ms=1200.0)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ('{"type": "transcript.text.delta", "delta": 7}', "without a text 'delta'"),
        ('{"type": "transcript.text.done"}', "without a text 'text'"),
        ('{"delta": "hi"}', "without a 'type'"),
        ('{"type": "transcript.text.delta", "del', "malformed"),
    ],
)
async def test_malformed_events_are_provider_errors(wire: Wire, event: str, expected: str) -> None:
    wire.route(PATH, pieces(sse(event, done=False), 5), headers=SSE_HEADERS)
    samples = audio(("silence", 300), ("speech", 400), ("silence", 800))
    with pytest.raises(ProviderError) as info:
        await transcripts_of(asr(), feed(split_frames(samples, RATE, 20)))
    assert type(info.value) is ProviderError and "openai transcription" in str(info.value)
    assert expected in str(info.value)
    assert wire.bodies[0].closed


async def test_unknown_event_types_are_skipped(wire: Wire) -> None:
    events = [{"type": "transcript.text.segment", "id": "seg_0", "text": "x"}]
    events += transcription_events("Fine")
    wire.route(PATH, [sse(*events, done=False)], headers=SSE_HEADERS)
    samples = audio(("silence", 300), ("speech", 400), ("silence", 800))
    got = await transcripts_of(asr(), feed(split_frames(samples, RATE, 20)))
    assert [t.text for t in got] == ["Fine", "Fine"]


@pytest.mark.looptime
async def test_an_upload_error_surfaces_while_audio_still_flows(wire: Wire) -> None:
    wire.fail(PATH, 401)
    samples = audio(("silence", 300), ("speech", 500), ("silence", 60_000))
    consumed: list[float] = []
    loop = asyncio.get_running_loop()
    with pytest.raises(AuthError, match="OPENAI_API_KEY"):
        await transcripts_of(asr(), feed(split_frames(samples, RATE, 20), paced=True, log=consumed))
    assert loop.time() == pytest.approx(1.3, abs=0.021)  # at the first endpoint, not at the end
    assert consumed[-1] < 2_000
    assert not await leftover_tasks()


def held_upload(wire: Wire) -> tuple[ServerControl, OpenAIASR, AsyncIterator[AudioFrame]]:
    """An utterance whose transcription stream sends its first delta, then holds."""
    control = ServerControl()
    events = transcription_events(TEXT)
    parts = [sse(events[0], done=False), sse(*events[1:], done=False)]
    wire.route(PATH, parts, headers=SSE_HEADERS, control=control)
    samples = audio(("silence", 300), ("speech", 600), ("silence", 5000))
    return control, asr(), feed(split_frames(samples, RATE, 20), paced=True)


@pytest.mark.looptime
async def test_aclose_during_an_upload_releases_it(wire: Wire) -> None:
    control, backend, frames = held_upload(wire)
    stream = backend.transcribe(frames)
    assert (await anext(stream)).text == "Hello"
    await stream.aclose()
    assert wire.bodies[0].closed and control.closed.is_set()
    assert not await leftover_tasks()
    await backend.aclose()


@pytest.mark.looptime
async def test_cancelling_the_consumer_releases_everything(wire: Wire) -> None:
    _, backend, frames = held_upload(wire)
    await cancel_after_first(backend.transcribe(frames))
    assert wire.bodies[0].closed
    assert not await leftover_tasks()
    await backend.aclose()
