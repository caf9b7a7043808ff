"""Phrase chunking: cut streamed LLM text into phrases TTS can start on early.

Phrases end at sentence ends. The first phrase of a reply may end sooner, at a clause mark or
after a few words (or characters, in scripts written without spaces), so the first sound comes
earlier; later phrases run to a sentence end (or ``max_words`` / ``max_chars``) so the voice
keeps natural prosody. A mark at the end of the text received so far is decided only once the
next character has come (or the reply has ended), so the phrases never depend on how the text
was split into deltas. Every phrase returned is ``speakable``: markdown markup removed.

The rules live in the tables below:

- a run of ``. ! ? …`` ends a sentence when whitespace, the end of the reply or a character of
  a script without spaces follows it (after any closing quotes, brackets or ``**``, which stay
  with the phrase); the marks in ``_SENTENCE_MARKS`` (CJK, Devanagari, Arabic, ...) end one
  whatever follows;
- a lone ``.`` after an abbreviation is no sentence end: after a title (``Mr.``, ``e.g.``) never,
  after another abbreviation or an initialism (``a.m.``, ``Inc.``, ``U.S.``, ``J.``) only when
  the next word is a common sentence opener ("It", "The", "We", ...); after a number that is the
  phrase's first word or follows a colon (a list marker, ``1. Open the app.``) neither;
- an ellipsis (``...``, ``…``) ends a sentence before a capitalised word; before anything else
  it is a clause mark;
- a line break ends a phrase;
- clause marks (``, ; :`` before whitespace, and ``_CLAUSE_MARKS`` whatever follows) end only
  the first phrase, once it has ``min_words`` words (or characters of a script without spaces);
- word caps never cut right after an abbreviation (``Mr. | Smith``); a character cap cuts at
  the last space or clause mark inside the cap, or else right there.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: End a sentence when whitespace, the end of the reply or an unspaced script's letter follows
#: (and so does "." unless it ends an abbreviation).
_SPACED_SENTENCE_MARKS = "!?"
#: End a sentence whatever follows: CJK 。！？．｡, Devanagari । ॥, Urdu ۔, Arabic ؟, Armenian ։,
#: Ethiopic ። ፧, the Greek question mark (U+037E), Myanmar ။, Tibetan ། ༎, Khmer ។ ៕.
_SENTENCE_MARKS = "。！？．｡।॥۔؟։።፧\u037e။།༎។៕"
#: A run of two or more "." is an ellipsis too.
_ELLIPSIS = "…"
#: Clause marks that need whitespace (or the end, or an unspaced script's letter) after them.
_SPACED_CLAUSE_MARKS = ",;:"
#: Clause marks whatever follows: CJK ，、；：､, Arabic ، ؛, Ethiopic ፣ ፤, Myanmar ၊,
#: Armenian ՝, Greek ano teleia (U+0387).
_CLAUSE_MARKS = "，、；：､،؛፣፤၊՝\u0387"
#: After a sentence or clause mark these belong to the phrase it ends.
_CLOSING_MARKS = frozenset("\"')]}»”’›」』）］｝】〕〉》〗〙〛＂＇｣*_~`")
#: Stripped from the front of a word before it is looked up as an abbreviation.
_OPENING_MARKS = "\"'([{«“‘‹「『（［｛【〔〈《〖〘〚＂＇｢*_~`"
#: Scripts written without spaces between words: their letters (not their combining marks)
#: count towards the character caps.
_UNSPACED_SCRIPTS = (
    ("\u0e00", "\u0fff"),  # Thai, Lao, Tibetan
    ("\u1000", "\u109f"),  # Myanmar
    ("\u1780", "\u17ff"),  # Khmer
    ("\u3040", "\u30ff"),  # Hiragana, Katakana
    ("\u3400", "\u4dbf"),  # CJK ideographs, extension A
    ("\u4e00", "\u9fff"),  # CJK ideographs
    ("\uf900", "\ufaff"),  # CJK compatibility ideographs
    ("\uff66", "\uff9f"),  # halfwidth Katakana
    ("\U00020000", "\U0003ffff"),  # CJK ideographs, extensions B and later
)


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


#: Never end a sentence: the next word belongs to them ("Mr. Smith", "e.g. apples", "Fig. 3").
_TITLES = _word_set(
    "mr mrs ms mx dr prof rev fr hon gen col capt lt sgt cmdr adm gov sen rep pres supt messrs "
    "mme mlle mt e.g i.e cf vs viz approx fig figs eq vol vols pp tel ref"
)
#: May end a sentence, but do only when the next word is in ``_SENTENCE_OPENERS``
#: ("10 a.m. tomorrow" goes on, "at 10 a.m. Then we" ends). Initialisms ("U.S.A.", "J.") too.
_ABBREVIATIONS = _word_set(
    "a.m p.m etc al inc ltd co corp llc plc bros jr sr st ave blvd rd hwy dept univ est min max "
    "avg no nos ph.d "
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thur thurs fri sat sun"
)
#: Capitalised words that start sentences far more often than they are names.
_SENTENCE_OPENERS = _word_set(
    "A An And Are As At After Also Before But Can Could Do Does Finally First For He Her Here His "
    "How However I If In Is It Its Let Meanwhile My Next No Now OK Okay On Or Our Please She "
    "Should So Sure Thank Thanks That The Their Then There These They This Those To Today "
    "Tomorrow We What When Where Which Who Why Will Would Yes You Your"
)

_RUN_MARKS = frozenset("." + _SPACED_SENTENCE_MARKS + _SENTENCE_MARKS + _ELLIPSIS)
_STRONG_MARKS = frozenset(_SPACED_SENTENCE_MARKS + _SENTENCE_MARKS)
_ALL_CLAUSE_MARKS = frozenset(_SPACED_CLAUSE_MARKS + _CLAUSE_MARKS)
_MARKS = _RUN_MARKS | _ALL_CLAUSE_MARKS
_NEED_SPACE_AFTER = frozenset("." + _SPACED_SENTENCE_MARKS + _ELLIPSIS + _SPACED_CLAUSE_MARKS)
_UNSPACED_LETTER = re.compile("[" + "".join(f"{lo}-{hi}" for lo, hi in _UNSPACED_SCRIPTS) + "]")
_FIRST_UNSPACED = min(lo for lo, _ in _UNSPACED_SCRIPTS)

#: Markdown a TTS would read aloud, removed by ``speakable`` in this order: (characters that
#: must be in the text for the rule to apply, pattern, replacement).
#: A markdown link, ``[text](url)``.
_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\s]*\)")
_MARKDOWN = (
    ("[", _LINK, r"\1"),  # [text](url) -> text
    ("`", re.compile(r"`+"), ""),  # `code`
    ("#", re.compile(r"^[ \t]*#{1,6}[ \t]+", re.MULTILINE), ""),  # a heading's #s
    ("-*+", re.compile(r"^[ \t]*[-*+][ \t]+", re.MULTILINE), ""),  # a list bullet
    ("*_", re.compile(r"\*+|_+"), lambda run: _emphasis_kept(run.string, run.start(), run.end())),
)
_MARKUP_CHARS = frozenset("".join(triggers for triggers, _, _ in _MARKDOWN))
#: The rules that apply only at a line start (headings, bullets), and the others.
_INLINE_MARKDOWN = tuple(rule for rule in _MARKDOWN if rule[1].flags & re.MULTILINE == 0)
#: What may still become a link: "[text", "[text]", "[text](url" (no line break, no ")").
_LINK_SO_FAR = re.compile(r"\[[^\]\n]*(?:\](?:\([^)\s]*)?)?")
#: A link held back longer than this is let through as it is.
_MAX_HELD = 1000

#: What a mark does where it stands: ends the phrase; is a pause a character cap may cut at;
#: is neither; cannot be told before more text comes.
_Verdict = Literal["cut", "pause", "no", "wait"]


class PhrasePolicy(BaseModel):
    """Where phrases are cut (``[agent.phrases]`` in config)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    stream: bool = Field(
        True,
        description="false: speak only once the whole reply is written (the serial "
        "design voxpipe replaces; kept for comparisons)",
    )
    first_at_clause: bool = Field(
        True, description="end the first phrase at a clause mark (, ; : and those of other scripts)"
    )
    first_max_words: int | None = Field(
        6,
        ge=1,
        le=1000,
        description="end the first phrase after this many words even without punctuation",
    )
    min_words: int = Field(
        2,
        ge=1,
        le=1000,
        description="never cut a phrase shorter than this at a clause mark (words, or "
        "characters of a script written without spaces)",
    )
    max_words: int = Field(
        40, ge=1, le=1000, description="cut any phrase this long at the next word break"
    )
    first_max_chars: int | None = Field(
        12,
        ge=1,
        le=1000,
        description="the first phrase holds at most this many letters of a script written "
        "without spaces (Chinese, Japanese, Thai, ...)",
    )
    max_chars: int = Field(
        60,
        ge=1,
        le=1000,
        description="no phrase holds more than this many letters of a script written without "
        "spaces",
    )


