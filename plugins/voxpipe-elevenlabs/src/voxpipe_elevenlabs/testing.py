"""A fake ElevenLabs on 127.0.0.1 for tests and measurements, importable by anyone testing
code that talks to ElevenLabs (no network, no key):

- ``POST /v1/text-to-speech/{voice_id}/stream`` answers chunked raw PCM at the
  ``output_format`` asked for (``pcm_8000`` ... ``pcm_44100``);
- ``/v1/text-to-speech/{voice_id}/stream-input`` speaks stream-input: the init message's
  ``chunk_length_schedule``, text, ``flush``, ``{"text": ""}``, base64 audio with
  ``alignment`` / ``normalizedAlignment``, ``isFinal``, and the input timeout (error
  ``input_timeout_exceeded``, close 1008).

Both check the ``xi-api-key`` header (``key``: that key; None: any non-empty one). Speech is
``Voice``: its first audio ``first_audio_ms`` after the server has enough text (a flush, the
schedule's characters, the end of the text, or the whole text of an HTTP request), then
``speed`` times faster than real time, ``ms_per_char`` of audio per character.

Use it in the test's event loop (``async with FakeElevenLabs() as server``; it also runs
under looptime's virtual time) or, for a subprocess, in a thread of its own
(``with FakeElevenLabs.in_thread() as server``). ``answer_next(...)`` makes the next
requests or sockets fail in a chosen way; ``requests`` and ``sockets`` record what came.
With a ``control`` (``voxpipe.testing.ServerControl``) each socket holds its audio after the
first message until ``control.release`` is set, and reports itself opened, and closed when
the client closes it, as the conformance kit expects."""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import re
import threading
import zlib
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voxpipe.sim.voice import speech_like
from voxpipe.testing import Failure, ServerControl
from voxpipe_elevenlabs._options import PCM_RATES

_SPEECH_PATH = re.compile(r"^/v1/text-to-speech/([A-Za-z0-9]+)/(stream|stream-input)$")
#: A web server's page where the API should be (a proxy, a wrong base_url).
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


@dataclass(frozen=True)
class Voice:
    """How the fake speaks."""

    #: From "enough text" (a flush, the schedule, the end) to the first audio of it.
    first_audio_ms: float = 120.0
    #: Audio is produced this many times faster than real time.
    speed: float = 4.0
    #: Audio per character of text (about 150 words a minute).
    ms_per_char: float = 65.0
    #: Audio per message (a socket) or per chunk (HTTP).
    chunk_ms: float = 100.0


@dataclass(frozen=True)
class Refusal:
    """An HTTP answer instead of audio (or instead of the WebSocket upgrade)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def error(
        cls, status: int, code: str, message: str, *, retry_after: float | None = None
    ) -> Refusal:
        """ElevenLabs' ``{"detail": {"status": code, "message": message}}``."""
        body = json.dumps({"detail": {"status": code, "message": message}}).encode()
        headers = () if retry_after is None else (("retry-after", f"{retry_after:g}"),)
        return cls(status, body, headers=headers)


@dataclass(frozen=True)
class ErrorMessage:
    """A stream-input error message after the init message, then the close ``code``
    (sockets only)."""

    error: str
    message: str
    code: int = 1008


class Trouble(enum.Enum):
    """Ways a stream goes wrong once it has started."""

    STALL = "stall"  # the first audio, then nothing; the connection stays open
    DROP = "drop"  # the first audio, then the connection is cut (no close frame)
    TRUNCATE = "truncate"  # socket: closed normally (1000) at the first text; HTTP: no bytes
    GARBAGE = "garbage"  # socket: a message that is not JSON; HTTP: a JSON document, 200


Answer = Refusal | ErrorMessage | Trouble


