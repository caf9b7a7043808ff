"""When the user's turn ends: the VAD, the ASR's own endpointer, or whichever is first; v1
ASRs through the adapter; a final that never comes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from voxpipe import (
    AudioFrame,
    ConfigError,
    SimSpeechSource,
    Transcript,
    TurnSettings,
    Utterance,
    VoiceAgent,
)
from voxpipe.protocols import ASREvent
from voxpipe.streams import Channel

Make = Callable[..., VoiceAgent]
SPEECH_END = 2000.0  # "What's the weather like?" from 400 ms, 400 ms a word


class OwnEndpointASR:
    """A plugin API v1 ASR with its own endpointer: the final comes ``endpoint_ms`` after
    the words stop."""

    def __init__(self, endpoint_ms: float) -> None:
        self.endpoint_ms = endpoint_ms
        self.closed = False

    async def transcribe(self, audio: AsyncIterator[AudioFrame]) -> AsyncIterator[Transcript]:
        words, quiet = "", 0.0
        async for frame in audio:
            if frame.script:
                words, quiet = frame.script, 0.0
            elif words:
                quiet += frame.duration_ms
                if quiet >= self.endpoint_ms:
                    yield Transcript(words, True)
                    words = ""

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("mode", "asr_ms", "finalization_ms"),
    [
        ("vad", 100, 200),  # the VAD's 200 ms silence window decides, the final is in
        ("asr", 100, 100),  # the ASR's endpointer decides sooner
        ("first", 100, 100),
        ("vad", 300, 300),  # the turn waits for a slower ASR's final
        ("first", 300, 300),
    ],
)
@pytest.mark.looptime
async def test_end_of_turn_modes(
    make_agent: Make, mode: str, asr_ms: float, finalization_ms: float
) -> None:
    asr = OwnEndpointASR(asr_ms)
    agent = make_agent(asr=asr, turns=TurnSettings(endpoint_ms=200, end_of_turn=mode))
    session = await agent.run(SimSpeechSource(["What's the weather like?"]))
    (turn,) = session.turns
    assert turn.user_text == "What's the weather like?"
    assert turn.stamps["speech_end"] == pytest.approx(SPEECH_END)
    assert turn.latency("asr_finalization") == pytest.approx(finalization_ms)
    assert not asr.closed  # a shared backend object: the agent's owner closes it
    await agent.aclose()
    assert asr.closed


@pytest.mark.looptime
async def test_asr_end_of_turn_needs_an_asr_that_detects_it(make_agent: Make) -> None:
    agent = make_agent(turns=TurnSettings(end_of_turn="asr"))
    with pytest.raises(ConfigError, match=r'end_of_turn = "asr" needs an ASR.*"vad" or "first"'):
        await agent.run(SimSpeechSource(["hello"]))


class PartialOnly:
    """A v2 ASR that hears words but never sends a final transcript."""

    def listen(self) -> PartialOnlyStream:
        return PartialOnlyStream()

    async def aclose(self) -> None:
        return None


class PartialOnlyStream:
    def __init__(self) -> None:
        self.events: Channel[ASREvent] = Channel()

    def push(self, frame: AudioFrame) -> None:
        return None

    def speech_started(self, at_ms: float) -> None:
        self.events.put(Transcript("so what about", False))

    def speech_ended(self, utterance: Utterance) -> None:
        return None

    def end_input(self) -> None:
        self.events.close()

    def __aiter__(self) -> AsyncIterator[ASREvent]:
        return self.events

    async def aclose(self) -> None:
        self.events.close()


@pytest.mark.looptime
async def test_a_final_that_never_comes_ends_the_turn_with_what_was_heard(
    make_agent: Make,
) -> None:
    turns = TurnSettings(endpoint_ms=200, final_timeout_ms=1500)
    session = await make_agent(asr=PartialOnly(), turns=turns).run(
        SimSpeechSource(["What's the weather like?"], pause_ms=3000)
    )
    (turn,) = session.turns
    assert turn.user_text == "so what about"
    assert turn.stamps["asr_final"] == pytest.approx(SPEECH_END + 200 + 1500)


@pytest.mark.looptime
async def test_what_was_heard_when_the_input_ends_is_answered(make_agent: Make) -> None:
    session = await make_agent(asr=PartialOnly()).run(
        SimSpeechSource(["What's the weather like?"], pause_ms=300)
    )
    (turn,) = session.turns
    assert turn.user_text == "so what about" and turn.agent_text


class DeafVAD:
    """A VAD that hears nothing (a line too quiet for its threshold)."""

    def is_voiced(self, frame: AudioFrame) -> bool:
        return False


@pytest.mark.looptime
async def test_speech_only_the_asr_heard_is_still_answered(make_agent: Make) -> None:
    agent = make_agent(asr=OwnEndpointASR(300), vad=DeafVAD())
    session = await agent.run(SimSpeechSource(["What's the weather like?"]))
    (turn,) = session.turns
    assert turn.user_text == "What's the weather like?"
    # No VAD to date it: the speech is placed where the ASR's final came.
    assert turn.stamps["speech_start"] == turn.stamps["speech_end"] == turn.stamps["asr_final"]
    assert turn.stamps["asr_final"] == pytest.approx(SPEECH_END + 300)
