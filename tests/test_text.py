"""PhraseChunker: where streamed LLM text is cut into phrases for TTS (voxpipe.text)."""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from voxpipe.text import PhraseChunker, PhrasePolicy, SpeakableStream, speakable


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
            "Go. aa bb cc. dd ee ff gg hh ii.",
            ["Go.", "aa bb cc.", "dd ee ff gg hh", "ii."],
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
    assert chunker.feed("5 degrees. ") == ["It is 72.5 degrees."]
    chunker = PhraseChunker()
    assert chunker.feed("It is 72.") == []
    assert chunker.feed(" Then rain.") == ["It is 72."]
    assert chunker.flush() == ["Then rain."]
    chunker = PhraseChunker()
    assert chunker.feed("It is 72.") == []
    assert chunker.flush() == ["It is 72."]


def test_a_mark_at_buffer_end_waits_for_the_next_character() -> None:
    chunker = PhraseChunker()
    assert chunker.feed("It is hot.") == []  # may be "hot.com", or "hot." with a quote
    assert chunker.feed(" Very") == ["It is hot."]
    assert chunker.feed(" hot!") == []
    assert chunker.flush() == ["Very hot!"]


def test_digit_comma_at_buffer_end_waits() -> None:
    chunker = PhraseChunker()
    assert chunker.feed("I have 1,") == []  # may become "1,000"
    assert chunker.feed("000 apples. ") == ["I have 1,000 apples."]


def test_abbreviation_at_buffer_end_waits() -> None:
    chunker = PhraseChunker()
    assert chunker.feed("Dr.") == []
    assert chunker.feed(" Who is here.") == []
    assert chunker.flush() == ["Dr. Who is here."]


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
    # Each sentence end is certain once the character after it has come.
    assert got == [[], [], ["Hello!"], [], [], [], ["How are you?"]]
    assert chunker.flush() == ["Fine"]


@pytest.mark.parametrize(
    "bad",
    [
        {"first_max_words": 0},
        {"min_words": 0},
        {"max_words": 0},
        {"max_word": 10},
        {"first_max_chars": 0},
        {"first_max_chars": 1001},
        {"max_chars": 0},
        {"max_chars": 1001},
    ],
)
def test_policy_validation(bad: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        PhrasePolicy(**bad)


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [
        (["Wait.", "..", " Go on."], ["Wait...", "Go on."]),  # an ellipsis, as in one delta
        (["Really?", "!"], ["Really?!"]),
        (["Okay", ".", ".", " ", "..."], ["Okay.. ..."]),  # no lone "..." phrase
        (["Use e.", "g. a map."], ["Use e.g. a map."]),  # "e." waits: it may become "e.g."
    ],
)
def test_punctuation_split_across_deltas_never_makes_an_empty_phrase(
    deltas: list[str], expected: list[str]
) -> None:
    assert chunk_stream(deltas) == expected


# ---- Each rule holds whole, and streamed character by character, LLM token by token and
# ---- word by word (SimLLM's deltas).