def kit_failure(failure: Failure) -> Answer:
    """How the fake answers a conformance kit ``Failure`` (HTTP and sockets alike)."""
    if failure is Failure.AUTH:
        return Refusal.error(401, "invalid_api_key", "Invalid API key")
    if failure is Failure.RATE_LIMIT:
        return Refusal.error(
            429,
            "too_many_concurrent_requests",
            "Too many concurrent requests for your plan: the limit is 2.",
            retry_after=Failure.RETRY_AFTER_S,
        )
    if failure is Failure.SERVER:
        return Refusal.error(500, "internal_server_error", "An internal error occurred.")
    if failure is Failure.WRONG_CONTENT_TYPE:
        return Refusal(200, HTML_PAGE, "text/html")
    if failure is Failure.TRUNCATED:
        return Trouble.TRUNCATE
    return Trouble.GARBAGE


@dataclass
class Received:
    """One HTTP request or socket, as the fake saw it (the key not kept)."""

    path: str
    query: dict[str, str]
    #: Whether the ``xi-api-key`` header was there and right.
    key_ok: bool
    #: An HTTP request's JSON body; a socket's messages, parsed, in order.
    messages: list[Any] = field(default_factory=list)
    #: The alignment sent, as (character, start ms, end ms) of the stream's audio.
    alignment: list[tuple[str, float, float]] = field(default_factory=list)
    #: Audio sent, in ms.
    audio_ms: float = 0.0
    #: Socket only: who closed it ("client", "server") or "cut" (no close frame).
    closed_by: str | None = None


