"""The ``espeak`` TTS: espeak-ng in this process, through ctypes (PyPI ``espeakng-loader``
ships the library and its voice data; both are GPL-3), else the ``espeak-ng`` command
(``voxpipe_local.espeak_command``) where that is installed.

The library synthesises one phrase at a time per process (one global callback, one voice
setting): phrases are serialised by ``SYNTH_LOCK`` and synthesised off the event loop, in
the loop's default executor (``run_in_executor``: what looptime, the virtual clock, knows to
wait for). Its synthesis callback hands each chunk (~60 ms of 22.05 kHz audio) to the
loop as it is made; the stream resamples it to the session rate and cuts it into frames.
The callback also gets espeak-ng's word events: where each word starts in the text and in
the audio. The stream turns them into ``Alignment`` pieces (``_Aligner``), each sent as soon
as the next word's start tells where it ends: before the audio chunk that piece ends in; the
last piece once synthesis is done.
Closing the stream or cancelling its consumer makes the callback abort the synthesis, and
the stream ends once the worker has returned: no synthesis outlives its stream.
"""

from __future__ import annotations

import asyncio
import ctypes
import shutil
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from voxpipe.audio import Framer, StreamResampler
from voxpipe.errors import ConfigError, ProviderError
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Alignment, TTSOutput
from voxpipe_local.espeak_command import CommandEngine

PROVIDER = "espeak"
#: One synthesis at a time in this process (the library's state is global).
SYNTH_LOCK = threading.Lock()
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: audio to the callback, Synth blocks
_BUFFER_MS = 60  # audio per callback
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_RATE, _PITCH = 1, 3  # espeak_PARAMETER
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1  # espeak_EVENT_TYPE


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """speak_lib.h's ``espeak_EVENT``; a synthesis callback gets an array of them, ended by
    one of type LIST_TERMINATED."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # characters, from 1
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms of this synthesis's audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class EspeakOptions(BaseModel):
    """``[tts]`` options when ``backend = "espeak"``; unknown options are config errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    voice: str = Field(
        "en-us", pattern=r"^[A-Za-z0-9_+-]{1,40}$", description="espeak-ng voice (--voices)"
    )
    rate: int = Field(175, ge=80, le=450, description="words per minute")
    pitch: int = Field(50, ge=0, le=99, description="base pitch, 0-99")


@dataclass(frozen=True, slots=True)
class WordStart:
    """A word's audio starts ``audio_ms`` into the phrase's audio; the word starts at
    ``text_index`` (characters) of the phrase's text."""

    text_index: int
    audio_ms: float


class Engine(Protocol):
    """How a phrase is synthesised: 16-bit mono PCM at ``sample_rate`` into a sink, and the
    start of each word where the engine tells it (before the audio it falls in)."""

    sample_rate: int

    def has_voice(self, voice: str) -> bool: ...

    def synthesize(
        self, text: str, options: EspeakOptions, sink: Callable[[bytes | WordStart], bool]
    ) -> None:
        """Blocking, off the event loop; stops early when ``sink`` returns False."""


class LibraryEngine:
    """The process's libespeak-ng, one phrase at a time (``SYNTH_LOCK``)."""

    def __init__(self) -> None:
        with SYNTH_LOCK:
            self.sample_rate = library().sample_rate

    def has_voice(self, voice: str) -> bool:
        with SYNTH_LOCK:
            return library().set_voice(voice)

    def synthesize(
        self, text: str, options: EspeakOptions, sink: Callable[[bytes | WordStart], bool]
    ) -> None:
        with SYNTH_LOCK:
            library().synthesize(text, options, sink)


def default_engine() -> Engine:
    """espeakng-loader's library; else the espeak-ng command on PATH; else a ConfigError
    saying how to get either."""
    try:
        return LibraryEngine()
    except ConfigError as exc:
        command = shutil.which("espeak-ng")
        if command is None:
            raise ConfigError(
                f"{exc} Or install the espeak-ng command (apt install espeak-ng, brew install "
                "espeak-ng): it is not on PATH either."
            ) from None
        return CommandEngine(command)


