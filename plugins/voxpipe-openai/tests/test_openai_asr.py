"""OpenAIASR: the session's VAD cuts utterances from the live audio, each one is transcribed by
one streamed upload. The tests drive the stream as the session does: push every frame, and
call ``speech_started`` / ``speech_ended`` where the session's VAD decides."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import io
import json
import wave
from collections.abc import Sequence

import httpx
import numpy as np
import pytest
import respx
from openai_wire import (
    KEY,
    SSE_HEADERS,
    Wire,
    error_response,
    leftover_tasks,
    pieces,
    sse,
    transcription_body,
    transcription_events,
)

from voxpipe.audio import AudioFrame, Int16Array, split_frames
from voxpipe.errors import ProviderError
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import ASREvent, ASRStream, Transcript
from voxpipe.sim.voice import speech_like
from voxpipe.testing import ServerControl
from voxpipe.turns import VoiceTracker
from voxpipe.vad import EnergyVAD, Utterance
from voxpipe_openai import OpenAIASR, OpenAIASROptions
from voxpipe_openai.asr import CONFIRM_MS, PREROLL_MS, OpenAIASRStream

RATE = 16_000
TEXT = "Hello there, how are you?"
PATH = "/audio/transcriptions"
URL = "https://api.openai.com/v1" + PATH


def audio(*segments: tuple[str, float], rate: int = RATE) -> Int16Array:
    """("speech" | "silence", ms) segments as one run of samples."""
    parts = [
        speech_like(ms, rate, seed=i) if kind == "speech" else np.zeros(round(rate * ms / 1000))
        for i, (kind, ms) in enumerate(segments)
    ]
    return np.concatenate(parts).astype(np.int16)


def frames_of(samples: Int16Array, rate: int = RATE) -> list[AudioFrame]:
    return split_frames(samples, rate, 20)


def ramp(ms: float) -> Int16Array:
    """``ms`` of audio in which every sample is its own index: a cut shows where it was made."""
    return np.arange(round(RATE * ms / 1000), dtype=np.int16)


async def drive(
    stream: ASRStream,
    frames: Sequence[AudioFrame],
    *,
    endpoint_ms: float = 500.0,
    paced: bool = False,
    log: list[float] | None = None,
) -> None:
    """What the session's input task does: push each frame (paced: when it has been
    captured), track speech with the energy VAD, mark where each utterance starts and ends;
    at the end of the input, end the utterance in progress and ``end_input()``."""
    vad, voice = EnergyVAD(), VoiceTracker(endpoint_ms=endpoint_ms)
    for frame in frames:
        if paced:
            await asyncio.sleep(frame.duration_ms / 1000)
        stream.push(frame)
        if log is not None:
            log.append(frame.end_ms)
        was_speaking = voice.in_speech
        ended = voice.update(frame, vad.is_voiced(frame))
        if ended is not None:
            stream.speech_ended(ended)
        elif voice.speech_start_ms is not None and not was_speaking:
            stream.speech_started(voice.speech_start_ms)
    if (last := voice.end(frames[-1].end_ms)) is not None:
        stream.speech_ended(last)
    stream.end_input()


def asr(context: BackendContext | None = None, **options: object) -> OpenAIASR:
    return OpenAIASR(OpenAIASROptions.model_validate(options), context or BackendContext())


async def transcripts_of(
    backend: OpenAIASR, frames: Sequence[AudioFrame], *, endpoint_ms: float = 500.0
) -> list[ASREvent]:
    """Every event of one stream, driven over ``frames``; everything closed after."""
    stream = backend.listen()
    feeding = asyncio.create_task(drive(stream, frames, endpoint_ms=endpoint_ms))
    try:
        return [event async for event in stream]
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
        await stream.aclose()
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


def uploaded(route: respx.Route, call: int = -1) -> Int16Array:
    """The audio of the route's ``call``-th upload (at the session rate)."""
    samples, rate = wav_samples(form(route.calls[call].request)["file"][1])
    assert rate == RATE
    return samples