class FakeElevenLabs:
    """The fake server (see the module's docstring). ``http_url`` and ``ws_url`` are what
    ``base_url`` takes for the two backends."""

    def __init__(
        self,
        *,
        key: str | None = None,
        voice: Voice | None = None,
        input_timeout_s: float = 20.0,
        control: ServerControl | None = None,
    ) -> None:
        self.key = key
        self.voice = voice or Voice()
        self.input_timeout_s = input_timeout_s
        self.control = control
        self.requests: list[Received] = []
        self.sockets: list[Received] = []
        self._answers: list[Answer] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._http: asyncio.Server | None = None
        self._ws: Server | None = None

    # --- running it --------------------------------------------------------------------------

    async def start(self) -> None:
        self._http = await asyncio.start_server(self._serve_http, "127.0.0.1", 0)
        self._ws = await serve(
            self._serve_socket,
            "127.0.0.1",
            0,
            process_request=self._upgrade,
            create_connection=_Connection,
        )

    async def stop(self) -> None:
        if self._ws is not None:
            self._ws.close()
            await self._ws.wait_closed()
        if self._http is not None:
            self._http.close()
            await self._http.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    @contextmanager
    def in_thread(cls, **options: Any) -> Iterator[FakeElevenLabs]:
        """The fake on an event loop of its own in a daemon thread, for a client in another
        process (``voxpipe run`` as a subprocess) or another loop; real time."""
        server = cls(**options)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fake-elevenlabs", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
            yield server
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    @property
    def http_url(self) -> str:
        assert self._http is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._http.sockets[0].getsockname()[1]}"

    @property
    def ws_url(self) -> str:
        assert self._ws is not None, "start() the fake first"
        return f"ws://127.0.0.1:{next(iter(self._ws.sockets)).getsockname()[1]}"

    @property
    def connections(self) -> int:
        """Connections accepted so far (HTTP and sockets; a kept-alive one counts once)."""
        return len(self._tasks)

    def answer_next(self, *answers: Answer) -> None:
        """The next requests or sockets, one answer each, go wrong as these say."""
        self._answers.extend(answers)

    async def all_closed(self, within_s: float = 5.0) -> None:
        """Wait until every connection has ended; ``TimeoutError`` if one is still open."""
        async with asyncio.timeout(within_s):
            while pending := [t for t in self._tasks if not t.done()]:
                await asyncio.wait(pending)

    def _next_answer(self) -> Answer | None:
        return self._answers.pop(0) if self._answers else None

    def _key_ok(self, given: str | None) -> bool:
        return bool(given) and (self.key is None or given == self.key)

    # --- stream-input ----------------------------------------------------------------------

    def _upgrade(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse the upgrade as ElevenLabs (or what stands before it) would; else let it
        through with what the socket is to do."""
        assert isinstance(connection, _Connection)
        parts = urlsplit(request.path)
        match = _SPEECH_PATH.match(parts.path)
        query = dict(parse_qsl(parts.query))
        received = Received(parts.path, query, self._key_ok(request.headers.get("xi-api-key")))
        self.sockets.append(received)
        connection.received = received
        answer = self._next_answer()
        if isinstance(answer, Refusal):
            return _refusal(connection, answer)
        if match is None or match.group(2) != "stream-input":
            return _refusal(connection, Refusal.error(404, "not_found", "Not Found"))
        if not received.key_ok:
            return _refusal(connection, Refusal.error(401, "invalid_api_key", "Invalid API key"))
        rate = _pcm_rate(query.get("output_format", "mp3_44100_128"))
        if rate is None:
            return _refusal(connection, _bad_format(query.get("output_format")))
        connection.rate, connection.answer = rate, answer
        return None

    async def _serve_socket(self, connection: ServerConnection) -> None:
        assert isinstance(connection, _Connection)
        self._tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        connection.control = control = self.control
        if control is not None:
            control.mark_opened()
        speaker = _Speaker(connection, self.voice, control)
        # Every way a socket ends closes it: the client's close, the server's after the
        # final message or an error, a cut connection.
        tasks = {_task(speaker.run()), _task(self._listen(connection, speaker))}
        try:
            await connection.wait_closed()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    async def _listen(self, connection: _Connection, speaker: _Speaker) -> None:
        """Read the client's messages until its end message, or until the socket fails."""
        received, answer = connection.received, connection.answer
        timeout_s = float(received.query.get("inactivity_timeout", self.input_timeout_s))
        initialized = False
        while True:
            try:
                async with asyncio.timeout(timeout_s):
                    raw = await connection.recv()
            except TimeoutError:
                await _input_timeout(connection, timeout_s)
                return
            message = json.loads(raw)
            received.messages.append(message)
            if not initialized:
                initialized = True
                schedule = (message.get("generation_config") or {}).get("chunk_length_schedule")
                speaker.schedule = list(schedule or speaker.schedule)
                if isinstance(answer, ErrorMessage):
                    error = {"message": answer.message, "error": answer.error, "code": answer.code}
                    await connection.send(json.dumps(error))
                    await connection.close(answer.code, answer.message[:100])
                    return
                if answer is Trouble.GARBAGE:
                    await connection.send("upstream connect error or disconnect/reset")
                continue
            if answer is Trouble.TRUNCATE:
                await connection.close()
                return
            if message["text"] == "":
                speaker.end()
                return
            speaker.text(message["text"], flush=bool(message.get("flush")))

    # --- HTTP streaming ----------------------------------------------------------------------

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while (request := await _read_request(reader)) is not None:
                if not await self._answer_http(request, reader, writer):
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or stop(): the connection ends either way
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer_http(
        self, request: _HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; whether the connection stays open for more."""
        received = Received(request.path, request.query, self._key_ok(request.key))
        self.requests.append(received)
        answer = self._next_answer()
        match = _SPEECH_PATH.match(request.path)
        body = _json(request.body)
        received.messages.append(body)
        rate = _pcm_rate(request.query.get("output_format", "mp3_44100_128"))
        if isinstance(answer, Refusal):
            refusal = answer
        elif request.method != "POST" or match is None or match.group(2) != "stream":
            refusal = Refusal.error(404, "not_found", "Not Found")
        elif not received.key_ok:
            refusal = Refusal.error(401, "invalid_api_key", "Invalid API key")
        elif rate is None:
            refusal = _bad_format(request.query.get("output_format"))
        elif not isinstance(body, dict) or not str(body.get("text", "")).strip():
            refusal = _missing_text()
        else:
            return await self._speak_http(received, str(body["text"]), rate, answer, reader, writer)
        writer.write(_head(refusal.status, refusal.content_type, refusal.headers, refusal.body))
        await writer.drain()
        return True

    async def _speak_http(
        self,
        received: Received,
        text: str,
        rate: int,
        answer: Answer | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if answer is Trouble.GARBAGE:
            document = b'{"audio_base64": "UklGRiQAAABXQVZF", "alignment": null}'
            writer.write(_head(200, "application/json", (), document))
            await writer.drain()
            return True
        if answer is Trouble.TRUNCATE:
            writer.write(_head(200, "audio/pcm", (), b""))
            await writer.drain()
            return True
        voice, loop = self.voice, asyncio.get_running_loop()
        start = loop.time() + voice.first_audio_ms / 1000
        writer.write(_head(200, "audio/pcm", (("transfer-encoding", "chunked"),), None))
        for i, (samples, _) in enumerate(_chunks(text, rate, voice)):
            await _sleep_until(start + i * voice.chunk_ms / 1000 / voice.speed)
            data = samples.astype("<i2").tobytes()
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await writer.drain()
            received.audio_ms += len(samples) * 1000 / rate
            if answer is Trouble.DROP:
                return False
            if answer is Trouble.STALL:
                with suppress(ConnectionError):
                    while await reader.read(65_536):
                        pass
                return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


class _Connection(ServerConnection):
    """A socket of the fake: what it is to do, and who closed it (the client's close frame
    is seen as it arrives, before the server answers it: the kit's close check relies on
    the report coming before the client's ``close()`` returns)."""

    received: Received
    rate: int = 16_000
    answer: Answer | None = None
    control: ServerControl | None = None
    _reported = False

    def data_received(self, data: bytes) -> None:
        server_closing = self.protocol.close_sent is not None
        super().data_received(data)  # answers a close frame at once
        if self.protocol.close_rcvd is not None and not self._reported:
            self._report("server" if server_closing else "client")

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self._reported:
            self._report("cut")

    def _report(self, closed_by: str) -> None:
        self._reported = True
        if hasattr(self, "received"):
            self.received.closed_by = closed_by
        if self.control is not None:
            self.control.mark_closed()


class _Speaker:
    """A socket's speech: text is buffered until a flush, the end, or the schedule's next
    number of characters; each generation's audio then follows the one before."""

    def __init__(
        self, connection: _Connection, voice: Voice, control: ServerControl | None
    ) -> None:
        self._connection, self._voice, self._control = connection, voice, control
        self._loop = asyncio.get_running_loop()
        self._generations: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()
        self._buffer = ""
        self._count = 0
        self._hold = control is not None  # after the first message, until released
        self.schedule = [120, 160, 250, 290]

    def text(self, text: str, *, flush: bool) -> None:
        self._buffer += text
        limit = self.schedule[min(self._count, len(self.schedule) - 1)]
        if flush or len(self._buffer) >= limit:
            self._generate()

    def end(self) -> None:
        self._generate()
        self._generations.put_nowait(None)

    def _generate(self) -> None:
        if self._buffer.strip():
            self._generations.put_nowait((self._buffer, self._loop.time()))
            self._count += 1
        self._buffer = ""

    async def run(self) -> None:
        """Send each generation's audio, then the final message, then close."""
        connection = self._connection
        while (generation := await self._generations.get()) is not None:
            await self._speak(*generation)
        await connection.send(json.dumps({"isFinal": True}))
        await connection.close()

    async def _speak(self, text: str, asked: float) -> None:
        connection, voice, received = self._connection, self._voice, self._connection.received
        start = max(asked + voice.first_audio_ms / 1000, self._loop.time())
        for i, (samples, chars) in enumerate(_chunks(text, connection.rate, voice)):
            await _sleep_until(start + i * voice.chunk_ms / 1000 / voice.speed)
            sent = [(c, round(s), round(d)) for c, s, d in chars]  # whole ms, as the API does
            timing = {
                "chars": [c for c, _, _ in sent],
                "charStartTimesMs": [s for _, s, _ in sent],
                "charDurationsMs": [d for _, _, d in sent],
            }
            message = {
                "audio": base64.b64encode(samples.astype("<i2").tobytes()).decode(),
                "isFinal": None,
                "normalizedAlignment": timing,
                "alignment": timing,
            }
            await connection.send(json.dumps(message))
            offset = received.audio_ms
            received.alignment += [(c, offset + s, offset + s + d) for c, s, d in sent]
            received.audio_ms += len(samples) * 1000 / connection.rate
            if connection.answer is Trouble.DROP:
                connection.transport.abort()
                await asyncio.Future()  # the connection is gone: wait to be cancelled
            if connection.answer is Trouble.STALL:
                await asyncio.Future()
            if self._hold and self._control is not None:
                self._hold = False
                await self._control.hold()


def _task(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """``work`` in a task that ends quietly when its socket closes under it."""

    async def run() -> None:
        with suppress(ConnectionClosed):
            await work

    return asyncio.create_task(run())


def _chunks(
    text: str, rate: int, voice: Voice
) -> Iterator[tuple[np.ndarray[Any, np.dtype[np.int16]], list[tuple[str, float, float]]]]:
    """``text`` spoken: its audio in ``chunk_ms`` pieces, each with the characters that
    start in it (times from the piece's start, as ElevenLabs gives them)."""
    duration_ms = len(text) * voice.ms_per_char
    audio = speech_like(duration_ms, rate, seed=zlib.crc32(text.encode()))
    per_char = duration_ms / len(text)
    step = max(round(voice.chunk_ms * rate / 1000), 1)
    for at in range(0, len(audio), step):
        begin, end = at * 1000 / rate, (at + step) * 1000 / rate
        chars = [
            (c, i * per_char - begin, per_char)
            for i, c in enumerate(text)
            if begin <= i * per_char < end
        ]
        yield audio[at : at + step], chars


async def _sleep_until(when: float) -> None:
    await asyncio.sleep(max(when - asyncio.get_running_loop().time(), 0))


async def _input_timeout(connection: _Connection, timeout_s: float) -> None:
    """What ElevenLabs does when the text stops coming: an error message, a 1008 close."""
    text = (
        f"Have not received a new text input within the timeout of {timeout_s:g} seconds. "
        "Streaming input terminated."
    )
    error = {"message": text, "error": "input_timeout_exceeded", "code": 1008}
    with suppress(ConnectionClosed):
        await connection.send(json.dumps(error))
        await connection.close(1008, text[:100])


def _pcm_rate(output_format: str) -> int | None:
    kind, _, rate = output_format.partition("_")
    return int(rate) if kind == "pcm" and rate.isdigit() and int(rate) in PCM_RATES else None


def _bad_format(output_format: str | None) -> Refusal:
    """This fake speaks raw PCM only: anything else is refused as an invalid value."""
    problem = {
        "loc": ["query", "output_format"],
        "msg": f"Input should be one of {', '.join(f'pcm_{r}' for r in PCM_RATES)} (this fake "
        f"speaks raw PCM only), got {output_format!r}",
        "type": "enum",
    }
    return Refusal(422, json.dumps({"detail": [problem]}).encode())


def _missing_text() -> Refusal:
    problem = {"loc": ["body", "text"], "msg": "Field required", "type": "missing"}
    return Refusal(422, json.dumps({"detail": [problem]}).encode())


def _refusal(connection: ServerConnection, refusal: Refusal) -> Response:
    response = connection.respond(refusal.status, refusal.body.decode())
    del response.headers["Content-Type"]  # respond() says text/plain
    response.headers["Content-Type"] = refusal.content_type
    for name, value in refusal.headers:
        response.headers[name] = value
    return response


@dataclass(frozen=True)
class _HttpRequest:
    method: str
    path: str
    query: dict[str, str]
    key: str | None
    body: bytes


async def _read_request(reader: asyncio.StreamReader) -> _HttpRequest | None:
    """The next request on the connection (its body read); None once the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line, *lines = head.decode("latin-1").split("\r\n")
    headers = Headers()
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
    method, target, _ = request_line.split(" ", 2)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    parts = urlsplit(target)
    return _HttpRequest(
        method, parts.path, dict(parse_qsl(parts.query)), headers.get("xi-api-key"), body
    )


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _head(
    status: int, content_type: str, headers: Sequence[tuple[str, str]], body: bytes | None
) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"content-type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body is not None:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
