"""The sim backends pass the same conformance kit as any plugin."""

from __future__ import annotations

from typing import Any, ClassVar

from voxpipe.hookspecs import BackendContext
from voxpipe.sim import (
    SimASR,
    SimASROptions,
    SimLLM,
    SimLLMOptions,
    SimStreamTTS,
    SimTTS,
    SimTTSOptions,
)
from voxpipe.testing import ASRContract, Failure, LLMContract, ServerControl, TTSContract


class SimContract:
    backend_name = "sim"
    distribution = "voxpipe"
    failures: ClassVar[tuple[Failure, ...]] = ()  # no provider to fail
    transport_closes = False  # no connection to close


class TestSimLLM(SimContract, LLMContract):
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"tokens_per_second": 0}, "tokens_per_second"),
        ({"first_token_ms": "soon"}, "first_token_ms"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> SimLLM:
        return SimLLM(SimLLMOptions(first_token_ms=50, tokens_per_second=50), context)


class TestSimTTS(SimContract, TTSContract):
    emits_alignment = True
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"speed": -1}, "speed"),
        ({"pitch_hz": 5000}, "pitch_hz"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> SimTTS:
        return SimTTS(SimTTSOptions(first_chunk_ms=30), context)


class TestSimStreamTTS(TestSimTTS):
    backend_name = "sim-stream"

    def make_backend(self, control: ServerControl, context: BackendContext) -> SimStreamTTS:
        return SimStreamTTS(SimTTSOptions(first_chunk_ms=30), context)


class TestSimASR(SimContract, ASRContract):
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"finalization_ms": -1}, "finalization_ms"),
        ({"confidence": 2}, "confidence"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> SimASR:
        return SimASR(SimASROptions(), context)