#: Where the scan of the phrase at the head of the buffer stopped, and what it had seen: the
#: next index to look at; words begun before it; inside a word; where the last word began;
#: letters of scripts without spaces; a letter or digit seen; the end of the last space or
#: clause mark (where a character cap cuts). A plain tuple: it is saved on every delta.
_Scan = tuple[int, int, bool, int, int, bool, int]
_NEW_PHRASE: _Scan = (0, 0, False, 0, 0, False, 0)


class PhraseChunker:
    """Feed text deltas, get complete phrases back as soon as each one's end is certain."""

    __slots__ = ("_buffer", "_first", "_scan", "policy")

    def __init__(self, policy: PhrasePolicy | None = None) -> None:
        self.policy = policy or PhrasePolicy()
        self._buffer = ""
        self._first = True
        self._scan = _NEW_PHRASE

    def feed(self, delta: str) -> list[str]:
        """Add a delta; return the phrases it completed (often none)."""
        self._buffer += delta if self._buffer else delta.lstrip()
        if not self.policy.stream:
            return []
        return self._cut_phrases(final=False)

    def flush(self) -> list[str]:
        """The phrases left at the end of the reply: what was waiting on more text, and the rest."""
        phrases = self._cut_phrases(final=True) if self.policy.stream else []
        rest, self._buffer, self._scan = self._buffer, "", _NEW_PHRASE
        self._emit(rest, phrases)
        return phrases

    def _cut_phrases(self, final: bool) -> list[str]:
        phrases: list[str] = []
        while (cut := self._find_cut(final)) is not None:
            phrase, self._buffer = self._buffer[:cut], self._buffer[cut:].lstrip()
            self._scan = _NEW_PHRASE
            self._emit(phrase, phrases)
        return phrases

    def _emit(self, phrase: str, phrases: list[str]) -> None:
        spoken = speakable(phrase)
        if any(c.isalnum() for c in spoken):  # a lone "!" or "**" is not worth a request
            phrases.append(spoken)
            self._first = False

    def _caps(self) -> tuple[int, int]:
        """This phrase's word and character caps."""
        policy = self.policy
        words, chars = policy.max_words, policy.max_chars
        if self._first:
            words = min(words, policy.first_max_words or words)
            chars = min(chars, policy.first_max_chars or chars)
        return words, chars

    def _find_cut(self, final: bool) -> int | None:
        """Index just past the first phrase end in the buffer, if it is already certain. The
        scan resumes where the last call stopped; ``final``: no more text will come."""
        text, n = self._buffer, len(self._buffer)
        i, words, in_word, word_start, unspaced, spoken, last_break = self._scan
        word_cap, char_cap = self._caps()
        while i < n:
            ch = text[i]
            if ch.isspace():
                if spoken and (
                    ch == "\n"
                    or (in_word and words >= word_cap and not _holds_next_word(text[word_start:i]))
                ):
                    return i
                in_word = False
                if spoken:
                    last_break = i
                i += 1
                continue
            if spoken and ch in _MARKS:
                word = text[word_start:i] if in_word else ""
                verdict, end = self._judge_mark(text, i, final, word, words, unspaced)
                if verdict == "cut":
                    return end
                if verdict == "wait":
                    self._scan = (i, words, in_word, word_start, unspaced, spoken, last_break)
                    return None
                if not in_word:
                    in_word, words, word_start = True, words + 1, i
                if verdict == "pause":
                    last_break = end
                i = end
                continue
            if not in_word:
                in_word, words, word_start = True, words + 1, i
            if not spoken and ch.isalnum():
                spoken = True
            if ch >= _FIRST_UNSPACED and _UNSPACED_LETTER.match(ch) and not _is_combining(ch):
                unspaced += 1
                if unspaced > char_cap:
                    return last_break or i  # before a letter: its marks stay with it
            i += 1
        self._scan = (n, words, in_word, word_start, unspaced, spoken, last_break)
        return None

    def _judge_mark(
        self, text: str, i: int, final: bool, word: str, words: int, unspaced: int
    ) -> tuple[_Verdict, int]:
        """What the mark (run) at ``i`` does, and the index past it and the closing marks after
        it (where the phrase would end). ``word``: the word it ends (its text before ``i``);
        ``words`` and ``unspaced``: the phrase's length up to ``i``."""
        run_end, kind = _mark_run(text, i)
        end = run_end
        while end < len(text) and text[end] in _CLOSING_MARKS:
            end += 1
        if end == len(text) and not final:
            return "wait", end  # the next character decides: "3." may go on as "3.5"
        after = text[end : end + 1]  # "" at the end of the reply
        if after and not _may_follow(text, i, run_end, end):
            return "no", end  # "3.14", "e.g.", "1,000", "example.com"
        if kind == "sentence" or not after:
            return "cut", end
        if kind == "clause":
            return self._at_clause_mark(words, unspaced), end
        if kind == "ellipsis":
            return self._after_ellipsis(text, end, final, words, unspaced), end
        word = word.lstrip(_OPENING_MARKS)
        if _is_list_marker(text, i - len(word), word, words):
            return "no", end
        key = word.lower()
        if key in _TITLES:
            return "no", end
        if key in _ABBREVIATIONS or _is_initialism(word):
            return _before_sentence_opener(text, end, final), end
        return "cut", end

    def _at_clause_mark(self, words: int, unspaced: int) -> _Verdict:
        """A clause mark ends the first phrase once it is long enough; else it is a pause."""
        policy = self.policy
        long_enough = words >= policy.min_words or unspaced >= policy.min_words
        return "cut" if self._first and policy.first_at_clause and long_enough else "pause"

    def _after_ellipsis(
        self, text: str, end: int, final: bool, words: int, unspaced: int
    ) -> _Verdict:
        """An ellipsis ends a sentence before a capitalised word, else it is a clause mark."""
        j = _skip_spaces(text, end)
        if j == len(text):
            return "cut" if final else "wait"
        if text[j].isupper():
            return "cut"
        return self._at_clause_mark(words, unspaced)