class _Library:
    """libespeak-ng, loaded and initialised once per process (``library()``)."""

    def __init__(self) -> None:
        lib_path, data_path = _paths()
        self.lib = ctypes.CDLL(lib_path)
        self.lib.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        # The directory that holds espeak-ng-data.
        parent = str(Path(data_path).parent).encode()
        self.sample_rate = int(
            self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, parent, 0)
        )
        if self.sample_rate <= 0:
            raise ConfigError(
                f"{PROVIDER}: libespeak-ng ({lib_path}) did not start with {data_path}"
            )
        self._sink: Callable[[bytes | WordStart], bool] | None = None
        self._callback = _CALLBACK(self._on_audio)  # referenced for as long as the library
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(
        self, wav: ctypes._Pointer[ctypes.c_short], count: int, events: ctypes._Pointer[_Event]
    ) -> int:
        """A chunk of audio (none at the end) and the events that fall in it: the word starts
        go to the sink first, then the audio. Returns 1 to abort the synthesis."""
        sink = self._sink
        if sink is None:
            return 0
        i = 0
        while events and (event := events[i]).type != _EVENT_LIST_TERMINATED:
            if event.type == _EVENT_WORD:
                word = WordStart(event.text_position - 1, float(event.audio_position))
                if not sink(word):
                    return 1
            i += 1
        if wav and count > 0 and not sink(ctypes.string_at(wav, 2 * count)):
            return 1
        return 0

    def set_voice(self, voice: str) -> bool:
        """Whether espeak-ng has ``voice`` (call under ``SYNTH_LOCK``)."""
        return bool(self.lib.espeak_SetVoiceByName(voice.encode()) == 0)

    def synthesize(
        self, text: str, options: EspeakOptions, sink: Callable[[bytes | WordStart], bool]
    ) -> None:
        """Speak ``text`` into ``sink`` chunk by chunk, each word's start before the chunk it
        falls in, until done or ``sink`` says stop; call under ``SYNTH_LOCK``, off the event
        loop."""
        if not self.set_voice(options.voice):
            raise ProviderError(f"{PROVIDER}: no voice {options.voice!r}", provider=PROVIDER)
        self.lib.espeak_SetParameter(_RATE, options.rate, 0)
        self.lib.espeak_SetParameter(_PITCH, options.pitch, 0)
        data = text.encode()
        self._sink = sink
        try:
            status = self.lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
        finally:
            self._sink = None
        if status != 0:
            raise ProviderError(
                f"{PROVIDER}: synthesis failed (espeak error {status})", provider=PROVIDER
            )


_library: _Library | None = None


def library() -> _Library:
    """The process's libespeak-ng, started on first use (call under ``SYNTH_LOCK``)."""
    global _library
    if _library is None:
        _library = _Library()
    return _library


def _paths() -> tuple[str, str]:
    """libespeak-ng and its data, from espeakng-loader; a ConfigError saying how to get them."""
    try:
        import espeakng_loader  # type: ignore[import-untyped]  # no type hints
    except ImportError:
        raise ConfigError(
            f"{PROVIDER}: espeak-ng not found: the espeakng-loader package, which ships it, is "
            "not installed. pip install voxpipe-local (or espeakng-loader)."
        ) from None
    lib_path = str(espeakng_loader.get_library_path())
    try:
        data_path = str(espeakng_loader.get_data_path())
    except RuntimeError:  # its voice data is missing
        data_path = ""
    if not Path(lib_path).is_file() or not data_path:
        raise ConfigError(
            f"{PROVIDER}: espeak-ng or its voice data not found beside {lib_path}: "
            "espeakng-loader has none for this platform, or is damaged. Reinstall it "
            "(pip install --force-reinstall espeakng-loader)."
        )
    return lib_path, data_path


