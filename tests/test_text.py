"""PhraseChunker: where streamed LLM text is cut into phrases for TTS (voxpipe.text)."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from voxpipe.text import PhraseChunker, PhrasePolicy


def chunk_whole(text: str, policy: PhrasePolicy | None = None) -> list[str]:
    """All phrases of ``text`` fed in one delta, flush included."""
    chunker = PhraseChunker(policy)
    return chunker.feed(text) + chunker.flush()


def chunk_stream(deltas: list[str], policy: PhrasePolicy | None = None) -> list[str]:
    chunker = PhraseChunker(policy)
    phrases: list[str] = []
    for delta in deltas:
        phrases += chunker.feed(delta)
    return phrases + chunker.flush()


def llm_tokens(text: str) -> list[str]:
    """Split like an LLM tokenizer: words carry their leading space, punctuation stands alone
    ("Hello", "!", " How")."""
    tokens = re.findall(r"\s*\w+|\s*[^\w\s]", text)
    assert "".join(tokens) == text
    return tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Sentence ends.
        ("Hello there. How are you?", ["Hello there.", "How are you?"]),
        ("Yes! Really? Okay.", ["Yes!", "Really?", "Okay."]),
        ("It is sunny today.", ["It is sunny today."]),
        # The first phrase may end at a clause mark once it has min_words (2) words.
        ("Of course, the answer is yes, and more.", ["Of course,", "the answer is yes, and more."]),
        ("Here it is: the plan.", ["Here it is:", "the plan."]),
        ("Right then; we go.", ["Right then;", "we go."]),
        # ... but not at a one-word "Well,".
        ("Well, I think, maybe.", ["Well, I think,", "maybe."]),
        ("Sure, I can help with that.", ["Sure, I can help with that."]),
        # The first phrase ends after first_max_words (6) words without punctuation.
        (
            "one two three four five six seven eight nine.",
            ["one two three four five six", "seven eight nine."],
        ),
        # Later phrases are not cut at commas nor after 6 words.
        (
            "Hi. So, one two three four five six seven eight nine ten.",
            ["Hi.", "So, one two three four five six seven eight nine ten."],
        ),
        (
            "Okay sure. Then, after that, we will go home and rest, finally.",
            ["Okay sure.", "Then, after that, we will go home and rest, finally."],
        ),
        # Decimals and thousands separators are not breaks.
        ("Pi is 3.14 today.", ["Pi is 3.14 today."]),
        ("It costs 1,000 dollars.", ["It costs 1,000 dollars."]),
        # Abbreviations are not sentence ends.
        ("Dr. Smith is in. Call him.", ["Dr. Smith is in.", "Call him."]),
        ("Ask Mrs. Jones now.", ["Ask Mrs. Jones now."]),
        ("Fruit e.g. apples are good.", ["Fruit e.g. apples are good."]),
        # Punctuation glued to the next word is no break.
        ("Visit example.com today.", ["Visit example.com today."]),
        # Whatever has no end comes out at flush.
        ("no end here", ["no end here"]),
        ("", []),
        ("   ", []),
    ],
)
def test_default_policy(text: str, expected: list[str]) -> None:
    assert chunk_whole(text) == expected


@pytest.mark.parametrize(
    ("policy", "text", "expected"),
    [
        (PhrasePolicy(min_words=1), "Well, okay then.", ["Well,", "okay then."]),
        (
            PhrasePolicy(min_words=3),
            "Of course, I will, gladly.",
            ["Of course, I will,", "gladly."],
        ),
        (
            PhrasePolicy(first_at_clause=False),
            "Well then, here we go now.",
            ["Well then, here we go now."],
        ),
        (
            PhrasePolicy(first_max_words=None),
            "one two three four five six seven eight",
            ["one two three four five six seven eight"],
        ),
        (
            PhrasePolicy(first_max_words=2),
            "one two three four. five six seven eight.",
            ["one two", "three four.", "five six seven eight."],
        ),
        # max_words caps every phrase, first and later.
        (
            PhrasePolicy(first_max_words=None, max_words=5),
            "a b c d e f g h i j k l",
            ["a b c d e", "f g h i j", "k l"],
        ),
        (PhrasePolicy(first_max_words=2, max_words=3), "a b c d e f g.", ["a b", "c d e", "f g."]),
        # A sentence end inside the cap still wins.
        (
            PhrasePolicy(max_words=5),
            "Go. a b c. d e f g h i.",
            ["Go.", "a b c.", "d e f g h", "i."],
        ),
    ],
)
def test_custom_policies(policy: PhrasePolicy, text: str, expected: list[str]) -> None:
    assert chunk_whole(text, policy) == expected


def test_first_max_words_needs_the_word_to_end() -> None:
    chunker = PhraseChunker()
    assert chunker.feed("one two three four five six") == []  # "six" may go on ("sixty")
    assert chunker.feed("ty") == []
    assert chunker.feed(" seven") == ["one two three four five sixty"]
    assert chunker.flush() == ["seven"]
    chunker = PhraseChunker()
    assert chunker.feed("one two three four five six") == []
    assert chunker.feed(" seven") == ["one two three four five six"]
    assert chunker.flush() == ["seven"]


def test_digits_before_period_at_buffer_end_wait_for_more() -> None:
    chunker = PhraseChunker()
    assert chunker.feed("It is 72.") == []  # may become "72.5"
    assert chunker.feed("5 degrees.") == ["It is 72.5 degrees."]
    chunker = PhraseChunker()
    assert chunker.feed("It is 72.") == []
    assert chunker.feed(" Then rain.") == ["It is 72.", "Then rain."]
    chunker = PhraseChunker()
    assert chunker.feed("It is 72.") == []
    assert chunker.flush() == ["It is 72."]


def test_words_before_period_at_buffer_end_cut_at_once() -> None:
    chunker = PhraseChunker()
    assert chunker.feed("It is hot.") == ["It is hot."]
    assert chunker.feed(" Very") == []
    assert chunker.feed(" hot!") == ["Very hot!"]
    assert chunker.flush() == []


def test_digit_comma_at_buffer_end_waits() -> None:
    chunker = PhraseChunker()
    assert chunker.feed("I have 1,") == []  # may become "1,000"
    assert chunker.feed("000 apples.") == ["I have 1,000 apples."]


def test_abbreviation_at_buffer_end_waits() -> None:
    chunker = PhraseChunker()
    assert chunker.feed("Dr.") == []
    assert chunker.feed(" Who is here.") == ["Dr. Who is here."]


def test_flush_returns_the_remainder_once() -> None:
    chunker = PhraseChunker()
    assert chunker.feed("Sure thing. And then") == ["Sure thing."]
    assert chunker.flush() == ["And then"]
    assert chunker.flush() == []
    assert PhraseChunker().flush() == []


def test_first_phrase_rules_apply_only_once() -> None:
    chunker = PhraseChunker()
    assert chunker.feed("Of course, yes") == ["Of course,"]
    # The second phrase is not cut at a comma nor after six words.
    assert chunker.feed(", and one two three four five six seven, eight") == []
    assert chunker.flush() == ["yes, and one two three four five six seven, eight"]


def test_a_new_chunker_starts_with_first_phrase_rules_again() -> None:
    for _ in range(2):
        assert chunk_whole("Of course, the answer is yes.") == ["Of course,", "the answer is yes."]


def test_no_streaming_policy_waits_for_the_whole_reply() -> None:
    chunker = PhraseChunker(PhrasePolicy(stream=False))
    assert chunker.feed("Hello there. ") == []
    assert chunker.feed("How are you?") == []
    assert chunker.flush() == ["Hello there. How are you?"]


STREAMED_TEXTS = [
    "Hello! How are you today? I am fine.",
    "Of course, the answer is yes, and more.",
    "Well, I think, maybe. Yes.",
    "one two three four five six seven eight nine ten eleven.",
    "Pi is 3.14 today. It costs 1,000 dollars, or 72.5 euros.",
    "Dr. Smith is in. Ask Mrs. Jones, she knows. Goodbye!",
    "It is 72. Then rain; lots of it: all day.",
    "No punctuation at the end of this long reply at all here",
]


@pytest.mark.parametrize("text", STREAMED_TEXTS)
def test_streaming_tokens_matches_whole_text(text: str) -> None:
    tokens = llm_tokens(text)
    assert len(tokens) > 5
    assert chunk_stream(tokens) == chunk_whole(text)


@pytest.mark.parametrize("text", STREAMED_TEXTS)
def test_streaming_characters_matches_whole_text(text: str) -> None:
    assert chunk_stream(list(text)) == chunk_whole(text)


def test_streaming_yields_phrases_as_soon_as_they_end() -> None:
    chunker = PhraseChunker()
    got = [chunker.feed(token) for token in ["Hello", "!", " How", " are", " you", "?", " Fine"]]
    assert got == [[], ["Hello!"], [], [], [], ["How are you?"], []]
    assert chunker.flush() == ["Fine"]


@pytest.mark.parametrize(
    "bad",
    [{"first_max_words": 0}, {"min_words": 0}, {"max_words": 0}, {"max_word": 10}],
)
def test_policy_validation(bad: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        PhrasePolicy(**bad)


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [
        (["Wait.", "..", " Go on."], ["Wait.", "Go on."]),  # a lone ".." is not a phrase
        (["Really?", "!"], ["Really?"]),
        (["Use e.", "g. a map."], ["Use e.g. a map."]),  # "e." waits: it may become "e.g."
    ],
)
def test_punctuation_split_across_deltas_never_makes_an_empty_phrase(
    deltas: list[str], expected: list[str]
) -> None:
    assert chunk_stream(deltas) == expected
