"""Phrase chunking: cut streamed LLM text into phrases TTS can start on early.

Phrases end at sentence ends. The first phrase of a reply may end sooner, at a comma or
after a few words, so the first sound comes earlier; later phrases run to a sentence end
(or ``max_words``) so the voice keeps natural prosody.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_SENTENCE_END = frozenset(".!?")
_CLAUSE_END = frozenset(",;:")
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "prof", "jr", "sr"}
)


class PhrasePolicy(BaseModel):
    """Where phrases are cut (``[agent.phrases]`` in config)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    stream: bool = Field(
        True,
        description="false: speak only once the whole reply is written (the serial "
        "design voxpipe replaces; kept for comparisons)",
    )
    first_at_clause: bool = Field(True, description="end the first phrase at , ; or :")
    first_max_words: int | None = Field(
        6, ge=1, description="end the first phrase after this many words even without punctuation"
    )
    min_words: int = Field(
        2, ge=1, description="never cut a phrase shorter than this at a clause mark"
    )
    max_words: int = Field(40, ge=1, description="cut any phrase this long at the next word break")


class PhraseChunker:
    """Feed text deltas, get complete phrases back as soon as each one's end is certain."""

    def __init__(self, policy: PhrasePolicy | None = None) -> None:
        self.policy = policy or PhrasePolicy()
        self._buffer = ""
        self._phrases_out = 0

    def feed(self, delta: str) -> list[str]:
        """Add a delta; return the phrases it completed (often none)."""
        self._buffer += delta
        if not self.policy.stream:
            return []
        phrases = []
        while (cut := self._find_cut()) is not None:
            phrase, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:].lstrip()
            if any(c.isalnum() for c in phrase):  # a lone "!" or ".." is not worth a request
                phrases.append(phrase)
                self._phrases_out += 1
        return phrases

    def flush(self) -> list[str]:
        """The text left over at the end of the reply, as a last phrase."""
        rest, self._buffer = self._buffer.strip(), ""
        if any(c.isalnum() for c in rest):
            self._phrases_out += 1
            return [rest]
        return []

    def _find_cut(self) -> int | None:
        """Index just past the first phrase end in the buffer, if it is already certain."""
        text, policy = self._buffer, self.policy
        first = self._phrases_out == 0
        words = 0
        in_word = False
        for i, ch in enumerate(text):
            if ch.isspace():
                in_word = False
                if words >= policy.max_words or (
                    first and policy.first_max_words is not None and words >= policy.first_max_words
                ):
                    return i
                continue
            if not in_word:
                in_word, words = True, words + 1
            clause = (
                first and policy.first_at_clause and ch in _CLAUSE_END and words >= policy.min_words
            )
            if (ch in _SENTENCE_END or clause) and self._is_boundary(text, i):
                return i + 1
        return None

    @staticmethod
    def _is_boundary(text: str, i: int) -> bool:
        """Punctuation at ``i`` ends a phrase: followed by space, or safe at the buffer end."""
        after = text[i + 1 : i + 2]
        if after and not after.isspace():
            return False  # "3.14", "e.g.", "1,000": not a break
        if text[i] == ".":
            words = text[:i].split()
            word = words[-1].lower() if words else ""
            if word in _ABBREVIATIONS:
                return False  # "Dr.", "e.g."
            if not after and len(word) == 1:
                return False  # "e." may become "e.g.": wait for more
        # At the end of what has arrived, "72." may yet become "72.5": digits wait for more.
        return bool(after) or not text[i - 1 : i].isdigit()