@pytest.mark.looptime
async def test_utterance_is_uploaded_as_wav_and_streamed_back(wire: Wire) -> None:
    samples = audio(("silence", 300), ("speech", 1000), ("silence", 1000))
    route = wire.route(PATH, pieces(transcription_body(TEXT)), headers=SSE_HEADERS)
    backend, loop = asr(), asyncio.get_running_loop()
    stream = backend.listen()
    feeding = asyncio.create_task(drive(stream, frames_of(samples), paced=True))
    first = await anext(aiter(stream))
    assert loop.time() == pytest.approx(1.8)  # at the VAD's endpoint, not later
    got = [first, *[event async for event in stream]]
    await feeding
    await stream.aclose()
    await backend.aclose()

    assert [(t.text, t.is_final) for t in got] == [  # type: ignore[union-attr]
        ("Hello", False),
        ("Hello there,", False),
        ("Hello there, how", False),
        ("Hello there, how are", False),
        ("Hello there, how are you?", False),
        ("Hello there, how are you?", True),
    ]
    # Speech ends at 1300 ms; the session's endpointer waits 500 ms of silence.
    assert {t.endpoint_ms for t in got} == {1800.0}  # type: ignore[union-attr]

    request = route.calls.last.request
    assert str(request.url) == URL
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    fields = form(request)
    assert fields["model"] == (None, b"gpt-4o-transcribe")
    assert fields["stream"] == (None, b"true")
    assert "language" not in fields and "prompt" not in fields
    assert fields["file"][0] == "utterance.wav"
    # 200 ms before the speech, the speech, 200 ms of the silence after it.
    assert np.array_equal(uploaded(route), samples[1_600:24_000])
    assert wire.bodies[0].closed


@pytest.mark.parametrize(
    ("utterance", "pushed_ms", "window"),
    [
        # [start - 200 ms, end + 200 ms), all of it pushed already.
        (Utterance(500.0, 1200.0, 1400.0), 1400.0, (300.0, 1400.0)),
        # Between frame boundaries; the endpointer waited less than the tail: only audio
        # pushed so far (up to the frame that revealed the endpoint) is sent.
        (Utterance(505.5, 1210.25, 1290.0), 1300.0, (305.5, 1300.0)),
        # Speech right at the start: there is no audio before it.
        (Utterance(0.0, 400.0, 600.0), 600.0, (0.0, 600.0)),
    ],
)
async def test_the_upload_is_exactly_the_utterance_with_pre_roll_and_tail(
    wire: Wire, utterance: Utterance, pushed_ms: float, window: tuple[float, float]
) -> None:
    route = wire.route(PATH, [transcription_body("Hi")], headers=SSE_HEADERS)
    backend = asr()
    stream = backend.listen()
    samples = ramp(2000)
    confirmed = False
    for frame in frames_of(samples):
        if frame.start_ms >= pushed_ms:
            break
        stream.push(frame)
        if not confirmed and frame.end_ms >= utterance.start_ms + 60:  # 60 ms of speech heard
            stream.speech_started(utterance.start_ms)
            confirmed = True
    stream.speech_ended(utterance)
    stream.end_input()
    assert [e async for e in stream] == [
        Transcript("Hi", False, endpoint_ms=utterance.detected_ms),
        Transcript("Hi", True, endpoint_ms=utterance.detected_ms),
    ]
    await stream.aclose()
    await backend.aclose()
    start, end = (round(ms * RATE / 1000) for ms in window)
    assert np.array_equal(uploaded(route), samples[start:end])


@pytest.mark.parametrize("speech_started", [True, False])
async def test_between_utterances_only_the_pre_roll_is_kept(
    wire: Wire, speech_started: bool
) -> None:
    # While no speech is in progress the stream forgets audio older than the pre-roll (and
    # the VAD's confirmation delay); from speech_started on it keeps everything.
    route = wire.route(PATH, [transcription_body("Hi")], headers=SSE_HEADERS)
    backend = asr()
    stream = backend.listen()
    samples = ramp(2000)
    for frame in frames_of(samples):
        stream.push(frame)
        if speech_started and frame.end_ms == 1060:
            stream.speech_started(1000.0)
    stream.speech_ended(Utterance(1000.0, 1800.0, 2000.0))
    stream.end_input()
    assert [e.is_final async for e in stream] == [False, True]  # type: ignore[union-attr]
    await stream.aclose()
    await backend.aclose()
    first_ms = 800.0 if speech_started else 2000.0 - PREROLL_MS - CONFIRM_MS
    assert np.array_equal(uploaded(route), samples[round(first_ms * RATE / 1000) :])