def words_with_leading_space(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*$|\s*\S+", text) or [text]


SPLITS: dict[str, Callable[[str], list[str]]] = {
    "whole": lambda text: [text],
    "chars": list,
    "tokens": lambda text: re.findall(r"\s*\w+|\s*[^\w\s]|\s+$", text) or [text],
    "words": words_with_leading_space,
}


def assert_phrases(text: str, expected: list[str], policy: PhrasePolicy | None = None) -> None:
    for name, split in SPLITS.items():
        deltas = split(text)
        assert "".join(deltas) == text
        assert chunk_stream(deltas, policy) == expected, name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # CJK: 。！？．｡ end a sentence with no space after them.
        ("你好。今天天气很好！我们走吧？", ["你好。", "今天天气很好！", "我们走吧？"]),
        ("はい。わかりました．ありがとう｡", ["はい。", "わかりました．", "ありがとう｡"]),
        # Devanagari danda and double danda, Urdu full stop, Arabic question mark.
        ("नमस्ते। आप कैसे हैं? मैं ठीक हूँ॥", ["नमस्ते।", "आप कैसे हैं?", "मैं ठीक हूँ॥"]),
        ("شکریہ۔ آپ کیسے ہیں؟", ["شکریہ۔", "آپ کیسے ہیں؟"]),
        ("مرحبا، كيف حالك؟ أنا بخير.", ["مرحبا، كيف حالك؟", "أنا بخير."]),
        # Armenian full stop, Ethiopic full stop and question mark, Greek question mark,
        # Myanmar, Tibetan and Khmer sentence marks.
        ("Բարեւ։ Ինչպես ես։", ["Բարեւ։", "Ինչպես ես։"]),
        ("ሰላም። እንዴት ነህ፧", ["ሰላም።", "እንዴት ነህ፧"]),
        ("Τι κάνεις\u037e Καλά.", ["Τι κάνεις\u037e", "Καλά."]),
        ("မင်္ဂလာပါ။ နေကောင်းလား။", ["မင်္ဂလာပါ။", "နေကောင်းလား။"]),
        ("བཀྲ་ཤིས་བདེ་ལེགས། ཁྱེད་རང་།", ["བཀྲ་ཤིས་བདེ་ལེགས།", "ཁྱེད་རང་།"]),
        ("សួស្តី។ សុខសប្បាយ។", ["សួស្តី។", "សុខសប្បាយ។"]),
        # Clause marks of those scripts end the first phrase (CJK: two characters are enough),
        # and only the first.
        (
            "好的，我来帮你查一下。然后，我们再说。",
            ["好的，", "我来帮你查一下。", "然后，我们再说。"],
        ),
        ("是的、わかりました。", ["是的、", "わかりました。"]),
        ("حسنا جدا، سأساعدك الآن.", ["حسنا جدا،", "سأساعدك الآن."]),
        ("حسنا جدا؛ سأساعدك.", ["حسنا جدا؛", "سأساعدك."]),
        ("እሺ ጥሩ፣ እረዳሃለሁ።", ["እሺ ጥሩ፣", "እረዳሃለሁ።"]),
        # ". ! ?" before a CJK character need no space either.
        ("好的!我们走吧.", ["好的!", "我们走吧."]),
        # Fullwidth digits around a fullwidth stop are a decimal.
        ("是３．５度。", ["是３．５度。"]),
    ],
)
def test_sentence_and_clause_marks_of_other_scripts(text: str, expected: list[str]) -> None:
    assert_phrases(text, expected)


@pytest.mark.parametrize(
    ("policy", "text", "expected"),
    [
        # Scripts without spaces: the first phrase ends after 12 characters, later ones after 60.
        (
            PhrasePolicy(),
            "今天天气很好我们去公园散步然后去吃饭",
            ["今天天气很好我们去公园散", "步然后去吃饭"],
        ),
        (
            PhrasePolicy(first_max_chars=4, max_chars=6),
            "一二三四五六七八九十一二",
            ["一二三四", "五六七八九十", "一二"],
        ),
        # A cut by character cap is made at the last clause mark or space inside the cap.
        (
            PhrasePolicy(first_max_chars=None, max_chars=6, first_at_clause=False),
            "一二，三四五六七八",
            ["一二，", "三四五六七八"],
        ),
        (
            PhrasePolicy(first_max_chars=None, max_chars=6),
            "一二 三四五六七八",
            ["一二", "三四五六七八"],
        ),
        (PhrasePolicy(), "สวัสดีครับ วันนี้อากาศดีมาก", ["สวัสดีครับ", "วันนี้อากาศดีมาก"]),
        # Combining marks are not counted and stay with their letter.
        (PhrasePolicy(first_max_chars=2), "กี่ที่นี่", ["กี่ที่", "นี่"]),
        # first_max_chars None: only max_chars caps the first phrase.
        (
            PhrasePolicy(first_max_chars=None),
            "今天天气很好我们去公园散步然后去吃饭",
            ["今天天气很好我们去公园散步然后去吃饭"],
        ),
        # Spaced scripts never reach the character caps.
        (
            PhrasePolicy(first_max_words=None, first_max_chars=1, max_chars=1),
            "The weather is sunny with a temperature of 72 degrees.",
            ["The weather is sunny with a temperature of 72 degrees."],
        ),
    ],
)
def test_character_caps_for_scripts_without_spaces(
    policy: PhrasePolicy, text: str, expected: list[str]
) -> None:
    assert_phrases(text, expected, policy)
    assert all(not unicodedata.category(phrase[0]).startswith("M") for phrase in expected)