class _Aligner:
    """Cuts a phrase's text into ``Alignment`` pieces at the engine's word starts. A piece
    runs from its word's start to the next word's (the text before the first word goes with
    the first, after the last word with the last), and in the audio from its word's start to
    the next word's."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._start = 0  # the open piece's start in the text
        self._start_ms: float | None = None  # and in the audio; None until the first word

    def word(self, word: WordStart) -> Alignment | None:
        """The piece this word's start ends, if it ends one. A word placed no later in the
        text than the open piece's start joins that piece (espeak-ng gives the words it
        reads one token as, like 日本, one position)."""
        if self._start_ms is None:
            self._start_ms = word.audio_ms
            return None
        if not self._start < word.text_index < len(self.text):
            return None
        end_ms = max(word.audio_ms, self._start_ms)
        piece = Alignment(self.text[self._start : word.text_index], self._start_ms, end_ms)
        self._start, self._start_ms = word.text_index, end_ms
        return piece

    def last(self, end_ms: float) -> Alignment | None:
        """The open piece, to the end of the text and ``end_ms``; None if no word came (an
        engine without word starts, or a phrase of punctuation only)."""
        if self._start_ms is None:
            return None
        return Alignment(self.text[self._start :], self._start_ms, max(end_ms, self._start_ms))


class EspeakTTS:
    """A per-phrase TTS (plugin API v2): espeak-ng's audio streamed as it is synthesised,
    with the ``Alignment`` of its words (the library engine's; the command gives none)."""

    def __init__(
        self,
        options: EspeakOptions,
        context: BackendContext | None = None,
        *,
        engine: Engine | None = None,
    ) -> None:
        self.options, self.context = options, context or BackendContext()
        self.engine = engine or default_engine()
        if not self.engine.has_voice(options.voice):
            raise ConfigError(
                f"[tts] voice: espeak-ng has no voice {options.voice!r} (espeak-ng --voices "
                "lists them; e.g. en-us, en-gb, de, fr)"
            )

    async def synthesize(self, text: str) -> AsyncGenerator[TTSOutput, None]:
        if not text.strip():
            return
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | WordStart | None] = asyncio.Queue()
        stop = threading.Event()

        def sink(chunk: bytes | WordStart) -> bool:
            if stop.is_set():
                return False
            try:
                loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            except RuntimeError:  # the loop is closed: nobody is listening
                return False
            return True

        def run() -> None:
            if not stop.is_set():  # the stream may have been closed while this waited
                self.engine.synthesize(text, self.options, sink)

        worker = loop.run_in_executor(None, run)
        # Scheduled after every chunk the worker sent: the end of the queue.
        worker.add_done_callback(lambda _: chunks.put_nowait(None))
        rate, frame_ms = self.context.sample_rate, self.context.frame_ms
        resampler = StreamResampler(self.engine.sample_rate, rate)
        framer = Framer(rate, frame_ms)
        aligner = _Aligner(text)
        synthesized = 0  # samples at the engine's rate
        try:
            while (chunk := await chunks.get()) is not None:
                if isinstance(chunk, WordStart):
                    if (piece := aligner.word(chunk)) is not None:
                        yield piece
                    continue
                samples = np.frombuffer(chunk, "<i2").astype(np.int16)
                synthesized += len(samples)
                for frame in framer.push(resampler.push(samples)):
                    yield frame
            await worker  # its error, if synthesis failed
            if (piece := aligner.last(1000 * synthesized / self.engine.sample_rate)) is not None:
                yield piece
            tail = resampler.push(np.zeros(0, dtype=np.int16), last=True)
            for frame in (*framer.push(tail), *framer.flush()):
                yield frame
        finally:
            stop.set()  # the callback aborts the synthesis at its next chunk
            await asyncio.wait([worker])

    async def aclose(self) -> None:
        """Nothing is held per backend: the library is the process's, a command's process
        the phrase's."""
