"""Push-style audio under virtual time: the source cuts exact session frames from chunks of
any size and rate, stamps them by their place in the audio (never after they arrived), and
refuses audio faster than real time; the sink resamples once, sends in order and clears."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from voxpipe import TurnSettings, VoiceAgent
from voxpipe.audio import AudioFrame, Int16Array, StreamResampler
from voxpipe.clock import SessionClock
from voxpipe.io import Overrun, PushSink, PushSource
from voxpipe.sim.voice import speech_frames, speech_like
from voxpipe.testing import SinkContract


def pcm(samples: Int16Array) -> bytes:
    return samples.astype("<i2").tobytes()


def resampled_whole(samples: Int16Array, from_rate: int, to_rate: int) -> Int16Array:
    resampler = StreamResampler(from_rate, to_rate)
    body = resampler.push(samples)
    tail = resampler.push(np.zeros(0, dtype=np.int16), last=True)
    return np.concatenate([body, tail]).astype(np.int16)


async def read_all(source: PushSource, clock: SessionClock) -> list[tuple[AudioFrame, float]]:
    """Every frame with the session time it was read at."""
    return [(frame, clock.now_ms()) async for frame in source.frames(clock)]


async def push_in_real_time(
    source: PushSource, samples: Int16Array, rate: int, chunk: int, *, close: bool = True
) -> None:
    """``samples`` in chunks of ``chunk`` samples, each pushed once it has been captured."""
    for at in range(0, len(samples), chunk):
        piece = samples[at : at + chunk]
        await asyncio.sleep(len(piece) / rate)
        source.push(pcm(piece))
    if close:
        source.close()


@pytest.mark.looptime
@pytest.mark.parametrize(("input_rate", "chunk"), [(48_000, 2_071), (16_000, 333), (8_000, 1)])
async def test_any_chunking_gives_exact_session_frames_of_the_audio(
    input_rate: int, chunk: int
) -> None:
    clock = SessionClock()
    source = PushSource(input_rate, 16_000, 20)
    audio = speech_like(1_010, input_rate)
    pushing = asyncio.create_task(push_in_real_time(source, audio, input_rate, chunk))
    frames = [frame for frame, _ in await read_all(source, clock)]
    await pushing

    assert {len(f.samples) for f in frames} == {320}
    assert {f.sample_rate for f in frames} == {16_000}
    assert len(frames) == 51  # 1010 ms: 50 frames and a zero-padded last one
    got = np.concatenate([f.samples for f in frames])
    want = resampled_whole(audio, input_rate, 16_000)
    assert np.abs(got[: len(want)].astype(int) - want).max() <= 4  # resampled once, as a whole
    assert not got[len(want) :].any()


@pytest.mark.looptime
async def test_odd_byte_chunks_are_joined_into_whole_samples() -> None:
    clock = SessionClock()
    source = PushSource(16_000, 16_000, 20)
    audio = speech_like(200, 16_000)
    data = pcm(audio)
    for at in range(0, len(data), 641):  # 641 bytes: half a sample carried each time
        await asyncio.sleep(641 / 2 / 16_000)
        source.push(data[at : at + 641])
    source.close()
    got = np.concatenate([f.samples for f, _ in await read_all(source, clock)])
    assert np.array_equal(got, audio)


@pytest.mark.looptime
async def test_frames_are_stamped_contiguously_and_never_after_they_arrived() -> None:
    clock = SessionClock()
    await asyncio.sleep(0.5)  # the session has run a while when audio starts
    source = PushSource(16_000, 16_000, 20)
    audio = speech_like(1_000, 16_000)
    pushing = asyncio.create_task(push_in_real_time(source, audio, 16_000, 1_600))  # 100 ms
    read = await read_all(source, clock)
    await pushing

    starts = [f.start_ms for f, _ in read]
    assert starts == pytest.approx([500 + 20 * i for i in range(50)], abs=1e-6)
    assert all(f.end_ms <= at + 1e-6 for f, at in read)


@pytest.mark.looptime
async def test_a_burst_after_a_stall_is_stamped_when_it_was_spoken() -> None:
    clock = SessionClock()
    source = PushSource(16_000, 16_000, 20)
    audio = speech_like(1_000, 16_000)
    chunks = [audio[i : i + 320] for i in range(0, len(audio), 320)]

    async def stall_then_burst() -> None:
        for i, piece in enumerate(chunks):
            if i == 10:
                await asyncio.sleep(0.4)  # 400 ms held up in the network...
            if not 10 <= i < 30:  # ...then delivered at once
                await asyncio.sleep(0.02)
            source.push(pcm(piece))
        source.close()

    pushing = asyncio.create_task(stall_then_burst())
    read = await read_all(source, clock)
    await pushing
    assert [f.start_ms for f, _ in read] == pytest.approx([20 * i for i in range(50)], abs=1e-6)
    assert all(f.end_ms <= at + 1e-6 for f, at in read)


@pytest.mark.looptime
async def test_when_audio_was_lost_the_stamps_catch_up_with_its_arrival() -> None:
    clock = SessionClock()
    source = PushSource(16_000, 16_000, 20)
    audio = speech_like(2_000, 16_000)

    async def losing_300_ms() -> None:
        await push_in_real_time(source, audio[:8_000], 16_000, 320, close=False)
        await asyncio.sleep(0.3)  # the client's capture stalled: that audio never comes
        await push_in_real_time(source, audio[8_000:], 16_000, 320)

    pushing = asyncio.create_task(losing_300_ms())
    read = await read_all(source, clock)
    await pushing
    lag = [at - f.end_ms for f, at in read]
    assert max(lag[:25]) == pytest.approx(0, abs=1e-6)
    assert lag[25] == pytest.approx(300, abs=1e-6)  # stamped by the audio, until...
    assert max(lag[60:]) == pytest.approx(0, abs=1e-6)  # ...the mapping moved to the arrivals
    ends = [f.end_ms for f, _ in read]
    assert ends[-1] == pytest.approx(2_300, abs=1e-6)


@pytest.mark.looptime
async def test_audio_faster_than_real_time_is_refused_and_dropped() -> None:
    clock = SessionClock()
    source = PushSource(16_000, 16_000, 20, max_ahead_ms=1_000)
    second = pcm(speech_like(1_000, 16_000))
    await asyncio.sleep(1)
    source.push(second)  # the first second, as it was captured
    source.push(second[:16_000])  # half a second ahead: allowed
    with pytest.raises(Overrun, match="ahead of real time"):
        source.push(second)  # 1.5 s ahead
    await asyncio.sleep(0.5)
    source.push(second[:16_000])  # the client slowed down: accepted again
    source.close()
    frames = [f for f, _ in await read_all(source, clock)]
    assert len(frames) == 100  # 2 s: the refused second was dropped whole


@pytest.mark.looptime
async def test_audio_nobody_reads_is_bounded() -> None:
    source = PushSource(16_000, 16_000, 20, max_queued_ms=500)
    chunk = pcm(speech_like(100, 16_000))
    for _ in range(5):
        await asyncio.sleep(0.1)
        source.push(chunk)
    await asyncio.sleep(0.1)
    with pytest.raises(Overrun, match="waits unread"):
        source.push(chunk)


@pytest.mark.looptime
async def test_push_after_close_is_an_error() -> None:
    source = PushSource(16_000)
    source.close()
    with pytest.raises(RuntimeError, match="after close"):
        source.push(b"\0\0")


@pytest.mark.looptime
@pytest.mark.parametrize("input_rate", [16_000, 48_000])
async def test_a_session_over_pushed_audio_answers_and_ends_when_the_input_closes(
    make_agent: Callable[..., VoiceAgent], input_rate: int
) -> None:
    agent = make_agent(turns=TurnSettings(endpoint_ms=200))
    source = PushSource(input_rate, 16_000, 20)
    speech = np.concatenate(
        [
            np.zeros(input_rate * 3 // 10, dtype=np.int16),
            speech_like(1_200, input_rate),
            np.zeros(input_rate * 3, dtype=np.int16),
        ]
    )
    session = agent.session(source)
    running = asyncio.create_task(session.run())
    await push_in_real_time(source, speech, input_rate, input_rate // 50)
    metrics = await asyncio.wait_for(running, 10)

    (turn,) = metrics.turns
    assert turn.user_text == "[speech 1.2 s]"  # bytes carry no script: the sim hears a length
    assert turn.stamps["speech_start"] == pytest.approx(300, abs=25)
    ttfa = turn.latency("time_to_first_audio")
    assert ttfa is not None
    if input_rate == 16_000:  # stamped exactly as they arrived: the stages of the WAV path
        assert turn.latency("asr_finalization") == pytest.approx(300, abs=1e-6)
    else:  # the resampler holds audio back: that delay is part of what the user waits
        assert 300 < turn.latency("asr_finalization") <= 300 + 60  # type: ignore[operator]
    assert metrics.end_reason == "completed"


# --- the sink ---------------------------------------------------------------------------


class Wire:
    """What a sink sent, in order: bytes of audio, or ("clear", at_ms)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.sent: list[bytes | tuple[str, float]] = []

    async def audio(self, data: bytes) -> None:
        self.sent.append(data)

    async def clear(self, at_ms: float) -> None:
        self.sent.append(("clear", at_ms))

    def samples(self, items: list[Any] | None = None) -> Int16Array:
        chunks = [np.frombuffer(x, "<i2") for x in (items or self.sent) if isinstance(x, bytes)]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