@pytest.mark.parametrize(
    ("policy", "text", "expected"),
    [
        # Titles never end a sentence, nor does a word cap cut after one.
        (
            PhrasePolicy(),
            "Yesterday I met Mr. and Mrs. Jones. They were nice.",
            ["Yesterday I met Mr. and Mrs. Jones.", "They were nice."],
        ),
        (
            PhrasePolicy(),
            "one two three four five Mr Smith went home.",
            ["one two three four five Mr Smith", "went home."],
        ),
        (
            PhrasePolicy(first_max_words=None),
            "Ask Prof. Brown on Jan. 5 at approx. 3 p.m. about Fig. 2 now.",
            ["Ask Prof. Brown on Jan. 5 at approx. 3 p.m. about Fig. 2 now."],
        ),
        # Other abbreviations and initialisms end a sentence only before a sentence opener.
        (
            PhrasePolicy(),
            "See you at 10 a.m. tomorrow. Bye.",
            ["See you at 10 a.m. tomorrow.", "Bye."],
        ),
        (
            PhrasePolicy(first_max_words=5),
            "See you at 10 a.m. tomorrow morning.",
            ["See you at 10 a.m. tomorrow", "morning."],
        ),
        (PhrasePolicy(), "Acme Inc. in Boston called. Ok.", ["Acme Inc. in Boston called.", "Ok."]),
        (
            PhrasePolicy(),
            "The U.S.A. and N.A.S.A. agree. Ok.",
            ["The U.S.A. and N.A.S.A. agree.", "Ok."],
        ),
        (
            PhrasePolicy(),
            "J. R. R. Tolkien wrote it. Yes.",
            ["J. R. R. Tolkien wrote it.", "Yes."],
        ),
        (PhrasePolicy(), "We met in the U.S. It was late.", ["We met in the U.S.", "It was late."]),
        (PhrasePolicy(), "Call at 5 p.m. Then rest.", ["Call at 5 p.m.", "Then rest."]),
        (PhrasePolicy(), "We sell pears etc. Then more.", ["We sell pears etc.", "Then more."]),
        (PhrasePolicy(), "No. I don't think so.", ["No.", "I don't think so."]),
        (PhrasePolicy(), "No. 5 is mine. Ok.", ["No. 5 is mine.", "Ok."]),
        (PhrasePolicy(), "It was in the U.S.\nThen home.", ["It was in the U.S.", "Then home."]),
    ],
)
def test_abbreviations_and_initialisms(
    policy: PhrasePolicy, text: str, expected: list[str]
) -> None:
    assert_phrases(text, expected, policy)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Closing quotes and brackets after a sentence end belong to its phrase.
        ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
        ("(See above.) Then go.", ["(See above.)", "Then go."]),
        ("«Arrête.» Puis il part.", ["«Arrête.»", "Puis il part."]),
        ("He said “stop.” Then left.", ["He said “stop.”", "Then left."]),
        ("It is ‘done.’ Then go.", ["It is ‘done.’", "Then go."]),
        ("他说：「好。」然后走了。", ["他说：", "「好。」", "然后走了。"]),
        ("『好。』（是。）走。", ["『好。』", "（是。）", "走。"]),
        # Markdown emphasis: the phrase ends after the closing marks, which are not spoken.
        ("**Step one.** Then two.", ["Step one.", "Then two."]),
        ("_Done._ Next.", ["Done.", "Next."]),
        # A list marker is not a sentence end.
        ("1. Open the app. 2. Tap settings.", ["1. Open the app.", "2. Tap settings."]),
        ("Steps: 1. Open the app. 2. Tap it.", ["Steps: 1. Open the app.", "2. Tap it."]),
        ("1) Open the app. 2) Tap settings.", ["1) Open the app.", "2) Tap settings."]),
        ("I am 25. It is true.", ["I am 25.", "It is true."]),
        # An ellipsis ends a sentence before a capital, else it is a clause mark.
        ("Well... I think so.", ["Well...", "I think so."]),
        ("Well… I think so.", ["Well…", "I think so."]),
        (
            "I was thinking... maybe later. Or not.",
            ["I was thinking...", "maybe later.", "Or not."],
        ),
        ("Hi. Then... maybe later.", ["Hi.", "Then... maybe later."]),
        ("Wait.. go on.", ["Wait.. go on."]),
        ("Hm.. OK.", ["Hm..", "OK."]),
        ("...and so on.", ["...and so on."]),
        # Runs of marks are one end; a mark glued to the next word is none.
        ("Really?! Yes.", ["Really?!", "Yes."]),
        ("Sure!Here you go.", ["Sure!Here you go."]),
        ("Write to foo.bar@pipecat.ai now. Ok.", ["Write to foo.bar@pipecat.ai now.", "Ok."]),
        # A line break ends a phrase.
        ("Steps:\n- Open the app\n- Tap **Settings**", ["Steps:", "Open the app", "Tap Settings"]),
        ("## Weather\nIt is **sunny** today.", ["Weather", "It is sunny today."]),
    ],
)
def test_closing_marks_lists_ellipses_and_lines(text: str, expected: list[str]) -> None:
    assert_phrases(text, expected)


