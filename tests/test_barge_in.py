"""Barge-in under virtual time: the user talks over the agent and the agent stops.

Timeline of the scripted scenario (see conftest's latencies): the user says "What's the
weather like?" from 400 to 2000 ms; the agent's answer starts playing at 2870 ms. The user
starts talking over it 1500 ms later (at the next 20 ms frame, 4380 ms); 300 ms of speech
interrupt it at 4680 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from voxpipe import (
    AgentState,
    AudioFrame,
    CallRecorder,
    Line,
    Message,
    SimSpeechSource,
    TurnSettings,
    VoiceAgent,
    read_wav,
)
from voxpipe.bench import REPLY
from voxpipe.protocols import Alignment, LLMEvent, TTSOutput
from voxpipe.sim import SimLLM, SimLLMOptions, SimStreamTTS, SimTTS, SimTTSOptions
from voxpipe.sim.voice import WORDS_PER_MINUTE

Make = Callable[..., VoiceAgent]
PLAYOUT_START = 2870.0
BARGE_IN_AT = 4380.0
DETECTED = BARGE_IN_AT + 300.0
FRAME_MS = 20.0
WORD_MS = 60_000 / WORDS_PER_MINUTE  # how long SimTTS takes to say a word


def scenario(*later: Line) -> SimSpeechSource:
    return SimSpeechSource(
        [
            "What's the weather like?",
            Line("wait stop please", after="answer_start", delay_ms=1500),
            *later,
        ]
    )


class RecordingLLM(SimLLM):
    """SimLLM that keeps every request's messages."""

    def __init__(self, responses: dict[str, str] | None = None) -> None:
        super().__init__(
            SimLLMOptions(
                first_token_ms=300, tokens_per_second=50, responses=responses or {"default": REPLY}
            )
        )
        self.requests: list[list[Message]] = []

    async def chat(self, messages: Sequence[Message]) -> AsyncIterator[LLMEvent]:
        self.requests.append(list(messages))
        async for event in super().chat(messages):
            yield event


class UnalignedTTS(SimTTS):
    """SimTTS without its word alignment (like most providers)."""

    async def synthesize(self, text: str) -> AsyncIterator[TTSOutput]:
        async for item in super().synthesize(text):
            if not isinstance(item, Alignment):
                yield item


@pytest.mark.looptime
async def test_the_states_through_an_interruption(make_agent: Make) -> None:
    agent = make_agent()
    states: list[tuple[AgentState, float]] = []
    agent.on("state", lambda change: states.append((change.new, change.at_ms)))
    session = await agent.run(scenario())

    first, second = session.turns
    assert [s for s, _ in states] == [
        AgentState.PROCESSING_SPEECH,
        AgentState.THINKING,
        AgentState.SPEAKING,
        AgentState.INTERRUPTED,
        AgentState.LISTENING,
        AgentState.PROCESSING_SPEECH,
        AgentState.THINKING,
        AgentState.SPEAKING,
        AgentState.LISTENING,
    ]
    interrupted_at = [at for s, at in states if s is AgentState.INTERRUPTED]
    assert interrupted_at == [pytest.approx(DETECTED)]
    assert first.interrupted and not second.interrupted
    assert first.stamps["playout_start"] == pytest.approx(PLAYOUT_START)
    assert first.stamps["interruption_detected"] == pytest.approx(DETECTED)
    assert second.user_text == "wait stop please"
    assert session.interruptions() == {"interrupted_turns": 1, "resumed_turns": 0}


@pytest.mark.looptime
async def test_output_is_silent_at_the_detection_in_the_recording(
    make_agent: Make, tmp_path: Path
) -> None:
    path = tmp_path / "call.wav"
    session = await make_agent().run(scenario(), recorder=CallRecorder(path))
    first, second = session.turns
    assert first.stamps["output_silent"] == pytest.approx(first.stamps["interruption_detected"])

    stereo, rate = read_wav(path)
    user, agent = stereo[:, 0], stereo[:, 1]
    at = lambda ms: round(ms * rate / 1000)  # noqa: E731
    before_next = agent[: at(second.stamps["playout_start"])]
    last_agent_ms = (np.flatnonzero(before_next)[-1] + 1) * 1000 / rate
    assert DETECTED - FRAME_MS <= last_agent_ms <= DETECTED + FRAME_MS
    first_barge_in_ms = np.flatnonzero(user[at(2100) :])[0] * 1000 / rate + 2100
    assert first_barge_in_ms == pytest.approx(BARGE_IN_AT, abs=1)
    # Both voices overlap only for the 300 ms it takes to decide it is an interruption.
    overlap = np.count_nonzero(user[: at(5000)] & agent[: at(5000)]) * 1000 / rate
    assert overlap == pytest.approx(300, abs=FRAME_MS)


