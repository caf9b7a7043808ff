"""OpenAIASR: the session's VAD cuts utterances from the live audio; each one is uploaded as
a WAV to ``/v1/audio/transcriptions`` with ``stream=True`` and its text deltas come back as
partial transcripts, the done event as the final one."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import numpy as np
from openai import AsyncStream, omit
from pydantic import Field

from voxpipe.audio import AudioFrame, Int16Array
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import ASREvent, Transcript
from voxpipe.streams import Channel
from voxpipe.vad import Utterance
from voxpipe_openai._client import ClientBackend, ConnectionOptions, timeout_ms
from voxpipe_openai._errors import malformed, translated

_WHAT = "transcription"
#: Audio sent from before the first voiced frame (soft word onsets are below the threshold).
PREROLL_MS = 200.0
#: Audio sent after the last voiced frame (the rest of the endpointing silence is not).
TAIL_MS = 200.0
#: Between utterances the buffer also keeps this much: the session's VAD confirms speech
#: once it has heard ``[turns] min_speech_ms`` (60 by default) and dates it back that far
#: (a min_speech_ms above this costs the pre-roll).
CONFIRM_MS = 300.0


class OpenAIASROptions(ConnectionOptions):
    model: str = Field("gpt-4o-transcribe", min_length=1, description="transcription model")
    language: str | None = Field(None, description="ISO-639-1 code of the speech, e.g. 'en'")
    prompt: str | None = Field(None, description="text to guide style and vocabulary")
    first_byte_timeout_ms: float = timeout_ms(
        10_000, "longest wait from the upload's start (connecting included) to the first text"
    )
    idle_timeout_ms: float = timeout_ms(5_000, "longest wait between two transcript events")


@dataclass(frozen=True, slots=True)
class _Clip:
    """One utterance's audio, ready to upload."""

    samples: Int16Array
    sample_rate: int
    #: Session ms at which the session's endpointer decided the speech was over.
    detected_ms: float


class OpenAIASR(ClientBackend):
    """One ``OpenAIASRStream`` per session; they share the client and nothing else."""

    def __init__(self, options: OpenAIASROptions, context: BackendContext | None = None) -> None:
        super().__init__(options)
        self.options = options
        self.context = context or BackendContext()

    def listen(self) -> OpenAIASRStream:
        """A new stream (inside a running event loop: it starts its uploader task)."""
        return OpenAIASRStream(self)

    async def _transcribe(self, clip: _Clip) -> AsyncGenerator[Transcript, None]:
        """Upload ``clip``; partials per streamed text delta, then the final."""
        opts, endpoint = self.options, clip.detected_ms
        deadline = self._deadline(_WHAT, "transcript")
        with translated(_WHAT, self._key):
            stream: AsyncStream[Any] = await deadline.wait(
                self._client.audio.transcriptions.create(
                    file=("utterance.wav", to_wav(clip.samples, clip.sample_rate), "audio/wav"),
                    model=opts.model,
                    stream=True,
                    language=omit if opts.language is None else opts.language,
                    prompt=omit if opts.prompt is None else opts.prompt,
                )
            )
        async with stream:  # closes the response however this ends
            kind = stream.response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "application/json":  # a server that does not stream (e.g. whisper-1)
                with translated(_WHAT, self._key):
                    text = _json_text(await deadline.wait(stream.response.aread()))
                yield Transcript(text, True, endpoint_ms=endpoint)
                return
            text = ""
            while True:
                with translated(_WHAT, self._key):
                    try:
                        event = await deadline.wait(anext(stream))
                    except StopAsyncIteration:
                        break
                    kind, value = _event(event)
                deadline.output_came()
                if kind == "transcript.text.delta" and value:
                    text += value
                    yield Transcript(text, False, endpoint_ms=endpoint)
                elif kind == "transcript.text.done":
                    yield Transcript(value, True, endpoint_ms=endpoint)
                    return
        # The stream ended without a done event (some compatible servers): what it sent is it.
        yield Transcript(text, True, endpoint_ms=endpoint)


class OpenAIASRStream:
    """One session's recognition. ``push`` keeps recent audio (at the session rate);
    ``speech_ended`` cuts the utterance from it and queues the upload. Uploads run one after
    another in one task, so transcripts stay in order; the first error ends the events with
    it, while audio may still be flowing. ``aclose()``, or a consumer of the events that is
    cancelled or closed, stops the uploads and closes the response in flight."""

    def __init__(self, asr: OpenAIASR) -> None:
        self._asr = asr
        self._rate = asr.context.sample_rate
        self._frames: deque[AudioFrame] = deque()
        self._speaking = False
        #: Utterances to upload; closed once no more will be (end of input, error, close).
        self._clips: Channel[_Clip] = Channel()
        self._events: Channel[Transcript] = Channel()
        self._uploader = asyncio.create_task(self._upload_all())
        self._iterator = self._transcripts()

    def push(self, frame: AudioFrame) -> None:
        if self._clips.closed:
            return  # nothing more will be uploaded: keep nothing
        self._frames.append(frame.resampled(self._rate))
        if not self._speaking:
            self._forget_old()

    def speech_started(self, at_ms: float) -> None:
        self._speaking = True

    def speech_ended(self, utterance: Utterance) -> None:
        self._speaking = False
        if self._clips.closed:
            return
        start, end = utterance.start_ms - PREROLL_MS, utterance.end_ms + TAIL_MS
        samples = _cut(self._frames, start, end, self._rate)
        self._clips.put(_Clip(samples, self._rate, utterance.detected_ms))
        self._forget_old()

    def end_input(self) -> None:
        self._clips.close()

    def __aiter__(self) -> AsyncIterator[ASREvent]:
        return self._iterator

    async def aclose(self) -> None:
        await self._stop_uploads()
        self._events.close()  # a consumer waiting for events is done

    def _forget_old(self) -> None:
        """No speech in progress: keep only what the next utterance's pre-roll may need."""
        frames = self._frames
        keep_from = frames[-1].end_ms - PREROLL_MS - CONFIRM_MS if frames else 0.0
        while frames and frames[0].end_ms <= keep_from:
            frames.popleft()

    async def _transcripts(self) -> AsyncGenerator[Transcript, None]:
        try:
            async for transcript in self._events:
                yield transcript
        finally:  # the consumer is done, or has gone: so are the uploads
            await self._stop_uploads()

    async def _stop_uploads(self) -> None:
        self._clips.close()
        self._frames.clear()
        self._uploader.cancel()
        await asyncio.gather(self._uploader, return_exceptions=True)

    async def _upload_all(self) -> None:
        try:
            async for clip in self._clips:
                async with aclosing(self._asr._transcribe(clip)) as transcripts:
                    async for transcript in transcripts:
                        self._events.put(transcript)
        except Exception as exc:
            self._clips.close()  # later utterances are dropped, not queued
            self._events.fail(exc)
        else:
            self._events.close()


def _cut(frames: Iterable[AudioFrame], start_ms: float, end_ms: float, rate: int) -> Int16Array:
    """The samples of ``frames`` (at ``rate``) that lie in ``[start_ms, end_ms)``."""
    kept = []
    for frame in frames:
        if frame.end_ms <= start_ms or frame.start_ms >= end_ms:
            continue
        first = max(round((start_ms - frame.start_ms) * rate / 1000), 0)
        last = round((end_ms - frame.start_ms) * rate / 1000)
        kept.append(frame.samples[first:last])
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int16)


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
