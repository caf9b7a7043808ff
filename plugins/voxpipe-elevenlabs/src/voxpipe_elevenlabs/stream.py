"""ElevenLabsStreamTTS: ``/v1/text-to-speech/{voice_id}/stream-input``, one WebSocket per
reply fed with the LLM's text as it is written. Audio comes back as base64 PCM beside the
time each character is spoken, which becomes ``Alignment`` on the stream's audio time."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import Annotated, Any, ClassVar
from urllib.parse import urlencode

from pydantic import Field
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Alignment, TTSOutput
from voxpipe_elevenlabs._audio import PcmFrames
from voxpipe_elevenlabs._errors import (
    api_key,
    closed_early,
    malformed,
    socket_error,
    stalled,
    truncated,
)
from voxpipe_elevenlabs._feed import SENTENCE_PAUSE_S, FlushAt, TextFeed
from voxpipe_elevenlabs._options import ElevenLabsOptions
from voxpipe_elevenlabs._socket import open_socket

_WHAT = "stream-input"
#: ElevenLabs' own default generation schedule (characters buffered before each generation).
DEFAULT_SCHEDULE = (120, 160, 250, 290)


class ElevenLabsStreamOptions(ElevenLabsOptions):
    """``[tts]`` options when ``backend = "elevenlabs-ws"``. ``base_url`` may be given as
    https:// (http://), the socket then goes to wss:// (ws://) on the same host."""

    schemes: ClassVar[tuple[str, ...]] = ("https", "http", "wss", "ws")

    flush_at: FlushAt = Field(
        "phrase",
        description="where the server is told to speak what it has: 'phrase' (the first "
        "phrase as soon as it ends at a clause mark or 6 words, then each sentence) or "
        "'sentence' (sentence ends only: later first audio, smoother prosody)",
    )
    chunk_length_schedule: list[Annotated[int, Field(ge=50, le=500)]] = Field(
        default_factory=lambda: list(DEFAULT_SCHEDULE),
        min_length=1,
        max_length=10,
        description="characters the server buffers before each generation (between "
        "flushes), 50..500 each",
    )
    inactivity_timeout_s: int | None = Field(
        None,
        ge=1,
        le=180,
        description="seconds without text after which the server closes the socket "
        "(input_timeout_exceeded); default: the API's (20)",
    )

    def socket_url(self, rate: int) -> str:
        """The stream-input URL for PCM at ``rate``."""
        base = self.base_url
        for http, ws in (("https://", "wss://"), ("http://", "ws://")):
            if base.startswith(http):
                base = ws + base[len(http) :]
        query: dict[str, Any] = {"model_id": self.model_id, "output_format": f"pcm_{rate}"}
        if self.inactivity_timeout_s is not None:
            query["inactivity_timeout"] = self.inactivity_timeout_s
        return f"{base}/v1/text-to-speech/{self.voice_id}/stream-input?{urlencode(query)}"


class ElevenLabsStreamTTS:
    """A streaming-input TTS (plugin API v2): ``synthesize_stream(text_deltas)`` opens one
    socket for the reply and sends its words as they are written while the server's audio
    comes back as frames; ``synthesize(text)`` does the same for one given text. Closing
    the stream (or cancelling its consumer) closes the socket and stops its sender task."""

    def __init__(
        self, options: ElevenLabsStreamOptions, context: BackendContext | None = None
    ) -> None:
        self._key = api_key()
        self.options = options
        self.context = context or BackendContext()
        self.rate = options.output_rate(self.context.sample_rate)
        self.url = options.socket_url(self.rate)

    def synthesize(self, text: str) -> AsyncGenerator[TTSOutput, None]:
        """One given text on a socket of its own (a filler, an apology); none for blank text."""
        return self.synthesize_stream(_once(text)) if text.strip() else _nothing()

    async def synthesize_stream(self, text: AsyncIterator[str]) -> AsyncGenerator[TTSOutput, None]:
        # Opened at once, before the first delta: the handshake overlaps the LLM's wait.
        socket = await open_socket(self.url, self._key, self.options.connect_timeout_ms, _WHAT)
        try:
            reply = _Reply(socket, self.options, self._key)
            sender = asyncio.create_task(reply.send(text))
            try:
                async with aclosing(reply.receive(PcmFrames(self.rate, self.context))) as items:
                    async for item in items:
                        yield item
            finally:
                sender.cancel()
                await asyncio.wait({sender})  # it never outlives the stream
        finally:
            await socket.close()

    async def aclose(self) -> None:
        """Each socket is closed with its stream; the backend holds nothing else."""