class PlainSink:
    """A plugin API v1 sink: no clear(), so it finishes the frame it is playing."""

    def __init__(self) -> None:
        self.frames: list[AudioFrame] = []

    async def write(self, frame: AudioFrame) -> None:
        self.frames.append(frame)

    async def aclose(self) -> None:
        return None


@pytest.mark.looptime
async def test_a_sink_that_cannot_clear_goes_silent_within_one_frame(make_agent: Make) -> None:
    sink = PlainSink()
    session = await make_agent().run(scenario(), sink)
    first = session.turns[0]
    silent, detected = first.stamps["output_silent"], first.stamps["interruption_detected"]
    assert detected <= silent <= detected + FRAME_MS
    written_before = [f for f in sink.frames if f.start_ms < detected + 100]
    assert written_before[-1].end_ms == pytest.approx(silent)


@pytest.mark.parametrize("tts", [SimTTS, UnalignedTTS, SimStreamTTS])
@pytest.mark.looptime
async def test_history_keeps_only_the_words_played(make_agent: Make, tts: type[SimTTS]) -> None:
    llm = RecordingLLM()
    agent = make_agent(llm=llm, tts=tts(SimTTSOptions(first_chunk_ms=150, speed=4.0)))
    session = agent.session(scenario())
    metrics = await session.run()

    # 1810 ms played at 400 ms a word: four whole words (with or without alignment; the
    # streaming TTS starts 100 ms sooner, and so does the user, 1500 ms into its answer).
    played_ms = DETECTED - PLAYOUT_START
    assert int(played_ms // WORD_MS) == 4
    heard = "The weather is sunny"
    assert metrics.turns[0].heard_text == heard
    assert metrics.turns[0].agent_text == REPLY
    assert session.history[:3] == [
        Message("user", "What's the weather like?"),
        Message("assistant", heard, interrupted=True),
        Message("user", "wait stop please"),
    ]
    assert llm.requests[1][1] == Message("assistant", heard, interrupted=True)


@pytest.mark.looptime
async def test_a_short_noise_does_not_interrupt(make_agent: Make) -> None:
    source = SimSpeechSource(
        ["What's the weather like?", Line("", after="answer_start", delay_ms=1000, sound_ms=100)]
    )
    states: list[AgentState] = []
    agent = make_agent()
    agent.on("state", lambda change: states.append(change.new))
    session = await agent.run(source)
    (turn,) = session.turns  # the noise was not a turn either
    assert not turn.interrupted and not turn.false_interruptions
    assert turn.heard_text == REPLY
    assert AgentState.INTERRUPTED not in states


@pytest.mark.looptime
async def test_an_interruption_without_words_resumes_where_it_stopped(
    make_agent: Make, tmp_path: Path
) -> None:
    path = tmp_path / "call.wav"
    cough = Line("", after="answer_start", delay_ms=1500, sound_ms=500)
    session = await make_agent().run(
        SimSpeechSource(["What's the weather like?", cough]), recorder=CallRecorder(path)
    )
    (turn,) = session.turns
    (false,) = turn.false_interruptions
    assert false["detected_ms"] == pytest.approx(DETECTED)
    assert false["silent_ms"] == pytest.approx(DETECTED)
    # The cough ends 200 ms after detection; the VAD waits 200 ms, the ASR answers 100 ms
    # later with no words: the reply resumes then, before the 2 s timeout.
    assert false["resumed_ms"] == pytest.approx(DETECTED + 500)
    assert not turn.interrupted and turn.heard_text == REPLY
    assert session.interruptions() == {"interrupted_turns": 0, "resumed_turns": 1}

    # Nothing was lost or repeated: the whole answer played, with a 500 ms hole in it.
    agent_track = read_wav(path)[0][:, 1]
    rate = 16_000
    voiced_ms = np.count_nonzero(agent_track) * 1000 / rate
    reply_ms = len(REPLY.split()) * WORD_MS
    assert voiced_ms == pytest.approx(reply_ms, abs=FRAME_MS)
    assert turn.stamps["turn_end"] == pytest.approx(PLAYOUT_START + reply_ms + 500, abs=1)
    hole = agent_track[round(DETECTED * 16) : round((DETECTED + 500) * 16)]
    assert not np.any(hole)
    # ...and it carries on from the very sample where it stopped.
    calm = tmp_path / "calm.wav"
    await make_agent().run(
        SimSpeechSource(["What's the weather like?"], pause_ms=8000), recorder=CallRecorder(calm)
    )
    uninterrupted = read_wav(calm)[0][:, 1]
    held = np.concatenate(
        [agent_track[: round(DETECTED * 16)], agent_track[round((DETECTED + 500) * 16) :]]
    )
    end = round((PLAYOUT_START + reply_ms) * 16)
    assert np.array_equal(held[:end], uninterrupted[:end])


@pytest.mark.looptime
async def test_a_long_noise_resumes_after_the_timeout_and_does_not_interrupt_again(
    make_agent: Make,
) -> None:
    noise = Line("", after="answer_start", delay_ms=1500, sound_ms=3000)
    session = await make_agent().run(SimSpeechSource(["What's the weather like?", noise]))
    (turn,) = session.turns
    (false,) = turn.false_interruptions
    assert false["resumed_ms"] - false["detected_ms"] == pytest.approx(2000)  # the timeout
    assert not turn.interrupted and turn.heard_text == REPLY


@pytest.mark.looptime
async def test_without_resume_an_interruption_without_words_cancels_at_once(
    make_agent: Make,
) -> None:
    turns = TurnSettings(endpoint_ms=200, resume_false_interruptions=False)
    cough = Line("", after="answer_start", delay_ms=1500, sound_ms=500)
    session = await make_agent(turns=turns).run(
        SimSpeechSource(["What's the weather like?", cough])
    )
    (turn,) = session.turns
    assert turn.interrupted and turn.stamps["output_silent"] == pytest.approx(DETECTED)
    assert turn.heard_text == "The weather is sunny"


@pytest.mark.looptime
async def test_interruptions_can_require_words(make_agent: Make) -> None:
    turns = TurnSettings(endpoint_ms=200, min_interruption_words=2)
    source = SimSpeechSource(
        [
            "What's the weather like?",
            Line("no", after="answer_start", delay_ms=1000),  # 400 ms, but one word
            Line("stop there please", after="line", delay_ms=500),  # from 4780 ms
        ]
    )
    session = await make_agent(turns=turns).run(source)
    first, second = session.turns  # "no" neither interrupted nor became a turn
    assert second.user_text == "stop there please"
    assert first.interrupted
    # The ASR's partials (on frame ends, every 250 ms of speech or more) give "stop" at
    # 60 ms, "stop there" at 580 ms.
    assert first.stamps["interruption_detected"] == pytest.approx(4780 + 580)


@pytest.mark.looptime
async def test_speaking_twice_quickly_gets_one_answer_to_the_latest(make_agent: Make) -> None:
    llm = RecordingLLM()
    source = SimSpeechSource(
        ["What's the weather like?", Line("and the time?", after="line", delay_ms=500)]
    )
    sink = PlainSink()
    session = make_agent(llm=llm).session(source, sink)
    metrics = await session.run()

    first, second = metrics.turns
    assert first.interrupted and first.heard_text == "" and "playout_start" not in first.stamps
    assert {"time_to_first_audio", "tts_ttfb"} <= set(first.cut_short)
    assert not second.interrupted and second.heard_text == REPLY
    assert llm.requests[-1] == [
        Message("user", "What's the weather like?"),
        Message("user", "and the time?"),
    ]
    assert session.history[-1] == Message("assistant", REPLY)
    # Only the second answer was ever heard.
    assert min(f.start_ms for f in sink.frames) == pytest.approx(second.stamps["playout_start"])
    # Cut-short stages stay out of the statistics; the completed turn's are in.
    assert metrics.summary()["time_to_first_audio_ms"]["count"] == 1


@pytest.mark.looptime
async def test_a_hundred_interruptions_leave_nothing_running(make_agent: Make) -> None:
    lines: list[str | Line] = ["What's the weather like?"]
    lines += [Line("stop it now", after="answer_start", delay_ms=400) for _ in range(100)]
    session = await make_agent().run(SimSpeechSource(lines))
    assert len(session.turns) == 101
    assert sum(t.interrupted for t in session.turns) == 100
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.looptime
async def test_time_to_first_audio_still_tiles_in_every_completed_turn(make_agent: Make) -> None:
    session = await make_agent().run(scenario("What's the weather like?"))
    # The interrupted first turn had played for 1.8 s: its time to first audio is whole.
    assert [t.cut_short for t in session.turns] == [["total"], [], []]
    for turn in session.turns:
        ttfa = turn.latency("time_to_first_audio")
        assert ttfa is not None
        assert sum(v or 0 for v in turn.stages().values()) == pytest.approx(ttfa, abs=1e-9)


def test_interruption_settings_are_validated() -> None:
    from voxpipe import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"\[turns\] min_interruption_ms"):
        load_config({"turns": {"min_interruption_ms": -1}})
    with pytest.raises(ConfigError, match=r"\[turns\] end_of_turn"):
        load_config({"turns": {"end_of_turn": "never"}})