class TestPushSink(SinkContract):
    def make_sink(self, sample_rate: int) -> PushSink:
        wire = Wire(48_000)
        return PushSink(wire.audio, wire.clear, output_rate=48_000)


async def play(sink: PushSink, frames: list[AudioFrame]) -> None:
    clock = SessionClock()
    for frame in frames:
        await clock.sleep_until(frame.start_ms)
        await sink.write(frame)


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("rate", "output_rate"), [(16_000, 48_000), (16_000, 8_000), (16_000, None)]
)
async def test_the_sink_sends_the_audio_resampled_once_with_its_end(
    rate: int, output_rate: int | None
) -> None:
    wire = Wire(output_rate or rate)
    sink = PushSink(wire.audio, wire.clear, output_rate=output_rate)
    frames = list(speech_frames("one two three", rate, 20))
    await play(sink, frames)
    await asyncio.sleep(0.1)  # the reply has ended: the resampler's last samples go out
    sent = wire.samples()
    reply = np.concatenate([f.samples for f in frames])
    want = resampled_whole(reply, rate, output_rate or rate)
    assert len(sent) == len(want)
    assert np.abs(sent.astype(int) - want).max() <= 4
    await sink.aclose()
    assert len(wire.samples()) == len(want)  # nothing more on close


@pytest.mark.looptime
async def test_a_stretch_ends_two_frames_after_its_last_frame_was_written() -> None:
    wire = Wire(48_000)
    sink = PushSink(wire.audio, wire.clear, output_rate=48_000)
    frames = list(speech_frames("one two three", 16_000, 20))
    await play(sink, frames)  # written as they play: the last at its start
    want = len(resampled_whole(np.concatenate([f.samples for f in frames]), 16_000, 48_000))
    await asyncio.sleep(0.039)
    assert len(wire.samples()) < want  # the resampler still holds the last samples
    await asyncio.sleep(0.002)
    assert len(wire.samples()) == want  # 40 ms (two frames) after the last write
    await play(sink, [f.at(f.start_ms + 5_000) for f in frames[:3]])  # a new stretch
    await asyncio.sleep(0.1)
    assert len(wire.samples()) == want + len(
        resampled_whole(np.concatenate([f.samples for f in frames[:3]]), 16_000, 48_000)
    )
    await sink.aclose()