def speakable(phrase: str) -> str:
    """``phrase`` without the markdown a TTS would read aloud: emphasis ``**``/``*``/``_``,
    backticks, heading ``#``s and list bullets at a line start, links (their text is kept)."""
    return _unmarked(phrase, line_start=True).strip()


def _unmarked(text: str, *, line_start: bool) -> str:
    """``text`` without markdown, whitespace kept; ``line_start``: it begins a line."""
    if _MARKUP_CHARS.isdisjoint(text):
        return text
    if not line_start:  # its first line has no heading or bullet
        first = text.find("\n") + 1 or len(text)
        head = _apply(_INLINE_MARKDOWN, text[:first])
        return head + (_unmarked(text[first:], line_start=True) if first < len(text) else "")
    return _apply(_MARKDOWN, text)


def _apply(rules: tuple[tuple[str, re.Pattern[str], Any], ...], text: str) -> str:
    for triggers, pattern, replacement in rules:
        if any(c in text for c in triggers):
            text = pattern.sub(replacement, text)
    return text


class SpeakableStream:
    """``speakable`` for text as it streams, for a TTS that takes text as a stream: feed
    deltas, get back what can be spoken of them. A word goes through once the whitespace
    after it has come (and a link once it is complete), so the pieces joined say what
    ``speakable`` says of the whole text (whitespace aside), however the text was split."""

    __slots__ = ("_held", "_line_start")

    def __init__(self) -> None:
        self._held = ""
        self._line_start = True

    def feed(self, delta: str) -> str:
        """Add a delta; return what of the text is now certain (often "")."""
        self._held += delta
        cut = self._safe_cut()
        piece, self._held = self._held[:cut], self._held[cut:]
        return self._let_through(piece)

    def flush(self) -> str:
        """The rest, at the end of the text."""
        piece, self._held = self._held, ""
        return self._let_through(piece)

    def _let_through(self, piece: str) -> str:
        if not piece:
            return ""
        spoken = _unmarked(piece, line_start=self._line_start)
        ending = piece[len(piece.rstrip()) :]
        self._line_start = "\n" in ending if ending else False
        return spoken

    def _safe_cut(self) -> int:
        """Where the held text may be cut: the start of its last word (the markup rules
        look no further than a word's edges), or earlier, so that no link (whole, or one
        that may be opening) is cut: each goes with the word it starts in."""
        held = self._held
        cut = _last_word_start(held, len(held))
        if len(held) > _MAX_HELD:
            return cut
        start = held.find("[")
        while 0 <= start < cut:
            link = _LINK.match(held, start)
            so_far = _LINK_SO_FAR.match(held, start)
            opening = link is None and so_far is not None and so_far.end() == len(held)
            if opening or (link is not None and link.end() > cut):
                cut = _last_word_start(held, start)
                start = held.find("[")  # an earlier link may now be cut: look again
                continue
            start = held.find("[", start + 1)
        return cut


