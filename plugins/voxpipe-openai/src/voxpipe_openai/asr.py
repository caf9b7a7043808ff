"""OpenAIASR: the session's VAD cuts utterances from the live audio; each one is uploaded as
a WAV to ``/v1/audio/transcriptions`` with ``stream=True`` and its text deltas come back as
partial transcripts, the done event as the final one. An utterance longer than
``max_utterance_ms`` is cut there and uploaded in parts, so the audio held stays bounded."""

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
from voxpipe_openai._body import SSE, BodyWatch, content_type, looks_like_sse, read_head
from voxpipe_openai._client import ClientBackend, ConnectionOptions, timeout_ms
from voxpipe_openai._errors import (
    malformed,
    no_events,
    quoted,
    snippet,
    translated,
    truncated,
    wrong_content,
)

_WHAT = "transcription"
#: Audio sent from before the first voiced frame (soft word onsets are below the threshold).
PREROLL_MS = 200.0
#: Audio sent after the last voiced frame (the rest of the endpointing silence is not).
TAIL_MS = 200.0
#: Between utterances the buffer also keeps this much: the session's VAD confirms speech
#: once it has heard ``[turns] min_speech_ms`` (60 by default) and dates it back that far
#: (a min_speech_ms above this costs the pre-roll).
CONFIRM_MS = 300.0
#: The bounds of ``max_utterance_ms``: at most 4 minutes (23 MB of WAV at 48 kHz, under the
#: API's 25 MB upload limit).
MIN_UTTERANCE_MS, MAX_UTTERANCE_MS = 1_000.0, 240_000.0


class OpenAIASROptions(ConnectionOptions):
    model: str = Field("gpt-4o-transcribe", min_length=1, description="transcription model")
    language: str | None = Field(None, description="ISO-639-1 code of the speech, e.g. 'en'")
    prompt: str | None = Field(None, description="text to guide style and vocabulary")
    first_byte_timeout_ms: float = timeout_ms(
        10_000, "longest wait from the upload's start (connecting included) to the first text"
    )
    idle_timeout_ms: float = timeout_ms(5_000, "longest wait between two transcript events")
    max_utterance_ms: float = Field(
        60_000,
        ge=MIN_UTTERANCE_MS,
        le=MAX_UTTERANCE_MS,
        description="longest audio uploaded at once, ms: a longer utterance is cut there and "
        "uploaded in parts (each its own final transcript)",
    )


@dataclass(frozen=True, slots=True)
class _Clip:
    """One utterance's audio, ready to upload."""

    samples: Int16Array
    sample_rate: int
    #: Session ms at which the session's endpointer decided the speech was over (None for a
    #: part cut at ``max_utterance_ms`` while the speech went on).
    detected_ms: float | None


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
            response = stream.response
            kind = content_type(response.headers)
            if kind == "application/json":  # a server that does not stream (e.g. whisper-1)
                with translated(_WHAT, self._key):
                    body = await deadline.wait(response.aread())
                yield Transcript(_json_text(body, self._key), True, endpoint_ms=endpoint)
                return
            if kind and kind != SSE:  # (no content type at all: the events will tell)
                head = await read_head(response.aiter_bytes(), deadline.wait)
                problem = f"the response is {kind}, neither an event stream ({SSE}) nor JSON"
                raise wrong_content(_WHAT, problem, head, self._key)
            body_watch = BodyWatch.install(response)
            text, events = "", 0
            while True:
                with translated(_WHAT, self._key):
                    try:
                        event = await deadline.wait(anext(stream))
                    except StopAsyncIteration:
                        break
                    event_type, value = _event(event)
                events += 1
                deadline.output_came()
                if event_type == "transcript.text.delta" and value:
                    text += value
                    yield Transcript(text, False, endpoint_ms=endpoint)
                elif event_type == "transcript.text.done":
                    yield Transcript(value, True, endpoint_ms=endpoint)
                    return
        # The stream ended without its done event: cut short, or never an event stream.
        if not events and body_watch.size and not looks_like_sse(body_watch.head):
            raise wrong_content(_WHAT, no_events(body_watch.size), body_watch.head, self._key)
        raise truncated(
            _WHAT,
            "the stream ended without transcript.text.done after "
            f"{events} event{'' if events == 1 else 's'} ({quoted(text)})",
        )


