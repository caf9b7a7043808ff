"""ElevenLabsTTS (``backend = "elevenlabs"``) against the mocked HTTP streaming endpoint:
PCM in chunks of any size, the request as the API documents it, and every error body."""

from __future__ import annotations

import logging
from contextlib import aclosing

import numpy as np
import pytest
from el_wire import (
    KEY,
    STREAM_URL,
    Wire,
    cancel_after_first,
    leftover_tasks,
    pcm,
    pieces,
    sent_json,
    speech_parts,
)

from voxpipe.audio import AudioFrame
from voxpipe.errors import AuthError, ProviderError, RateLimited
from voxpipe.hookspecs import BackendContext
from voxpipe.testing import ServerControl
from voxpipe_elevenlabs import ElevenLabsTTS, ElevenLabsTTSOptions


def tts(context: BackendContext | None = None, **options: object) -> ElevenLabsTTS:
    return ElevenLabsTTS(ElevenLabsTTSOptions.model_validate(options), context)


async def frames_of(backend: ElevenLabsTTS, text: str = "Hello there.") -> list[AudioFrame]:
    try:
        async with aclosing(backend.synthesize(text)) as stream:
            return [frame async for frame in stream]
    finally:
        await backend.aclose()


async def error_of(backend: ElevenLabsTTS) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await frames_of(backend)
    assert KEY not in str(info.value)
    return info.value


@pytest.mark.parametrize("chunk", [3201, 333, 7])
async def test_pcm_in_odd_chunks_is_joined_bit_exact_at_the_session_rate(
    wire: Wire, chunk: int
) -> None:
    # 16 kHz session, pcm_16000 asked for: nothing is resampled, every sample comes through.
    data = pcm(1230)  # not a whole number of 20 ms frames
    wire.route(pieces(data, chunk))
    frames = await frames_of(tts())
    assert all(f.sample_rate == 16_000 and f.samples.shape == (320,) for f in frames)
    assert [f.start_ms for f in frames] == [20.0 * i for i in range(len(frames))]
    out = np.concatenate([f.samples for f in frames])
    sent = np.frombuffer(data, "<i2")
    assert np.array_equal(out[: len(sent)], sent)
    assert not out[len(sent) :].any() and len(out) - len(sent) < 320  # the last frame padded


async def test_a_48k_session_gets_pcm_44100_resampled(wire: Wire) -> None:
    route = wire.route(pieces(pcm(1000, 44_100), 4801))
    frames = await frames_of(tts(BackendContext(sample_rate=48_000)))
    assert route.calls.last.request.url.params["output_format"] == "pcm_44100"
    assert all(f.sample_rate == 48_000 and len(f.samples) == 960 for f in frames)
    produced = sum(len(f.samples) for f in frames)
    assert 48_000 <= produced < 48_000 + 960  # the resampler was flushed: nothing lost
    audio = np.concatenate([f.samples for f in frames]).astype(np.float64) / 32768
    rms = np.sqrt(np.mean(audio[960:-1920] ** 2))
    assert rms == pytest.approx(0.3 / np.sqrt(2), rel=0.05)  # the tone itself came through


async def test_the_request(wire: Wire) -> None:
    route = wire.route([pcm(50)])
    await frames_of(tts(), "Hello there.")
    request = route.calls.last.request
    assert str(request.url) == f"{STREAM_URL}?output_format=pcm_16000"
    assert request.headers["xi-api-key"] == KEY
    assert sent_json(route) == {"text": "Hello there.", "model_id": "eleven_flash_v2_5"}


async def test_options_reach_the_request(wire: Wire) -> None:
    base = "https://api.eu.residency.elevenlabs.io/proxy"
    url = f"{base}/v1/text-to-speech/voice42/stream"
    route = wire.route([pcm(50, 24_000)], url=url)
    backend = tts(
        base_url=base + "/",
        voice_id="voice42",
        model_id="eleven_turbo_v2_5",
        pcm_rate=24_000,
        stability=0.4,
        similarity_boost=0.8,
        style=0.1,
        speed=1.1,
        optimize_streaming_latency=3,
    )
    await frames_of(backend, "Hi")
    request = route.calls.last.request
    assert request.url.path == "/proxy/v1/text-to-speech/voice42/stream"
    assert dict(request.url.params) == {
        "output_format": "pcm_24000",
        "optimize_streaming_latency": "3",
    }
    assert sent_json(route) == {
        "text": "Hi",
        "model_id": "eleven_turbo_v2_5",
        "voice_settings": {"stability": 0.4, "similarity_boost": 0.8, "style": 0.1, "speed": 1.1},
    }


async def test_the_first_frame_comes_before_the_rest_of_the_audio(wire: Wire) -> None:
    control = ServerControl()
    wire.route(speech_parts(), control=control)
    backend = tts()
    async with aclosing(backend.synthesize("Hello")) as stream:
        first = await anext(stream)
        assert type(first) is AudioFrame and wire.bodies[0].sent == 1
        control.release.set()
        rest = [f async for f in stream]
    await backend.aclose()
    assert 1 + len(rest) == 50  # 1 s of audio in 20 ms frames


