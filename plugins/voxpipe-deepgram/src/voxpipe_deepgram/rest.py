"""DeepgramRESTASR: pre-recorded ``POST /v1/listen``, one request per utterance. The
session's VAD cuts utterances from the live audio; each one is uploaded as a WAV when the VAD
ends it and its transcript comes back as one final. An utterance longer than
``max_utterance_ms`` is cut there and uploaded in parts, so the audio held stays bounded."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from voxpipe.audio import AudioFrame, Int16Array
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import ASREvent, Transcript
from voxpipe.streams import Channel
from voxpipe.vad import Utterance
from voxpipe_deepgram._errors import malformed, snippet, transport, wrong_content
from voxpipe_deepgram._http import HTTPBackend, HTTPOptions, close_iterator, read_head
from voxpipe_deepgram._transcripts import heard, transcript

_WHAT = "transcription"
#: Audio sent from before the first voiced frame (soft word onsets are below the threshold).
PREROLL_MS = 200.0
#: Audio sent after the last voiced frame (the rest of the endpointing silence is not).
TAIL_MS = 200.0
#: Between utterances the buffer also keeps this much: the session's VAD confirms speech
#: once it has heard ``[turns] min_speech_ms`` and dates it back that far.
CONFIRM_MS = 300.0
#: The longest answer read (a transcript of minutes of speech is tens of KB).
MAX_ANSWER_BYTES = 4 << 20


class DeepgramRESTASROptions(HTTPOptions):
    """``[asr] backend = "deepgram-rest"``."""

    model: str = Field("nova-3", min_length=1, description="Deepgram model")
    language: str | None = Field(
        None, min_length=1, description="BCP-47 tag of the speech ('en', 'multi'...)"
    )
    smart_format: bool = Field(True, description="Deepgram's smart formatting")
    punctuate: bool = Field(True, description="punctuation and capitals")
    max_utterance_ms: float = Field(
        60_000,
        ge=1_000,
        le=600_000,
        description="longest audio uploaded at once, ms: a longer utterance is cut there and "
        "uploaded in parts (each its own final transcript)",
    )


@dataclass(frozen=True, slots=True)
class _Clip:
    """One utterance's audio, ready to upload."""

    samples: Int16Array
    sample_rate: int
    #: Session ms of the clip's first sample (Deepgram times words from it).
    start_ms: float
    #: When the session's endpointer decided the speech was over (None for a part cut at
    #: ``max_utterance_ms`` while the speech went on).
    detected_ms: float | None


class DeepgramRESTASR(HTTPBackend):
    """One ``DeepgramRESTASRStream`` per session; they share the HTTP client."""

    def __init__(
        self, options: DeepgramRESTASROptions, context: BackendContext | None = None
    ) -> None:
        super().__init__(options)
        self.options = options
        self.context = context or BackendContext()

    def listen(self) -> DeepgramRESTASRStream:
        """A new stream (inside a running event loop: it starts its uploader task)."""
        return DeepgramRESTASRStream(self)

    async def _transcribe(self, clip: _Clip) -> Transcript:
        """Upload ``clip``; its transcript, words on the session clock."""
        opts = self.options
        query: dict[str, object] = {
            "model": opts.model,
            "smart_format": opts.smart_format,
            "punctuate": opts.punctuate,
        }
        if opts.language is not None:
            query["language"] = opts.language
        wav = to_wav(clip.samples, clip.sample_rate)
        async with self._post(_WHAT, "/v1/listen", query, wav, "audio/wav") as (response, deadline):
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind and kind != "application/json":
                head = await read_head(response, deadline)
                raise wrong_content(_WHAT, f"the answer is {kind}, not JSON", head, self._key)
            body, chunks = b"", response.aiter_bytes()
            try:
                while len(body) <= MAX_ANSWER_BYTES:
                    try:
                        body += await deadline.wait(anext(chunks))
                    except StopAsyncIteration:
                        break
                else:
                    raise malformed(_WHAT, f"an answer of more than {MAX_ANSWER_BYTES} bytes")
            finally:
                await close_iterator(chunks)
            request_id = response.headers.get("dg-request-id")
        return self._parse(body, clip, request_id)

    def _parse(self, body: bytes, clip: _Clip, request_id: str | None) -> Transcript:
        try:
            data = json.loads(body)
            alternatives = data["results"]["channels"][0]["alternatives"]
        except ValueError:
            if body.lstrip().startswith(b"{") and not body.rstrip().endswith(b"}"):
                raise transport(
                    _WHAT, f"the answer was cut short ({len(body)} bytes of JSON, unclosed)"
                ) from None
            raise malformed(
                _WHAT, f"JSON that does not parse: {snippet(body, self._key)}"
            ) from None
        except (KeyError, IndexError, TypeError):
            raise malformed(
                _WHAT,
                f"an answer without results.channels[0].alternatives: {snippet(body, self._key)}",
            ) from None
        metadata = data.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("request_id"), str):
            request_id = request_id or metadata["request_id"]
        got = heard(alternatives, lambda s: clip.start_ms + s * 1000, _WHAT)
        return transcript(
            got.text,
            True,
            confidence=got.confidence,
            endpoint_ms=clip.detected_ms,
            words=got.words,
            request_id=request_id,
        )


