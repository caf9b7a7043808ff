"""The sim backends pass the same conformance kit as any plugin, their provider failures
injected by their fault options (``error_rate = 1``); the two a sim has no wire format for
(a truncated stream, a wrong content type) are skipped."""

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

_FAIL_WITH = {
    Failure.AUTH: "auth",
    Failure.RATE_LIMIT: "rate_limit",
    Failure.SERVER: "server_error",
    Failure.MALFORMED: "malformed",
}


def failing(failure: Failure) -> dict[str, Any]:
    """Fault options under which every request fails with ``failure``."""
    options: dict[str, Any] = {"error_rate": 1, "fail_with": _FAIL_WITH[failure]}
    if failure is Failure.RATE_LIMIT:
        options["retry_after_ms"] = Failure.RETRY_AFTER_S * 1000
    return options


#: Fault options every sim backend must refuse, with the key the error must name.
BAD_FAULT_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"latency": {"p50": 300, "p99": 100}}, "latency"),
    ({"error_rate": 1.5}, "error_rate"),
    ({"fail_with": "timeout"}, "fail_with"),
]


class SimContract:
    backend_name = "sim"
    distribution = "voxpipe"
    #: What the fault options can inject. A truncated stream and a body of the wrong content
    #: type are wire-format failures a sim has no wire for (fail_with cannot express them).
    failures: ClassVar[tuple[Failure, ...]] = tuple(_FAIL_WITH)
    transport_closes = False  # no connection to close


class TestSimLLM(SimContract, LLMContract):
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"tokens_per_second": 0}, "tokens_per_second"),
        ({"first_token_ms": "soon"}, "first_token_ms"),
        *BAD_FAULT_OPTIONS,
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> SimLLM:
        return SimLLM(SimLLMOptions(first_token_ms=50, tokens_per_second=50), context)

    def make_failing_backend(self, failure: Failure, context: BackendContext) -> SimLLM:
        options = SimLLMOptions(first_token_ms=50, tokens_per_second=50, **failing(failure))
        return SimLLM(options, context)


class TestSimTTS(SimContract, TTSContract):
    emits_alignment = True
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"speed": -1}, "speed"),
        ({"pitch_hz": 5000}, "pitch_hz"),
        *BAD_FAULT_OPTIONS,
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> SimTTS:
        return SimTTS(SimTTSOptions(first_chunk_ms=30), context)

    def make_failing_backend(self, failure: Failure, context: BackendContext) -> SimTTS:
        return SimTTS(SimTTSOptions(first_chunk_ms=30, **failing(failure)), context)


class TestSimStreamTTS(TestSimTTS):
    backend_name = "sim-stream"

    def make_backend(self, control: ServerControl, context: BackendContext) -> SimStreamTTS:
        return SimStreamTTS(SimTTSOptions(first_chunk_ms=30), context)

    def make_failing_backend(self, failure: Failure, context: BackendContext) -> SimStreamTTS:
        return SimStreamTTS(SimTTSOptions(first_chunk_ms=30, **failing(failure)), context)


class TestSimASR(SimContract, ASRContract):
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"finalization_ms": -1}, "finalization_ms"),
        ({"confidence": 2}, "confidence"),
        *BAD_FAULT_OPTIONS,
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> SimASR:
        return SimASR(SimASROptions(), context)

    def make_failing_backend(self, failure: Failure, context: BackendContext) -> SimASR:
        return SimASR(SimASROptions(**failing(failure)), context)


def test_the_sims_skip_only_the_wire_format_failures() -> None:
    assert set(Failure) - set(SimContract.failures) == {
        Failure.TRUNCATED,
        Failure.WRONG_CONTENT_TYPE,
    }
