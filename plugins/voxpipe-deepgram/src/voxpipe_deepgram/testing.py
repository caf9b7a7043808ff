"""A fake Deepgram for tests: ``FakeDeepgram`` speaks the live ``/v1/listen`` protocol, over
a real WebSocket server on 127.0.0.1 (``serve()``, ``serve_in_thread()``) or in memory
(``connect``, for ``DeepgramASR(..., connect=fake.connect)`` under virtual time), and can be
told to misbehave (``Misbehaviour``). The payload builders give Deepgram's REST shapes for
HTTP mocks (``prerecorded_answer``, ``error_body``).

It hears the audio it is sent: a 20 ms chunk at or above -40 dBFS is voice. Voice starts an
utterance (``SpeechStarted``), whose words are the next of ``transcripts`` (spread evenly
over the voiced audio); interim ``Results`` come every ``interim_ms`` of voice, the final
``Results`` with ``speech_final`` after the query's ``endpointing`` ms of silence, then
``UtteranceEnd`` after ``utterance_end_ms``; silence gets an empty final every second.
``Finalize`` gets a ``from_finalize`` final; ``CloseStream`` the last final, ``Metadata``
and a close (1000). The handshake is checked (path, ``encoding``, ``sample_rate``,
``channels``, ``Authorization: Token <key>``) and refused as Deepgram does (401, 400).
Everything each connection got is kept in ``connections``::

    async with FakeDeepgram(["hello there"]).serve() as base_url:   # ws://127.0.0.1:PORT
        asr = DeepgramASR(DeepgramASROptions(base_url=base_url))
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request, Response

from voxpipe.testing import ServerControl
from voxpipe_deepgram._socket import KeyMask, SocketClosed

#: The logger the fake server's websockets logs through (handshakes at DEBUG, masked).
server_log = logging.getLogger("voxpipe_deepgram.testing")
server_log.addFilter(KeyMask())
#: Voice, to the fake: a chunk at or above this level (dBFS).
VOICE_DB = -40.0
#: How long the fake takes to say each word (150 words a minute).
MS_PER_WORD = 400.0
MODEL_INFO = {"name": "general-nova-3", "version": "2025-04-17.21547", "arch": "nova-3"}
MODEL_UUID = "40bd3654-e622-47c4-a111-63a61b23bfe8"
HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n"
    "<body><h1>Welcome to nginx!</h1></body></html>\n"
)


# --- Deepgram's payloads -------------------------------------------------------------------


def words_payload(text: str, start_s: float, end_s: float) -> list[dict[str, Any]]:
    """``text``'s words as Deepgram times them, spread evenly over ``[start_s, end_s]``."""
    spoken = text.split()
    slot = (end_s - start_s) / max(len(spoken), 1)
    return [
        {
            "word": word.strip(".,!?;:").lower(),
            "start": round(start_s + i * slot, 3),
            "end": round(start_s + (i + 0.85) * slot, 3),
            "confidence": 0.99,
            "punctuated_word": word,
        }
        for i, word in enumerate(spoken)
    ]


def alternative(text: str, start_s: float, end_s: float) -> dict[str, Any]:
    """One ``alternatives[0]``: transcript, confidence, words."""
    return {
        "transcript": text,
        "confidence": 0.98 if text else 0.0,
        "words": words_payload(text, start_s, end_s),
    }


def results_message(
    text: str,
    start_s: float,
    duration_s: float,
    *,
    is_final: bool,
    speech_final: bool = False,
    from_finalize: bool = False,
    words_from_s: float | None = None,
    words_to_s: float | None = None,
    request_id: str = "00000000-0000-4000-8000-000000000000",
) -> dict[str, Any]:
    """A live ``Results`` message covering ``[start_s, start_s + duration_s)`` of the audio;
    its words over ``[words_from_s, words_to_s]`` (by default the whole span)."""
    first = start_s if words_from_s is None else words_from_s
    last = start_s + duration_s if words_to_s is None else words_to_s
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": round(duration_s, 3),
        "start": round(start_s, 3),
        "is_final": is_final,
        "speech_final": speech_final,
        "channel": {"alternatives": [alternative(text, first, last)]},
        "metadata": {"request_id": request_id, "model_info": MODEL_INFO, "model_uuid": MODEL_UUID},
        "from_finalize": from_finalize,
    }