@pytest.mark.looptime
async def test_first_partial_comes_while_the_provider_holds_the_rest(wire: Wire) -> None:
    control = ServerControl()
    events = transcription_events(TEXT)
    parts = [sse(events[0], done=False), *pieces(sse(*events[1:], done=False))]
    wire.route(PATH, parts, headers=SSE_HEADERS, control=control)
    samples = audio(("silence", 300), ("speech", 600), ("silence", 4000))
    pushed: list[float] = []
    backend, loop = asr(), asyncio.get_running_loop()
    stream = backend.listen()
    feeding = asyncio.create_task(drive(stream, frames_of(samples), paced=True, log=pushed))
    first = await anext(aiter(stream))
    assert first == Transcript("Hello", False, endpoint_ms=1400.0)
    assert loop.time() == pytest.approx(1.4)  # endpoint at 900 + 500 ms
    heard = pushed[-1]
    await asyncio.sleep(1.0)  # the provider holds the rest of its answer; audio flows on
    assert pushed[-1] == pytest.approx(heard + 1000, abs=20)  # the frame due now, or not yet
    control.release.set()
    rest = [event async for event in stream]
    assert rest[-1] == Transcript(TEXT, True, endpoint_ms=1400.0)
    assert feeding.done() and pushed[-1] == 4900.0  # the whole input was heard
    await stream.aclose()
    await backend.aclose()


@pytest.mark.looptime
async def test_uploads_run_one_after_another_and_stay_in_order(wire: Wire) -> None:
    control = ServerControl()
    texts = iter(["First one.", "And the second."])

    def parts() -> list[bytes]:
        events = transcription_events(next(texts))
        return [sse(events[0], done=False), sse(*events[1:], done=False)]

    route = wire.route(PATH, parts, headers=SSE_HEADERS, control=control)
    samples = audio(
        ("silence", 200), ("speech", 700), ("silence", 800), ("speech", 500), ("silence", 700)
    )
    backend = asr()
    stream = backend.listen()
    feeding = asyncio.create_task(drive(stream, frames_of(samples), paced=True))
    got: list[ASREvent] = []

    async def consume() -> None:
        async for event in stream:
            got.append(event)

    consuming = asyncio.create_task(consume())
    await asyncio.sleep(2.8)  # both utterances have ended (at 1400 and 2700 ms)
    assert route.call_count == 1  # the second waits for the first upload to finish
    assert got == [Transcript("First", False, endpoint_ms=1400.0)]
    control.release.set()
    await consuming
    await feeding
    await stream.aclose()
    await backend.aclose()
    finals = [(t.text, t.endpoint_ms) for t in got if t.is_final]  # type: ignore[union-attr]
    assert finals == [("First one.", 1400.0), ("And the second.", 2700.0)]
    assert [t.text for t in got[:3]] == ["First", "First one.", "First one."]  # type: ignore[union-attr]
    assert route.call_count == 2
    assert np.array_equal(uploaded(route, 1), samples[1_500 * 16 : 2_400 * 16])


@pytest.mark.looptime
async def test_end_of_input_with_nothing_queued_ends_the_events_at_once(wire: Wire) -> None:
    route = wire.route(PATH, [transcription_body("x")], headers=SSE_HEADERS)
    loop = asyncio.get_running_loop()
    assert await transcripts_of(asr(), frames_of(audio(("silence", 2000)))) == []
    assert loop.time() == 0 and route.call_count == 0


async def test_end_of_input_finishes_the_utterance_in_progress(wire: Wire) -> None:
    route = wire.route(PATH, [transcription_body("Cut off")], headers=SSE_HEADERS)
    samples = audio(("silence", 300), ("speech", 800))
    got = await transcripts_of(asr(), frames_of(samples))
    assert got[-1] == Transcript("Cut off", True, endpoint_ms=1100.0)
    assert np.array_equal(uploaded(route), samples[1_600:])


