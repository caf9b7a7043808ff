"""voxpipe-tone passes voxpipe's conformance kit, its provider (not HTTP) mocked by a fake
service whose calls tell the kit's ServerControl when they are opened and closed; the
service's 24 kHz chunks of odd sizes come out as exact session-rate frames."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from voxpipe import SimSpeechSource, VoiceAgent, load_config
from voxpipe.audio import AudioFrame, resample
from voxpipe.errors import ProviderError
from voxpipe.hookspecs import BackendContext
from voxpipe.testing import Failure, ServerControl, TTSContract
from voxpipe_tone.plugin import KEY_ENV_VAR, ToneOptions, ToneTTS
from voxpipe_tone.provider import SAMPLE_RATE, SpeechRequest, Status, ToneError


def pcm(ms: int) -> bytes:
    """``ms`` of a 24 kHz tone as the service sends it (PCM16, little-endian)."""
    t = np.arange(SAMPLE_RATE * ms // 1000) / SAMPLE_RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


def cut(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    """``data`` in chunks of ``sizes`` bytes, taken in turn (odd sizes split samples)."""
    chunks, at = [], 0
    while at < len(data):
        size = sizes[len(chunks) % len(sizes)]
        chunks.append(data[at : at + size])
        at += size
    return chunks


#: A second of audio: 200 ms at once (the kit's first frames), then chunks of 4801 bytes.
AUDIO = [pcm(200), *cut(pcm(800), [4801])]


class FakeCall:
    """One call: sends ``messages``, the second and later ones once ``control`` lets them
    through, or raises ``error`` on the first read. Tells ``control`` it was opened, and
    closed by the client; reading to the end or a cancelled read does not close it."""

    def __init__(
        self, control: ServerControl, messages: Sequence[bytes], error: ToneError | None
    ) -> None:
        self.control, self.messages, self.error = control, messages, error
        self.sent = 0
        self.closed = False
        control.mark_opened()

    async def receive(self) -> bytes | None:
        if self.error is not None:
            raise self.error
        if self.sent == 1:
            await self.control.hold()
        if self.sent == len(self.messages):
            return None
        self.sent += 1
        return self.messages[self.sent - 1]

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.control.mark_closed()


class FakeService:
    """The Tone service (a ``Transport``) answering each call with ``messages``, or as it
    would with ``failure``."""

    def __init__(
        self,
        control: ServerControl,
        messages: Sequence[bytes] = AUDIO,
        failure: Failure | None = None,
    ) -> None:
        self.control, self.messages, self.failure = control, messages, failure

    def open(self, request: SpeechRequest) -> FakeCall:
        messages, error = self.messages, None
        if self.failure is Failure.AUTH:
            error = ToneError(Status.UNAUTHENTICATED, "invalid API key")
        elif self.failure is Failure.RATE_LIMIT:
            error = ToneError(
                Status.RESOURCE_EXHAUSTED, "quota exceeded", retry_after_s=Failure.RETRY_AFTER_S
            )
        elif self.failure is Failure.SERVER:
            error = ToneError(Status.UNAVAILABLE, "the service is restarting")
        elif self.failure is Failure.MALFORMED:
            messages = [pcm(100) + b"\x01"]  # ends in half a sample
        elif self.failure is Failure.TRUNCATED:
            messages = []  # the call ends without a byte of audio
        return FakeCall(self.control, messages, error)


def failing_service(failure: Failure) -> tuple[FakeService, ServerControl]:
    control = ServerControl()
    control.release.set()  # a failing call is not held back
    return FakeService(control, failure=failure), control


@pytest.fixture(autouse=True)
def tone_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV_VAR, "tone-test-key-0123456789")


class TestToneTTS(TTSContract):
    backend_name = "tone"
    distribution = "voxpipe-tone"
    key_env_var = KEY_ENV_VAR
    # A gRPC-style call has no content type: it cannot answer with an HTML page.
    failures: ClassVar[tuple[Failure, ...]] = tuple(
        f for f in Failure if f is not Failure.WRONG_CONTENT_TYPE
    )
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"pitch_hz": 0}, "pitch_hz"),
        ({"idle_timeout_ms": 0}, "idle_timeout_ms"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> ToneTTS:
        return ToneTTS(ToneOptions(), context, transport=FakeService(control))

    def make_failing_backend(self, failure: Failure, context: BackendContext) -> ToneTTS:
        service, _ = failing_service(failure)
        return ToneTTS(ToneOptions(), context, transport=service)


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("sample_rate", [8_000, 16_000, 24_000, 48_000])
async def test_odd_sized_24_khz_chunks_come_out_as_exact_session_frames(
    sample_rate: int,
) -> None:
    control = ServerControl()
    control.release.set()
    audio = pcm(1000)
    service = FakeService(control, cut(audio, [4801, 1, 333, 7777, 2]))
    tts = ToneTTS(ToneOptions(), BackendContext(sample_rate, frame_ms=20), transport=service)

    frames = [frame async for frame in tts.synthesize("Hello there.")]

    assert all(type(f) is AudioFrame and f.sample_rate == sample_rate for f in frames)
    assert {len(f.samples) for f in frames} == {sample_rate * 20 // 1000}
    assert [f.start_ms for f in frames] == [20.0 * i for i in range(len(frames))]
    # All of the second: without the resampler's final flush its last ~20 ms would be lost.
    assert sum(f.duration_ms for f in frames) == 1000.0
    # The provider's audio, resampled: a sample split across two chunks is joined again.
    whole = resample(np.frombuffer(audio, "<i2").astype(np.int16), SAMPLE_RATE, sample_rate)
    heard = np.concatenate([f.samples for f in frames])[: len(whole)]
    middle = slice(len(whole) // 10, -len(whole) // 10)
    assert np.abs(heard[middle].astype(np.int32) - whole[middle]).max() < 100
    assert (control.opened, control.open_streams) == (1, 0)


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("failure", TestToneTTS.failures)
async def test_a_failed_call_is_closed(failure: Failure) -> None:
    service, control = failing_service(failure)
    tts = ToneTTS(ToneOptions(), BackendContext(), transport=service)
    with pytest.raises(ProviderError):
        async for _ in tts.synthesize("Hello there."):
            pass
    assert (control.opened, control.open_streams) == (1, 0)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_tone_speaks_in_a_conversation() -> None:
    agent = VoiceAgent.from_config(load_config({"tts": {"backend": "tone", "pitch_hz": 330}}))
    metrics = await agent.run(SimSpeechSource(["hello there"]))
    (turn,) = metrics.turns
    assert [(a.backend, a.outcome) for a in turn.attempts if a.stage == "tts"] == [("tone", "ok")]
    assert "first_sound" in turn.stamps