@pytest.mark.looptime
async def test_audio_goes_out_as_it_plays() -> None:
    clock = SessionClock()
    sent_at: list[float] = []

    async def audio(data: bytes) -> None:
        sent_at.append(clock.now_ms())

    async def clear(at_ms: float) -> None:
        return None

    sink = PushSink(audio, clear)  # no resampling: a frame out per frame in
    await play(sink, list(speech_frames("one two three", 16_000, 20, start_ms=100)))
    await sink.aclose()
    assert sent_at == pytest.approx([100 + 20 * i for i in range(len(sent_at))], abs=1e-6)


@pytest.mark.looptime
async def test_clear_drops_what_has_not_gone_out_and_tells_the_client_after_the_rest() -> None:
    wire = Wire(48_000)
    gate = asyncio.Event()
    slow: list[bytes] = []

    async def audio(data: bytes) -> None:  # a client that stops reading after a while
        if len(wire.sent) >= 4:
            slow.append(data)
            await gate.wait()
        await wire.audio(data)

    sink = PushSink(audio, wire.clear, output_rate=48_000)
    frames = list(speech_frames("one two three four", 16_000, 20))
    await play(sink, frames[:30])
    assert sink.clear(600.0) == 600.0
    gate.set()
    await play(sink, [f.at(1_000 + 20 * i) for i, f in enumerate(frames[:10])])
    await sink.aclose()

    (cut,) = [i for i, x in enumerate(wire.sent) if isinstance(x, tuple)]
    assert wire.sent[cut] == ("clear", 600.0)
    before = wire.samples(wire.sent[:cut])
    assert len(before) < 30 * 960 // 2  # most of the 30 frames never went out
    after = wire.samples(wire.sent[cut + 1 :])
    again = resampled_whole(np.concatenate([f.samples for f in frames[:10]]), 16_000, 48_000)
    assert len(after) == len(again)  # the next reply whole, nothing of the cut one
    assert np.abs(after.astype(int) - again).max() <= 4


@pytest.mark.looptime
async def test_a_client_that_does_not_take_the_audio_is_an_overrun() -> None:
    never = asyncio.Event()

    async def stuck(data: bytes) -> None:
        await never.wait()

    async def clear(at_ms: float) -> None:
        return None

    sink = PushSink(stuck, clear, max_queued_ms=400)
    frames = list(speech_frames("one two three four five six", 16_000, 20))
    with pytest.raises(Overrun, match="waits unsent"):
        await play(sink, frames)
    clock = SessionClock()
    await sink.aclose()  # gives up on it after max_queued_ms
    assert clock.now_ms() == pytest.approx(400, abs=1e-6)
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.looptime
async def test_a_failed_send_is_raised_by_the_next_write_and_aclose_ends_quietly() -> None:
    async def gone(data: bytes) -> None:
        raise ConnectionResetError("the client went away")

    async def clear(at_ms: float) -> None:
        return None

    sink = PushSink(gone, clear)
    frames = list(speech_frames("one two", 16_000, 20))
    with pytest.raises(ConnectionResetError):
        await play(sink, frames)
    await sink.aclose()
    assert asyncio.all_tasks() == {asyncio.current_task()}
