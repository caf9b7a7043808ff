"""What the ``pocketsphinx`` ASR decodes with: PyPI ``pocketsphinx`` ships the en-us acoustic
model, its dictionary (CMUdict) and a general language model.

With a ``vocabulary`` the decoder takes a JSGF grammar instead of the language model: one
or more of the phrases in a row (with ``free_words``, also any sequence of their words),
and a dictionary of only those words, added to an empty one: a decoder then starts in
~15 ms and takes ~3-7 MB, against ~0.6 s and ~65-95 MB with the language model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

import pocketsphinx  # type: ignore[import-untyped]  # no type hints
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from voxpipe.errors import ConfigError

#: The audio the decoder takes: 16 kHz 16-bit mono.
SAMPLE_RATE = 16_000
_WORD = re.compile(r"[a-z0-9'][a-z0-9'.-]*")
_MODEL = Path(pocketsphinx.get_model_path()) / "en-us"
_ACOUSTIC_MODEL = _MODEL / "en-us"
_DICTIONARY = _MODEL / "cmudict-en-us.dict"


class Decoder(Protocol):
    """What this plugin uses of ``pocketsphinx.Decoder``."""

    def start_utt(self) -> None: ...

    def process_raw(self, data: bytes, no_search: bool, full_utt: bool) -> int: ...

    def end_utt(self) -> None: ...

    def hyp(self) -> Any: ...  # a Hypothesis (``.hypstr``) or None


class PocketsphinxOptions(BaseModel):
    """``[asr]`` options when ``backend = "pocketsphinx"``; unknown options are config errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    vocabulary: list[str] = Field(
        default_factory=list,
        max_length=2_000,
        description="the phrases the agent expects: only these are recognised (empty: any "
        "English, with the general language model)",
    )
    free_words: bool = Field(
        False, description="with a vocabulary, also accept any sequence of its words"
    )

    @field_validator("vocabulary")
    @classmethod
    def _normalised(cls, phrases: list[str]) -> list[str]:
        """Lower case, single spaces; every word one the dictionary could have."""
        normalised = []
        for number, phrase in enumerate(phrases, 1):
            words = phrase.lower().split()
            if not words:
                raise ValueError(
                    f"phrase {number} is empty: every phrase needs at least one word "
                    "(remove the empty one)"
                )
            for word in words:
                if not _WORD.fullmatch(word):
                    raise ValueError(
                        f"{word!r} (in {phrase!r}) is not a word: use letters, digits and "
                        "apostrophes, and write symbols out as words"
                    )
            normalised.append(" ".join(words))
        return normalised

    @field_validator("free_words")
    @classmethod
    def _free_words_need_a_vocabulary(cls, free_words: bool, info: ValidationInfo) -> bool:
        if free_words and not info.data.get("vocabulary"):
            raise ValueError("free_words = true needs a vocabulary (its words are the free ones)")
        return free_words


class SphinxModel:
    """What every stream's decoder is built from, checked once: the vocabulary's grammar and
    pronunciations (a ConfigError names the words the dictionary does not have)."""

    def __init__(self, options: PocketsphinxOptions) -> None:
        self.grammar: str | None = None
        #: (word, phones) for every pronunciation of the vocabulary's words.
        self.pronunciations: list[tuple[str, str]] = []
        if options.vocabulary:
            words = sorted({word for phrase in options.vocabulary for word in phrase.split()})
            self.pronunciations = _pronunciations(words)
            known = {word.split("(")[0] for word, _ in self.pronunciations}
            unknown = [word for word in words if word not in known]
            if unknown:
                raise ConfigError(
                    f"[asr] vocabulary: {', '.join(map(repr, unknown))} "
                    f"{'is' if len(unknown) == 1 else 'are'} not in pocketsphinx's en-us "
                    "dictionary (CMUdict): respell as dictionary words (numbers in words, "
                    "e.g. 'twenty one'), or remove the phrase"
                )
            self.grammar = _grammar(options.vocabulary, words, options.free_words)

    def decoder(self) -> Decoder:
        """A new decoder (blocking: ~20 ms with a vocabulary, ~0.6 s without; off the loop)."""
        if self.grammar is None:
            return pocketsphinx.Decoder(loglevel="ERROR")  # type: ignore[no-any-return]
        decoder = pocketsphinx.Decoder(
            hmm=str(_ACOUSTIC_MODEL), lm=None, dict=None, loglevel="ERROR"
        )
        for at, (word, phones) in enumerate(self.pronunciations, 1):
            decoder.add_word(word, phones, at == len(self.pronunciations))
        decoder.add_jsgf_string("vocabulary", self.grammar)
        decoder.activate_search("vocabulary")
        return decoder  # type: ignore[no-any-return]


def _pronunciations(words: list[str]) -> list[tuple[str, str]]:
    """CMUdict's entries for ``words`` (alternates as ``word(2)``), in one pass over it."""
    alternatives = "|".join(re.escape(word) for word in words)
    entry = re.compile(rf"^((?:{alternatives})(?:\(\d+\))?) ([^\n#]+)", re.MULTILINE)
    text = _DICTIONARY.read_text(encoding="utf-8")
    return [(match[1], match[2].strip()) for match in entry.finditer(text)]


def _grammar(phrases: list[str], words: list[str], free_words: bool) -> str:
    """One or more phrases in a row; with ``free_words``, or any sequence of the words."""
    body = f"( {' | '.join(f'( {phrase} )' for phrase in phrases)} )+"
    if free_words:
        body = f"{body} | ( {' | '.join(words)} )+"
    return f"#JSGF V1.0;\ngrammar vocabulary;\npublic <utterance> = {body} ;\n"