def prerecorded_answer(
    text: str, duration_s: float, request_id: str = "7f1c5e2a-9b3d-4c8e-a0f6-3d2b1e4c5a69"
) -> dict[str, Any]:
    """The JSON of pre-recorded ``POST /v1/listen`` for ``text`` spoken over the audio's
    ``duration_s`` (its words in the middle 80 %)."""
    return {
        "metadata": {
            "transaction_key": "deprecated",
            "request_id": request_id,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "created": "2025-06-01T12:00:00.000Z",
            "duration": duration_s,
            "channels": 1,
            "models": [MODEL_UUID],
            "model_info": {MODEL_UUID: MODEL_INFO},
        },
        "results": {
            "channels": [{"alternatives": [alternative(text, duration_s * 0.1, duration_s * 0.9)]}]
        },
    }


#: Deepgram's error bodies by status (``err_code``, ``err_msg``).
ERRORS = {
    400: ("Bad Request", "Bad Request: failed to process audio: corrupt or unsupported data"),
    401: ("INVALID_AUTH", "Invalid credentials."),
    402: ("ASR_PAYMENT_REQUIRED", "Project does not have enough credits for an ASR request."),
    404: ("NOT_FOUND", "Not Found"),
    429: ("TOO_MANY_REQUESTS", "Too many requests. Please try again later"),
    500: ("INTERNAL_SERVER_ERROR", "We encountered an internal error. Please try again."),
    503: ("SERVICE_UNAVAILABLE", "Service is temporarily unavailable. Please try again."),
}


def error_body(
    status: int, request_id: str = "5a1f0d9e-3c2b-4e8a-9f7d-6b5c4a3e2d1f"
) -> dict[str, str]:
    """Deepgram's error JSON for ``status``: ``{"err_code", "err_msg", "request_id"}``."""
    code, message = ERRORS.get(status, ERRORS[500])
    return {"err_code": code, "err_msg": message, "request_id": request_id}


# --- what a connection gets ------------------------------------------------------------------


@dataclass
class Misbehaviour:
    """How one connection goes wrong (every ``*_after_ms`` counts audio received on it)."""

    #: Refuse the handshake with this HTTP status (and Deepgram's error body).
    reject: int | None = None
    #: ... with this ``retry-after`` (seconds), e.g. for a 429.
    retry_after: float | None = None
    #: Answer the handshake with an HTML page and 200, as a web server in the way does.
    html: bool = False
    #: Cut the connection (no close frame) once this much audio has come.
    drop_after_ms: float | None = None
    #: Say nothing more (and ignore Finalize and CloseStream) once this much audio has come.
    silent_after_ms: float | None = None
    #: Close with ``close_code`` / ``close_reason`` once this much audio has come.
    close_after_ms: float | None = None
    close_code: int = 1011
    close_reason: str = "NET-0000"
    #: Send a message that is not JSON once this much audio has come.
    garbage_after_ms: float | None = None


