"""DeepgramASR: Deepgram's live ``/v1/listen`` WebSocket, one per ``listen()`` (a session),
kept open across its turns.

Audio goes out as binary messages in the order pushed, by a sender task (``push`` only
queues). Interim ``Results`` are partial transcripts; ``is_final`` results accumulate until
the utterance ends: at ``speech_final`` or ``UtteranceEnd`` (Deepgram's endpointer: a final
``Transcript`` then ``EndOfTurn``) or when the result answering ``Finalize`` comes (sent when
the session's VAD ends the utterance: ``speech_ended``). ``KeepAlive`` goes out when no audio
has for a few seconds, ``CloseStream`` after ``end_input()``. A connection that drops is
opened again once, and the audio since the last final result is sent again; one that drops
again before it has given a final result ends the stream with a ``ProviderError``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from voxpipe.audio import AudioFrame
from voxpipe.errors import ProviderError
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import ASREvent, EndOfTurn, SpeechStarted, Word
from voxpipe.streams import Channel
from voxpipe.vad import Utterance
from voxpipe_deepgram._connection import ConnectionOptions, api_key, endpoint, timeout_ms
from voxpipe_deepgram._errors import PROVIDER, close_error, malformed, short, snippet, transport
from voxpipe_deepgram._socket import Connect, Socket, SocketClosed, connect_error, open_websocket
from voxpipe_deepgram._transcripts import Heard, Timeline, heard, transcript

log = logging.getLogger("voxpipe_deepgram")

_WHAT = "live transcription"
#: Sent when no audio has gone out for this long (Deepgram closes a connection that gets
#: nothing for 10 s, with NET-0001).
KEEPALIVE_S = 4.0
#: Audio waiting to be sent on an open connection beyond which the stream fails: the
#: connection cannot keep up, and transcripts would come this late.
MAX_BACKLOG_MS = 5_000.0
#: Deepgram answers about every second of audio: the server owes an answer once this much
#: audio has gone unanswered (or a Finalize or CloseStream has), and the idle timeout runs.
ANSWER_AUDIO_MS = 1_000.0
#: Audio kept since the last final result, to send again after a reconnection (older audio
#: is dropped from it).
MAX_RESEND_MS = 30_000.0
KEEPALIVE = json.dumps({"type": "KeepAlive"})
FINALIZE = json.dumps({"type": "Finalize"})
CLOSE_STREAM = json.dumps({"type": "CloseStream"})


class DeepgramASROptions(ConnectionOptions):
    """``[asr] backend = "deepgram"``."""

    model: str = Field("nova-3", min_length=1, description="Deepgram model")
    language: str | None = Field(
        None, min_length=1, description="BCP-47 tag of the speech ('en', 'multi'...)"
    )
    endpointing_ms: int = Field(
        300,
        ge=10,
        le=10_000,
        description="silence after which Deepgram ends an utterance (speech_final), ms",
    )
    utterance_end_ms: int | None = Field(
        1_000,
        ge=1_000,
        le=10_000,
        description="gap after the last word that makes Deepgram send UtteranceEnd, ms "
        "(None: not asked for)",
    )
    smart_format: bool = Field(True, description="Deepgram's smart formatting")
    punctuate: bool = Field(True, description="punctuation and capitals")
    connect_timeout_ms: float = timeout_ms(
        3_000, "longest wait to open the WebSocket (DNS, TCP, TLS, handshake)", 30_000
    )
    idle_timeout_ms: float = timeout_ms(
        5_000,
        "longest the server may stay silent once it owes an answer (a second of audio, a "
        "Finalize or a CloseStream sent since its last message)",
        60_000,
    )


class DeepgramASR:
    """One ``DeepgramASRStream`` (one WebSocket) per ``listen()``. ``connect`` replaces the
    WebSocket client (tests: ``voxpipe_deepgram.testing.FakeDeepgram.connect``)."""

    detects_end_of_turn = True

    def __init__(
        self,
        options: DeepgramASROptions,
        context: BackendContext | None = None,
        *,
        connect: Connect | None = None,
    ) -> None:
        self._key = api_key()
        self.options = options
        self.context = context or BackendContext()
        self._connect: Connect = connect or open_websocket
        query: dict[str, object] = {
            "model": options.model,
            "encoding": "linear16",
            "sample_rate": self.context.sample_rate,
            "channels": 1,
            "interim_results": True,
            "endpointing": options.endpointing_ms,
            "vad_events": True,
            "smart_format": options.smart_format,
            "punctuate": options.punctuate,
        }
        if options.utterance_end_ms is not None:
            query["utterance_end_ms"] = options.utterance_end_ms
        if options.language is not None:
            query["language"] = options.language
        #: Where every stream connects.
        self.url = endpoint(options.base_url, "/v1/listen", query, websocket=True)

    def listen(self) -> DeepgramASRStream:
        """A new stream (inside a running event loop: it connects in a task of its own)."""
        return DeepgramASRStream(self)

    async def _open(self) -> Socket:
        """A new connection, within ``connect_timeout_ms``."""
        limit_ms = self.options.connect_timeout_ms
        try:
            async with asyncio.timeout(limit_ms / 1000):
                return await self._connect(self.url, {"Authorization": f"Token {self._key}"})
        except TimeoutError:
            raise transport(
                _WHAT,
                f"could not connect within {limit_ms:g} ms; check base_url, or raise "
                "connect_timeout_ms if the server is this slow to accept",
            ) from None
        except Exception as exc:
            error = connect_error(exc, _WHAT, self._key)
            if error is None:
                raise
            raise error from None

    async def aclose(self) -> None:
        return None  # each stream closes its own connection


@dataclass(frozen=True, slots=True)
class _Audio:
    data: bytes
    start_ms: float
    duration_ms: float

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.duration_ms


@dataclass(frozen=True, slots=True)
class _Finalize:
    """``Finalize`` for the utterance the session's VAD ended."""

    utterance: Utterance


