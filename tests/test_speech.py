"""The speech stage's helpers: phrases fed from a text stream, and the heard text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from voxpipe import AudioFrame, PhrasePolicy
from voxpipe.protocols import Alignment, TTSOutput
from voxpipe.sim import SimTTS
from voxpipe.speech import DEFAULT_MS_PER_CHAR, SpokenText, synthesize_phrases, whole_words


async def deltas(*parts: str) -> AsyncIterator[str]:
    for part in parts:
        yield part


@pytest.mark.looptime
async def test_phrases_are_synthesized_as_they_complete_with_alignment_on_stream_time() -> None:
    seen: list[str] = []
    items = [
        item
        async for item in synthesize_phrases(
            SimTTS(),
            deltas("Hello", " there,", " how", " are", " you", " today?"),
            PhrasePolicy(),
            seen.append,
        )
    ]
    assert seen == ["Hello there,", "how are you today?"]
    aligned = [i for i in items if isinstance(i, Alignment)]
    assert "".join(a.text for a in aligned) == "Hello there, how are you today?"
    first_phrase_ms = sum(
        i.duration_ms for i in items[: items.index(aligned[2])] if isinstance(i, AudioFrame)
    )
    assert aligned[2].start_ms == pytest.approx(first_phrase_ms)  # "how" after "Hello there,"


def test_whole_words_never_cut_a_word() -> None:
    assert whole_words("The weather is sunny", 13) == "The weather"
    assert whole_words("The weather is sunny", 14) == "The weather is"
    assert whole_words("The weather is sunny", 3) == "The"
    assert whole_words("The weather is sunny", 2) == ""
    assert whole_words("The weather is sunny", 99) == "The weather is sunny"


def test_heard_text_follows_the_alignment_when_there_is_one() -> None:
    spoken = SpokenText()
    for i, word in enumerate(["One ", "two ", "three."]):
        spoken.align(Alignment(word, i * 300.0, (i + 1) * 300.0))
    spoken.produced_ms = 900
    assert spoken.heard(599) == "One"
    assert spoken.heard(600) == "One two"
    assert spoken.heard(900) == "One two three."


def test_without_alignment_each_phrase_is_spread_over_its_audio() -> None:
    spoken = SpokenText()
    spoken.begin("Sure, I can help.")  # 17 characters over 1000 ms
    spoken.produced_ms = 1000
    spoken.begin("Give me a second please.")  # 24 characters over 1200 ms
    spoken.produced_ms = 2200
    spoken.done = True
    assert spoken.heard(500) == "Sure, I"  # 8.5 characters: "Sure, I " then a cut word
    assert spoken.heard(1000) == "Sure, I can help."
    assert spoken.heard(1600) == "Sure, I can help. Give me a"  # half of the second
    assert spoken.heard(5000) == "Sure, I can help. Give me a second please."


def test_a_phrase_still_being_synthesized_is_measured_at_the_rate_so_far() -> None:
    spoken = SpokenText()
    spoken.begin("abcd efgh")  # 9 characters in 900 ms: 100 ms a character
    spoken.produced_ms = 900
    spoken.begin("ijkl mnop qrst")  # only 300 ms of its audio exist yet
    spoken.produced_ms = 1200
    assert spoken.heard(1400) == "abcd efgh ijkl"  # 5 characters at 100 ms, not 14 in 300
    fresh = SpokenText()
    fresh.begin("one two three four")
    fresh.produced_ms = 100
    assert fresh.heard(100) == ""  # 100 ms at the default rate is not a word yet
    assert fresh.heard(4 * DEFAULT_MS_PER_CHAR) == "one"


class Words(SimTTS):
    """A per-phrase TTS that says which phrases it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[TTSOutput]:
        self.asked.append(text)
        async for item in super().synthesize(text):
            yield item


@pytest.mark.looptime
async def test_the_serial_policy_asks_for_the_whole_reply_at_the_end() -> None:
    tts = Words()
    async for _ in synthesize_phrases(tts, deltas("One.", " Two."), PhrasePolicy(stream=False)):
        pass
    assert tts.asked == ["One. Two."]
