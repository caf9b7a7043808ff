"""Fault injection in the sim backends, under virtual time: each failure kind raises the right
error at the right moment, error rates and lognormal latencies are what was asked for and
reproducible from a seed, and bad fault options are config errors naming the key."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from voxpipe import load_config
from voxpipe.audio import AudioFrame
from voxpipe.clock import SessionClock
from voxpipe.errors import AuthError, ConfigError, ProviderError, RateLimited
from voxpipe.protocols import Message, TextDelta, Transcript
from voxpipe.sim import (
    SimASR,
    SimASROptions,
    SimLLM,
    SimLLMOptions,
    SimStreamTTS,
    SimTTS,
    SimTTSOptions,
)
from voxpipe.sim.faults import Faults, Lognormal
from voxpipe.sim.voice import speech_frames
from voxpipe.vad import Utterance

MESSAGES = [Message("user", "Say something.")]
RATE, FRAME_MS = 16_000, 20
#: (fail_with, error class, retryable, text the message has) of the failures that come
#: instead of the first output.
BEFORE_OUTPUT = [
    ("auth", AuthError, False, "HTTP 401"),
    ("rate_limit", RateLimited, True, "HTTP 429"),
    ("server_error", ProviderError, True, "HTTP 503 service unavailable"),
    ("malformed", ProviderError, False, "malformed response"),
]


@dataclass
class Outcome:
    """What a stream gave: (ms from its start, item) each, the error it ended with, when."""

    items: list[tuple[float, Any]] = field(default_factory=list)
    error: ProviderError | None = None
    end_ms: float = 0.0

    def times(self, kind: type) -> list[float]:
        return [at for at, item in self.items if type(item) is kind]


async def run(stream: AsyncGenerator[Any, None]) -> Outcome:
    loop = asyncio.get_running_loop()
    start = loop.time()
    outcome = Outcome()
    try:
        async with aclosing(stream):
            async for item in stream:
                outcome.items.append(((loop.time() - start) * 1000, item))
    except ProviderError as error:
        outcome.error = error
    outcome.end_ms = (loop.time() - start) * 1000
    return outcome


def check_error(error: ProviderError | None, kind: str, cls: type, retryable: bool) -> None:
    assert type(error) is cls, repr(error)
    assert error.provider == "sim" and error.retryable is retryable
    assert str(error).startswith(f"sim {kind}: ")


# --- LLM ---------------------------------------------------------------------------------


def llm(**faults: Any) -> SimLLM:
    """First token at 200 ms, then a word every 100 ms: "one two three"."""
    responses = {"default": "one two three"}
    return SimLLM(
        SimLLMOptions(first_token_ms=200, tokens_per_second=10, responses=responses, **faults)
    )


@pytest.mark.looptime
@pytest.mark.parametrize(("fail_with", "cls", "retryable", "text"), BEFORE_OUTPUT)
async def test_llm_fails_instead_of_its_first_token(
    fail_with: str, cls: type, retryable: bool, text: str
) -> None:
    got = await run(llm(error_rate=1, fail_with=fail_with).chat(MESSAGES))
    assert got.items == []
    assert got.end_ms == pytest.approx(200)  # when the first token would have come
    check_error(got.error, "llm", cls, retryable)
    assert text in str(got.error)


@pytest.mark.looptime
async def test_llm_disconnect_comes_after_the_first_token() -> None:
    got = await run(llm(error_rate=1, fail_with="disconnect").chat(MESSAGES))
    assert [item for _, item in got.items] == [TextDelta("one")]
    assert got.end_ms == pytest.approx(300)  # while the second token was awaited
    check_error(got.error, "llm", ProviderError, True)
    assert "connection reset" in str(got.error)


@pytest.mark.looptime
async def test_llm_stall_fails_idle_timeout_after_the_first_token() -> None:
    got = await run(llm(error_rate=1, fail_with="stall", idle_timeout_ms=1500).chat(MESSAGES))
    assert got.times(TextDelta) == [pytest.approx(200)]
    assert got.end_ms == pytest.approx(200 + 1500)
    check_error(got.error, "llm", ProviderError, True)
    assert "stalled: no data for 1500 ms (idle_timeout_ms)" in str(got.error)


@pytest.mark.looptime
async def test_rate_limit_asks_for_retry_after_ms_when_set() -> None:
    asks = await run(llm(error_rate=1, fail_with="rate_limit", retry_after_ms=1500).chat(MESSAGES))
    silent = await run(llm(error_rate=1, fail_with="rate_limit").chat(MESSAGES))
    assert isinstance(asks.error, RateLimited) and asks.error.retry_after == 1.5
    assert "retry after 1.5 s" in str(asks.error)
    assert isinstance(silent.error, RateLimited) and silent.error.retry_after is None


@pytest.mark.looptime
async def test_auth_error_names_no_key_variable() -> None:
    got = await run(llm(error_rate=1, fail_with="auth").chat(MESSAGES))
    assert isinstance(got.error, AuthError) and got.error.env_var is None


# --- TTS ---------------------------------------------------------------------------------

TEXT = "Hello there friend."


async def deltas(text: str) -> AsyncIterator[str]:
    for i, word in enumerate(text.split()):
        yield word if i == 0 else " " + word


def synthesis(how: str, **faults: Any) -> AsyncGenerator[Any, None]:
    """One synthesis of ``TEXT``: first audio at 100 ms, then a 20 ms frame every 5 ms."""
    options = SimTTSOptions(first_chunk_ms=100, speed=4.0, **faults)
    if how == "synthesize":
        return SimTTS(options).synthesize(TEXT)
    return SimStreamTTS(options).synthesize_stream(deltas(TEXT))


HOWS = ["synthesize", "synthesize_stream"]


@pytest.mark.looptime
@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize(("fail_with", "cls", "retryable", "text"), BEFORE_OUTPUT)
async def test_tts_fails_instead_of_its_first_audio(
    how: str, fail_with: str, cls: type, retryable: bool, text: str
) -> None:
    got = await run(synthesis(how, error_rate=1, fail_with=fail_with))
    assert got.items == []  # not even the first word's Alignment
    assert got.end_ms == pytest.approx(100)
    check_error(got.error, "tts", cls, retryable)
    assert text in str(got.error)


@pytest.mark.looptime
@pytest.mark.parametrize("how", HOWS)
async def test_tts_disconnect_comes_after_the_first_audio(how: str) -> None:
    got = await run(synthesis(how, error_rate=1, fail_with="disconnect"))
    assert got.times(AudioFrame) == [pytest.approx(100)]
    assert got.end_ms == pytest.approx(105)  # while the second frame was awaited
    check_error(got.error, "tts", ProviderError, True)
    assert "connection reset" in str(got.error)


@pytest.mark.looptime
@pytest.mark.parametrize("how", HOWS)
async def test_tts_stall_fails_idle_timeout_after_the_first_audio(how: str) -> None:
    got = await run(synthesis(how, error_rate=1, fail_with="stall", idle_timeout_ms=800))
    assert got.times(AudioFrame) == [pytest.approx(100)]
    assert got.end_ms == pytest.approx(100 + 800)
    check_error(got.error, "tts", ProviderError, True)
    assert "no data for 800 ms" in str(got.error)


# --- ASR ---------------------------------------------------------------------------------

ENDPOINT_MS = 200


async def talk(asr: SimASR, lines: list[str], gap_ms: float = 1000) -> Outcome:
    """Say ``lines`` into a stream of ``asr`` as the session would: frames paced in time,
    each line's speech ended ``ENDPOINT_MS`` after it, ``gap_ms`` of silence after each, then
    the end of the input. What the events gave, in session ms."""
    clock = SessionClock()
    stream = asr.listen()
    silence = np.zeros(RATE * FRAME_MS // 1000, dtype=np.int16)

    async def push(frame: AudioFrame) -> None:
        await clock.sleep_until(frame.end_ms)
        stream.push(frame)

    async def speak() -> None:
        t = 0.0
        for line in lines:
            voice = list(speech_frames(line, RATE, FRAME_MS, start_ms=t, script=line))
            for i, frame in enumerate(voice):
                await push(frame)
                if i == 0:
                    stream.speech_started(frame.start_ms)
            end = t = voice[-1].end_ms
            while t < end + gap_ms:
                await push(AudioFrame(silence, RATE, t, ""))
                t += FRAME_MS
                if t == end + ENDPOINT_MS:
                    stream.speech_ended(Utterance(voice[0].start_ms, end, t))
        stream.end_input()

    speaking = asyncio.create_task(speak())
    outcome = Outcome()
    try:
        async for event in stream:
            outcome.items.append((clock.now_ms(), event))
    except ProviderError as error:
        outcome.error = error
    finally:
        outcome.end_ms = clock.now_ms()
        speaking.cancel()
        await asyncio.gather(speaking, return_exceptions=True)
        await stream.aclose()
    return outcome


LINE = "hello there how are you"  # 2000 ms of speech: ended at 2200 ms, final due at 2300


def finals(got: Outcome) -> list[tuple[float, str]]:
    return [(at, e.text) for at, e in got.items if type(e) is Transcript and e.is_final]


@pytest.mark.looptime
async def test_asr_without_faults_gives_its_final_finalization_ms_after_the_speech_ended() -> None:
    got = await talk(SimASR(SimASROptions(finalization_ms=100)), [LINE])
    assert finals(got) == [(pytest.approx(2300), LINE)]
    assert got.error is None


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("fail_with", "cls", "retryable", "text"),
    [*BEFORE_OUTPUT, ("disconnect", ProviderError, True, "connection reset")],
)
async def test_asr_fails_when_the_final_is_due(
    fail_with: str, cls: type, retryable: bool, text: str
) -> None:
    asr = SimASR(SimASROptions(finalization_ms=100, error_rate=1, fail_with=fail_with))
    got = await talk(asr, [LINE])
    assert got.items and all(not e.is_final for _, e in got.items)  # partials, no final
    assert got.end_ms == pytest.approx(2300)
    check_error(got.error, "asr", cls, retryable)
    assert text in str(got.error)


@pytest.mark.looptime
async def test_asr_stall_goes_silent_and_fails_idle_timeout_after_the_final_was_due() -> None:
    options = SimASROptions(
        finalization_ms=100, error_rate=1, fail_with="stall", idle_timeout_ms=1500
    )
    asr = SimASR(options)
    # The user speaks again from 3000 ms, while the stream is stalled: nothing of it comes.
    got = await talk(asr, [LINE, LINE], gap_ms=1000)
    assert got.items and max(at for at, _ in got.items) < 2200
    assert finals(got) == []
    assert got.end_ms == pytest.approx(2300 + 1500)
    check_error(got.error, "asr", ProviderError, True)
    assert "no data for 1500 ms" in str(got.error)


@pytest.mark.looptime
async def test_asr_finals_follow_their_lognormal_delays_in_the_order_spoken() -> None:
    options = SimASROptions(latency={"p50": 300, "p99": 5000}, seed=2)
    got = await talk(SimASR(options), ["one", "two", "three", "four", "five"], gap_ms=600)
    draws = Faults(options, "asr")
    due, expected, reordered = 0.0, [], False
    for i in range(5):  # each line: 400 ms of speech and 600 of silence, ended 200 ms after
        at = i * 1000 + 400 + ENDPOINT_MS + draws.first_output_ms(0)
        reordered |= at < due
        due = max(due, at)
        expected.append(pytest.approx(due, abs=0.001))
    assert reordered, "the seed should draw a delay that would overtake the one before"
    assert [at for at, _ in finals(got)] == expected
    assert [text for _, text in finals(got)] == ["one", "two", "three", "four", "five"]


# --- draws: error rate, latency, reproducibility ----------------------------------------


async def fails(backend: Any) -> bool:
    """Whether one request to ``backend`` fails."""
    stream = backend.chat(MESSAGES) if isinstance(backend, SimLLM) else backend.synthesize("hi")
    return (await run(stream)).error is not None


def quick(kind: str, **faults: Any) -> Any:
    if kind == "llm":
        responses = {"default": "ok"}
        return SimLLM(SimLLMOptions(first_token_ms=0, responses=responses, **faults))
    return SimTTS(SimTTSOptions(first_chunk_ms=0, speed=100, **faults))


@pytest.mark.looptime
@pytest.mark.parametrize("kind", ["llm", "tts"])
async def test_error_rate_fails_that_share_of_requests_reproducibly(kind: str) -> None:
    async def failed(seed: int) -> list[int]:
        backend = quick(kind, error_rate=0.1, seed=seed)
        return [i for i in range(400) if await fails(backend)]

    first, again, other = await failed(7), await failed(7), await failed(8)
    assert 20 <= len(first) <= 60  # 40 expected; binomial sd 6.0
    assert again == first
    assert other != first


@pytest.mark.looptime
async def test_no_fault_options_means_no_draws_and_no_wrapping() -> None:
    faults = Faults(SimLLMOptions(), "llm")
    state = faults.random.getstate()

    async def items() -> AsyncGenerator[int, None]:
        yield 1

    stream = items()
    assert faults.first_output_ms(250) == 250
    assert faults.inject(stream, int) is stream
    assert faults.random.getstate() == state
    await stream.aclose()


def test_lognormal_draws_have_the_configured_p50_and_p99() -> None:
    faults = Faults(SimLLMOptions(latency={"p50": 300, "p99": 2000}, seed=1), "llm")
    draws = np.array([faults.first_output_ms(250) for _ in range(5000)])
    assert np.percentile(draws, 50) == pytest.approx(300, rel=0.05)
    assert np.percentile(draws, 99) == pytest.approx(2000, rel=0.15)
    assert draws.min() > 0


@pytest.mark.looptime
@pytest.mark.parametrize("kind", ["llm", "tts"])
async def test_each_request_waits_its_own_draw_for_its_first_output(kind: str) -> None:
    latency = {"p50": 300, "p99": 2000}
    backend = quick(kind, latency=latency, seed=11)
    draws = Faults(backend.options, kind)
    for _ in range(20):
        stream = backend.chat(MESSAGES) if kind == "llm" else backend.synthesize("hi")
        got = await run(stream)
        first = got.times(TextDelta if kind == "llm" else AudioFrame)[0]
        assert first == pytest.approx(draws.first_output_ms(0), abs=0.001)  # looptime: 1 µs


def test_lognormal_parameters_follow_p50_and_p99() -> None:
    latency = Lognormal(p50=300, p99=2000)
    assert math.exp(latency.mu) == pytest.approx(300)
    assert math.exp(latency.mu + 2.3263 * latency.sigma) == pytest.approx(2000)


# --- closing -----------------------------------------------------------------------------


@pytest.mark.looptime
@pytest.mark.parametrize("fail_with", ["auth", "disconnect", "stall"])
async def test_a_failing_request_closes_the_stream_it_wraps(fail_with: str) -> None:
    closed = asyncio.Event()

    async def response() -> AsyncGenerator[object, None]:
        try:
            for i in range(3):
                await asyncio.sleep(0.1)
                yield TextDelta(str(i))
        finally:
            closed.set()

    faults = Faults(SimLLMOptions(error_rate=1, fail_with=fail_with, idle_timeout_ms=100), "llm")
    got = await run(faults.inject(response(), TextDelta))
    assert got.error is not None and closed.is_set()


@pytest.mark.looptime
async def test_closing_a_stalled_stream_ends_it_at_once() -> None:
    backend = llm(error_rate=1, fail_with="stall")
    stream = backend.chat(MESSAGES)
    assert await anext(stream) == TextDelta("one")
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(1)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await stream.aclose()
    assert asyncio.all_tasks() == {asyncio.current_task()}


# --- options -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["asr", "llm", "tts"])
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("latency", {"p50": 300, "p99": 100}),
        ("latency", {"p50": 0, "p99": 100}),
        ("latency", {"p50": 300}),
        ("latency", "random"),
        ("error_rate", 1.5),
        ("fail_with", "timeout"),
        ("retry_after_ms", -1),
        ("idle_timeout_ms", 0),
    ],
)
def test_bad_fault_options_are_config_errors_naming_the_key(
    kind: str, key: str, value: object
) -> None:
    with pytest.raises(ConfigError, match=rf"\[{kind}\] {key}: "):
        load_config({kind: {"backend": "sim", key: value}})


def test_a_bad_latency_says_what_it_should_be() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"llm": {"backend": "sim", "latency": {"p50": 300, "p99": 100}}})
    assert "p99 >= p50 > 0" in str(info.value) and "'p99': 100" in str(info.value)


def test_fault_options_load_from_config() -> None:
    config = load_config(
        {
            "tts": {"backend": "sim-stream", "latency": {"p50": 300, "p99": 2000}, "seed": 5},
            "llm": {"backend": "sim", "error_rate": 0.1, "fail_with": "stall"},
        }
    )
    _, tts = config.backend("tts")
    _, llm_options = config.backend("llm")
    assert isinstance(tts, SimTTSOptions) and tts.latency == Lognormal(p50=300, p99=2000)
    assert isinstance(llm_options, SimLLMOptions)
    assert (llm_options.error_rate, llm_options.fail_with) == (0.1, "stall")
    assert (llm_options.latency, llm_options.idle_timeout_ms) == ("fixed", 5000)


def test_an_unordered_lognormal_is_refused_in_python_too() -> None:
    with pytest.raises(ValidationError, match="p99 >= p50 > 0"):
        Lognormal(p50=300, p99=100)
