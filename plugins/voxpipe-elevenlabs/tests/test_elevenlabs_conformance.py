"""voxpipe's conformance kit over both backends: ``elevenlabs`` against the HTTP API mocked
with respx, ``elevenlabs-ws`` against the fake stream-input server on 127.0.0.1 (in the
test's loop, so it runs on the kit's virtual clock too). Every ``Failure`` is produced."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from el_wire import Wire, speech_parts

from voxpipe.hookspecs import BackendContext
from voxpipe.testing import Failure, ServerControl, TTSContract
from voxpipe_elevenlabs import (
    ElevenLabsStreamOptions,
    ElevenLabsStreamTTS,
    ElevenLabsTTS,
    ElevenLabsTTSOptions,
)
from voxpipe_elevenlabs.testing import FakeElevenLabs, kit_failure


class TestElevenLabsTTS(TTSContract):
    backend_name = "elevenlabs"
    distribution = "voxpipe-elevenlabs"
    key_env_var = "ELEVENLABS_API_KEY"
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"stability": 1.5}, "stability"),
        ({"speed": 2}, "speed"),
        ({"optimize_streaming_latency": 5}, "optimize_streaming_latency"),
        ({"voice_id": "../voices"}, "voice_id"),
        ({"pcm_rate": 48_000}, "pcm_rate"),
        ({"base_url": "api.elevenlabs.io"}, "base_url"),
        ({"idle_timeout_ms": 0}, "idle_timeout_ms"),
    ]

    @pytest.fixture(autouse=True)
    def _mocked_api(self, wire: Wire) -> None:
        self.wire = wire

    def make_backend(self, control: ServerControl, context: BackendContext) -> ElevenLabsTTS:
        rate = ElevenLabsTTSOptions().output_rate(context.sample_rate)
        self.wire.route(speech_parts(rate=rate), control=control)
        return ElevenLabsTTS(ElevenLabsTTSOptions(), context)

    def make_failing_backend(self, failure: Failure, context: BackendContext) -> ElevenLabsTTS:
        self.wire.failure(failure)
        return ElevenLabsTTS(ElevenLabsTTSOptions(), context)


class TestElevenLabsStreamTTS(TTSContract):
    backend_name = "elevenlabs-ws"
    distribution = "voxpipe-elevenlabs"
    key_env_var = "ELEVENLABS_API_KEY"
    emits_alignment = True
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"chunk_length_schedule": [50] * 11}, "chunk_length_schedule"),
        ({"chunk_length_schedule": []}, "chunk_length_schedule"),
        ({"inactivity_timeout_s": 600}, "inactivity_timeout_s"),
        ({"flush_at": "word"}, "flush_at"),
        ({"base_url": "ftp://api.elevenlabs.io"}, "base_url"),
        ({"first_byte_timeout_ms": float("inf")}, "first_byte_timeout_ms"),
    ]

    @pytest.fixture(autouse=True)
    def _fake_server(self, server: FakeElevenLabs) -> None:
        self.server = server

    def make_backend(self, control: ServerControl, context: BackendContext) -> ElevenLabsStreamTTS:
        self.server.control = control
        return ElevenLabsStreamTTS(ElevenLabsStreamOptions(base_url=self.server.ws_url), context)

    def make_failing_backend(
        self, failure: Failure, context: BackendContext
    ) -> ElevenLabsStreamTTS:
        self.server.control = None
        self.server.answer_next(kit_failure(failure))
        return ElevenLabsStreamTTS(ElevenLabsStreamOptions(base_url=self.server.ws_url), context)
