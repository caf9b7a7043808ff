"""The ``espeak`` TTS: espeak-ng in this process, through ctypes (PyPI ``espeakng-loader``
ships the library and its voice data; both are GPL-3), else the ``espeak-ng`` command
(``voxpipe_local.espeak_command``) where that is installed.

The library synthesises one phrase at a time per process (one global callback, one voice
setting): phrases are serialised by ``SYNTH_LOCK`` and synthesised off the event loop, in
the loop's default executor (``run_in_executor``: what looptime, the virtual clock, knows to
wait for). Its synthesis callback hands each chunk (~60 ms of 22.05 kHz audio) to the
loop as it is made; the stream resamples it to the session rate and cuts it into frames.
Closing the stream or cancelling its consumer makes the callback abort the synthesis, and
the stream ends once the worker has returned: no synthesis outlives its stream.
"""

from __future__ import annotations

import asyncio
import ctypes
import shutil
import threading
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from voxpipe.audio import AudioFrame, Framer, StreamResampler
from voxpipe.errors import ConfigError, ProviderError
from voxpipe.hookspecs import BackendContext
from voxpipe_local.espeak_command import CommandEngine

PROVIDER = "espeak"
#: One synthesis at a time in this process (the library's state is global).
SYNTH_LOCK = threading.Lock()
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: audio to the callback, Synth blocks
_BUFFER_MS = 60  # audio per callback
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_RATE, _PITCH = 1, 3  # espeak_PARAMETER
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakOptions(BaseModel):
    """``[tts]`` options when ``backend = "espeak"``; unknown options are config errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    voice: str = Field(
        "en-us", pattern=r"^[A-Za-z0-9_+-]{1,40}$", description="espeak-ng voice (--voices)"
    )
    rate: int = Field(175, ge=80, le=450, description="words per minute")
    pitch: int = Field(50, ge=0, le=99, description="base pitch, 0-99")


class Engine(Protocol):
    """How a phrase is synthesised: 16-bit mono PCM at ``sample_rate`` into a sink."""

    sample_rate: int

    def has_voice(self, voice: str) -> bool: ...

    def synthesize(self, text: str, options: EspeakOptions, sink: Callable[[bytes], bool]) -> None:
        """Blocking, off the event loop; stops early when ``sink`` returns False."""


class LibraryEngine:
    """The process's libespeak-ng, one phrase at a time (``SYNTH_LOCK``)."""

    def __init__(self) -> None:
        with SYNTH_LOCK:
            self.sample_rate = library().sample_rate

    def has_voice(self, voice: str) -> bool:
        with SYNTH_LOCK:
            return library().set_voice(voice)

    def synthesize(self, text: str, options: EspeakOptions, sink: Callable[[bytes], bool]) -> None:
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
        self._sink: Callable[[bytes], bool] | None = None
        self._callback = _CALLBACK(self._on_audio)  # referenced for as long as the library
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(
        self, wav: ctypes._Pointer[ctypes.c_short], count: int, events: int | None
    ) -> int:
        if not wav or count <= 0 or self._sink is None:
            return 0
        return 0 if self._sink(ctypes.string_at(wav, 2 * count)) else 1  # 1: abort

    def set_voice(self, voice: str) -> bool:
        """Whether espeak-ng has ``voice`` (call under ``SYNTH_LOCK``)."""
        return bool(self.lib.espeak_SetVoiceByName(voice.encode()) == 0)

    def synthesize(self, text: str, options: EspeakOptions, sink: Callable[[bytes], bool]) -> None:
        """Speak ``text`` into ``sink`` chunk by chunk until done or ``sink`` says stop; call
        under ``SYNTH_LOCK``, off the event loop."""
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


class EspeakTTS:
    """A per-phrase TTS (plugin API v2): espeak-ng's audio streamed as it is synthesised."""

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

    async def synthesize(self, text: str) -> AsyncGenerator[AudioFrame, None]:
        if not text.strip():
            return
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        stop = threading.Event()

        def sink(chunk: bytes) -> bool:
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
        try:
            while (chunk := await chunks.get()) is not None:
                samples = np.frombuffer(chunk, "<i2").astype(np.int16)
                for frame in framer.push(resampler.push(samples)):
                    yield frame
            await worker  # its error, if synthesis failed
            tail = resampler.push(np.zeros(0, dtype=np.int16), last=True)
            for frame in (*framer.push(tail), *framer.flush()):
                yield frame
        finally:
            stop.set()  # the callback aborts the synthesis at its next chunk
            await asyncio.wait([worker])

    async def aclose(self) -> None:
        """Nothing is held per backend: the library is the process's, a command's process
        the phrase's."""
