"""Budget policies under virtual time: a deadline acts (fallback, filler, retry, cancel), and a
failing provider costs a turn, not the conversation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from voxpipe import (
    AgentState,
    AuthError,
    CallRecorder,
    LatencyBudgets,
    Message,
    ProviderError,
    RateLimited,
    SimSpeechSource,
    VoiceAgent,
    read_wav,
)
from voxpipe.bench import REPLY
from voxpipe.protocols import LLMEvent, TextDelta

Make = Callable[..., VoiceAgent]
FINAL = 2300.0  # "What's the weather like?" ends at 2000 ms; the final comes 300 ms later
PHRASE_MS, TTS_MS = 120.0, 150.0  # the first phrase's last token 120 ms in; TTS first audio


class ScriptedLLM:
    """A v2 LLM: per call, an error to raise before any output, or the reply after its first
    token delay (the next of ``first_token_ms``, the last one repeating), one word per 20 ms.
    Counts the streams it closed."""

    def __init__(
        self, first_token_ms: float | list[float], errors: Sequence[Exception | None] = ()
    ) -> None:
        self.delays = first_token_ms if isinstance(first_token_ms, list) else [first_token_ms]
        self.errors = list(errors)
        self.calls = 0
        self.closed = 0

    async def chat(self, messages: Sequence[Message]) -> AsyncIterator[LLMEvent]:
        self.calls += 1
        error = self.errors.pop(0) if self.errors else None
        delay = self.delays.pop(0) if len(self.delays) > 1 else self.delays[0]
        try:
            if error is not None:
                raise error
            await asyncio.sleep(delay / 1000)
            for i, word in enumerate(REPLY.split(" ")):
                if i:
                    await asyncio.sleep(0.02)
                yield TextDelta(word if i == 0 else f" {word}")
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        return None


def budgets(**given: object) -> LatencyBudgets:
    return LatencyBudgets.model_validate(given)


def one_turn(**kwargs: object) -> SimSpeechSource:
    return SimSpeechSource(["What's the weather like?"], **kwargs)  # type: ignore[arg-type]


@pytest.mark.looptime
async def test_fallback_starts_the_next_llm_at_the_deadline_and_the_first_answer_wins(
    make_agent: Make,
) -> None:
    slow, fast = ScriptedLLM(2000), ScriptedLLM(200)
    agent = make_agent(
        llm=[slow, fast],
        budgets=budgets(llm_first_token={"ms": 500, "action": "fallback"}),
    )
    (turn,) = (await agent.run(one_turn())).turns
    assert turn.latency("time_to_first_audio") == pytest.approx(
        300 + 500 + 200 + PHRASE_MS + TTS_MS, abs=1e-6
    )
    assert sum(v or 0 for v in turn.stages().values()) == pytest.approx(
        turn.latency("time_to_first_audio"), abs=1e-9
    )
    assert [(a.backend, a.outcome) for a in turn.attempts if a.stage == "llm"] == [
        ("ScriptedLLM", "lost"),
        ("ScriptedLLM#2", "ok"),
    ]
    verdict = turn.budget("llm_first_token")
    assert verdict is not None
    assert (verdict.action, verdict.detail) == ("fallback", "started ScriptedLLM#2 beside")
    assert verdict.missed_at_ms == pytest.approx(FINAL + 500)
    assert slow.closed == 1 and turn.agent_text == REPLY and turn.outcome == "ok"
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.looptime
async def test_an_error_before_the_first_output_moves_to_the_next_backend_at_once(
    make_agent: Make,
) -> None:
    broken = ScriptedLLM(0, [ProviderError("HTTP 503", provider="x", retryable=True)])
    agent = make_agent(llm=[broken, ScriptedLLM(200)])
    (turn,) = (await agent.run(one_turn())).turns
    assert turn.latency("llm_ttft") == pytest.approx(200)
    assert [a.outcome for a in turn.attempts if a.stage == "llm"] == ["failed", "ok"]
    assert "HTTP 503" in turn.attempts[0].error


@pytest.mark.looptime
async def test_a_filler_plays_at_the_deadline_and_the_answer_follows_it(
    make_agent: Make, tmp_path: Path
) -> None:
    path = tmp_path / "call.wav"
    agent = make_agent(
        llm=ScriptedLLM(2000),
        budgets=budgets(llm_first_token={"ms": 500, "action": "filler"}),
        fillers=["One moment."],
    )
    (turn,) = (await agent.run(one_turn(), recorder=CallRecorder(path))).turns
    deadline = FINAL + 500
    assert turn.stamps["first_sound"] == pytest.approx(deadline)
    assert turn.latency("time_to_first_sound") == pytest.approx(300 + 500)
    filler_ms = 2 * 400.0  # "One moment." at 400 ms a word
    answer = FINAL + 2000 + PHRASE_MS + TTS_MS  # its audio is ready after the filler ended
    assert turn.stamps["playout_start"] == pytest.approx(answer)
    verdict = turn.budget("llm_first_token")
    assert verdict is not None and verdict.detail == "said 'One moment.'"
    agent_track = read_wav(path)[0][:, 1]
    voiced = np.flatnonzero(agent_track)
    assert voiced[0] * 1000 / 16_000 == pytest.approx(deadline, abs=1)
    # The filler, then silence until the answer: one voice at a time.
    gap = agent_track[round((deadline + filler_ms) * 16) : round(answer * 16)]
    assert not np.any(gap)
    assert turn.heard_text == REPLY and turn.outcome == "ok"


@pytest.mark.looptime
async def test_retry_honours_retry_after_while_the_budget_has_time(make_agent: Make) -> None:
    limited = RateLimited("HTTP 429", provider="x", retry_after=0.1)
    llm = ScriptedLLM(300, [limited])
    agent = make_agent(llm=llm, budgets=budgets(llm_first_token={"ms": 500, "action": "retry"}))
    (turn,) = (await agent.run(one_turn())).turns
    assert turn.latency("llm_ttft") == pytest.approx(100 + 300)  # waited retry-after, asked again
    assert llm.calls == 2
    assert [(a.outcome, a.retries) for a in turn.attempts if a.stage == "llm"] == [("ok", 1)]


@pytest.mark.looptime
async def test_a_retry_that_does_not_fit_the_budget_falls_through(make_agent: Make) -> None:
    limited = RateLimited("HTTP 429", provider="x", retry_after=0.8)
    agent = make_agent(
        llm=[ScriptedLLM(0, [limited]), ScriptedLLM(200)],
        budgets=budgets(llm_first_token={"ms": 500, "action": "retry"}),
    )
    (turn,) = (await agent.run(one_turn())).turns
    assert turn.latency("llm_ttft") == pytest.approx(200)  # straight to the next backend
    assert [(a.backend, a.outcome, a.retries) for a in turn.attempts if a.stage == "llm"] == [
        ("ScriptedLLM", "failed", 0),
        ("ScriptedLLM#2", "ok", 0),
    ]


@pytest.mark.looptime
async def test_cancel_stops_the_reply_apologises_and_listens_again(
    make_agent: Make, tmp_path: Path
) -> None:
    llm = ScriptedLLM([2000, 100])  # late the first time, quick the second
    path = tmp_path / "call.wav"
    agent = make_agent(
        llm=llm,
        budgets=budgets(llm_first_token={"ms": 500, "action": "cancel"}),
        apology="Sorry, try again.",
    )
    session = agent.session(
        SimSpeechSource(["What's the weather like?", "Hello there?"], pause_ms=2000),
        recorder=CallRecorder(path),
    )
    states: list[AgentState] = []
    session.on("state", lambda change: states.append(change.new))
    metrics = await session.run()
    first, second = metrics.turns
    assert (first.outcome, first.error) == (
        "cancelled",
        "cancelled: llm_first_token passed 500 ms",
    )
    assert second.outcome == "ok" and second.agent_text == REPLY
    assert {"llm_ttft", "time_to_first_audio"} <= set(first.cut_short)
    # The user's turn stays in the history; nothing of the cancelled reply was heard.
    assert session.history[:2] == [
        Message("user", "What's the weather like?"),
        Message("user", "Hello there?"),
    ]
    assert states[:5] == [
        AgentState.PROCESSING_SPEECH,
        AgentState.THINKING,
        AgentState.SPEAKING,  # the apology
        AgentState.LISTENING,
        AgentState.PROCESSING_SPEECH,
    ]
    apology_at = np.flatnonzero(read_wav(path)[0][:, 1])[0] * 1000 / 16_000
    assert apology_at == pytest.approx(FINAL + 500 + 150, abs=1)  # its TTS's first audio
    assert llm.calls == llm.closed == 2  # the cancelled stream was closed too


class FailingTwice(ScriptedLLM):
    """Fails the first two requests with a 503, then answers."""

    def __init__(self) -> None:
        errors = [ProviderError("openai: HTTP 503: overloaded", provider="x", retryable=True)] * 2
        super().__init__(100, errors)


@pytest.mark.looptime
async def test_a_provider_error_costs_the_turn_not_the_conversation(make_agent: Make) -> None:
    agent = make_agent(llm=FailingTwice())
    lines = ["What's the weather like?", "Are you there?", "Hello?"]
    session = agent.session(SimSpeechSource(lines, pause_ms=800))
    metrics = await session.run()
    assert [(t.outcome, t.error) for t in metrics.turns] == [
        ("failed", "ProviderError: openai: HTTP 503: overloaded"),
        ("failed", "ProviderError: openai: HTTP 503: overloaded"),
        ("ok", None),
    ]
    assert metrics.outcomes() == {"ok": 1, "interrupted": 0, "failed": 2, "cancelled": 0}
    assert session.history[-1] == Message("assistant", REPLY)
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.looptime
async def test_too_many_failures_in_a_row_end_the_session_with_the_last(make_agent: Make) -> None:
    error = ProviderError("sim llm: HTTP 503", provider="sim", retryable=True)
    agent = make_agent(llm=ScriptedLLM(100, [error] * 5), max_consecutive_failures=2)
    session = agent.session(SimSpeechSource(["one?", "two?", "three?"], pause_ms=800))
    with pytest.raises(ProviderError, match="sim llm: HTTP 503"):
        await session.run()
    assert [t.outcome for t in session.metrics.turns] == ["failed", "failed"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.looptime
async def test_an_auth_error_ends_the_session_at_once(make_agent: Make) -> None:
    bad_key = AuthError("x rejected the key", provider="x", env_var="X_KEY")
    agent = make_agent(llm=[ScriptedLLM(0, [bad_key]), ScriptedLLM(100)])
    session = agent.session(one_turn(), None)
    with pytest.raises(AuthError, match="rejected the key"):
        await session.run()
    (turn,) = session.metrics.turns  # the turn it ended is recorded as failed, with why
    assert (turn.outcome, turn.error) == ("failed", "AuthError: x rejected the key")
    assert session.metrics.end_reason == "error"
    assert not [m for m in session.history if m.role == "assistant"]  # no apology, no reply
    assert asyncio.all_tasks() == {asyncio.current_task()}


class FlakyASR:
    """A v2 ASR whose first stream fails when the first utterance ends; later ones work."""

    def __init__(self) -> None:
        from voxpipe.sim import SimASR

        self.sim, self.streams = SimASR(), 0

    def listen(self) -> object:
        self.streams += 1
        stream = self.sim.listen()
        if self.streams == 1:
            stream.speech_ended = lambda utterance: stream._events.fail(  # type: ignore[method-assign]
                ProviderError("asr socket dropped", provider="flaky", retryable=True)
            )
        return stream

    async def aclose(self) -> None:
        return None


@pytest.mark.looptime
async def test_an_asr_failure_costs_the_turn_and_the_asr_listens_again(make_agent: Make) -> None:
    asr = FlakyASR()
    agent = make_agent(asr=asr)
    session = agent.session(SimSpeechSource(["What's the weather like?", "Hello?"], pause_ms=3000))
    metrics = await session.run()
    first, second = metrics.turns
    assert (first.outcome, first.error) == ("failed", "ProviderError: asr socket dropped")
    assert second.outcome == "ok" and second.user_text == "Hello?"
    assert asr.streams == 2
    assert session.history == [Message("user", "Hello?"), Message("assistant", REPLY)]
    assert asyncio.all_tasks() == {asyncio.current_task()}


def fallback_config(
    stage: str, slow: dict[str, object], fast: dict[str, object]
) -> dict[str, object]:
    budget = "llm_first_token" if stage == "llm" else "tts_first_chunk"
    return {
        "asr": {"backend": "sim", "finalization_ms": 100},
        "llm": {"backend": "sim", "first_token_ms": 300, "tokens_per_second": 50},
        "tts": {"backend": "sim", "first_chunk_ms": 150},
        stage: {"backend": "sim", **slow, "fallback": [{"backend": "sim", **fast}]},
        "budgets": {budget: {"ms": 500, "action": "fallback"}},
    }


@pytest.mark.looptime
async def test_fallback_chains_come_from_config_for_the_llm_and_the_tts() -> None:
    llm = VoiceAgent.from_config(
        fallback_config("llm", {"first_token_ms": 2000}, {"first_token_ms": 200})
    )
    (turn,) = (await llm.run(one_turn())).turns
    assert turn.latency("llm_ttft") == pytest.approx(500 + 200)
    assert [(a.backend, a.outcome) for a in turn.attempts if a.stage == "llm"] == [
        ("sim", "lost"),
        ("sim#2", "ok"),
    ]
    tts = VoiceAgent.from_config(
        fallback_config("tts", {"first_chunk_ms": 2000}, {"first_chunk_ms": 100})
    )
    (turn,) = (await tts.run(one_turn())).turns
    assert turn.latency("tts_ttfb") == pytest.approx(500 + 100)
    tts_attempts = [(a.backend, a.outcome) for a in turn.attempts if a.stage == "tts"]
    assert tts_attempts[:2] == [("sim", "lost"), ("sim#2", "ok")]
    assert turn.heard_text == REPLY  # every later phrase from the backend that won


def test_a_fallback_entry_is_validated_by_its_own_backend() -> None:
    from voxpipe import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"\[llm.fallback.0\] pitch: unknown option"):
        load_config({"llm": {"backend": "sim", "fallback": [{"backend": "sim", "pitch": 1}]}})
    with pytest.raises(ConfigError, match=r"\[tts.fallback.0\] backend: no tts backend named 'x'"):
        load_config({"tts": {"backend": "sim", "fallback": [{"backend": "x"}]}})


@pytest.mark.looptime
async def test_retry_backs_off_exponentially_with_jitter(make_agent: Make) -> None:
    overloaded = ProviderError("HTTP 503", provider="x", retryable=True)
    llm = ScriptedLLM(100, [overloaded, overloaded])
    agent = make_agent(llm=llm, budgets=budgets(llm_first_token={"ms": 500, "action": "retry"}))
    (turn,) = (await agent.run(one_turn())).turns
    (attempt,) = [a for a in turn.attempts if a.stage == "llm"]
    assert (attempt.outcome, attempt.retries, llm.calls) == ("ok", 2, 3)
    # Waits of 50 ms then 100 ms, each with up to 50 ms of jitter, then the 100 ms answer.
    ttft = turn.latency("llm_ttft") or 0
    assert 50 + 100 + 100 <= ttft <= 50 + 100 + 2 * 50 + 100
