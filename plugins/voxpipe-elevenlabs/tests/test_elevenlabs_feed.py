"""What goes over the stream-input socket for a given text (``TextFeed``), and how the
server's character timings become ``Alignment`` (``stream._alignment``)."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from voxpipe.errors import ProviderError
from voxpipe.protocols import Alignment
from voxpipe_elevenlabs._feed import END, FLUSH, TextFeed
from voxpipe_elevenlabs.stream import _alignment

REPLY = "Hello! I'm doing great, thanks for asking.\nHow can I help you today?"


def messages(deltas: list[str], flush_at: Any = "phrase") -> list[dict[str, Any]]:
    feed = TextFeed(flush_at)
    sent = [m for delta in deltas for m in feed.push(delta)]
    return sent + feed.end()


def splits(text: str) -> list[list[str]]:
    """``text`` cut into deltas every way an LLM might: whole, per word, per character, at
    random places."""
    cuts = [[text], re.findall(r"\s*\S+", text), list(text)]
    for seed in range(5):
        rng = random.Random(seed)
        at = sorted(rng.sample(range(1, len(text)), 12))
        cuts.append([text[i:j] for i, j in zip([0, *at], [*at, len(text)], strict=True)])
    return cuts


def phrases(sent: list[dict[str, Any]]) -> list[str]:
    """The text between flushes, as the server is asked to speak it."""
    text = " ".join("|" if m == FLUSH else m["text"] for m in sent)
    return [" ".join(p.split()) for p in text.split("|")]


def test_any_split_of_the_text_speaks_the_same_phrases() -> None:
    expected = phrases(messages(re.findall(r"\s*\S+", REPLY)))
    for deltas in splits(REPLY):
        assert phrases(messages(deltas)) == expected, deltas


def test_words_go_out_ending_in_one_space_with_a_flush_after_each_phrase() -> None:
    sent = messages(re.findall(r"\s*\S+", REPLY))
    assert all(m in (FLUSH, END) or re.fullmatch(r"\S+ ", m["text"]) for m in sent)
    spoken = "".join(m["text"] for m in sent)
    assert spoken.split() == REPLY.split()
    # Phrases as the session cuts them for a per-phrase TTS: the first as soon as it ends,
    # then sentences (a line break ends one too).
    assert phrases(sent) == [
        "Hello!",
        "I'm doing great, thanks for asking.",
        "How can I help you today?",
        "",
    ]
    first_clause = phrases(messages(["Sure", " thing,", " I", " can", " do", " that.", " Yes."]))
    assert first_clause == ["Sure thing,", "I can do that.", "Yes.", ""]
    assert sent[-1] == END


def test_sentence_flushes_skip_the_early_first_phrase() -> None:
    sent = messages(
        ["The weather is sunny with a temperature of 72 degrees.", " Anything?"], "sentence"
    )
    flushes = [i for i, m in enumerate(sent) if m == FLUSH]
    assert "".join(m["text"] for m in sent[: flushes[0]]).split()[-1] == "degrees."


@pytest.mark.parametrize(
    "deltas",
    [
        ["It is", " 3", ".", "5", " degrees"],  # a decimal
        ["Dr", ".", " Smith", " is", " in"],  # a title
        ["Meet", " at", " 10", " a.m", ".", " tomorrow"],  # an abbreviation
    ],
)
def test_a_dot_that_ends_no_sentence_is_no_flush(deltas: list[str]) -> None:
    assert FLUSH not in messages(deltas, "sentence")[:-2]  # only the end's own


def test_text_stopping_after_a_sentence_mark_is_spoken_if_it_pauses() -> None:
    feed = TextFeed()
    assert feed.push("Hello") == [] and not feed.at_sentence_mark
    assert feed.push(" there.") == [{"text": "Hello "}]
    assert feed.at_sentence_mark  # "there." may be "3." of "3.5": it waits for what follows
    assert feed.pause() == [{"text": "there. "}, FLUSH]
    assert not feed.at_sentence_mark
    assert feed.push(" How") == []
    assert feed.end() == [{"text": "How "}, END]  # the end makes the server speak the rest


def test_no_text_is_only_the_end() -> None:
    feed = TextFeed()
    assert feed.push("  ") == [] and feed.end() == [END] and not feed.spoke


def timing(chars: str, starts: list[Any], durations: list[Any]) -> dict[str, Any]:
    return {"chars": list(chars), "charStartTimesMs": starts, "charDurationsMs": durations}


def test_character_times_move_onto_the_streams_audio_time() -> None:
    message = {"audio": "AAAA", "alignment": timing("Hi ", [0, 40, 90], [40, 50, 30])}
    assert _alignment(message, 1500.0) == [
        Alignment("H", 1500.0, 1540.0),
        Alignment("i", 1540.0, 1590.0),
        Alignment(" ", 1590.0, 1620.0),
    ]


def test_the_text_as_sent_wins_over_its_normalized_form() -> None:
    message = {
        "alignment": timing("72", [0, 100], [100, 100]),
        "normalizedAlignment": timing("seventy two", [i * 18 for i in range(11)], [18] * 11),
    }
    assert "".join(a.text for a in _alignment(message, 0.0)) == "72"
    del message["alignment"]
    assert "".join(a.text for a in _alignment(message, 0.0)) == "seventy two"
    assert _alignment({"audio": "AAAA", "alignment": None}, 0.0) == []


@pytest.mark.parametrize(
    "bad",
    [
        timing("Hi", [0], [40, 50]),  # lists of different lengths
        timing("Hi", [0, "40"], [40, 50]),  # a time that is no number
        timing("Hi", [0, -5], [40, 50]),  # a negative time
        timing("Hi", [0, float("nan")], [40, 50]),
        {"chars": "Hi", "charStartTimesMs": [0, 1], "charDurationsMs": [1, 1]},
        ["H", "i"],
    ],
)
def test_malformed_timings_are_provider_errors(bad: Any) -> None:
    with pytest.raises(ProviderError, match="elevenlabs stream-input: malformed response"):
        _alignment({"alignment": bad}, 0.0)