@dataclass
class Connection:
    """What the fake saw of one connection."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    #: The binary messages, joined (linear16 PCM).
    audio: bytearray = field(default_factory=bytearray)
    #: The ``type`` of every text message, in order (KeepAlive, Finalize, CloseStream).
    controls: list[str] = field(default_factory=list)
    #: The messages sent to the client.
    sent: list[dict[str, Any]] = field(default_factory=list)
    #: Who ended it: "client" (a close or a cut), "server" (a close after CloseStream, or a
    #: misbehaviour); "" while open.
    ended_by: str = ""
    ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def sample_rate(self) -> int:
        return int(self.query.get("sample_rate", "16000"))

    @property
    def audio_ms(self) -> float:
        return len(self.audio) / 2 * 1000 / self.sample_rate


class _Peer(Protocol):
    """The server's end of one connection."""

    async def recv(self) -> bytes | str: ...

    async def send(self, message: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None: ...


class _Gone(Exception):
    """The client has closed or cut the connection."""


class FakeDeepgram:
    """A Deepgram live transcription server (see the module's docstring). ``transcripts``
    are said in turn, one per utterance; ``plan`` gives the first connections their
    ``Misbehaviour``, one each, the later ones behave (a reconnection hears the audio sent
    again as new: its utterance gets the next transcript). ``key``: the only key accepted
    (None: any). ``speech_final=False``: the final at the endpointing silence comes without
    ``speech_final``, as in a noisy room, and ``UtteranceEnd`` ends the utterance.
    ``control``: told of every in-memory connection opened and closed (the conformance kit's
    ``ServerControl``)."""

    def __init__(
        self,
        transcripts: Sequence[str] = ("Hello from the fake Deepgram.",),
        *,
        plan: Sequence[Misbehaviour] = (),
        key: str | None = None,
        interim_ms: float = 250.0,
        speech_final: bool = True,
        control: ServerControl | None = None,
    ) -> None:
        self.transcripts = list(transcripts)
        self.plan = list(plan)
        self.key = key
        self.interim_ms = interim_ms
        self.speech_final = speech_final
        self.control = control
        self.connections: list[Connection] = []
        self.refused: list[Connection] = []
        self._said = 0  # utterances heard so far, over every connection

    # --- in memory ---------------------------------------------------------------------

    async def connect(self, url: str, headers: Mapping[str, str]) -> _MemorySocket:
        """Open an in-memory connection to the fake (a ``voxpipe_deepgram._socket.Connect``):
        no socket, no timer, so it runs under virtual time. A refused handshake raises what
        websockets raises (``InvalidStatus``)."""
        parts = urlsplit(url)
        connection = Connection(parts.path, dict(parse_qsl(parts.query)), dict(headers))
        behaviour, refusal = self._handshake(connection)
        if refusal is not None:
            raise InvalidStatus(refusal)
        socket = _MemorySocket(self, connection, behaviour)
        if self.control is not None:
            self.control.mark_opened()
        return socket

    # --- over a real WebSocket server ----------------------------------------------------

    @asynccontextmanager
    async def serve(self, port: int = 0) -> AsyncIterator[str]:
        """Serve on 127.0.0.1 (``port``; 0: an ephemeral one) while the block runs; yields the
        base URL (``ws://127.0.0.1:PORT``) for ``base_url``."""
        behaviours: dict[int, Misbehaviour] = {}
        records: dict[int, Connection] = {}

        def check(server: ServerConnection, request: Request) -> Response | None:
            parts = urlsplit(request.path)
            headers = {k.lower(): v for k, v in request.headers.raw_items()}
            connection = Connection(parts.path, dict(parse_qsl(parts.query)), headers)
            behaviour, refusal = self._handshake(connection)
            records[id(server)], behaviours[id(server)] = connection, behaviour
            return refusal

        def stamp(server: ServerConnection, request: Request, response: Response) -> None:
            if "dg-request-id" not in response.headers:
                response.headers["dg-request-id"] = records[id(server)].request_id

        async def handle(server: ServerConnection) -> None:
            connection = records.pop(id(server))
            await self._converse(_WebSocketPeer(server), connection, behaviours.pop(id(server)))

        async with serve(
            handle,
            "127.0.0.1",
            port,
            process_request=check,
            process_response=stamp,
            logger=server_log,
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            yield f"ws://127.0.0.1:{port}"

    @contextmanager
    def serve_in_thread(self) -> Iterator[str]:
        """``serve()`` on an event loop of its own in a thread, for tests that are not
        async (one that runs ``voxpipe run`` in a subprocess); yields the base URL."""
        started: asyncio.Future[str] = asyncio.Future(loop=(loop := asyncio.new_event_loop()))
        stop = asyncio.Event()

        async def run() -> None:
            async with self.serve() as url:
                started.set_result(url)
                await stop.wait()

        thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
        thread.start()
        try:
            yield asyncio.run_coroutine_threadsafe(_wait(started), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=10)
            loop.close()

    async def all_ended(self, within_s: float) -> None:
        """Wait until every connection has ended; ``TimeoutError`` if one is still open."""
        async with asyncio.timeout(within_s):
            for connection in self.connections:
                await connection.ended.wait()

    # --- the protocol ------------------------------------------------------------------

    def _handshake(self, connection: Connection) -> tuple[Misbehaviour, Response | None]:
        """The connection's misbehaviour, and the refusal of its handshake (None: it is
        accepted and kept in ``connections``)."""
        behaviour = self.plan.pop(0) if self.plan else Misbehaviour()
        query, status = connection.query, None
        authorization = {k.lower(): v for k, v in connection.headers.items()}.get("authorization")
        scheme, _, key = (authorization or "").partition(" ")
        if scheme != "Token" or not key or (self.key is not None and key != self.key):
            status = 401
        elif connection.path != "/v1/listen":
            status = 404
        elif (
            query.get("encoding") != "linear16"
            or not query.get("sample_rate", "").isdigit()
            or query.get("channels", "1") != "1"
        ):
            status = 400
        status = behaviour.reject or status
        if status is not None:
            self.refused.append(connection)
            return behaviour, _refusal(status, connection.request_id, behaviour.retry_after)
        if behaviour.html:
            self.refused.append(connection)
            return behaviour, _html_response()
        self.connections.append(connection)
        return behaviour, None

    def _next_transcript(self) -> str:
        text = self.transcripts[self._said % len(self.transcripts)] if self.transcripts else ""
        self._said += 1
        return text

    async def _converse(self, peer: _Peer, connection: Connection, how: Misbehaviour) -> None:
        """One connection, from its handshake to its end."""
        listener = _Listener(self, connection)
        silent = False
        try:
            while True:
                message = await peer.recv()
                replies: list[dict[str, Any]] = []
                if isinstance(message, bytes):
                    connection.audio += message
                    heard_ms = connection.audio_ms
                    if how.drop_after_ms is not None and heard_ms >= how.drop_after_ms:
                        connection.ended_by = "server"
                        peer.abort()
                        return
                    if how.close_after_ms is not None and heard_ms >= how.close_after_ms:
                        connection.ended_by = "server"
                        await peer.close(how.close_code, how.close_reason)
                        return
                    if how.garbage_after_ms is not None and heard_ms >= how.garbage_after_ms:
                        how.garbage_after_ms = None
                        await peer.send('{"type": "Results", "channel_index": [0, 1], "dur')
                    silent = silent or (
                        how.silent_after_ms is not None and heard_ms >= how.silent_after_ms
                    )
                    replies = listener.hear(message)
                else:
                    kind = str(json.loads(message).get("type"))
                    connection.controls.append(kind)
                    if silent:
                        continue
                    if kind == "Finalize":
                        replies = listener.finalize()
                    elif kind == "CloseStream":
                        for reply in [*listener.finalize(from_finalize=False), listener.metadata()]:
                            await self._send(peer, connection, reply)
                        connection.ended_by = "server"
                        await peer.close(1000, "")
                        return
                if not silent:
                    for reply in replies:
                        await self._send(peer, connection, reply)
        except _Gone:
            connection.ended_by = connection.ended_by or "client"
        finally:
            connection.ended.set()

    @staticmethod
    async def _send(peer: _Peer, connection: Connection, reply: dict[str, Any]) -> None:
        connection.sent.append(reply)
        await peer.send(json.dumps(reply))


def _refusal(status: int, request_id: str, retry_after: float | None) -> Response:
    """Deepgram's answer to a handshake it refuses."""
    body = error_body(status, request_id)
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("dg-request-id", request_id),
            ("dg-error", body["err_msg"]),
        ]
    )
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    data = json.dumps(body).encode()
    headers["Content-Length"] = str(len(data))
    reason = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}
    return Response(status, reason.get(status, "Error"), headers, data)


