"""A real OpenAI-compatible HTTP/1.1 server on 127.0.0.1 (an ephemeral port) that misbehaves
on purpose, written on asyncio streams. It serves the three endpoints the backends call and
answers every request as its ``mode`` says; each connection is one task of the test's loop,
which ends when the connection does, so a test can wait for (and assert) every connection
closed and then check that no task is left."""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from enum import StrEnum

from openai_wire import chat_events, error_json, pcm_24k, pieces, sse, transcription_events


class Mode(StrEnum):
    OK = "ok"  # the whole answer, chunked, connection kept alive
    STALL = "stall"  # headers and the first chunks, then nothing (the socket stays open)
    DISCONNECT = "disconnect"  # headers and the first chunks, then the socket is closed
    NEVER = "never"  # reads the request, never answers
    UNAVAILABLE = "503"  # HTTP 503 with OpenAI's error body, connection kept alive
    # 200s that are not what was asked for, each body whole, connection kept alive:
    TRUNCATED = "truncated"  # the answer without its end (see TRUNCATED_CHUNKS)
    HTML = "html"  # a web server's page (text/html)
    JSON = "json"  # the endpoint's answer as one JSON document instead of a stream
    GARBAGE = "garbage"  # text/event-stream, but what follows is no event stream


#: Chunks sent before a stall or a disconnect: the LLM's role delta and first word, the
#: TTS's first 200 ms of audio, the ASR's first two text deltas.
CHUNKS_BEFORE_TROUBLE = 2
TRANSCRIPT = "Hello there, how are you?"
_SSE = "text/event-stream; charset=utf-8"
#: What ``Mode.TRUNCATED`` sends: the LLM's role delta and three words (no finish reason, no
#: [DONE]), no audio at all (audio cut anywhere else is a shorter phrase), the ASR's text
#: deltas (no done event).
TRUNCATED_CHUNKS = {"llm": 4, "tts": 0, "asr": 5}
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html>\n<head><title>Welcome to nginx!</title></head>\n"
    b"<body><h1>Welcome to nginx!</h1><p>If you see this page, the nginx web server is "
    b"successfully installed and working.</p></body>\n</html>\n"
)
GARBAGE = b"upstream connect error or disconnect/reset before headers. reset reason: overflow"


_KINDS = {"/chat/completions": "llm", "/audio/speech": "tts", "/audio/transcriptions": "asr"}


def _kind(path: str) -> str:
    """Which backend a request for ``path`` comes from."""
    return _KINDS["/" + path.split("/v1/", 1)[1]]


def _json(path: str) -> bytes:
    """The endpoint's answer as a JSON document (a server that ignored ``stream``)."""
    kind = _kind(path)
    if kind == "llm":
        message = {"role": "assistant", "content": "Hello there."}
        answer = {"object": "chat.completion", "choices": [{"index": 0, "message": message}]}
    elif kind == "tts":
        answer = {"object": "audio.speech", "audio": "UklGRiQAAABXQVZF"}
    else:
        answer = {"text": TRANSCRIPT}  # what whisper-1 answers: a transcription after all
    return json.dumps(answer).encode()


def _answer_body(mode: Mode, path: str) -> tuple[str, list[bytes]]:
    """``(content type, chunks)`` of a 200 answer to ``path`` in ``mode``."""
    if mode is Mode.HTML:
        return "text/html", pieces(HTML_PAGE, 64)
    if mode is Mode.JSON:
        return "application/json", [_json(path)]
    if mode is Mode.GARBAGE:
        return _SSE, pieces(GARBAGE, 32)
    kind, chunks = _body(path)
    if mode is Mode.TRUNCATED:
        chunks = chunks[: TRUNCATED_CHUNKS[_kind(path)]]
    return kind, chunks


def _body(path: str) -> tuple[str, list[bytes]]:
    """``(content type, chunks)`` of a good answer to ``path``."""
    if path.endswith("/chat/completions"):
        return _SSE, [sse(event, done=False) for event in chat_events(["Hello", " there", "."])]
    if path.endswith("/audio/speech"):
        return "audio/pcm", pieces(pcm_24k(600), 4800)  # 100 ms a chunk
    if path.endswith("/audio/transcriptions"):
        return _SSE, [sse(event, done=False) for event in transcription_events(TRANSCRIPT)]
    raise AssertionError(f"unexpected request for {path}")  # pragma: no cover


class LocalServer:
    def __init__(self) -> None:
        self.mode = Mode.OK
        #: Modes for the next requests, one each, before ``mode`` applies again.
        self.next_modes: list[Mode] = []
        #: The path of every request, in order.
        self.requests: list[str] = []
        #: How many connections the client closed while the server was waiting on them.
        self.closed_by_client = 0
        self._connections: list[asyncio.Task[None]] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in self._connections:  # only after a failed test: the tests wait for them
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def all_closed(self, within_s: float) -> None:
        """Wait until every connection has ended; ``TimeoutError`` if one is still open."""
        async with asyncio.timeout(within_s):
            await asyncio.gather(*self._connections)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while (path := await _read_request(reader)) is not None:
                self.requests.append(path)
                if not await self._answer(path, reader, writer):
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(
        self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request as ``mode`` says; whether the connection stays open for more."""
        mode = self.next_modes.pop(0) if self.next_modes else self.mode
        if mode is Mode.NEVER:
            await self._until_client_closes(reader)
            return False
        if mode is Mode.UNAVAILABLE:
            body = json.dumps(error_json(503)).encode()
            head = _head(503, "application/json", f"content-length: {len(body)}")
            writer.write(head + body)
            await writer.drain()
            return True
        kind, chunks = _answer_body(mode, path)
        writer.write(_head(200, kind, "transfer-encoding: chunked"))
        if mode in (Mode.STALL, Mode.DISCONNECT):
            chunks = chunks[:CHUNKS_BEFORE_TROUBLE]
        for chunk in chunks:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            await asyncio.sleep(0.001)  # each chunk its own read on the client's side
        if mode is Mode.STALL:
            await self._until_client_closes(reader)
            return False
        if mode is Mode.DISCONNECT:
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _until_client_closes(self, reader: asyncio.StreamReader) -> None:
        with suppress(ConnectionError):
            while await reader.read(65_536):
                pass
        self.closed_by_client += 1


def _head(status: int, content_type: str, framing: str) -> bytes:
    reason = {200: "OK", 503: "Service Unavailable"}[status]
    lines = [f"HTTP/1.1 {status} {reason}", f"content-type: {content_type}", framing]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_request(reader: asyncio.StreamReader) -> str | None:
    """The path of the next request, its body read and dropped; ``None`` once the client has
    closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise AssertionError(f"a request cut short: {exc.partial[:80]!r}") from None
        return None
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines if line)
    assert "transfer-encoding" not in headers, "the client sent a chunked request body"
    await reader.readexactly(int(headers.get("content-length", "0")))
    return request_line.split(" ")[1]