def _last_word_start(text: str, before: int) -> int:
    """The start of the word that ends at or holds ``before`` (0 when no whitespace comes
    before it): the text up to there ends with whitespace."""
    i = before
    while i > 0 and not text[i - 1].isspace():
        i -= 1
    return i


def _emphasis_kept(text: str, start: int, end: int) -> str:
    """A run of * or _ is emphasis, and goes, at a word's edge ("**bold**", "_em_"); inside a
    word ("2*3", "snake_case") or standing alone ("2 * 3") it stays."""
    before, after = text[start - 1 : start], text[end : end + 1]
    opens = not _is_word_char(before) and after != "" and not after.isspace()
    closes = before != "" and not before.isspace() and not _is_word_char(after)
    return "" if opens or closes else text[start:end]


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _mark_run(text: str, i: int) -> tuple[int, Literal["sentence", "period", "ellipsis", "clause"]]:
    """The end of the run of marks starting at ``i``, and what kind of end it is."""
    if text[i] in _ALL_CLAUSE_MARKS:
        return i + 1, "clause"
    j = i
    while j < len(text) and text[j] in _RUN_MARKS:
        j += 1
    run = text[i:j]
    if run == ".":
        return j, "period"
    if any(c in _STRONG_MARKS for c in run):
        return j, "sentence"
    return j, "ellipsis"


