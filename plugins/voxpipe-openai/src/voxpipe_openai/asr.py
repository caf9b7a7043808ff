"""OpenAIASR: the core's energy endpointer cuts utterances from the live audio; each one is
uploaded as a WAV to ``/v1/audio/transcriptions`` with ``stream=True`` and its text deltas are
yielded as partial transcripts, the done event as the final one."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from openai import AsyncStream, omit
from pydantic import Field

from voxpipe.audio import AudioFrame, Int16Array
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Transcript
from voxpipe.streams import Emit, pumped
from voxpipe.vad import DEFAULT_THRESHOLD_DB, EnergyVAD
from voxpipe_openai._client import ClientBackend, ConnectionOptions
from voxpipe_openai._errors import malformed, translated

_WHAT = "transcription"
#: Audio kept from before the first voiced frame (soft word onsets are below the threshold).
PREROLL_MS = 200.0
#: Audio kept after the last voiced frame (the rest of the endpointing silence is not sent).
TAIL_MS = 200.0


class OpenAIASROptions(ConnectionOptions):
    model: str = Field("gpt-4o-transcribe", min_length=1, description="transcription model")
    language: str | None = Field(None, description="ISO-639-1 code of the speech, e.g. 'en'")
    prompt: str | None = Field(None, description="text to guide style and vocabulary")
    endpoint_ms: float = Field(500, ge=20, description="silence that ends an utterance")
    threshold_db: float = Field(DEFAULT_THRESHOLD_DB, le=0, description="speech threshold, dBFS")


@dataclass(frozen=True, slots=True)
class _Utterance:
    samples: Int16Array
    sample_rate: int
    #: Session ms at which the endpointer decided the speech was over.
    detected_ms: float


class OpenAIASR(ClientBackend):
    """Endpoints locally, transcribes each utterance remotely, keeps listening meanwhile."""

    def __init__(self, options: OpenAIASROptions, context: BackendContext | None = None) -> None:
        super().__init__(options)
        self.options = options
        self.context = context or BackendContext()

    def transcribe(self, audio: AsyncIterator[AudioFrame]) -> AsyncIterator[Transcript]:
        return pumped(lambda emit: self._listen(audio, emit))

    async def _listen(self, audio: AsyncIterator[AudioFrame], emit: Emit[Transcript]) -> None:
        """Consume the audio (never waiting for an upload); hand utterances to the uploader."""
        utterances: asyncio.Queue[_Utterance | None] = asyncio.Queue()
        uploader = asyncio.create_task(self._upload_all(utterances, emit))
        try:
            rate = self.context.sample_rate
            vad = EnergyVAD(self.options.threshold_db, self.options.endpoint_ms)
            preroll: deque[AudioFrame] = deque()
            speech: list[AudioFrame] = []
            last: AudioFrame | None = None
            async for frame in audio:
                last = frame = frame.resampled(rate)
                was_silent = not vad.in_speech
                ended = vad.update(frame)
                if was_silent and vad.in_speech and vad.speech_start_ms is not None:
                    # Speech confirmed (dated back to its first voiced frame): keep what came
                    # PREROLL_MS before it, the voiced frames still in the pre-roll included.
                    start = vad.speech_start_ms
                    speech = [f for f in preroll if f.end_ms > start - PREROLL_MS]
                    preroll.clear()
                if vad.in_speech or ended is not None:
                    speech.append(frame)
                else:
                    preroll.append(frame)
                    keep_from = frame.start_ms - PREROLL_MS - vad.min_speech_ms
                    while preroll and preroll[0].end_ms <= keep_from:
                        preroll.popleft()
                if ended is not None:
                    utterances.put_nowait(_cut(speech, ended.end_ms, ended.detected_ms, rate))
                    speech = []
            if last is not None and (ended := vad.end(last.end_ms)) is not None:
                utterances.put_nowait(_cut(speech, ended.end_ms, ended.detected_ms, rate))
            utterances.put_nowait(None)
            await uploader
        finally:
            uploader.cancel()
            await asyncio.gather(uploader, return_exceptions=True)

    async def _upload_all(
        self, utterances: asyncio.Queue[_Utterance | None], emit: Emit[Transcript]
    ) -> None:
        """Transcribe utterances one after another, so their transcripts stay in order; an
        error ends the stream at once, while audio may still be flowing."""
        try:
            while (utterance := await utterances.get()) is not None:
                await self._upload(utterance, emit)
        except Exception as exc:
            emit(exc)

    async def _upload(self, utterance: _Utterance, emit: Emit[Transcript]) -> None:
        opts, endpoint = self.options, utterance.detected_ms
        with translated(_WHAT, self._key):
            stream: AsyncStream[Any] = await self._client.audio.transcriptions.create(
                file=(
                    "utterance.wav",
                    to_wav(utterance.samples, utterance.sample_rate),
                    "audio/wav",
                ),
                model=opts.model,
                stream=True,
                language=omit if opts.language is None else opts.language,
                prompt=omit if opts.prompt is None else opts.prompt,
            )
        async with stream:  # closes the response however this ends
            kind = stream.response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "application/json":  # a server that does not stream (e.g. whisper-1)
                with translated(_WHAT, self._key):
                    text = _json_text(await stream.response.aread())
                emit(Transcript(text, True, endpoint_ms=endpoint))
                return
            text = ""
            while True:
                with translated(_WHAT, self._key):
                    try:
                        event = await anext(stream)
                    except StopAsyncIteration:
                        break
                    kind, value = _event(event)
                if kind == "transcript.text.delta" and value:
                    text += value
                    emit(Transcript(text, False, endpoint_ms=endpoint))
                elif kind == "transcript.text.done":
                    emit(Transcript(value, True, endpoint_ms=endpoint))
                    return
        # The stream ended without a done event (some compatible servers): what it sent is it.
        emit(Transcript(text, True, endpoint_ms=endpoint))


def _cut(frames: list[AudioFrame], end_ms: float, detected_ms: float, rate: int) -> _Utterance:
    """The utterance's audio: pre-roll, speech and ``TAIL_MS`` of the silence after it."""
    kept = [f.samples for f in frames if f.start_ms < end_ms + TAIL_MS]
    samples = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int16)
    return _Utterance(samples, rate, detected_ms)


def to_wav(samples: Int16Array, sample_rate: int) -> bytes:
    """16-bit mono PCM in a WAV container, in memory."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def _event(event: Any) -> tuple[str, str]:
    """``(type, text)`` of a streamed transcription event; unknown types pass as ``(type, "")``."""
    kind = getattr(event, "type", None)
    if not isinstance(kind, str):
        raise malformed(_WHAT, "an event without a 'type'")
    field = {"transcript.text.delta": "delta", "transcript.text.done": "text"}.get(kind)
    if field is None:
        return kind, ""
    value = getattr(event, field, None)
    if not isinstance(value, str):
        raise malformed(_WHAT, f"a {kind} event without a text '{field}'")
    return kind, value


def _json_text(body: bytes) -> str:
    data = json.loads(body)
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str):
        raise malformed(_WHAT, "a JSON transcription without 'text'")
    return text
