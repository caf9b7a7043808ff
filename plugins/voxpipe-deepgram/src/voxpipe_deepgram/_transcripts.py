"""Deepgram's transcripts (an ``alternatives[0]`` of a live ``Results`` or of a pre-recorded
answer) as voxpipe ``Transcript``s: text, confidence, and the words timed on the session
clock. Deepgram times words in seconds of the audio it was sent; ``Timeline`` maps that
audio back to where each stretch of it was on the session clock."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from voxpipe.protocols import Transcript, Word
from voxpipe_deepgram._errors import malformed


@dataclass(frozen=True, slots=True)
class Heard:
    """What one ``alternatives[0]`` says: its transcript, confidence and words."""

    text: str
    confidence: float
    words: tuple[Word, ...]


class Timeline:
    """Where the audio sent on one connection lies on the session clock. Frames that follow
    each other without a gap make one stretch, so for a steady source this holds one entry
    however long the connection lasts."""

    __slots__ = ("_audio_ms", "_session_ms", "sent_ms")

    def __init__(self) -> None:
        self._audio_ms: list[float] = []  # where each stretch starts in the sent audio
        self._session_ms: list[float] = []  # ... and on the session clock
        #: How much audio has been sent, ms.
        self.sent_ms = 0.0

    def add(self, start_ms: float, duration_ms: float) -> None:
        """Audio of ``duration_ms`` that started at session time ``start_ms`` was sent."""
        if not self._audio_ms or not math.isclose(self.session(self.sent_ms), start_ms):
            self._audio_ms.append(self.sent_ms)
            self._session_ms.append(start_ms)
        self.sent_ms += duration_ms

    def session(self, audio_ms: float) -> float:
        """The session time of ``audio_ms`` into the sent audio (before any was sent: 0)."""
        i = bisect.bisect_right(self._audio_ms, audio_ms) - 1
        if i < 0:
            return self._session_ms[0] - (self._audio_ms[0] - audio_ms) if self._audio_ms else 0.0
        return self._session_ms[i] + audio_ms - self._audio_ms[i]


def heard(alternatives: Any, to_session_ms: Any, what: str) -> Heard:
    """The first of Deepgram's ``alternatives`` (a list of ``{"transcript", "confidence",
    "words"}``), its words' times (seconds) mapped by ``to_session_ms(seconds)``."""
    if not isinstance(alternatives, Sequence) or not alternatives:
        raise malformed(what, "no alternatives in a transcript")
    best = alternatives[0]
    text = best.get("transcript") if isinstance(best, Mapping) else None
    if not isinstance(text, str):
        raise malformed(what, "an alternative without a text 'transcript'")
    words = []
    for item in best.get("words") or ():
        try:
            word = item.get("punctuated_word") or item["word"]
            start, end = float(item["start"]), float(item["end"])
            confidence = item.get("confidence")
        except (AttributeError, KeyError, TypeError, ValueError):
            raise malformed(what, f"a word without word/start/end: {item!r}"[:200]) from None
        score = float(confidence) if isinstance(confidence, int | float) else None
        words.append(Word(str(word), to_session_ms(start), to_session_ms(end), score))
    confidence = best.get("confidence")
    return Heard(
        text,
        float(confidence) if isinstance(confidence, int | float) else 1.0,
        tuple(words),
    )


def transcript(
    text: str,
    is_final: bool,
    *,
    confidence: float = 1.0,
    endpoint_ms: float | None = None,
    words: tuple[Word, ...] = (),
    request_id: str | None = None,
) -> Transcript:
    """A core ``Transcript`` of Deepgram's text (whitespace collapsed)."""
    return Transcript(
        " ".join(text.split()),
        is_final,
        confidence,
        endpoint_ms=endpoint_ms,
        words=words,
        request_id=request_id,
    )