async def test_options_reach_the_request(wire: Wire) -> None:
    base = "http://127.0.0.1:8000/v1"
    route = wire.route(PATH, [transcription_body("Hola")], headers=SSE_HEADERS, base_url=base)
    backend = asr(
        model="gpt-4o-mini-transcribe",
        language="es",
        prompt="Vocabulario: voxpipe.",
        base_url=base,
        organization="org-9",
    )
    samples = audio(("silence", 300), ("speech", 400), ("silence", 400))
    got = await transcripts_of(backend, frames_of(samples), endpoint_ms=200.0)
    assert got[-1] == Transcript("Hola", True, endpoint_ms=900.0)
    request = route.calls.last.request
    assert str(request.url) == "http://127.0.0.1:8000/v1/audio/transcriptions"
    assert request.headers["openai-organization"] == "org-9"
    fields = form(request)
    assert fields["model"] == (None, b"gpt-4o-mini-transcribe")
    assert fields["language"] == (None, b"es")
    assert fields["prompt"] == (None, b"Vocabulario: voxpipe.")


def test_endpointing_options_are_gone() -> None:
    # The session's VAD endpoints for every ASR: [turns] endpoint_ms, [vad] threshold_db.
    assert set(OpenAIASROptions.model_fields) == {
        "base_url",
        "organization",
        "model",
        "language",
        "prompt",
        "connect_timeout_ms",
        "first_byte_timeout_ms",
        "idle_timeout_ms",
        "max_utterance_ms",
    }


async def test_frames_at_another_rate_are_uploaded_at_the_session_rate(wire: Wire) -> None:
    route = wire.route(PATH, [transcription_body("Hi")], headers=SSE_HEADERS)
    samples = audio(("silence", 300), ("speech", 400), ("silence", 800), rate=48_000)
    await transcripts_of(asr(), frames_of(samples, 48_000))
    assert len(uploaded(route)) == RATE * 800 // 1000  # 100 ms to 900 ms


async def test_a_server_that_answers_json_gives_the_final_only(wire: Wire) -> None:
    body = json.dumps({"text": "Plain JSON.", "usage": {"type": "duration", "seconds": 1}})
    wire.route(PATH, [body.encode()], headers={"content-type": "application/json"})
    samples = audio(("silence", 300), ("speech", 400), ("silence", 800))
    got = await transcripts_of(asr(model="whisper-1"), frames_of(samples))
    assert got == [Transcript("Plain JSON.", True, endpoint_ms=1200.0)]


async def test_a_stream_without_a_done_event_is_cut_not_final(wire: Wire) -> None:
    # Its partials came; what they said is not passed off as the final.
    events = transcription_events("Two words")[:-1]
    wire.route(PATH, [sse(*events, done=False)], headers=SSE_HEADERS)
    samples = audio(("silence", 300), ("speech", 400), ("silence", 800))
    backend = asr()
    stream = backend.listen()
    feeding = asyncio.create_task(drive(stream, frames_of(samples)))
    got: list[ASREvent] = []
    with pytest.raises(ProviderError, match=r"without transcript\.text\.done after 2") as info:
        async for event in stream:
            got.append(event)
    assert info.value.retryable
    assert got == [
        Transcript("Two", False, endpoint_ms=1200.0),
        Transcript("Two words", False, endpoint_ms=1200.0),
    ]
    await feeding
    await stream.aclose()
    await backend.aclose()


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
        await transcripts_of(asr(), frames_of(samples))
    assert type(info.value) is ProviderError and "openai transcription" in str(info.value)
    assert expected in str(info.value)
    assert wire.bodies[0].closed


async def test_unknown_event_types_are_skipped(wire: Wire) -> None:
    events = [{"type": "transcript.text.segment", "id": "seg_0", "text": "x"}]
    events += transcription_events("Fine")
    wire.route(PATH, [sse(*events, done=False)], headers=SSE_HEADERS)
    samples = audio(("silence", 300), ("speech", 400), ("silence", 800))
    got = await transcripts_of(asr(), frames_of(samples))
    assert [t.text for t in got] == ["Fine", "Fine"]  # type: ignore[union-attr]


