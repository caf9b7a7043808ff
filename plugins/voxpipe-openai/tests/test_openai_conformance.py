"""The voxpipe conformance kit over the three OpenAI backends, their HTTP API mocked. Every
``Failure`` is produced (``Wire.failure``): a truncated stream and a 200 that is an HTML page
among them."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from openai_wire import (
    PCM_HEADERS,
    SSE_HEADERS,
    Wire,
    chat_body_parts,
    pieces,
    speech_parts,
    sse,
    transcription_body,
)

from voxpipe.hookspecs import BackendContext
from voxpipe.testing import ASRContract, Failure, LLMContract, ServerControl, TTSContract
from voxpipe_openai import (
    OpenAIASR,
    OpenAIASROptions,
    OpenAILLM,
    OpenAILLMOptions,
    OpenAITTS,
    OpenAITTSOptions,
)


class _Mocked:
    """Gives the kit's tests (which know nothing of respx) this module's mocked server."""

    wire: Wire

    @pytest.fixture(autouse=True)
    def _mocked_openai(self, wire: Wire) -> None:
        self.wire = wire


class TestOpenAILLM(_Mocked, LLMContract):
    backend_name = "openai"
    distribution = "voxpipe-openai"
    key_env_var = "OPENAI_API_KEY"
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"base_url": "localhost:8000"}, "base_url"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> OpenAILLM:
        self.wire.route(
            "/chat/completions", chat_body_parts(), headers=SSE_HEADERS, control=control
        )
        return OpenAILLM(OpenAILLMOptions(), context)

    def make_failing_backend(self, failure: Failure, context: BackendContext) -> OpenAILLM:
        self.wire.failure("/chat/completions", failure, pieces(sse('{"id": "chatcmpl-1", "ch')))
        return OpenAILLM(OpenAILLMOptions(), context)


class TestOpenAITTS(_Mocked, TTSContract):
    backend_name = "openai"
    distribution = "voxpipe-openai"
    key_env_var = "OPENAI_API_KEY"
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"speed": 5}, "speed"),
        ({"voice": ""}, "voice"),
        ({"base_url": "ftp://example.com"}, "base_url"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> OpenAITTS:
        self.wire.route("/audio/speech", speech_parts(), headers=PCM_HEADERS, control=control)
        return OpenAITTS(OpenAITTSOptions(), context)

    def make_failing_backend(self, failure: Failure, context: BackendContext) -> OpenAITTS:
        # MALFORMED: a 200 that is JSON, not the raw PCM that was asked for (PCM itself
        # cannot be malformed); TRUNCATED: a 200 without a byte of audio.
        self.wire.failure("/audio/speech", failure, [b'{"object": "audio.speech", "data": "UklG"}'])
        return OpenAITTS(OpenAITTSOptions(), context)


class TestOpenAIASR(_Mocked, ASRContract):
    backend_name = "openai"
    distribution = "voxpipe-openai"
    key_env_var = "OPENAI_API_KEY"
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"model": ""}, "model"),
        ({"language": 7}, "language"),
        ({"base_url": "localhost:8000"}, "base_url"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> OpenAIASR:
        # The kit gates the audio, not the response: an ASR mock must not hold.
        self.wire.route(
            "/audio/transcriptions",
            pieces(transcription_body("Hello there, how are you?")),
            headers=SSE_HEADERS,
            control=control,
            hold=False,
        )
        return OpenAIASR(OpenAIASROptions(), context)

    def make_failing_backend(self, failure: Failure, context: BackendContext) -> OpenAIASR:
        bad = sse('{"type": "transcript.text.delta", "delta": "Hel', done=False)
        self.wire.failure("/audio/transcriptions", failure, pieces(bad))
        return OpenAIASR(OpenAIASROptions(), context)