class _Dropped(Exception):
    """The connection ended before its time; ``error`` if it is not opened again."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


class DeepgramASRStream:
    """One session's recognition over one WebSocket (see the module's docstring). The first
    error ends the events with it. ``aclose()``, or a consumer of the events that is
    cancelled or closes them, closes the connection and stops the tasks."""

    def __init__(self, asr: DeepgramASR) -> None:
        self._asr = asr
        self._rate = asr.context.sample_rate
        self._idle_s = asr.options.idle_timeout_ms / 1000
        self._loop = asyncio.get_running_loop()
        #: Messages not yet sent on this connection (audio, Finalize, CloseStream).
        self._outbox: deque[_Audio | _Finalize | str] = deque()
        self._outbox_ms = 0.0
        #: Audio and Finalize since the last final result: sent again after a reconnection.
        self._resend: deque[_Audio | _Finalize] = deque()
        self._resend_ms = 0.0
        self._wake = asyncio.Event()
        self._input_ended = False
        self._stopped = False
        # The utterance being heard: final results not yet given as a final Transcript.
        self._texts: list[str] = []
        self._words: list[Word] = []
        self._confidences: list[float] = []
        #: Utterances the VAD ended (Finalize sent) whose final has not come yet.
        self._finalizing: deque[Utterance] = deque()
        self._final_until_ms = 0.0  # session time final results cover
        self._given_until_ms = 0.0  # ... and final Transcripts
        self._last_partial = ""
        self._speech_at_ms = -1.0  # the last SpeechStarted given (resent audio repeats it)
        # This connection's state.
        self._timeline = Timeline()
        self._request_id: str | None = None
        self._finals_here = 0
        self._close_sent = False
        self._unanswered_ms = 0.0  # audio sent since the server's last message
        self._owed_since: float | None = None  # loop time since which an answer is owed
        self._recv_timeout: asyncio.Timeout | None = None
        self._failure: ProviderError | None = None
        self._events: Channel[ASREvent] = Channel()
        self._task = asyncio.create_task(self._run())
        self._iterator = self._event_stream()

    # --- the session's side --------------------------------------------------------------

    def push(self, frame: AudioFrame) -> None:
        if self._input_ended or self._stopped or not len(frame.samples):
            return  # (an empty binary message would make Deepgram close the connection)
        frame = frame.resampled(self._rate)
        audio = _Audio(frame.samples.astype("<i2").tobytes(), frame.start_ms, frame.duration_ms)
        self._queue(audio)
        self._resend.append(audio)
        self._resend_ms += audio.duration_ms
        while self._resend_ms > MAX_RESEND_MS:
            dropped = self._resend.popleft()
            if isinstance(dropped, _Audio):
                self._resend_ms -= dropped.duration_ms

    def speech_started(self, at_ms: float) -> None:
        return None  # Deepgram hears speech itself (vad_events)

    def speech_ended(self, utterance: Utterance) -> None:
        if self._input_ended or self._stopped or utterance.end_ms <= self._given_until_ms:
            return  # a final that covers the utterance has been given already
        self._finalizing.append(utterance)
        finalize = _Finalize(utterance)
        self._queue(finalize)
        self._resend.append(finalize)

    def end_input(self) -> None:
        if not self._input_ended:
            self._input_ended = True
            self._queue(CLOSE_STREAM)

    def __aiter__(self) -> AsyncIterator[ASREvent]:
        return self._iterator

    async def aclose(self) -> None:
        await self._stop()
        self._events.close()  # a consumer waiting for events is done

    @property
    def request_id(self) -> str | None:
        """Deepgram's id of the connection open now (or last open)."""
        return self._request_id

    def _queue(self, item: _Audio | _Finalize | str) -> None:
        self._outbox.append(item)
        if isinstance(item, _Audio):
            self._outbox_ms += item.duration_ms
        self._wake.set()

    async def _event_stream(self) -> AsyncGenerator[ASREvent, None]:
        try:
            async for event in self._events:
                yield event
        finally:  # the consumer is done, or has gone: so is the connection
            await self._stop()

    async def _stop(self) -> None:
        self._stopped = True
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    # --- the connection ------------------------------------------------------------------

    async def _run(self) -> None:
        reconnected = False  # the connection open now replaced one that dropped
        try:
            while True:
                socket = await self._asr._open()
                self._connected(socket)
                try:
                    await self._talk(socket)
                    break
                except _Dropped as drop:
                    if reconnected and not self._finals_here:
                        raise ProviderError(
                            f"{drop.error}; it had dropped before, and the new connection "
                            "dropped too before giving a final result",
                            provider=PROVIDER,
                            retryable=True,
                        ) from None
                    log.warning(
                        "voxpipe_deepgram: %s; reconnecting and sending the %.0f ms of audio "
                        "since the last final result again",
                        drop.error,
                        self._resend_ms,
                    )
                    reconnected = True
                    self._replay()
                finally:
                    await socket.aclose()
            self._give_final(None, end_of_turn=False, at_end=True)
        except ProviderError as error:
            self._events.fail(error)
        else:
            self._events.close()
        finally:
            self._stopped = True  # pushes from now on are dropped
            self._outbox.clear()
            self._resend.clear()

    def _connected(self, socket: Socket) -> None:
        self._timeline = Timeline()
        self._request_id = socket.request_id or self._request_id
        self._finals_here = 0
        self._close_sent = False
        self._unanswered_ms, self._owed_since = 0.0, None
        self._failure = None

    def _replay(self) -> None:
        """After a drop: what the new connection is sent first (the audio since the last
        final result, and the Finalize among it), then what was waiting."""
        self._outbox = deque(self._resend)  # (what was waiting is in it too)
        self._outbox_ms = self._resend_ms
        if self._input_ended:
            self._outbox.append(CLOSE_STREAM)

    async def _talk(self, socket: Socket) -> None:
        """Send and receive until the connection ends: normally (after CloseStream), with
        an error, or dropped (``_Dropped``)."""
        sender = asyncio.create_task(self._send_all(socket))
        try:
            await self._receive_all(socket)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _send_all(self, socket: Socket) -> None:
        """Send the outbox in order; a KeepAlive after ``KEEPALIVE_S`` without audio. A send
        that stalls, or a backlog that grows past ``MAX_BACKLOG_MS``, is a failure: it is
        kept for the receiver, and the connection dropped so that the receiver sees it."""
        try:
            while True:
                if not self._outbox:
                    self._wake.clear()
                    try:
                        async with asyncio.timeout(KEEPALIVE_S):
                            await self._wake.wait()
                    except TimeoutError:
                        if not self._close_sent:
                            await self._send(socket, KEEPALIVE, 0.0)  # owes no answer
                    continue
                if self._outbox_ms > MAX_BACKLOG_MS:
                    self._failure = transport(
                        _WHAT,
                        f"the connection cannot keep up: {self._outbox_ms:.0f} ms of audio are "
                        "waiting to be sent",
                    )
                    socket.abort()
                    return
                await self._send(socket, *self._next_message())
        except SocketClosed:
            return  # the receiver sees it too

    def _next_message(self) -> tuple[bytes | str, float | None]:
        """The next message, and the audio it carries (ms; None for an answer owed at
        once: Finalize, CloseStream)."""
        item = self._outbox.popleft()
        if isinstance(item, _Audio):
            self._outbox_ms -= item.duration_ms
            self._timeline.add(item.start_ms, item.duration_ms)
            return item.data, item.duration_ms
        if isinstance(item, _Finalize):
            return FINALIZE, None
        self._close_sent = True  # (the only other message queued)
        return item, None

    async def _send(self, socket: Socket, message: bytes | str, audio_ms: float | None) -> None:
        """Send ``message`` carrying ``audio_ms`` of audio (None: an answer is owed at once)."""
        try:
            async with asyncio.timeout(self._idle_s):
                await socket.send(message)
        except TimeoutError:
            self._failure = transport(
                _WHAT,
                f"sending stalled for {self._idle_s * 1000:g} ms; raise idle_timeout_ms if the "
                "network is this slow",
            )
            socket.abort()
            raise SocketClosed(None) from None
        if self._owed_since is not None:
            return
        if audio_ms is not None:
            self._unanswered_ms += audio_ms
            if self._unanswered_ms < ANSWER_AUDIO_MS:
                return
        self._owed_since = self._loop.time()
        if self._recv_timeout is not None:
            self._recv_timeout.reschedule(self._owed_since + self._idle_s)

    async def _receive_all(self, socket: Socket) -> None:
        while True:
            try:
                async with asyncio.timeout(None) as timeout:
                    self._recv_timeout = timeout
                    if self._owed_since is not None:
                        timeout.reschedule(self._owed_since + self._idle_s)
                    message = await socket.recv()
            except TimeoutError:
                socket.abort()
                raise transport(
                    _WHAT,
                    f"Deepgram sent nothing for {self._idle_s * 1000:g} ms while it owed an "
                    "answer (to a second of audio, Finalize or CloseStream); raise "
                    "idle_timeout_ms if the server is this slow",
                ) from None
            except SocketClosed as closed:
                if self._failure is not None:
                    raise self._failure from None
                if self._close_sent and closed.code == 1000:
                    return
                error = close_error(_WHAT, closed.code, closed.reason)
                if not error.retryable:
                    raise error from None
                raise _Dropped(error) from None
            finally:
                self._recv_timeout = None
            self._unanswered_ms, self._owed_since = 0.0, None
            self._handle(message)

    # --- what Deepgram says --------------------------------------------------------------

    def _handle(self, message: bytes | str) -> None:
        if isinstance(message, bytes):
            raise malformed(_WHAT, f"a binary message ({len(message)} bytes) from the server")
        try:
            data = json.loads(message)
        except ValueError:
            raise malformed(
                _WHAT, f"a message that is not JSON: {snippet(message.encode(), None)}"
            ) from None
        if not isinstance(data, dict):
            raise malformed(_WHAT, f"a message that is not a JSON object: {short(message)}")
        kind = data.get("type")
        if kind == "Results":
            self._on_results(data)
        elif kind == "SpeechStarted":
            at = data.get("timestamp")
            if not isinstance(at, int | float):
                raise malformed(_WHAT, "a SpeechStarted message without a 'timestamp'")
            at_ms = self._timeline.session(at * 1000)
            if at_ms > self._speech_at_ms:
                self._speech_at_ms = at_ms
                self._events.put(SpeechStarted(at_ms))
        elif kind == "UtteranceEnd":
            self._on_utterance_end(data)
        elif kind == "Metadata":
            request_id = data.get("request_id")
            if isinstance(request_id, str) and request_id:
                self._request_id = request_id
        elif kind == "Error":
            description = data.get("description") or data.get("message") or message
            raise ProviderError(
                f"{PROVIDER} {_WHAT}: the server reported an error: {short(str(description))}",
                provider=PROVIDER,
            )
        # Other types (new ones Deepgram adds) say nothing the session needs.

    def _on_results(self, data: dict[str, Any]) -> None:
        try:
            start_s, duration_s = float(data["start"]), float(data["duration"])
            alternatives = data["channel"]["alternatives"]
        except (KeyError, TypeError, ValueError):
            raise malformed(
                _WHAT, "a Results message without start, duration and channel.alternatives"
            ) from None
        metadata = data.get("metadata")
        request_id = metadata.get("request_id") if isinstance(metadata, dict) else None
        if isinstance(request_id, str) and request_id:
            self._request_id = request_id
        timeline = self._timeline
        got = heard(alternatives, lambda s: timeline.session(s * 1000), _WHAT)
        end_ms = timeline.session((start_s + duration_s) * 1000)
        if data.get("is_final") is not True:
            if got.text.strip():
                self._partial(got)
            return
        self._finals_here += 1
        if got.text.strip():
            self._texts.append(got.text)
            self._words.extend(got.words)
            self._confidences.append(got.confidence)
        answered = self._answered(end_ms, data.get("from_finalize") is True)
        self._covered(end_ms)
        speech_final = data.get("speech_final") is True
        if answered is not None:
            self._give_final(answered.detected_ms, end_of_turn=speech_final, until_ms=end_ms)
        elif speech_final:
            self._give_final(end_ms, end_of_turn=True, until_ms=end_ms)
        elif self._texts:
            self._partial(None)

    def _on_utterance_end(self, data: dict[str, Any]) -> None:
        last_word_end = data.get("last_word_end")
        if not isinstance(last_word_end, int | float):
            raise malformed(_WHAT, "an UtteranceEnd message without 'last_word_end'")
        if not self._texts:
            return  # the utterance's final was given already (speech_final, Finalize)
        gap_ms = self._asr.options.utterance_end_ms or 0
        decided_ms = self._timeline.session(last_word_end * 1000 + gap_ms)
        self._give_final(decided_ms, end_of_turn=True, until_ms=decided_ms)

    def _partial(self, got: Heard | None) -> None:
        texts = [*self._texts, got.text] if got is not None else self._texts
        words = (*self._words, *got.words) if got is not None else tuple(self._words)
        confidence = got.confidence if got is not None else self._confidence()
        text = " ".join(texts)
        if text == self._last_partial:
            return
        self._last_partial = text
        self._events.put(
            transcript(
                text,
                False,
                confidence=confidence,
                words=words,
                request_id=self._request_id,
            )
        )

    def _confidence(self) -> float:
        scores = self._confidences
        return sum(scores) / len(scores) if scores else 1.0

    def _answered(self, end_ms: float, from_finalize: bool) -> Utterance | None:
        """The last of the utterances (Finalize sent) that a final result ending at
        ``end_ms`` answers: the oldest for a ``from_finalize`` one, and every one that ended
        before ``end_ms``."""
        answered = None
        if from_finalize and self._finalizing:
            answered = self._finalizing.popleft()
        while self._finalizing and self._finalizing[0].end_ms <= end_ms:
            answered = self._finalizing.popleft()
        return answered

    def _covered(self, until_ms: float) -> None:
        """Final results cover the audio up to ``until_ms``: it need not be sent again."""
        self._final_until_ms = max(self._final_until_ms, until_ms)
        resend = self._resend
        while resend:
            head = resend[0]
            if isinstance(head, _Audio) and head.end_ms <= self._final_until_ms:
                self._resend_ms -= head.duration_ms
            elif not (isinstance(head, _Finalize) and head.utterance not in self._finalizing):
                break
            resend.popleft()

    def _give_final(
        self,
        endpoint_ms: float | None,
        *,
        end_of_turn: bool,
        until_ms: float | None = None,
        at_end: bool = False,
    ) -> None:
        """The utterance's final ``Transcript`` (its final results joined), then
        ``EndOfTurn`` when Deepgram's endpointer ended it and it has words. ``at_end``: the
        connection has closed; a final only if something is pending."""
        if at_end:
            if not (self._texts or self._finalizing):
                return
            endpoint_ms = self._finalizing[0].detected_ms if self._finalizing else None
            self._finalizing.clear()
        text, words = " ".join(self._texts), tuple(self._words)
        self._events.put(
            transcript(
                text,
                True,
                confidence=self._confidence(),
                endpoint_ms=endpoint_ms,
                words=words,
                request_id=self._request_id,
            )
        )
        if end_of_turn and text.strip():
            self._events.put(EndOfTurn(words[-1].end_ms if words else endpoint_ms))
        self._texts, self._words, self._confidences = [], [], []
        self._last_partial = ""
        if until_ms is not None:
            self._given_until_ms = max(self._given_until_ms, until_ms)