@pytest.mark.looptime
async def test_an_upload_error_ends_the_events_while_audio_still_flows(wire: Wire) -> None:
    first = httpx.Response(200, headers=SSE_HEADERS, content=transcription_body("First."))
    route = wire.router.post(URL).mock(side_effect=[first, error_response(500)])
    samples = audio(
        ("silence", 300), ("speech", 500), ("silence", 1000),  # ends at 800, detected 1300
        ("speech", 500), ("silence", 1000),  # ends at 2300, detected 2800
        ("speech", 500), ("silence", 3000),  # never uploaded
    )  # fmt: skip
    backend, loop = asr(), asyncio.get_running_loop()
    stream = backend.listen()
    feeding = asyncio.create_task(drive(stream, frames_of(samples), paced=True))
    got: list[ASREvent] = []
    with pytest.raises(ProviderError) as info:
        async for event in stream:
            got.append(event)
    assert type(info.value) is ProviderError and info.value.retryable
    assert "openai transcription: HTTP 500" in str(info.value)
    assert got[-1] == Transcript("First.", True, endpoint_ms=1300.0)  # what came before it
    assert loop.time() == pytest.approx(2.8)  # at the second endpoint, not at the end
    assert not feeding.done()
    await feeding  # pushing and marking go on without error after the failure
    assert route.call_count == 2  # later utterances are dropped, not uploaded
    await stream.aclose()
    await backend.aclose()
    assert not await leftover_tasks()


def held_upload(wire: Wire) -> tuple[ServerControl, OpenAIASR, OpenAIASRStream]:
    """A stream whose one utterance is uploaded: the server sends the first delta, then
    holds the rest of its answer."""
    control = ServerControl()
    events = transcription_events(TEXT)
    parts = [sse(events[0], done=False), sse(*events[1:], done=False)]
    wire.route(PATH, parts, headers=SSE_HEADERS, control=control)
    backend = asr()
    return control, backend, backend.listen()


@pytest.mark.looptime
async def test_aclose_during_an_upload_releases_it(wire: Wire) -> None:
    control, backend, stream = held_upload(wire)
    await drive(stream, frames_of(audio(("silence", 300), ("speech", 600), ("silence", 600))))
    got: list[ASREvent] = []

    async def consume() -> None:
        async for event in stream:
            got.append(event)

    consuming = asyncio.create_task(consume())
    await asyncio.sleep(1.0)
    assert got == [Transcript("Hello", False, endpoint_ms=1400.0)]  # then the server holds
    await stream.aclose()
    await asyncio.wait_for(consuming, 1.0)  # its iteration ended
    assert wire.bodies[0].closed and control.closed.is_set()
    assert not await leftover_tasks()
    await backend.aclose()


@pytest.mark.looptime
async def test_a_consumer_that_is_cancelled_stops_the_uploads(wire: Wire) -> None:
    control, backend, stream = held_upload(wire)
    await drive(stream, frames_of(audio(("silence", 300), ("speech", 600), ("silence", 600))))
    first = asyncio.Event()

    async def consume() -> None:  # as the session's hearing task: no aclose() of its own
        async for _ in stream:
            first.set()

    consuming = asyncio.create_task(consume())
    await first.wait()
    consuming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consuming
    # Released before anyone calls aclose().
    assert wire.bodies[0].closed and control.closed.is_set()
    assert not await leftover_tasks()
    await stream.aclose()
    await backend.aclose()


async def test_one_backend_serves_concurrent_streams(wire: Wire) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        samples, _ = wav_samples(form(request)["file"][1])
        text = f"{len(samples) * 1000 // RATE} ms"
        return httpx.Response(200, headers=SSE_HEADERS, content=transcription_body(text))

    wire.router.post(URL).mock(side_effect=answer)
    backend = asr()
    short = frames_of(audio(("silence", 300), ("speech", 400), ("silence", 800)))
    long = frames_of(audio(("silence", 300), ("speech", 900), ("silence", 800)))
    streams = [backend.listen(), backend.listen()]

    async def run(stream: ASRStream, frames: list[AudioFrame]) -> list[ASREvent]:
        await drive(stream, frames)
        return [event async for event in stream]

    got = await asyncio.gather(run(streams[0], short), run(streams[1], long))
    for stream in streams:
        await stream.aclose()
    await backend.aclose()
    assert [events[-1] for events in got] == [
        Transcript("800 ms", True, endpoint_ms=1200.0),
        Transcript("1300 ms", True, endpoint_ms=1700.0),
    ]