@pytest.mark.parametrize(
    ("deltas", "outputs", "rest"),
    [
        # A mark at the end of a delta is decided by the next character.
        (
            ["Write to foo.", "bar@pipecat.", "ai now"],
            [[], [], []],
            ["Write to foo.bar@pipecat.ai now"],
        ),
        (["你好。", "谢谢"], [[], ["你好。"]], ["谢谢"]),
        (['He said "stop.', '"', " Then"], [[], [], ['He said "stop."']], ["Then"]),
        (["**Step one.", "**", " Then"], [[], [], ["Step one."]], ["Then"]),
        # After an initialism, by the next whole word: "It" may be "Italy".
        (
            ["We met in the U.S.", " It", "'s late."],
            [[], [], ["We met in the U.S."]],
            ["It's late."],
        ),
        (["We met in the U.S.", " It", "aly."], [[], [], []], ["We met in the U.S. Italy."]),
        # The end of the reply decides too.
        (["Okay."], [[]], ["Okay."]),
    ],
)
def test_lookahead_across_deltas(
    deltas: list[str], outputs: list[list[str]], rest: list[str]
) -> None:
    chunker = PhraseChunker()
    assert [chunker.feed(delta) for delta in deltas] == outputs
    assert chunker.flush() == rest


@pytest.mark.parametrize(
    ("phrase", "spoken"),
    [
        ("**bold** text", "bold text"),
        ("*em* and _em_ and ***both***", "em and em and both"),
        ("use `pip install` now", "use pip install now"),
        ("# Title", "Title"),
        ("### Sub title", "Sub title"),
        ("- item", "item"),
        ("* item", "item"),
        ("+ item", "item"),
        ("see [the docs](https://example.com/a_b) here", "see the docs here"),
        ("Tap **Settings**.", "Tap Settings."),
        # Not markup: kept.
        ("2 * 3 = 6 and 2*3", "2 * 3 = 6 and 2*3"),
        ("snake_case_name stays", "snake_case_name stays"),
        ("C# and #1 and a - b and well-known", "C# and #1 and a - b and well-known"),
        ("[1] and (2)", "[1] and (2)"),
    ],
)
def test_speakable_drops_markdown_a_tts_would_read(phrase: str, spoken: str) -> None:
    assert speakable(phrase) == spoken