async def test_blank_text_makes_no_request(wire: Wire) -> None:
    route = wire.route([pcm(50)])
    assert await frames_of(tts(), "  \n ") == []
    assert route.call_count == 0


async def test_invalid_key_is_an_auth_error_naming_the_variable(wire: Wire) -> None:
    wire.error("invalid_api_key")
    error = await error_of(tts())
    assert type(error) is AuthError and error.env_var == "ELEVENLABS_API_KEY"
    assert "HTTP 401 invalid_api_key: Invalid API key" in str(error)
    assert "ELEVENLABS_API_KEY" in str(error)


async def test_quota_exceeded_is_not_a_key_problem_and_is_not_retried(wire: Wire) -> None:
    wire.error("quota_exceeded")
    error = await error_of(tts())
    assert type(error) is ProviderError and not error.retryable
    assert "HTTP 401 quota_exceeded: This request exceeds your quota" in str(error)
    assert "out of credits" in str(error)


async def test_an_unknown_voice_names_the_option_to_fix(wire: Wire) -> None:
    wire.error("voice_not_found")
    error = await error_of(tts())
    assert type(error) is ProviderError and not error.retryable
    assert "HTTP 400 voice_not_found" in str(error) and "check voice_id" in str(error)


@pytest.mark.parametrize(
    ("name", "headers", "wait"),
    [
        ("too_many_concurrent_requests", {"retry-after": "2"}, 2.0),
        ("system_busy", None, None),
    ],
)
async def test_busy_is_rate_limited_with_the_wait_asked_for(
    wire: Wire, name: str, headers: dict[str, str] | None, wait: float | None
) -> None:
    wire.error(name, headers)
    error = await error_of(tts())
    assert type(error) is RateLimited and error.retryable and error.retry_after == wait
    assert f"HTTP 429 {name}" in str(error)


async def test_a_422_names_the_field_and_the_problem(wire: Wire) -> None:
    wire.error("unprocessable")
    error = await error_of(tts())
    assert type(error) is ProviderError and not error.retryable
    assert "HTTP 422: body.voice_settings.stability: Input should be less than or equal to 1" in (
        str(error)
    )


async def test_a_key_echoed_by_the_server_is_not_repeated(wire: Wire) -> None:
    wire.router.post(url__startswith=STREAM_URL).respond(
        401, json={"detail": {"status": "invalid_api_key", "message": f"Bad key {KEY}"}}
    )
    error = await error_of(tts())
    assert "Bad key ***" in str(error)


async def test_a_trailing_half_sample_is_malformed(wire: Wire) -> None:
    wire.route(pieces(pcm(100) + b"\x01", 5))
    error = await error_of(tts())
    assert type(error) is ProviderError and not error.retryable
    assert "end in half a sample" in str(error)


async def test_no_audio_at_all_is_a_retryable_truncation(wire: Wire) -> None:
    wire.route([])
    error = await error_of(tts())
    assert type(error) is ProviderError and error.retryable
    assert "ended before any audio" in str(error)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/html", b"<html>Bad Gateway</html>"), ("application/json", b'{"ok": true}')],
)
async def test_a_200_that_is_not_pcm_is_not_retried(
    wire: Wire, content_type: str, body: bytes
) -> None:
    wire.route([body], headers={"content-type": content_type})
    error = await error_of(tts())
    assert type(error) is ProviderError and not error.retryable
    assert f"the response is {content_type}, not the raw PCM audio asked for" in str(error)
    assert wire.bodies[0].closed


async def test_aclose_mid_stream_releases_the_response(wire: Wire) -> None:
    control = ServerControl()
    wire.route(speech_parts(), control=control)
    backend = tts()
    stream = backend.synthesize("Hello")
    await anext(stream)
    await stream.aclose()
    assert wire.bodies[0].closed and control.open_streams == 0
    assert not await leftover_tasks()
    await backend.aclose()


async def test_cancelling_the_consumer_releases_the_response(wire: Wire) -> None:
    control = ServerControl()
    wire.route(speech_parts(), control=control)
    backend = tts()
    await cancel_after_first(backend.synthesize("Hello"))
    assert wire.bodies[0].closed
    assert not await leftover_tasks()
    await backend.aclose()


async def test_the_key_is_not_logged(wire: Wire, caplog: pytest.LogCaptureFixture) -> None:
    wire.route([pcm(50)])
    with caplog.at_level(logging.DEBUG):
        await frames_of(tts())
    assert caplog.records, "nothing was logged: this test would prove nothing"
    assert KEY not in caplog.text


async def test_backends_of_a_loop_share_one_connection_pool(wire: Wire) -> None:
    wire.route([pcm(50)])
    first, second = tts(), tts()
    assert first._pool.http is second._pool.http
    await first.aclose()
    assert not second._pool.http.is_closed  # closing one never breaks another
    assert len(await frames_of(second)) == 3
    assert second._pool.http.is_closed  # the last one closed it
