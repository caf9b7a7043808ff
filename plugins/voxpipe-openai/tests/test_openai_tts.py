"""OpenAITTS against mocked ``/v1/audio/speech`` PCM streams."""

from __future__ import annotations

import json
from contextlib import aclosing

import numpy as np
import pytest
from openai_wire import (
    KEY,
    PCM_HEADERS,
    Wire,
    cancel_after_first,
    leftover_tasks,
    pcm_24k,
    pieces,
    speech_parts,
)

from voxpipe.audio import AudioFrame
from voxpipe.errors import ProviderError
from voxpipe.hookspecs import BackendContext
from voxpipe.testing import ServerControl
from voxpipe_openai import OpenAITTS, OpenAITTSOptions


def tts(context: BackendContext | None = None, **options: object) -> OpenAITTS:
    return OpenAITTS(OpenAITTSOptions.model_validate(options), context or BackendContext())


async def frames_of(backend: OpenAITTS, text: str = "Hello there.") -> list[AudioFrame]:
    try:
        async with aclosing(backend.synthesize(text)) as stream:
            return [frame async for frame in stream]
    finally:
        await backend.aclose()


@pytest.mark.parametrize("sample_rate", [16_000, 48_000])
@pytest.mark.parametrize("chunk", [4801, 333, 7])
async def test_pcm_in_odd_chunks_becomes_session_rate_frames(
    wire: Wire, sample_rate: int, chunk: int
) -> None:
    data = pcm_24k(1230)  # 29 520 samples: not a whole number of 20 ms frames at any rate
    wire.route("/audio/speech", pieces(data, chunk), headers=PCM_HEADERS)
    frames = await frames_of(tts(BackendContext(sample_rate=sample_rate, frame_ms=20)))
    size = sample_rate * 20 // 1000
    assert all(f.sample_rate == sample_rate for f in frames)
    assert all(f.samples.dtype == np.int16 and f.samples.shape == (size,) for f in frames)
    assert [f.start_ms for f in frames] == [20.0 * i for i in range(len(frames))]
    expected = len(data) // 2 * sample_rate / 24_000  # samples at the session rate
    produced = sum(len(f.samples) for f in frames)
    assert expected <= produced < expected + size  # the last frame is padded, nothing lost
    # The audio itself came through: a 220 Hz tone at about 0.3 of full scale.
    audio = np.concatenate([f.samples for f in frames]).astype(np.float64) / 32768
    rms = np.sqrt(np.mean(audio[size : int(expected) - size] ** 2))
    assert rms == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


async def test_samples_split_across_chunks_are_rejoined_exactly(wire: Wire) -> None:
    # At 24 kHz nothing is resampled, so every sample must come out bit-exact.
    data = pcm_24k(100)
    wire.route("/audio/speech", pieces(data, 3), headers=PCM_HEADERS)
    frames = await frames_of(tts(BackendContext(sample_rate=24_000, frame_ms=10)))
    out = np.concatenate([f.samples for f in frames])
    sent = np.frombuffer(data, dtype="<i2")
    assert np.array_equal(out[: len(sent)], sent) and len(out) == len(sent)  # 100 ms = 10 frames


async def test_a_trailing_half_sample_is_dropped(wire: Wire) -> None:
    data = pcm_24k(10) + b"\x01"
    wire.route("/audio/speech", pieces(data, 5), headers=PCM_HEADERS)
    frames = await frames_of(tts(BackendContext(sample_rate=24_000, frame_ms=10)))
    assert len(frames) == 1 and np.array_equal(frames[0].samples, np.frombuffer(data[:-1], "<i2"))


async def test_request(wire: Wire) -> None:
    route = wire.route("/audio/speech", [pcm_24k(50)], headers=PCM_HEADERS)
    await frames_of(tts(), "Hello there.")
    request = route.calls.last.request
    assert str(request.url) == "https://api.openai.com/v1/audio/speech"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content) == {
        "model": "gpt-4o-mini-tts",
        "input": "Hello there.",
        "voice": "alloy",
        "response_format": "pcm",
    }


async def test_options_reach_the_request(wire: Wire) -> None:
    base = "http://localhost:8880/v1"
    route = wire.route("/audio/speech", [pcm_24k(50)], headers=PCM_HEADERS, base_url=base)
    backend = tts(
        model="tts-1",
        voice="coral",
        instructions="Cheerful.",
        speed=1.25,
        base_url=base,
        organization="org-1",
    )
    await frames_of(backend, "Hi")
    request = route.calls.last.request
    assert str(request.url) == "http://localhost:8880/v1/audio/speech"
    assert request.headers["openai-organization"] == "org-1"
    body = json.loads(request.content)
    assert body["voice"] == "coral" and body["model"] == "tts-1"
    assert body["instructions"] == "Cheerful." and body["speed"] == 1.25


async def test_first_frame_before_the_rest_of_the_audio(wire: Wire) -> None:
    control = ServerControl()
    wire.route("/audio/speech", speech_parts(), headers=PCM_HEADERS, control=control)
    backend = tts()
    async with aclosing(backend.synthesize("Hello")) as stream:
        first = await anext(stream)
        assert first.sample_rate == 16_000 and wire.bodies[0].sent == 1
        control.release.set()
        rest = [f async for f in stream]
    await backend.aclose()
    assert 48 <= 1 + len(rest) <= 51  # 1 s of audio in 20 ms frames


async def test_empty_text_makes_no_request(wire: Wire) -> None:
    route = wire.route("/audio/speech", [pcm_24k(50)], headers=PCM_HEADERS)
    assert await frames_of(tts(), "   ") == []
    assert route.call_count == 0


async def test_json_instead_of_audio_is_malformed(wire: Wire) -> None:
    wire.route("/audio/speech", [b'{"ok": true}'], headers={"content-type": "application/json"})
    with pytest.raises(
        ProviderError, match=r"openai speech: .* application/json, not raw PCM"
    ) as info:
        await frames_of(tts())
    assert not info.value.retryable
    assert wire.bodies[0].closed


async def test_aclose_mid_stream_releases_the_response(wire: Wire) -> None:
    control = ServerControl()
    wire.route("/audio/speech", speech_parts(), headers=PCM_HEADERS, control=control)
    backend = tts()
    stream = backend.synthesize("Hello")
    await anext(stream)
    await stream.aclose()
    assert wire.bodies[0].closed and control.closed.is_set()
    assert not await leftover_tasks()
    await backend.aclose()


async def test_cancelling_the_consumer_releases_the_response(wire: Wire) -> None:
    control = ServerControl()
    wire.route("/audio/speech", speech_parts(), headers=PCM_HEADERS, control=control)
    backend = tts()
    await cancel_after_first(backend.synthesize("Hello"))
    assert wire.bodies[0].closed
    assert not await leftover_tasks()
    await backend.aclose()