def test_phrases_are_speakable_and_stream_policy_off_too() -> None:
    assert chunk_whole("Use `pip`. Then **go**.") == ["Use pip.", "Then go."]
    chunker = PhraseChunker(PhrasePolicy(stream=False))
    assert chunker.feed("# Hi\nUse `pip`.") == []
    assert chunker.flush() == ["Hi\nUse pip."]


# ---- Properties: streaming equals whole text, and no word is lost.

FRAGMENTS = [
    *["Mr.", "Dr", "U.S.", "a.m.", "e.g.", "etc.", "J.", "No.", "It", "The", "word", "Go"],
    *["1.", "2)", "3.14", "72.", "1,000", "...", "..", "…", "?!", "!", "?", ".", ",", ":"],
    *["**", "*", "_", "`", "# ", "- ", "* ", "[a](b)", "[", "](", "(", ")", '"', "'"],
    *["“", "”", "«", "»", "「", "」", "）", "。", "！", "？", "，", "、", "．", "।", "؟", "،"],
    *["你好", "天气", "ภาษา", "ไทย", "\n", "\n\n", " ", "  ", "\t"],
]
CHARS = "aZé9 .!?,;:…。！？，、।؟\"')»”」*_`#-\n你好ก\u0e34"
TEXTS = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(CHARS, max_size=3)), max_size=30
).map("".join)
POLICIES = st.sampled_from(
    [
        PhrasePolicy(),
        PhrasePolicy(first_max_words=2, max_words=3, first_max_chars=2, max_chars=3, min_words=1),
        PhrasePolicy(first_at_clause=False, first_max_words=None, first_max_chars=None),
    ]
)


def split_at(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@settings(deadline=None, max_examples=300)
@given(text=TEXTS, policy=POLICIES, data=st.data())
def test_any_chunking_gives_the_phrases_of_the_whole_text(
    text: str, policy: PhrasePolicy, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=len(text) + 2))
    assert chunk_stream(split_at(text, cuts), policy) == chunk_whole(text, policy)


@settings(deadline=None, max_examples=200)
@given(text=TEXTS.filter(lambda text: "[" not in text), policy=POLICIES)  # no links to drop
def test_phrases_keep_every_word_character(text: str, policy: PhrasePolicy) -> None:
    phrases = chunk_whole(text, policy)
    assert [c for c in "".join(phrases) if c.isalnum()] == [c for c in text if c.isalnum()]
    assert all(phrase == phrase.strip() and any(c.isalnum() for c in phrase) for phrase in phrases)


# ---- Markdown dropped from text a streaming TTS reads.


def speak_stream(chunks: list[str]) -> str:
    stream = SpeakableStream()
    return "".join(stream.feed(chunk) for chunk in chunks) + stream.flush()


def words(text: str) -> str:
    return " ".join(text.split())


def test_a_stream_loses_its_markdown_and_holds_only_an_unfinished_word_or_link() -> None:
    stream = SpeakableStream()
    assert stream.feed("**Step") == ""  # the word is not over: "**Step**"?
    assert stream.feed(" one.** Open [the") == "Step one. Open "
    assert stream.feed(" app](http://x.y") == ""  # a link is held until it is whole
    assert stream.feed("/z) and `tap`") == "the app and "
    assert stream.feed(" it.\n- Then 2 * 3") == "tap it.\nThen 2 * "
    assert stream.flush() == "3"


#: Texts with links whose words a stream may be cut between.
LINKED_TEXTS = st.lists(
    st.one_of(
        st.sampled_from([*FRAGMENTS, "[a b](c)", "[x y z](http://u.v/w)", "](u) ", "[a b"]),
        st.text(CHARS, max_size=3),
    ),
    max_size=30,
).map("".join)


@settings(deadline=None, max_examples=300)
@given(text=LINKED_TEXTS, data=st.data())
def test_a_stream_says_what_speakable_says_of_the_whole_text(
    text: str, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=len(text) + 2))
    assert words(speak_stream(split_at(text, cuts))) == words(speakable(text))
