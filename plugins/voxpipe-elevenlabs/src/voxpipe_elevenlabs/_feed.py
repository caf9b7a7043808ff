"""The text side of a stream-input socket: LLM deltas out as whole words (each message ends
in one space, as the API asks), ``{"text": " ", "flush": true}`` where a phrase ends so the
server speaks it at once instead of waiting for ``chunk_length_schedule`` characters, and
``{"text": ""}`` to end. Where phrases end is voxpipe's own phrase chunker's decision, so
the flushes fall where the session would have cut phrases for a per-phrase TTS."""

from __future__ import annotations

import re
from typing import Any, Literal

from voxpipe.text import PhraseChunker, PhrasePolicy

FlushAt = Literal["phrase", "sentence"]

#: Where a flush goes: "phrase" cuts the first phrase early (a clause mark, 6 words) as the
#: session does for a per-phrase TTS, then at sentence ends; "sentence" only at sentence ends.
FLUSH_POLICIES: dict[str, PhrasePolicy] = {
    "phrase": PhrasePolicy(),
    "sentence": PhrasePolicy(first_at_clause=False, first_max_words=None, first_max_chars=None),
}
#: How long text that ends in a sentence mark waits for its next character (the chunker
#: decides a mark at the end of the text only once it sees what follows) before the
#: sentence is spoken anyway: the LLM has paused after a sentence.
SENTENCE_PAUSE_S = 0.1
_SENTENCE_MARK = re.compile(r"[.!?…。！？]+[\"')\]}»”’]*$")
_WORD = re.compile(r"\S+\s+")
FLUSH: dict[str, Any] = {"text": " ", "flush": True}
END: dict[str, Any] = {"text": ""}


class TextFeed:
    """Turns one reply's text deltas into stream-input messages. ``push(delta)`` returns the
    messages for the words it completes (the last word waits for the space after it),
    ``pause()`` those for a word that ends a sentence when the text has stopped there, and
    ``end()`` the rest and the end message."""

    def __init__(self, flush_at: FlushAt = "phrase") -> None:
        self._chunker = PhraseChunker(FLUSH_POLICIES[flush_at])
        self._partial = ""
        #: Whether any text other than spaces was sent.
        self.spoke = False

    @property
    def at_sentence_mark(self) -> bool:
        """The unsent word ends in a sentence mark: worth flushing if the text stops here."""
        return bool(_SENTENCE_MARK.search(self._partial))

    def push(self, delta: str) -> list[dict[str, Any]]:
        text = (self._partial + delta).lstrip()
        complete = _WORD.findall(text)  # contiguous from the start: text begins with a word
        self._partial = text[sum(map(len, complete)) :]
        return self._words(complete)

    def pause(self) -> list[dict[str, Any]]:
        """The text paused after a sentence mark: speak the word as if a space had come."""
        return self.push(" ")

    def end(self) -> list[dict[str, Any]]:
        """The last word and the end message (the server speaks what it still holds)."""
        return [*self.push(" "), END]

    def _words(self, words: list[str]) -> list[dict[str, Any]]:
        """Messages for complete ``words`` (each with its whitespace): batched, a flush
        after each word that ends a phrase."""
        messages: list[dict[str, Any]] = []
        batch = ""
        for word in words:
            batch += word.rstrip() + " "
            if self._chunker.feed(word):
                messages += [{"text": batch}, FLUSH]
                batch = ""
        if batch:
            messages.append({"text": batch})
        self.spoke = self.spoke or bool(words)
        return messages
