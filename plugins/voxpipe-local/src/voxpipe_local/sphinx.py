"""The ``pocketsphinx`` ASR: CMU PocketSphinx 5 in this process, on the live audio, with the
session's VAD marking the utterances (``voxpipe_local.sphinx_model`` says what it decodes
with).

Each stream has its own decoder (the general language model in it is the process's one,
shared) and one worker thread that does all of its work (building the decoder, decoding,
finalizing), in order, through ``run_in_executor`` (what looptime, the virtual clock, waits
for): the event loop only hands it audio. Between utterances the stream keeps the last
``KEEP_MS`` of audio; when the speech starts, what lies from ``PREROLL_MS`` before it on is
decoded, then every frame as it comes (what waits for the worker, in batches of up to
``BATCH_MS``), and a partial transcript is yielded whenever the hypothesis changes;
``speech_ended`` ends the utterance and yields the final one. Closing the stream or
cancelling its consumer stops the worker once the piece of work in hand is done (a batch's
decoding: a few ms).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from voxpipe.audio import AudioFrame, Int16Array, StreamResampler
from voxpipe.errors import ProviderError
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import ASREvent, Transcript
from voxpipe.streams import Channel
from voxpipe.vad import Utterance
from voxpipe_local.sphinx_model import SAMPLE_RATE, Decoder, PocketsphinxOptions, SphinxModel

PROVIDER = "pocketsphinx"
#: Audio decoded from before the speech start the VAD gives (soft onsets are below it).
PREROLL_MS = 200.0
#: Audio kept between utterances: the pre-roll, and the VAD's ``[turns] min_speech_ms``
#: (speech is confirmed that late, and dated back).
KEEP_MS = 500.0
#: Audio waiting for the worker is decoded in batches of at most this much (one hop to the
#: thread and one hypothesis each): a decoder that falls behind catches up.
BATCH_MS = 100
_BATCH_BYTES = 2 * SAMPLE_RATE * BATCH_MS // 1000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Begin:
    """Start an utterance."""


@dataclass(frozen=True, slots=True)
class _End:
    """End the utterance: its final transcript."""

    detected_ms: float


_Command = _Begin | _End | bytearray  # bytearray: 16 kHz audio to decode


class PocketsphinxASR:
    """A push ASR (plugin API v2) that relies on the session's VAD to end utterances; one
    ``PocketsphinxStream`` (its own decoder) per session."""

    detects_end_of_turn = False

    def __init__(self, options: PocketsphinxOptions, context: BackendContext | None = None) -> None:
        self.options, self.context = options, context or BackendContext()
        self.model = SphinxModel(options)

    def listen(self) -> PocketsphinxStream:
        """A new stream (inside a running event loop: it starts its worker)."""
        return PocketsphinxStream(self.model)

    async def aclose(self) -> None:
        """Nothing to release: each stream's decoder and thread are its own, and the general
        language model stays loaded for the process's other sessions."""


class PocketsphinxStream:
    """One session's recognition (see the module docstring)."""

    def __init__(self, model: SphinxModel) -> None:
        self._model = model
        self._resampler: StreamResampler | None = None
        #: Recent audio (end ms, 16 kHz samples) while no utterance is in progress.
        self._recent: deque[tuple[float, Int16Array]] = deque()
        self._speaking = False
        self._commands: Channel[_Command] = Channel()
        #: The audio command queued last, while the worker has not taken it: more joins it.
        self._batch: bytearray | None = None
        self._events: Channel[Transcript] = Channel()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pocketsphinx")
        self._worker = asyncio.create_task(self._decode_all())
        self._iterator = self._transcripts()

    def push(self, frame: AudioFrame) -> None:
        if self._commands.closed:
            return
        samples = self._at_16khz(frame)
        if not len(samples):  # the resampler gives its audio in bursts
            return
        if self._speaking:
            self._decode(samples)
            return
        recent = self._recent
        recent.append((frame.end_ms, samples))
        while recent and recent[0][0] <= frame.end_ms - KEEP_MS:
            recent.popleft()

    def speech_started(self, at_ms: float) -> None:
        if self._speaking or self._commands.closed:
            return
        self._speaking = True
        self._command(_Begin())
        for end_ms, samples in self._recent:
            if end_ms > at_ms - PREROLL_MS:
                self._decode(samples)
        self._recent.clear()

    def speech_ended(self, utterance: Utterance) -> None:
        self.speech_started(utterance.start_ms)  # a start the stream was not told of
        if self._speaking:
            self._speaking = False
            self._command(_End(utterance.detected_ms))

    def end_input(self) -> None:
        self._commands.close()

    def __aiter__(self) -> AsyncIterator[ASREvent]:
        return self._iterator

    async def aclose(self) -> None:
        await self._stop()
        self._events.close()  # a consumer waiting for events is done

    def _decode(self, samples: Int16Array) -> None:
        """Queue audio of the utterance: into the batch waiting, while it has room."""
        batch = self._batch
        if batch is not None and len(batch) < _BATCH_BYTES:
            batch += samples.tobytes()
            return
        self._batch = bytearray(samples.tobytes())
        self._commands.put(self._batch)

    def _command(self, command: _Begin | _End) -> None:
        self._batch = None  # audio after this is no part of the batch before it
        self._commands.put(command)

    def _at_16khz(self, frame: AudioFrame) -> Int16Array:
        if frame.sample_rate == SAMPLE_RATE:
            return frame.samples
        if self._resampler is None or self._resampler.from_rate != frame.sample_rate:
            self._resampler = StreamResampler(frame.sample_rate, SAMPLE_RATE)
        return self._resampler.push(frame.samples)

    async def _transcripts(self) -> AsyncGenerator[Transcript, None]:
        try:
            async for transcript in self._events:
                yield transcript
        finally:  # the consumer is done, or has gone: so is the worker
            await self._stop()

    async def _stop(self) -> None:
        self._commands.close()
        self._recent.clear()
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        self._executor.shutdown()  # idle by now: its thread ends at once

    async def _decode_all(self) -> None:
        try:
            decoder = await self._run(self._model.decoder)
            last = ""
            async for command in self._commands:
                if isinstance(command, _Begin):
                    await self._run(decoder.start_utt)
                    last = ""
                elif isinstance(command, _End):
                    text = await self._run(final_text, decoder)
                    self._events.put(Transcript(text, True, endpoint_ms=command.detected_ms))
                else:
                    if command is self._batch:
                        self._batch = None  # taken: later audio starts the next one
                    text = await self._run(partial_text, decoder, bytes(command))
                    if text and text != last:
                        last = text
                        self._events.put(Transcript(text, False))
            self._events.close()
        except Exception as exc:  # a decoder that cannot start or decode
            self._commands.close()
            self._events.fail(
                ProviderError(f"{PROVIDER}: decoding failed: {exc}", provider=PROVIDER)
            )

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` on the worker thread; cancelled, it still waits for the work to
        be done (the decoder is never left mid-call)."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            raise


def partial_text(decoder: Decoder, audio: bytes) -> str:
    """Decode ``audio`` (16 kHz 16-bit) into the utterance; the hypothesis so far."""
    decoder.process_raw(audio, False, False)
    return _text(decoder)


def final_text(decoder: Decoder) -> str:
    """End the utterance; its final hypothesis."""
    decoder.end_utt()
    return _text(decoder)


def _text(decoder: Decoder) -> str:
    hypothesis = decoder.hyp()
    return str(hypothesis.hypstr) if hypothesis is not None else ""
