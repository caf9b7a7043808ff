"""What the ``pocketsphinx`` ASR decodes with: PyPI ``pocketsphinx`` ships the en-us acoustic
model, its dictionary (CMUdict) and a general language model.

The general language model (~35 MB) is loaded once per process, on first use, and shared
by every decoder that uses it (``shared_language_model``); each decoder still builds its
own acoustic model, dictionary and search (the library shares none of them), ~0.3 s and
~60 MB. With a ``vocabulary`` the decoder takes a JSGF grammar instead: one or more of the
phrases in a row (with ``free_words``, also any sequence of their words), and a dictionary
of only those words, added to an empty one: a decoder then starts in ~15 ms and takes ~5 MB.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
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
_LANGUAGE_MODEL = _MODEL / "en-us.lm.bin"
#: The search the shared language model is added to, in each decoder.
_GENERAL_SEARCH = "general"


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
        """A new decoder (blocking: ~20 ms with a vocabulary, ~0.3 s without, plus ~40 ms to
        load the language model the first time in the process; off the loop)."""
        if self.grammar is None:
            config = pocketsphinx.Config(lm=None, loglevel="ERROR")
            shared = shared_language_model(config)
            decoder = pocketsphinx.Decoder(config)
            decoder.add_lm(_GENERAL_SEARCH, shared.model)
            decoder.activate_search(_GENERAL_SEARCH)
            return SharingDecoder(decoder, shared.lock)
        decoder = pocketsphinx.Decoder(
            hmm=str(_ACOUSTIC_MODEL), lm=None, dict=None, loglevel="ERROR"
        )
        for at, (word, phones) in enumerate(self.pronunciations, 1):
            decoder.add_word(word, phones, at == len(self.pronunciations))
        decoder.add_jsgf_string("vocabulary", self.grammar)
        decoder.activate_search("vocabulary")
        return decoder  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class SharedLanguageModel:
    """An n-gram model (``pocketsphinx.NGramModel``) that several decoders search, and the
    lock their calls hold: scoring writes the model's backoff cache, so two decoders must
    not score at once. (pocketsphinx 5.1.1's binding holds the GIL through every call,
    which already keeps them apart; the lock does not rely on that.)"""

    model: Any
    lock: threading.Lock


_shared_language_models: dict[tuple[str, float, float, float], SharedLanguageModel] = {}
_shared_language_models_lock = threading.Lock()


def shared_language_model(config: Any) -> SharedLanguageModel:
    """The general language model with ``config``'s weights (``pocketsphinx.Config``: the
    decoder's), loaded on first use (~40 ms, ~35 MB) and kept for the process. A decoder's
    search holds it by reference (its C structure is reference-counted); a decoder sharing
    it must not ``add_word`` (that adds the word to the shared model)."""
    key = (str(_LANGUAGE_MODEL), config["lw"], config["wip"], config["logbase"])
    with _shared_language_models_lock:
        shared = _shared_language_models.get(key)
        if shared is None:
            model = pocketsphinx.NGramModel(
                config, pocketsphinx.LogMath(config["logbase"]), str(_LANGUAGE_MODEL)
            )
            shared = _shared_language_models[key] = SharedLanguageModel(model, threading.Lock())
        return shared


class SharingDecoder:
    """A decoder whose language model others share: each call holds the model's lock."""

    def __init__(self, decoder: Any, lock: threading.Lock) -> None:
        self._decoder, self._lock = decoder, lock

    def start_utt(self) -> None:
        with self._lock:
            self._decoder.start_utt()

    def process_raw(self, data: bytes, no_search: bool, full_utt: bool) -> int:
        with self._lock:
            return self._decoder.process_raw(data, no_search, full_utt)  # type: ignore[no-any-return]

    def end_utt(self) -> None:
        with self._lock:
            self._decoder.end_utt()

    def hyp(self) -> Any:
        with self._lock:
            return self._decoder.hyp()


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
