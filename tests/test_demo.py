"""The demo's scenario pieces: a simulated user who speaks in a TTS's voice, and matching what
was said to what was heard."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from voxpipe import VoiceAgent, load_config
from voxpipe.audio import AudioFrame, resample
from voxpipe.clock import SessionClock
from voxpipe.demo import Heard, said_and_heard, words
from voxpipe.hookspecs import BackendContext
from voxpipe.io import Line, SimSpeechSource
from voxpipe.io.simspeech import Said
from voxpipe.metrics import TurnMetrics
from voxpipe.sim.tts import SimTTS, SimTTSOptions


class RecordingVoice(SimTTS):
    """The sim TTS at 24 kHz, noting what it was asked and whether it was closed."""

    def __init__(self) -> None:
        super().__init__(SimTTSOptions(first_chunk_ms=0), BackendContext(24_000, 20))
        self.asked: list[str] = []
        self.closed = False

    def synthesize(self, text: str) -> Any:
        self.asked.append(text)
        return super().synthesize(text)

    async def aclose(self) -> None:
        self.closed = True


async def voice_audio(text: str) -> np.ndarray:
    voice = RecordingVoice()
    items = [item async for item in voice.synthesize(text)]
    return np.concatenate([i.samples for i in items if isinstance(i, AudioFrame)])


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_voiced_line_is_the_voices_speech_at_the_source_rate() -> None:
    voice = RecordingVoice()
    lines = ["one two three", Line("one two three", after="line", delay_ms=200)]
    source = SimSpeechSource(lines, sample_rate=16_000, lead_ms=100, voice=voice)
    frames = [frame async for frame in source.frames(SessionClock())]
    assert voice.asked == ["one two three"] and voice.closed  # once per text, then closed
    assert {(f.sample_rate, len(f.samples)) for f in frames} == {(16_000, 320)}
    speech = resample(await voice_audio("one two three"), 24_000, 16_000)
    first, second = source.said
    assert (first.text, first.start_ms) == ("one two three", 100.0)
    assert first.end_ms - first.start_ms == 20 * -(-len(speech) // 320)  # whole frames
    assert second.start_ms == first.end_ms + 200
    said = np.concatenate(
        [f.samples for f in frames if first.start_ms <= f.start_ms < first.end_ms]
    )
    assert np.array_equal(said[: len(speech)], speech)  # the voice's audio, not a simulation
    assert not said[len(speech) :].any()


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_conversation_with_a_voiced_user_is_heard_and_answered() -> None:
    voice = RecordingVoice()
    source = SimSpeechSource(["hello there", "what time is it"], voice=voice)
    metrics = await VoiceAgent.from_config(load_config({})).run(source)
    assert [t.user_text for t in metrics.turns] == ["hello there", "what time is it"]
    assert [s.text for s in source.said] == ["hello there", "what time is it"]
    heard = said_and_heard(source.said, metrics.turns)
    assert [h.exact for h in heard] == [True, True]


def turn(index: int, text: str, start: float, end: float) -> TurnMetrics:
    t = TurnMetrics(index=index, user_text=text)
    t.stamps.update(speech_start=start, speech_end=end)
    return t


def test_each_line_is_matched_to_the_turns_that_overlap_it() -> None:
    said = [Said("Hello there!", 0, 1000), Said("Bye.", 3000, 3500), Said("Eh?", 6000, 6200)]
    turns = [
        turn(1, "hello there", 40, 980),
        turn(2, "by", 3020, 3200),
        turn(3, "bye", 3300, 3480),  # the ASR split one line into two turns
    ]
    assert said_and_heard(said, turns) == [
        Heard("Hello there!", "hello there"),
        Heard("Bye.", "by bye"),
        Heard("Eh?", None),
    ]
    assert [h.exact for h in said_and_heard(said, turns)] == [True, False, False]


def test_words_are_what_an_asr_writes() -> None:
    assert words("What's the weather like?") == "what's the weather like"
    assert words("  Hello,   how are you today?!") == "hello how are you today"