class OpenAIASRStream:
    """One session's recognition. ``push`` keeps recent audio (at the session rate);
    ``speech_ended`` cuts the utterance from it and queues the upload. Speech that goes on
    for ``max_utterance_ms`` is cut there and queued as it is, and the rest of the utterance
    starts the next part, so the audio kept never exceeds it. Uploads run one after another
    in one task, so transcripts stay in order; the first error ends the events with it,
    while audio may still be flowing. ``aclose()``, or a consumer of the events that is
    cancelled or closed, stops the uploads and closes the response in flight."""

    def __init__(self, asr: OpenAIASR) -> None:
        self._asr = asr
        self._rate = asr.context.sample_rate
        self._max_ms = asr.options.max_utterance_ms
        self._frames: deque[AudioFrame] = deque()
        self._speaking = False
        #: Where the part of the speech in progress starts (session ms), while speaking.
        self._part_start_ms = 0.0
        #: Utterances to upload; closed once no more will be (end of input, error, close).
        self._clips: Channel[_Clip] = Channel()
        self._events: Channel[Transcript] = Channel()
        self._uploader = asyncio.create_task(self._upload_all())
        self._iterator = self._transcripts()

    @property
    def buffered_ms(self) -> float:
        """How much audio the stream holds now (waiting uploads not counted)."""
        frames = self._frames
        return frames[-1].end_ms - frames[0].start_ms if frames else 0.0

    def push(self, frame: AudioFrame) -> None:
        if self._clips.closed:
            return  # nothing more will be uploaded: keep nothing
        self._frames.append(frame.resampled(self._rate))
        if not self._speaking:
            self._forget_old()
        elif self._frames[-1].end_ms - self._part_start_ms >= self._max_ms:
            self._cut_part(self._frames[-1].end_ms)

    def speech_started(self, at_ms: float) -> None:
        self._speaking = True
        self._part_start_ms = at_ms - PREROLL_MS
        frames = self._frames  # what lies before the pre-roll is no part of this utterance
        while frames and frames[0].end_ms <= self._part_start_ms:
            frames.popleft()

    def speech_ended(self, utterance: Utterance) -> None:
        speaking, self._speaking = self._speaking, False
        if self._clips.closed:
            return
        start = utterance.start_ms - PREROLL_MS
        if speaking:  # the utterance's earlier parts are uploaded already
            start = max(start, self._part_start_ms)
        samples = _cut(self._frames, start, utterance.end_ms + TAIL_MS, self._rate)
        self._clips.put(_Clip(samples, self._rate, utterance.detected_ms))
        self._forget_old()

    def _cut_part(self, end_ms: float) -> None:
        """The speech has gone on for ``max_utterance_ms``: upload it up to ``end_ms`` as it
        is (its own final transcript), and start the next part there."""
        samples = _cut(self._frames, self._part_start_ms, end_ms, self._rate)
        self._clips.put(_Clip(samples, self._rate, None))
        self._part_start_ms = end_ms
        frames = self._frames
        while frames and frames[0].end_ms <= end_ms:
            frames.popleft()

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


def _json_text(body: bytes, key: str | None) -> str:
    """The ``text`` of a JSON transcription; anything else is malformed, shown short."""
    try:
        data = json.loads(body)
    except ValueError:
        raise malformed(_WHAT, f"JSON that does not parse: {snippet(body, key)}") from None
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str):
        raise malformed(_WHAT, f"a JSON transcription without 'text': {snippet(body, key)}")
    return text