def wav_header_ms(request: httpx.Request) -> float:
    """The length of the WAV uploaded by ``request``, from its header (quicker than parsing
    the form of a long upload)."""
    content = request.content
    with wave.open(io.BytesIO(content[content.index(b"RIFF") :])) as wav:
        return wav.getnframes() * 1000 / wav.getframerate()


@pytest.mark.looptime
async def test_20_minutes_of_speech_are_uploaded_in_parts_and_the_buffer_stays_bounded(
    wire: Wire,
) -> None:
    # A VAD that never hears the speech end (a noisy room, music): before, the stream kept
    # all of it (38 MB after 20 minutes) and gave nothing until the end.
    def answer(request: httpx.Request) -> httpx.Response:
        text = f"{wav_header_ms(request):.0f} ms"
        return httpx.Response(200, headers=SSE_HEADERS, content=transcription_body(text))

    route = wire.router.post(URL).mock(side_effect=answer)
    backend = asr()
    assert backend.options.max_utterance_ms == 60_000  # the default
    stream = backend.listen()
    voiced = speech_like(20, RATE)  # one 20 ms frame's samples, pushed again and again
    cap = RATE * 60  # samples in 60 s
    most_ms, most_samples = 0.0, 0
    got: list[ASREvent] = []

    async def consume() -> None:
        async for event in stream:
            got.append(event)

    consuming = asyncio.create_task(consume())
    stream.speech_started(0.0)
    minutes = 20
    for second in range(minutes * 60):
        for i in range(50):
            stream.push(AudioFrame(voiced, RATE, second * 1000.0 + i * 20.0))
            most_ms = max(most_ms, stream.buffered_ms)
        most_samples = max(most_samples, sum(len(f.samples) for f in stream._frames))
        await asyncio.sleep(1.0)  # real time: the uploads of the parts run meanwhile
    end = minutes * 60_000.0
    stream.speech_ended(Utterance(0.0, end, end + 500))
    stream.end_input()
    await consuming
    await stream.aclose()
    await backend.aclose()

    assert most_samples <= cap and most_ms <= 60_000
    finals = [t for t in got if isinstance(t, Transcript) and t.is_final]
    # 200 ms of pre-roll (none here: the audio starts with the speech), then 60 s parts.
    assert [t.text for t in finals] == ["59800 ms", *["60000 ms"] * 19, "200 ms"]
    assert [t.endpoint_ms for t in finals] == [None] * 20 + [end + 500]
    assert route.call_count == 21
    assert sum(wav_header_ms(call.request) for call in route.calls) == end  # every sample once
    # Partials came for each part while the speech went on, not only at its end.
    assert sum(1 for t in got if isinstance(t, Transcript) and not t.is_final) == 2 * 21


async def test_a_part_cut_at_the_cap_starts_where_the_last_ended(wire: Wire) -> None:
    route = wire.route(PATH, lambda: [transcription_body("x")], headers=SSE_HEADERS)
    backend = asr(max_utterance_ms=1_000)
    stream = backend.listen()
    samples = ramp(2000)  # each sample its own index
    for frame in frames_of(samples):
        stream.push(frame)
        if frame.end_ms == 560:
            stream.speech_started(500.0)  # dated back, as the session's VAD does
    stream.speech_ended(Utterance(500.0, 1800.0, 2000.0))
    stream.end_input()
    finals = [e for e in [e async for e in stream] if isinstance(e, Transcript) and e.is_final]
    await stream.aclose()
    await backend.aclose()
    assert [t.endpoint_ms for t in finals] == [None, 2000.0]
    # [300, 1300) at the cap, then the rest of the utterance and its tail: [1300, 2000).
    assert np.array_equal(uploaded(route, 0), samples[300 * 16 : 1300 * 16])
    assert np.array_equal(uploaded(route, 1), samples[1300 * 16 : 2000 * 16])


@pytest.mark.parametrize("value", [999, 240_001, float("inf"), float("nan"), "long"])
def test_max_utterance_ms_is_bounded(value: object) -> None:
    from voxpipe import load_config
    from voxpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="max_utterance_ms"):
        load_config({"asr": {"backend": "openai", "max_utterance_ms": value}})