async def _once(text: str) -> AsyncIterator[str]:
    yield text


async def _nothing() -> AsyncGenerator[TTSOutput, None]:
    return
    yield  # an async generator that yields nothing


class _Reply:
    """One socket's exchange: ``send`` (the sender task) writes the text, ``receive`` reads
    the audio; ``owed`` knows when the server must have answered by."""

    def __init__(
        self, socket: ClientConnection, options: ElevenLabsStreamOptions, key: str
    ) -> None:
        self.socket, self.options, self.key = socket, options, key
        self.feed = TextFeed(options.flush_at)
        self.owed = _Owed(options)
        #: What failed on the text side (the text iterator raised): the stream's error.
        self.failure: Exception | None = None

    def _init_message(self) -> dict[str, Any]:
        opts = self.options
        message: dict[str, Any] = {"text": " "}
        if settings := opts.voice_settings():
            message["voice_settings"] = settings
        message["generation_config"] = {"chunk_length_schedule": opts.chunk_length_schedule}
        return message

    async def send(self, text: AsyncIterator[str]) -> None:
        """The sender task: the init message, the text as it comes, then the end."""
        deltas = aiter(text)
        try:
            await self._send([self._init_message()])
            while (delta := await self._next(deltas)) is not None:
                await self._send(self.feed.push(delta))
            await self._send(self.feed.end())
        except ConnectionClosed:
            return  # the receiver tells why
        except Exception as exc:  # the text failed: so does the stream, at once
            self.failure = exc
            await self.socket.close()
        finally:
            aclose = getattr(deltas, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _next(self, deltas: AsyncIterator[str]) -> str | None:
        """The next delta (None at the end). When the text so far ends in a sentence mark
        and the next delta is slow to come, what was written is spoken meanwhile."""
        if not self.feed.at_sentence_mark:
            return await anext(deltas, None)
        step = asyncio.ensure_future(anext(deltas, None))
        try:
            done, _ = await asyncio.wait({step}, timeout=SENTENCE_PAUSE_S)
            if not done:
                await self._send(self.feed.pause())
            return await step
        finally:
            if not step.done():
                step.cancel()
                await asyncio.wait({step})

    async def _send(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            await self.socket.send(json.dumps(message))
            if message.get("flush"):
                self.owed.expect()
            elif message["text"] == "":
                self.owed.end()

    async def receive(self, audio: PcmFrames) -> AsyncGenerator[TTSOutput, None]:
        """Alignment and frames, message by message, until the final one."""
        while True:
            try:
                raw = await self.owed.recv(self.socket)
            except ConnectionClosed as closed:
                if self.failure is not None:
                    raise self.failure from None
                close = closed.rcvd
                code, reason = (close.code, close.reason) if close is not None else (None, "")
                raise closed_early(code, reason, _WHAT, self.key) from None
            message = _parse(raw)
            if message.get("error") or ("message" in message and "audio" not in message):
                raise socket_error(message, _WHAT, self.key)
            chunk = _audio(message)
            self.owed.answered(bool(chunk))
            if chunk:
                for piece in _alignment(message, audio.audio_ms):
                    yield piece
                for frame in audio.push(chunk):
                    yield frame
            if message.get("isFinal") is True:
                break
        if self.feed.spoke and audio.received < 2:
            raise truncated(_WHAT, "the final message came before any audio")
        if audio.half_sample:
            raise malformed(_WHAT, f"the {audio.received} bytes of PCM end in half a sample")
        for frame in audio.end():
            yield frame


class _Owed:
    """When the server must next have said something. It owes audio from each flush and
    from the end of the text; before that it is waiting for text, which is no stall (its
    silence then is the LLM's, bounded by its own timeouts; the socket's keepalive pings
    find a dead connection). The first audio is owed within ``first_byte_timeout_ms`` of
    the first flush, later messages within ``idle_timeout_ms``."""

    def __init__(self, options: ElevenLabsOptions) -> None:
        self._options = options
        self._loop = asyncio.get_running_loop()
        self._since: float | None = None
        self._ended = False
        self._flowing = False
        self._timeout: asyncio.Timeout | None = None

    def expect(self) -> None:
        """A flush was sent: the server owes audio from now on (if it did not already)."""
        if self._since is None:
            self._since = self._loop.time()
            if self._timeout is not None:
                self._timeout.reschedule(self._when())

    def end(self) -> None:
        """The end of the text was sent: everything is owed, up to the final message."""
        self._ended = True
        self.expect()

    def answered(self, audio: bool) -> None:
        self._flowing = self._flowing or audio
        self._since = self._loop.time() if self._ended else None

    def _when(self) -> float | None:
        if self._since is None:
            return None
        opts = self._options
        limit_ms = opts.idle_timeout_ms if self._flowing else opts.first_byte_timeout_ms
        return self._since + limit_ms / 1000

    async def recv(self, socket: ClientConnection) -> str | bytes:
        timeout = asyncio.timeout_at(self._when())
        self._timeout = timeout
        try:
            async with timeout:
                return await socket.recv()
        except TimeoutError:
            if not timeout.expired():
                raise
            raise self._stalled() from None
        finally:
            self._timeout = None

    def _stalled(self) -> Exception:
        opts = self._options
        if self._flowing:
            return stalled(
                _WHAT,
                f"the audio stalled: nothing for {opts.idle_timeout_ms:g} ms while the server "
                "owed audio; raise idle_timeout_ms if it pauses this long",
            )
        return stalled(
            _WHAT,
            f"no audio within {opts.first_byte_timeout_ms:g} ms of the first flush; raise "
            "first_byte_timeout_ms if the server is this slow",
        )


def _parse(raw: str | bytes) -> Mapping[str, Any]:
    try:
        message = json.loads(raw)
    except ValueError:
        shown = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        raise malformed(_WHAT, f"a message that is not JSON: {shown[:60]!r}") from None
    if not isinstance(message, dict):
        raise malformed(_WHAT, f"a message that is not a JSON object: {type(message).__name__}")
    return message


def _audio(message: Mapping[str, Any]) -> bytes:
    """The message's PCM (none for the final message)."""
    data = message.get("audio")
    if data is None:
        return b""
    if not isinstance(data, str):
        raise malformed(_WHAT, f"audio is a {type(data).__name__}, not base64 text")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise malformed(_WHAT, "audio is not valid base64") from None


def _alignment(message: Mapping[str, Any], offset_ms: float) -> list[Alignment]:
    """The characters the message's audio speaks, as ``Alignment`` on the stream's audio
    time (the server's times count from the start of the message's audio; ``offset_ms`` is
    the audio before it). ``alignment`` is of the text as sent, so the pieces join to what
    the LLM wrote; ``normalizedAlignment`` (numbers spelled out...) only stands in for it."""
    timing = message.get("alignment") or message.get("normalizedAlignment")
    if not timing:
        return []
    if not isinstance(timing, dict):
        raise malformed(_WHAT, "alignment is not a JSON object")
    chars = timing.get("chars")
    starts = timing.get("charStartTimesMs")
    durations = timing.get("charDurationsMs")
    if not (
        isinstance(chars, list)
        and isinstance(starts, list)
        and isinstance(durations, list)
        and len(chars) == len(starts) == len(durations)
        and all(isinstance(c, str) for c in chars)
        and all(_is_ms(t) for t in (*starts, *durations))
    ):
        raise malformed(
            _WHAT, "alignment needs chars, charStartTimesMs and charDurationsMs of one length"
        )
    return [
        Alignment(char, offset_ms + start, offset_ms + start + duration)
        for char, start, duration in zip(chars, starts, durations, strict=True)
    ]


def _is_ms(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )
