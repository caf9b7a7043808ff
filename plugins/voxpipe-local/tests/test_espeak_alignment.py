"""The espeak TTS's word alignment: the pieces are the text, their times are the audio's,
they come before the audio they end in, and a session interrupted mid-reply knows which
words were heard."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import ClassVar

import numpy as np
import pytest

from voxpipe import Line, SimSpeechSource, TurnSettings, VoiceAgent
from voxpipe.audio import AudioFrame
from voxpipe.bench import REPLY
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Alignment, TTSOutput
from voxpipe.sim import SimASR, SimASROptions, SimLLM, SimLLMOptions
from voxpipe.testing.contracts import check_alignment
from voxpipe_local.espeak import Engine, EspeakOptions, EspeakTTS, WordStart

TEXTS = [
    "Hello there. How can I help you today?",
    "  ...Hello, world!  How are you?",
    "It is 3:05 PM.",
    "café naïve déjà vu",
    "Two sentences, one pause. Then 42 more words! Right?",
]
#: The answer to the user's interruption.
AFTER = "Okay."
WINDOW_MS = 10  # energy is measured over windows this long


async def synthesized(
    text: str, sample_rate: int = 16_000, engine: Engine | None = None
) -> list[TTSOutput]:
    tts = EspeakTTS(EspeakOptions(), BackendContext(sample_rate, 20), engine=engine)
    return [item async for item in tts.synthesize(text)]


def pieces(items: Sequence[TTSOutput]) -> list[Alignment]:
    return [item for item in items if isinstance(item, Alignment)]


def window_db(items: Sequence[TTSOutput]) -> list[float]:
    """The audio's energy in each window of ``WINDOW_MS``, dB."""
    frames = [item for item in items if isinstance(item, AudioFrame)]
    audio, rate = np.concatenate([f.samples for f in frames]), frames[0].sample_rate
    size = rate * WINDOW_MS // 1000
    return [AudioFrame(audio[i : i + size], rate).energy_db for i in range(0, len(audio), size)]