def _may_follow(text: str, i: int, run_end: int, end: int) -> bool:
    """The character at ``end`` lets the marks ``text[i:run_end]`` (and closing marks up to
    ``end``) end a phrase: whitespace or an unspaced script's letter after ". ! ? , ; : …", and
    anything but "digit mark digit" after the others ("３．５")."""
    after = text[end]
    if all(c in _NEED_SPACE_AFTER for c in text[i:run_end]):
        return after.isspace() or bool(_UNSPACED_LETTER.match(after))
    return not (end == run_end and after.isdigit() and text[i - 1 : i].isdigit())


def _is_list_marker(text: str, start: int, word: str, words: int) -> bool:
    """A number (``word``, at ``start``) that starts the phrase or follows a colon: "1. Open the
    app", "Steps: 2. Tap"."""
    if not (word.isdigit() and len(word) <= 3):
        return False
    return words == 1 or text[:start].rstrip().endswith((":", "："))


def _is_initialism(word: str) -> bool:
    """Single letters each followed by a period: "U.S.A" (of "U.S.A."), "J" (of "J.")."""
    return all(len(part) == 1 and part.isalpha() for part in word.split("."))


def _before_sentence_opener(text: str, end: int, final: bool) -> _Verdict:
    """After an ambiguous abbreviation: a sentence ends only when the next word is a common
    sentence opener ("in the U.S. It was") or a line break comes first."""
    j = _skip_spaces(text, end)
    if "\n" in text[end:j]:
        return "cut"
    k = j
    while k < len(text) and text[k].isalpha():
        k += 1
    if k == len(text) and not final:
        return "wait"  # "It" may be "Italy"
    if j == len(text):
        return "cut"
    if text[k : k + 1] == ".":
        return "no"  # another initial: "J. R. R. Tolkien"
    return "cut" if text[j:k] in _SENTENCE_OPENERS else "no"


def _holds_next_word(word: str) -> bool:
    """A word a word cap must not cut after: a title ("Mr", "Dr."), or an abbreviation or
    initialism with its period ("a.m.", "U.S.")."""
    core = word.lstrip(_OPENING_MARKS)
    dotted = core.endswith(".")
    key = core.removesuffix(".").lower()
    return key in _TITLES or (dotted and (key in _ABBREVIATIONS or _is_initialism(key)))


def _skip_spaces(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _is_combining(ch: str) -> bool:
    """A vowel sign, tone mark or other mark written on the letter before it (Thai, Tibetan)."""
    return unicodedata.category(ch)[0] == "M"