def _html_response() -> Response:
    data = HTML_PAGE.encode()
    headers = Headers([("Content-Type", "text/html"), ("Content-Length", str(len(data)))])
    return Response(200, "OK", headers, data)


async def _wait(future: asyncio.Future[str]) -> str:
    return await future


class _Listener:
    """What Deepgram hears on one connection, and what it answers (see the module)."""

    def __init__(self, fake: FakeDeepgram, connection: Connection) -> None:
        query = connection.query
        self._fake, self._connection = fake, connection
        self._rate = connection.sample_rate
        self._endpointing_ms = float(query.get("endpointing", "10"))
        gap = query.get("utterance_end_ms")
        self._utterance_end_ms = float(gap) if gap else None
        self._interim = query.get("interim_results") == "true"
        self._vad_events = query.get("vad_events") == "true"
        self._at_ms = 0.0  # audio heard
        self._covered_ms = 0.0  # audio up to which final results were sent
        self._speech_ms: float | None = None  # where the utterance being heard started
        self._voice_end_ms = 0.0
        self._next_interim_ms = 0.0
        self._text = ""  # the utterance's words
        self._last_word_end_ms: float | None = None  # an UtteranceEnd to come

    def hear(self, chunk: bytes) -> list[dict[str, Any]]:
        samples = np.frombuffer(chunk[: len(chunk) // 2 * 2], dtype="<i2").astype(np.float64)
        start_ms = self._at_ms
        self._at_ms += len(samples) * 1000 / self._rate
        rms = math.sqrt(float(np.mean(samples**2))) / 32768 if len(samples) else 0.0
        voiced = rms > 0 and 20 * math.log10(rms) >= VOICE_DB
        out: list[dict[str, Any]] = []
        if voiced:
            if self._speech_ms is None:
                self._speech_ms, self._text = start_ms, self._fake._next_transcript()
                self._next_interim_ms = start_ms + self._fake.interim_ms
                self._last_word_end_ms = None
                if self._vad_events:
                    out.append(
                        {"type": "SpeechStarted", "channel": [0], "timestamp": start_ms / 1000}
                    )
            self._voice_end_ms = self._at_ms
            if self._interim and self._at_ms >= self._next_interim_ms:
                self._next_interim_ms = self._at_ms + self._fake.interim_ms
                out.append(self._results(self._heard_so_far(), is_final=False))
        elif self._speech_ms is not None:
            if self._at_ms - self._voice_end_ms >= self._endpointing_ms:
                out.append(self._final(speech_final=self._fake.speech_final))
        elif self._last_word_end_ms is not None and self._utterance_end_ms is not None:
            if self._at_ms - self._last_word_end_ms >= self._utterance_end_ms:
                end_s, self._last_word_end_ms = self._last_word_end_ms / 1000, None
                out.append({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": end_s})
        elif self._at_ms - self._covered_ms >= 1000:
            out.append(self._final())
        return out

    def finalize(self, *, from_finalize: bool = True) -> list[dict[str, Any]]:
        """What ``Finalize`` (or ``CloseStream``) flushes: the final of what is pending."""
        if self._at_ms <= self._covered_ms and self._speech_ms is None:
            return []
        return [self._final(from_finalize=from_finalize)]

    def metadata(self) -> dict[str, Any]:
        connection = self._connection
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": connection.request_id,
            "sha256": hashlib.sha256(connection.audio).hexdigest(),
            "created": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "duration": round(self._at_ms / 1000, 3),
            "channels": 1,
            "models": [MODEL_UUID],
            "model_info": {MODEL_UUID: MODEL_INFO},
        }

    def _heard_so_far(self) -> str:
        assert self._speech_ms is not None
        words = self._text.split()
        count = min(len(words), 1 + int((self._at_ms - self._speech_ms) / MS_PER_WORD))
        return " ".join(words[:count])

    def _final(self, *, speech_final: bool = False, from_finalize: bool = False) -> dict[str, Any]:
        text = self._text if self._speech_ms is not None else ""
        message = self._results(
            text, is_final=True, speech_final=speech_final, from_finalize=from_finalize
        )
        words = message["channel"]["alternatives"][0]["words"]
        if words:
            self._last_word_end_ms = words[-1]["end"] * 1000
        self._covered_ms, self._speech_ms, self._text = self._at_ms, None, ""
        return message

    def _results(
        self,
        text: str,
        *,
        is_final: bool,
        speech_final: bool = False,
        from_finalize: bool = False,
    ) -> dict[str, Any]:
        speech_ms = self._speech_ms if self._speech_ms is not None else self._covered_ms
        words_to_ms = self._voice_end_ms if is_final else self._at_ms
        if not is_final and text:  # the interim's words so far, each in its own slot
            words_to_ms = speech_ms + len(text.split()) * MS_PER_WORD
        return results_message(
            text,
            self._covered_ms / 1000,
            (self._at_ms - self._covered_ms) / 1000,
            is_final=is_final,
            speech_final=speech_final,
            from_finalize=from_finalize,
            words_from_s=speech_ms / 1000,
            words_to_s=max(words_to_ms, speech_ms) / 1000,
            request_id=self._connection.request_id,
        )


class _MemorySocket:
    """The client's end of an in-memory connection (a ``voxpipe_deepgram._socket.Socket``);
    the fake's end runs in a task that ends with the connection."""

    def __init__(self, fake: FakeDeepgram, connection: Connection, how: Misbehaviour) -> None:
        self.request_id: str | None = connection.request_id
        self._fake, self.connection = fake, connection
        self._to_server: asyncio.Queue[bytes | str | SocketClosed] = asyncio.Queue()
        self._to_client: asyncio.Queue[str | SocketClosed] = asyncio.Queue()
        self._ended: SocketClosed | None = None
        self._closed = False
        peer = _MemoryPeer(self._to_server, self._to_client)
        self._server = asyncio.create_task(fake._converse(peer, connection, how))

    async def send(self, message: bytes | str) -> None:
        if self._ended is not None:
            raise self._ended
        self._to_server.put_nowait(message)
        await asyncio.sleep(0)

    async def recv(self) -> bytes | str:
        if self._ended is not None:
            raise self._ended
        item = await self._to_client.get()
        if isinstance(item, SocketClosed):
            self._ended = item
            raise item
        return item

    def abort(self) -> None:
        self._end(SocketClosed(None))

    async def aclose(self) -> None:
        self._end(SocketClosed(1000))
        if not self._closed:
            self._closed = True
            if self._fake.control is not None:
                self._fake.control.mark_closed()
        await asyncio.gather(self._server, return_exceptions=True)

    def _end(self, how: SocketClosed) -> None:
        if self._ended is None:
            self._ended = how
            self._to_server.put_nowait(how)
            self._to_client.put_nowait(how)


class _MemoryPeer:
    def __init__(
        self,
        inbox: asyncio.Queue[bytes | str | SocketClosed],
        outbox: asyncio.Queue[str | SocketClosed],
    ) -> None:
        self._inbox, self._outbox = inbox, outbox
        self._done = False

    async def recv(self) -> bytes | str:
        item = await self._inbox.get()
        if isinstance(item, SocketClosed):
            raise _Gone
        return item

    async def send(self, message: str) -> None:
        if not self._done:
            self._outbox.put_nowait(message)

    async def close(self, code: int, reason: str) -> None:
        self._finish(SocketClosed(code, reason))

    def abort(self) -> None:
        self._finish(SocketClosed(None))

    def _finish(self, how: SocketClosed) -> None:
        if not self._done:
            self._done = True
            self._outbox.put_nowait(how)


class _WebSocketPeer:
    def __init__(self, server: ServerConnection) -> None:
        self._server = server

    async def recv(self) -> bytes | str:
        try:
            return await self._server.recv()
        except ConnectionClosed:
            raise _Gone from None

    async def send(self, message: str) -> None:
        with suppress(ConnectionClosed):
            await self._server.send(message)

    async def close(self, code: int, reason: str) -> None:
        await self._server.close(code, reason)

    def abort(self) -> None:
        self._server.transport.abort()


async def _serve_forever(port: int, transcripts: list[str]) -> None:
    async with FakeDeepgram(transcripts).serve(port) as url:
        print(f"fake Deepgram listening: base_url = {url!r} (Ctrl-C stops it)", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    """``python -m voxpipe_deepgram.testing [--port N] [TRANSCRIPT ...]``: serve a fake
    Deepgram live server until Ctrl-C, to try ``voxpipe run`` offline."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m voxpipe_deepgram.testing", description=main.__doc__
    )
    parser.add_argument("--port", type=int, default=8766, help="port on 127.0.0.1 (8766)")
    parser.add_argument("transcripts", nargs="*", default=["hello there"], help="said in turn")
    args = parser.parse_args()
    with suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args.port, args.transcripts))


if __name__ == "__main__":
    main()
