"""The voxpipe conformance kit over the three Deepgram backends, offline under virtual time:
the REST ones over respx (``deepgram_wire``), the live ASR over ``FakeDeepgram``'s in-memory
transport, which reports every connection it opens and closes to the kit's
``ServerControl``. Every ``Failure`` is produced for each."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import respx
from deepgram_wire import LISTEN, SPEAK, answer_json, failure, pcm, pieces, route

from voxpipe.hookspecs import BackendContext
from voxpipe.testing import ASRContract, Failure, ServerControl, TTSContract
from voxpipe_deepgram import (
    DeepgramASR,
    DeepgramASROptions,
    DeepgramRESTASR,
    DeepgramRESTASROptions,
    DeepgramTTS,
    DeepgramTTSOptions,
)
from voxpipe_deepgram.testing import FakeDeepgram, Misbehaviour


class _Mocked:
    """Gives the kit's tests this module's mocked REST API."""

    wire: respx.Router

    @pytest.fixture(autouse=True)
    def _mocked_deepgram(self, wire: respx.Router) -> None:
        self.wire = wire


class TestDeepgramTTS(_Mocked, TTSContract):
    backend_name = "deepgram"
    distribution = "voxpipe-deepgram"
    key_env_var = "DEEPGRAM_API_KEY"
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"sample_rate": 22_050}, "sample_rate"),
        ({"model": ""}, "model"),
        ({"base_url": "ftp://example.com"}, "base_url"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> DeepgramTTS:
        audio = pcm(1000, 24_000)
        parts = [audio[:9600], *pieces(audio[9600:], 4801)]  # 200 ms at once, then odd chunks
        route(self.wire, SPEAK, parts, headers={"content-type": "audio/l16"}, control=control)
        return DeepgramTTS(DeepgramTTSOptions(sample_rate=24_000), context)

    def make_failing_backend(self, failure_: Failure, context: BackendContext) -> DeepgramTTS:
        # MALFORMED: a 200 that is JSON where raw audio was asked for (PCM cannot be).
        failure(self.wire, SPEAK, failure_, b'{"type": "Results", "channel": {}}')
        return DeepgramTTS(DeepgramTTSOptions(), context)


class TestDeepgramRESTASR(_Mocked, ASRContract):
    backend_name = "deepgram-rest"
    distribution = "voxpipe-deepgram"
    key_env_var = "DEEPGRAM_API_KEY"
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"model": ""}, "model"),
        ({"max_utterance_ms": 10}, "max_utterance_ms"),
        ({"base_url": "localhost:8080"}, "base_url"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> DeepgramRESTASR:
        # The kit gates the audio, not the answer: an ASR mock must not hold.
        route(
            self.wire,
            LISTEN,
            pieces(answer_json(), 64),
            headers={"content-type": "application/json"},
            control=control,
            hold=False,
        )
        return DeepgramRESTASR(DeepgramRESTASROptions(), context)

    def make_failing_backend(self, failure_: Failure, context: BackendContext) -> DeepgramRESTASR:
        failure(self.wire, LISTEN, failure_, b'{"metadata": {}, "results": {"channels": []}}')
        return DeepgramRESTASR(DeepgramRESTASROptions(), context)


#: How the in-memory fake produces each failure of the kit: a refused handshake (401, 429,
#: 503), a message that is not JSON, a connection cut before any final (and its
#: reconnection cut too), an HTML page where the WebSocket should be.
LIVE_FAILURES = {
    Failure.AUTH: [Misbehaviour(reject=401)],
    Failure.RATE_LIMIT: [Misbehaviour(reject=429, retry_after=Failure.RETRY_AFTER_S)],
    Failure.SERVER: [Misbehaviour(reject=503)],
    Failure.MALFORMED: [Misbehaviour(garbage_after_ms=600)],
    Failure.TRUNCATED: [Misbehaviour(drop_after_ms=1_000), Misbehaviour(drop_after_ms=1_000)],
    Failure.WRONG_CONTENT_TYPE: [Misbehaviour(html=True)],
}


class TestDeepgramLiveASR(ASRContract):
    backend_name = "deepgram"
    distribution = "voxpipe-deepgram"
    key_env_var = "DEEPGRAM_API_KEY"
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"endpointing_ms": 5}, "endpointing_ms"),
        ({"utterance_end_ms": 500}, "utterance_end_ms"),
        ({"idle_timeout_ms": float("inf")}, "idle_timeout_ms"),
        ({"base_url": "wss://user:pw@api.deepgram.com"}, "base_url"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> DeepgramASR:
        fake = FakeDeepgram(["Hello there, how are you?"], control=control)
        return DeepgramASR(DeepgramASROptions(), context, connect=fake.connect)

    def make_failing_backend(self, failure_: Failure, context: BackendContext) -> DeepgramASR:
        fake = FakeDeepgram(plan=LIVE_FAILURES[failure_])
        return DeepgramASR(DeepgramASROptions(), context, connect=fake.connect)
