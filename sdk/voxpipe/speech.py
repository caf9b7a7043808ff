"""The speech stage's helpers: a per-phrase TTS fed from a text stream, and the record of
which text each stretch of a reply's audio speaks (what the user heard when it stopped).

Audio time here is milliseconds of the speech stream's own audio from its first sample
(pauses in playout do not count), the time base of ``Alignment``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from voxpipe.protocols import Alignment, TTSOutput
from voxpipe.text import PhraseChunker, PhrasePolicy

#: Speaking rate assumed for a phrase whose audio is not all synthesized yet when a reply
#: stops (150 words a minute at ~5.7 characters a word), when the TTS gives no alignment
#: and no earlier phrase of the reply has measured it.
DEFAULT_MS_PER_CHAR = 70.0


async def synthesize_phrases(
    tts: Any,
    text: AsyncIterator[str],
    policy: PhrasePolicy | None = None,
    on_phrase: Callable[[str], None] | None = None,
) -> AsyncIterator[TTSOutput]:
    """Speak streamed text with a per-phrase TTS: cut it into phrases as it arrives and
    synthesize each as soon as it is complete, one after another. ``on_phrase(phrase)`` is
    called as each is handed to the TTS; its alignment is moved onto this stream's time, a
    space put between phrases."""
    chunker = PhraseChunker(policy)

    async def phrases() -> AsyncGenerator[str, None]:
        async for delta in text:
            for phrase in chunker.feed(delta):
                yield phrase
        for phrase in chunker.flush():
            yield phrase

    offset = 0.0  # audio of the phrases before this one
    separator = ""  # put before a phrase's first alignment: " " after the first phrase
    async with aclosing(phrases()) as cut:
        async for phrase in cut:
            if on_phrase is not None:
                on_phrase(phrase)
            start, gap, separator = offset, separator, " "
            async with aclosing(tts.synthesize(phrase)) as out:
                async for item in out:
                    if type(item) is Alignment:
                        piece, gap = gap + item.text, ""
                        yield Alignment(piece, item.start_ms + start, item.end_ms + start)
                        continue
                    offset += item.duration_ms
                    yield item


class SpokenText:
    """Which text a reply's audio speaks, so the text heard up to any audio position can be
    told. With TTS alignment: the words whose audio has fully played. Without: each phrase's
    characters spread evenly over its audio, cut back to whole words."""

    __slots__ = ("_aligned", "_segments", "done", "produced_ms")

    def __init__(self) -> None:
        self._aligned: list[Alignment] = []
        self._segments: list[list[Any]] = []  # [text, audio start ms]
        self.produced_ms = 0.0
        self.done = False

    def begin(self, text: str) -> None:
        """A phrase was handed to the TTS: its audio starts where the audio so far ends."""
        self._segments.append([text, self.produced_ms])

    def extend(self, text: str) -> None:
        """Text streamed into a TTS that takes text as a stream (one growing segment)."""
        if not self._segments:
            self._segments.append(["", 0.0])
        self._segments[-1][0] += text

    def align(self, alignment: Alignment) -> None:
        self._aligned.append(alignment)

    def heard(self, position_ms: float) -> str:
        """The text spoken by the audio before ``position_ms``, in whole words."""
        if self._aligned:
            full = "".join(a.text for a in self._aligned)
            played = 0
            for a in self._aligned:
                if a.end_ms > position_ms + 1e-6:
                    break
                played += len(a.text)
            return whole_words(full, played)
        parts: list[str] = []
        for i, (text, start) in enumerate(self._segments):
            if position_ms <= start:
                break
            end = self._segments[i + 1][1] if i + 1 < len(self._segments) else self._end(i)
            if position_ms >= end:
                parts.append(text)
                continue
            parts.append(
                whole_words(text, round(len(text) * (position_ms - start) / (end - start)))
            )
            break
        return " ".join(p.strip() for p in parts if p.strip())

    def _end(self, i: int) -> float:
        """Where the last segment's audio ends: known once synthesis is done, estimated from
        the speaking rate of the segments before it while it is still being synthesized."""
        text, start = self._segments[i]
        if self.done:
            return float(self.produced_ms)
        chars = sum(len(t) for t, _ in self._segments[:i])
        rate = start / chars if chars and start > 0 else DEFAULT_MS_PER_CHAR
        return float(max(self.produced_ms, start + len(text) * rate))


def whole_words(text: str, n: int) -> str:
    """The first ``n`` characters of ``text``, cut back to the last whole word, stripped."""
    if n >= len(text):
        return text.strip()
    if n <= 0:
        return ""
    head = text[:n]
    if not head[-1].isspace() and not text[n].isspace():  # the cut is inside a word
        head = head[: max(head.rfind(" "), 0)]
    return head.strip()
