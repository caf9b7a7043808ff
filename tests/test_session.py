"""Sessions under virtual time: stages add up exactly, TTS overlaps the LLM, history and
events, recordings, cancellation and failures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from voxpipe import (
    AgentState,
    AudioFrame,
    CallRecorder,
    LatencyBudgets,
    Message,
    PhrasePolicy,
    ProviderError,
    SimSpeechSource,
    TurnSettings,
    VoiceAgent,
    read_wav,
)
from voxpipe.protocols import TTSOutput
from voxpipe.sim import SimASR, SimASROptions, SimLLM, SimLLMOptions, SimTTS, SimTTSOptions

REPLY = "The weather is sunny with a temperature of 72 degrees. Anything else?"
FRAME_MS = 20


def make_agent(
    *,
    policy: PhrasePolicy | None = None,
    budgets: LatencyBudgets | None = None,
    llm: object | None = None,
    tts: object | None = None,
    system_prompt: str = "",
) -> VoiceAgent:
    return VoiceAgent(
        SimASR(SimASROptions(finalization_ms=100)),
        llm
        or SimLLM(
            SimLLMOptions(first_token_ms=300, tokens_per_second=50, responses={"default": REPLY})
        ),
        tts or SimTTS(SimTTSOptions(first_chunk_ms=150, speed=4.0)),
        phrases=policy,
        budgets=budgets,
        system_prompt=system_prompt,
        turns=TurnSettings(endpoint_ms=200),
    )


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("policy", "first_phrase_tokens"),
    [
        # Up to " degrees.", certain once the 11th token (" Anything") shows what follows it.
        (PhrasePolicy(first_max_words=None), 11),
        (PhrasePolicy(first_max_words=4), 5),  # 4 words, then the 5th token shows the word ended
    ],
)
async def test_time_to_first_audio_is_the_sum_of_the_stages(
    policy: PhrasePolicy, first_phrase_tokens: int
) -> None:
    agent = make_agent(policy=policy)
    session = await agent.run(SimSpeechSource(["What's the weather like?"]))

    (turn,) = session.turns
    finalization = 200 + 100  # endpoint silence + finalization delay
    ttft = 300
    first_phrase = (first_phrase_tokens - 1) * 1000 / 50  # later tokens every 20 ms
    ttfb = 150
    assert turn.latency("asr_finalization") == pytest.approx(finalization, abs=1e-6)
    assert turn.latency("llm_ttft") == pytest.approx(ttft, abs=1e-6)
    assert turn.latency("first_phrase") == pytest.approx(first_phrase, abs=1e-6)
    assert turn.latency("tts_ttfb") == pytest.approx(ttfb, abs=1e-6)
    assert turn.latency("time_to_first_audio") == pytest.approx(
        finalization + ttft + first_phrase + ttfb, abs=1e-6
    )
    assert sum(v or 0 for v in turn.stages().values()) == pytest.approx(
        turn.latency("time_to_first_audio"), abs=1e-9
    )
    # TTS started on the first phrase while the LLM was still writing.
    assert turn.stamps["tts_request"] < turn.stamps["llm_done"]
    assert turn.user_text == "What's the weather like?"
    assert turn.agent_text == REPLY


@pytest.mark.looptime
async def test_serial_policy_waits_for_the_whole_reply() -> None:
    agent = make_agent(policy=PhrasePolicy(stream=False))
    session = await agent.run(SimSpeechSource(["What's the weather like?"]))
    (turn,) = session.turns
    assert turn.stamps["tts_request"] == turn.stamps["llm_done"]
    assert turn.first_phrase == REPLY


class RecordingTTS(SimTTS):
    """SimTTS that notes when each synthesis starts and when its last frame leaves."""

    def __init__(self) -> None:
        super().__init__(SimTTSOptions(first_chunk_ms=50, speed=4.0))
        self.calls: list[tuple[str, float]] = []

    async def synthesize(self, text: str) -> AsyncIterator[TTSOutput]:
        import asyncio

        self.calls.append((text, asyncio.get_running_loop().time()))
        async for item in super().synthesize(text):
            yield item


@pytest.mark.looptime
async def test_next_phrase_is_synthesized_while_the_previous_one_plays() -> None:
    tts = RecordingTTS()
    agent = make_agent(tts=tts)
    session = await agent.run(SimSpeechSource(["What's the weather like?"]))
    (turn,) = session.turns
    assert turn.phrases == len(tts.calls) >= 2
    first_phrase_ms = len(turn.first_phrase.split()) * 400.0  # SimTTS speaks 150 words/min
    # Loop time and session time share an origin offset; compare the gap to the first call.
    second_starts_after_first_ms = (tts.calls[1][1] - tts.calls[0][1]) * 1000
    assert second_starts_after_first_ms < first_phrase_ms


class EchoLLM:
    """A plugin API v1 LLM: records the messages it gets, answers with a fixed sentence and
    reports token usage as ``last_usage``."""

    def __init__(self) -> None:
        self.seen: list[list[Message]] = []
        self.last_usage: dict[str, int] | None = None

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        self.seen.append(list(messages))
        for word in ["Sure", " thing."]:
            yield word
        self.last_usage = {"prompt_tokens": 9 * len(messages), "completion_tokens": 2}

    async def aclose(self) -> None:
        return None


@pytest.mark.looptime
async def test_history_carries_the_system_prompt_and_earlier_turns() -> None:
    llm = EchoLLM()
    agent = make_agent(llm=llm, system_prompt="Be brief.")
    lines = ["Hello there.", "What's the weather like?"]
    session = await agent.run(SimSpeechSource(lines))
    assert [t.user_text for t in session.turns] == lines
    # Token usage reported by the LLM lands in each turn's metrics.
    assert [t.extra["llm_usage"]["prompt_tokens"] for t in session.turns] == [18, 36]
    assert llm.seen[1] == [
        Message("system", "Be brief."),
        Message("user", "Hello there."),
        Message("assistant", "Sure thing."),
        Message("user", "What's the weather like?"),
    ]


@pytest.mark.looptime
async def test_events_report_states_transcripts_turns_and_budget_misses() -> None:
    agent = make_agent(budgets=LatencyBudgets(llm_first_token=100, time_to_first_audio=5000))
    states: list[AgentState] = []
    finals: list[str] = []
    misses: list[tuple[str, float]] = []
    agent.on("state", lambda change: states.append(change.new))
    agent.on("transcript", lambda t: finals.append(t.text) if t.is_final else None)
    agent.on("budget", lambda miss: misses.append((miss.name, miss.at_ms)))
    turns = []
    agent.on("turn", turns.append)
    session = await agent.run(SimSpeechSource(["What's the weather like?"]))

    assert states == [
        AgentState.PROCESSING_SPEECH,
        AgentState.THINKING,
        AgentState.SPEAKING,
        AgentState.LISTENING,
    ]
    assert finals == ["What's the weather like?"]
    assert turns == session.turns
    (turn,) = session.turns
    # The deadline fired at the moment the budget ran out, while the LLM was still silent.
    assert misses == [("llm_first_token", pytest.approx(turn.stamps["llm_request"] + 100))]
    verdict = turn.budget("llm_first_token")
    assert verdict is not None
    assert (verdict.ok, verdict.action, verdict.actual_ms) == (False, "warn", pytest.approx(300))
    ttfa = turn.budget("time_to_first_audio")
    assert ttfa is not None and ttfa.ok is True and ttfa.action == "none"


def test_unknown_event_is_rejected() -> None:
    with pytest.raises(ValueError, match="state, transcript, turn, budget, interruption"):
        make_agent().on("turns", print)


def test_backend_that_is_not_a_backend_is_rejected() -> None:
    with pytest.raises(TypeError, match="LLM protocol"):
        VoiceAgent(SimASR(), object(), SimTTS())  # type: ignore[arg-type]


@pytest.mark.looptime
async def test_recording_lines_up_with_the_metrics(tmp_path) -> None:  # type: ignore[no-untyped-def]
    agent = make_agent()
    path = tmp_path / "call.wav"
    session = await agent.run(
        SimSpeechSource(["What's the weather like?"]),
        recorder=CallRecorder(path, 16_000),
    )
    (turn,) = session.turns
    stereo, rate = read_wav(path)
    assert stereo.shape[1] == 2
    user, agent_audio = stereo[:, 0], stereo[:, 1]
    first_agent_ms = np.flatnonzero(agent_audio)[0] * 1000 / rate
    last_user_ms = (np.flatnonzero(user)[-1] + 1) * 1000 / rate
    assert first_agent_ms == pytest.approx(turn.stamps["playout_start"], abs=FRAME_MS)
    assert last_user_ms == pytest.approx(turn.stamps["speech_end"], abs=FRAME_MS)
    gap_heard = first_agent_ms - last_user_ms
    assert gap_heard == pytest.approx(turn.latency("time_to_first_audio"), abs=FRAME_MS)


class ClosingSink:
    def __init__(self) -> None:
        self.frames = 0
        self.closed = False

    async def write(self, frame: AudioFrame) -> None:
        self.frames += 1

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.looptime
async def test_cancelling_a_session_mid_answer_leaves_nothing_running() -> None:
    import asyncio

    agent = make_agent()
    sink = ClosingSink()
    session = agent.session(SimSpeechSource(["What's the weather like?"]), sink)
    run = asyncio.create_task(session.run())
    await asyncio.sleep(3.0)  # speech ends at 2.0 s; the answer starts playing at ~2.8 s
    assert session.state is AgentState.SPEAKING and sink.frames > 0
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert sink.closed
    assert session.state is AgentState.LISTENING and not session.replies  # nothing stale
    assert asyncio.all_tasks() == {asyncio.current_task()}


class FailingLLM:
    """Streams two words, then the provider drops the connection."""

    closed = False

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        try:
            yield "Well"
            yield ","
            raise ProviderError("connection reset by peer", provider="flaky", retryable=True)
        finally:
            FailingLLM.closed = True

    async def aclose(self) -> None:
        return None


@pytest.mark.looptime
async def test_a_provider_error_mid_stream_fails_the_turn_and_closes_everything() -> None:
    import asyncio

    agent = make_agent(llm=FailingLLM())
    sink = ClosingSink()
    session = agent.session(SimSpeechSource(["What's the weather like?"]), sink)
    metrics = await session.run()  # the conversation survives its provider
    (turn,) = metrics.turns
    assert (turn.outcome, turn.error) == ("failed", "ProviderError: connection reset by peer")
    assert turn.agent_text == "Well,"
    assert FailingLLM.closed and sink.closed
    assert session.state is AgentState.LISTENING
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.looptime
async def test_say_speaks_a_greeting_before_the_user_speaks() -> None:
    agent = make_agent()
    session = agent.session(SimSpeechSource(["What's the weather like?"], lead_ms=3000))
    greeting = session.say("Hello, how can I help?")
    metrics = await session.run()
    assert greeting.done and greeting.heard_text == "Hello, how can I help?"
    assert [m.role for m in session.history] == ["assistant", "user", "assistant"]
    assert session.history[0].content == "Hello, how can I help?"
    (turn,) = metrics.turns  # a greeting is not a turn
    assert turn.user_text == "What's the weather like?"


@pytest.mark.looptime
async def test_say_during_a_reply_waits_for_it_to_finish(tmp_path) -> None:  # type: ignore[no-untyped-def]
    agent = make_agent()
    path = tmp_path / "call.wav"
    session = agent.session(
        SimSpeechSource(["What's the weather like?"], pause_ms=8000),
        recorder=CallRecorder(path, 16_000),
    )
    said = []

    def on_state(change: object) -> None:
        if session.state is AgentState.SPEAKING and not said:
            said.append(session.say("One more thing."))

    session.on("state", on_state)
    metrics = await session.run()
    (turn,) = metrics.turns
    (extra,) = said
    assert extra.heard_text == "One more thing."
    agent_audio = read_wav(path)[0][:, 1]
    voiced_ms = np.count_nonzero(agent_audio) * 1000 / 16_000
    assert voiced_ms == pytest.approx((len(REPLY.split()) + 3) * 400, abs=FRAME_MS)
    # The second starts where the first ended: one voice at a time.
    answer_end = round(turn.stamps["turn_end"] * 16)
    assert np.any(agent_audio[answer_end : answer_end + 320])


@pytest.mark.looptime
async def test_a_streaming_tts_is_fed_the_deltas_as_they_come() -> None:
    from voxpipe.sim import SimStreamTTS

    agent = make_agent(tts=SimStreamTTS(SimTTSOptions(first_chunk_ms=150, speed=4.0)))
    session = await agent.run(SimSpeechSource(["What's the weather like?"]))
    (turn,) = session.turns
    # "The" goes to the TTS when it is complete, as " weather" comes 20 ms later (markdown
    # is dropped a word at a time), and its audio comes 150 ms after that.
    assert turn.stamps["tts_request"] == pytest.approx(turn.stamps["llm_first_token"] + 20)
    assert turn.first_phrase == "The"
    assert turn.latency("tts_ttfb") == pytest.approx(150)
    assert turn.latency("time_to_first_audio") == pytest.approx(300 + 300 + 170)
    assert sum(v or 0 for v in turn.stages().values()) == pytest.approx(
        turn.latency("time_to_first_audio"), abs=1e-9
    )
    assert turn.heard_text == REPLY


@pytest.mark.looptime
async def test_a_streaming_tts_gets_no_markdown() -> None:
    from voxpipe.sim import SimStreamTTS

    heard: list[str] = []

    class ListeningTTS(SimStreamTTS):
        def synthesize_stream(self, text: AsyncIterator[str]) -> AsyncIterator[TTSOutput]:
            async def noted() -> AsyncIterator[str]:
                async for piece in text:
                    heard.append(piece)
                    yield piece

            return super().synthesize_stream(noted())

    reply = "**Sure**, see [the docs](http://x.y/z) or run `pip install`."
    agent = make_agent(
        llm=SimLLM(SimLLMOptions(first_token_ms=100, responses={"default": reply})),
        tts=ListeningTTS(SimTTSOptions(first_chunk_ms=50, speed=4.0)),
    )
    session = await agent.run(SimSpeechSource(["Where are the docs?"]))
    (turn,) = session.turns
    assert turn.agent_text == reply  # what the LLM wrote, kept as written
    assert "".join(heard) == "Sure, see the docs or run pip install."  # what the TTS read


class CountingLLM(SimLLM):
    closed = 0

    async def aclose(self) -> None:
        CountingLLM.closed += 1


@pytest.mark.looptime
async def test_backends_built_by_a_factory_are_closed_with_their_session() -> None:
    agent = make_agent(llm=lambda: CountingLLM(SimLLMOptions(first_token_ms=50)))
    CountingLLM.closed = 0
    await agent.run(SimSpeechSource(["hello"]))
    await agent.run(SimSpeechSource(["hello"]))
    assert CountingLLM.closed == 2


class ToolCallingLLM:
    """Asks for a tool, says a few words, reports usage."""

    async def chat(self, messages: Sequence[Message]) -> AsyncIterator[object]:
        from voxpipe import TextDelta, ToolCall, Usage

        yield ToolCall("call_1", "get_weather", '{"city": "Paris"}')
        yield TextDelta("Let me check.")
        yield Usage(10, 3, 13)

    async def aclose(self) -> None:
        return None


@pytest.mark.looptime
async def test_tool_calls_reach_the_reply_and_the_metrics_but_not_the_history() -> None:
    agent = make_agent(llm=ToolCallingLLM())
    session = agent.session(SimSpeechSource(["What's the weather in Paris?"]))
    replies = []
    session.on("state", lambda c: replies.extend(session.replies) if not replies else None)
    metrics = await session.run()
    (turn,) = metrics.turns
    assert turn.extra["tool_calls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    ]
    assert turn.extra["llm_usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "total_tokens": 13,
    }
    assert replies[0].tool_calls[0].name == "get_weather"
    assert session.history[-1] == Message("assistant", "Let me check.")


class MeasuringLLM(SimLLM):
    """SimLLM answering at once, noting how big each request was."""

    def __init__(self) -> None:
        super().__init__(
            SimLLMOptions(first_token_ms=10, tokens_per_second=1000, responses={"default": "Fine."})
        )
        self.sizes: list[tuple[int, int]] = []

    def chat(self, messages: Sequence[Message]) -> AsyncIterator[object]:  # type: ignore[override]
        self.sizes.append((len(messages), sum(len(m.content) for m in messages)))
        return super().chat(messages)


@pytest.mark.looptime
async def test_the_history_window_bounds_every_request_over_a_thousand_turns() -> None:
    llm = MeasuringLLM()
    agent = VoiceAgent(
        SimASR(SimASROptions(finalization_ms=20)),
        llm,
        SimTTS(SimTTSOptions(first_chunk_ms=10, speed=50, words_per_minute=600)),
        system_prompt="Be brief.",
        turns=TurnSettings(endpoint_ms=100),
        history_messages=10,
        history_chars=300,
    )
    lines = [f"tell me thing {n} now" for n in range(1000)]
    source = SimSpeechSource(
        lines, sample_rate=8000, frame_ms=100, lead_ms=0, pause_ms=100, words_per_minute=600
    )
    session = agent.session(source)
    metrics = await session.run()
    assert len(metrics.turns) == 1000 and len(session.history) == 2000  # all of it is kept
    assert max(n for n, _ in llm.sizes) <= 1 + 10  # the system prompt and the window
    assert max(chars for _, chars in llm.sizes) <= len("Be brief.") + 300
    last = llm.sizes[-1]
    assert last[0] == 11  # the window is full, not empty, at the end


@pytest.mark.looptime
async def test_a_replys_text_grows_as_the_llm_writes_it() -> None:
    slow = SimLLM(
        SimLLMOptions(first_token_ms=100, tokens_per_second=5, responses={"default": REPLY})
    )
    agent = make_agent(llm=slow)
    seen: list[str] = []
    session = agent.session(SimSpeechSource(["what's the weather"]))

    def on_state(change: object) -> None:
        if getattr(change, "new", None) == AgentState.SPEAKING:
            seen.append(session.replies[-1].text)  # the first phrase plays, the LLM writes on

    session.on("state", on_state)
    metrics = await session.run()
    (turn,) = metrics.turns
    assert turn.agent_text == REPLY
    assert seen and seen[0] and REPLY.startswith(seen[0]) and len(seen[0]) < len(REPLY)