class DeepgramRESTASRStream:
    """One session's recognition. ``push`` keeps recent audio (at the session rate);
    ``speech_ended`` cuts the utterance from it and queues the upload. Speech that goes on
    for ``max_utterance_ms`` is cut there and queued as it is. Uploads run one after another
    in one task, so transcripts stay in order; the first error ends the events with it.
    ``aclose()``, or a consumer of the events that is cancelled or closes them, stops the
    uploads and closes the request in flight."""

    def __init__(self, asr: DeepgramRESTASR) -> None:
        self._asr = asr
        self._rate = asr.context.sample_rate
        self._max_ms = asr.options.max_utterance_ms
        self._frames: deque[AudioFrame] = deque()
        self._speaking = False
        #: Where the part of the speech in progress starts (session ms), while speaking.
        self._part_start_ms = 0.0
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
        elif self._frames[-1].end_ms - self._part_start_ms >= self._max_ms:
            self._cut(self._part_start_ms, self._frames[-1].end_ms, None)
            self._part_start_ms = self._frames[-1].end_ms
            self._frames.clear()

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
        self._cut(start, utterance.end_ms + TAIL_MS, utterance.detected_ms)
        self._forget_old()

    def end_input(self) -> None:
        self._clips.close()

    def __aiter__(self) -> AsyncIterator[ASREvent]:
        return self._iterator

    async def aclose(self) -> None:
        await self._stop_uploads()
        self._events.close()

    def _cut(self, start_ms: float, end_ms: float, detected_ms: float | None) -> None:
        """Queue the audio in ``[start_ms, end_ms)`` for upload."""
        samples, first_ms = _cut(self._frames, start_ms, end_ms, self._rate)
        self._clips.put(_Clip(samples, self._rate, first_ms, detected_ms))

    def _forget_old(self) -> None:
        """No speech in progress: keep only what the next utterance's pre-roll may need."""
        frames = self._frames
        keep_from = frames[-1].end_ms - PREROLL_MS - CONFIRM_MS if frames else 0.0
        while frames and frames[0].end_ms <= keep_from:
            frames.popleft()

    async def _transcripts(self) -> AsyncGenerator[Transcript, None]:
        try:
            async for item in self._events:
                yield item
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
                if not len(clip.samples):  # nothing was kept to upload: nothing was said
                    self._events.put(transcript("", True, endpoint_ms=clip.detected_ms))
                    continue
                self._events.put(await self._asr._transcribe(clip))
        except Exception as exc:
            self._clips.close()  # later utterances are dropped, not queued
            self._events.fail(exc)
        else:
            self._events.close()


def _cut(
    frames: Iterable[AudioFrame], start_ms: float, end_ms: float, rate: int
) -> tuple[Int16Array, float]:
    """The samples of ``frames`` (at ``rate``) in ``[start_ms, end_ms)``, and the session
    time of the first of them."""
    kept: list[Int16Array] = []
    first_ms = start_ms
    for frame in frames:
        if frame.end_ms <= start_ms or frame.start_ms >= end_ms:
            continue
        first = max(round((start_ms - frame.start_ms) * rate / 1000), 0)
        last = round((end_ms - frame.start_ms) * rate / 1000)
        if not kept:
            first_ms = frame.start_ms + first * 1000 / rate
        kept.append(frame.samples[first:last])
    return (np.concatenate(kept) if kept else np.zeros(0, dtype=np.int16)), first_ms


def to_wav(samples: Int16Array, sample_rate: int) -> bytes:
    """16-bit mono PCM in a WAV container, in memory."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()