def voice_onsets(db: Sequence[float], min_pause_ms: float = 80) -> list[float]:
    """Where the voice starts (ms): at the first loud window after the audio's start or
    after a pause of ``min_pause_ms`` or more."""
    onsets, quiet_ms = [], float("inf")
    for i, level in enumerate(db):
        if level > -40 and quiet_ms >= min_pause_ms:
            onsets.append(float(i * WINDOW_MS))
        quiet_ms = quiet_ms + WINDOW_MS if level < -60 else (quiet_ms if level <= -40 else 0)
    return onsets


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("text", TEXTS)
async def test_the_pieces_joined_are_the_text(text: str) -> None:
    items = await synthesized(text)
    check_alignment(items, text, 20)  # the kit's checks
    aligned = pieces(items)
    assert "".join(a.text for a in aligned) == text  # exactly, spaces and punctuation
    assert len(aligned) >= 3


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_each_word_is_one_piece_with_what_follows_it() -> None:
    items = await synthesized("  ...Hello, world!  How are you?")
    assert [a.text for a in pieces(items)] == ["  ...Hello, ", "world!  ", "How ", "are ", "you?"]
    items = await synthesized("café naïve déjà vu")
    assert [a.text for a in pieces(items)][:2] == ["café ", "naïve "]  # characters, not bytes


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("sample_rate", [8_000, 24_000, 48_000])
@pytest.mark.parametrize("text", TEXTS)
async def test_word_starts_increase_within_the_audio(text: str, sample_rate: int) -> None:
    items = await synthesized(text, sample_rate)
    aligned = pieces(items)
    audio_ms = sum(item.duration_ms for item in items if isinstance(item, AudioFrame))
    starts = [a.start_ms for a in aligned]
    assert starts == sorted(set(starts)) and starts[0] >= 0
    # Each piece ends where the next starts; the last where espeak-ng's audio does (the
    # stream's last frame is padded to a whole frame).
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(aligned))
    assert audio_ms - 20 <= aligned[-1].end_ms <= audio_ms
    # Each piece holds speech: no word is placed in a silence.
    db = window_db(items)
    for a in aligned:
        inside = db[int(a.start_ms) // WINDOW_MS : int(a.end_ms) // WINDOW_MS]
        assert max(inside, default=-100) > -30, f"{a} holds no speech"


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("text", TEXTS)
async def test_words_start_where_the_voice_does(text: str) -> None:
    """The first word starts within 60 ms of the first voiced audio, and so does the word
    after each pause (a sentence's or a comma's)."""
    items = await synthesized(text)
    starts = [a.start_ms for a in pieces(items)]
    onsets = voice_onsets(window_db(items))
    assert abs(starts[0] - onsets[0]) <= 60
    for onset in onsets:
        nearest = min(starts, key=lambda start: abs(start - onset))
        assert -10 <= onset - nearest <= 60, f"the voice starts at {onset} ms, no word near"


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("sample_rate", [8_000, 16_000, 48_000])
@pytest.mark.parametrize("text", TEXTS)
async def test_a_piece_comes_before_the_audio_it_ends_in(text: str, sample_rate: int) -> None:
    items = await synthesized(text, sample_rate)
    yielded_ms = 0.0
    for item in items:
        if isinstance(item, AudioFrame):
            yielded_ms += item.duration_ms
        else:
            assert yielded_ms < item.end_ms, f"{item} came after {yielded_ms} ms of audio"


class ScriptedEngine:
    """An engine that sends its sink a script of word starts and 100 ms chunks of audio."""

    sample_rate = 22_050

    def __init__(self, script: Sequence[WordStart | None]) -> None:
        self.script = script  # None: a chunk of audio

    def has_voice(self, voice: str) -> bool:
        return True

    def synthesize(
        self, text: str, options: EspeakOptions, sink: Callable[[bytes | WordStart], bool]
    ) -> None:
        chunk = np.full(2_205, 1_000, dtype="<i2").tobytes()
        for step in self.script:
            sink(chunk if step is None else step)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_word_placed_no_later_in_the_text_joins_the_piece_before() -> None:
    script = [
        WordStart(0, 0.0),
        None,
        WordStart(0, 50.0),  # the same position again (espeak-ng: the two words of 日本)
        WordStart(4, 100.0),
        None,
        WordStart(2, 150.0),  # back in the text
        WordStart(8, 200.0),
        None,
        WordStart(13, 250.0),  # past the text's end
    ]
    items = await synthesized("one two three", engine=ScriptedEngine(script))
    assert pieces(items) == [
        Alignment("one ", 0.0, 100.0),
        Alignment("two ", 100.0, 200.0),
        Alignment("three", 200.0, 300.0),
    ]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_engine_without_word_starts_gives_no_alignment() -> None:
    """As the espeak-ng command: audio only."""
    items = await synthesized("one two three", engine=ScriptedEngine([None, None, None]))
    assert not pieces(items) and len(items) == 15  # 300 ms in 20 ms frames
    items = await synthesized("?!")  # the library speaks no word of it: a moment's silence
    assert not pieces(items) and items


class RecordingEspeak(EspeakTTS):
    """EspeakTTS that keeps each phrase it synthesised and what it gave."""

    phrases: ClassVar[list[tuple[str, list[TTSOutput]]]] = []

    async def synthesize(self, text: str) -> AsyncGenerator[TTSOutput, None]:
        self.phrases.append((text, []))
        async for item in super().synthesize(text):
            self.phrases[-1][1].append(item)
            yield item


def on_reply_time(phrases: Sequence[Sequence[TTSOutput]]) -> list[Alignment]:
    """The phrases' pieces as the session puts them on the reply's audio time: each phrase's
    after the audio of the ones before it, a space between phrases."""
    offset, moved = 0.0, []
    for i, items in enumerate(phrases):
        for j, a in enumerate(pieces(items)):
            text = " " + a.text if i and not j else a.text
            moved.append(Alignment(text, a.start_ms + offset, a.end_ms + offset))
        offset += sum(item.duration_ms for item in items if isinstance(item, AudioFrame))
    return moved


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("delay_ms", [900, 2000, 3700])
async def test_an_interrupted_turn_heard_the_words_played_in_full(delay_ms: float) -> None:
    RecordingEspeak.phrases = []
    agent = VoiceAgent(
        SimASR(SimASROptions(finalization_ms=100)),
        SimLLM(
            SimLLMOptions(
                first_token_ms=300,
                tokens_per_second=50,
                responses={"weather": REPLY, "default": AFTER},
            )
        ),
        lambda: RecordingEspeak(EspeakOptions()),
        turns=TurnSettings(endpoint_ms=200),
    )
    source = SimSpeechSource(
        [
            "What's the weather like?",
            Line("wait stop please", after="answer_start", delay_ms=delay_ms),
        ]
    )
    first = (await agent.run(source)).turns[0]
    assert first.interrupted
    played_ms = first.stamps["output_silent"] - first.stamps["playout_start"]
    assert delay_ms < played_ms < delay_ms + 400  # the user talked over it for 300 ms

    aligned = on_reply_time([items for text, items in RecordingEspeak.phrases if text != AFTER])
    # What was synthesised of the reply before it stopped: the session's alignment.
    assert REPLY.startswith(" ".join("".join(a.text for a in aligned).split()))
    played = [a.text for a in aligned if a.end_ms <= played_ms]
    assert 0 < len(played) < len(aligned)  # stopped mid-reply
    assert first.heard_text == "".join(played).strip()
    # The next word had started playing: the user heard part of it, and it does not count.
    assert aligned[len(played)].start_ms < played_ms
