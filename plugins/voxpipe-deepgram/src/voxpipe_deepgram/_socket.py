"""The live ASR's WebSocket, behind a small interface (``Socket``) so that tests can put an
in-memory fake in its place: opened with ``websockets.asyncio.client.connect``, every way it
can end turned into one ``SocketClosed``, a failed handshake into the voxpipe error of its
status (``connect_error``). The key never reaches a log: websockets logs the handshake's
headers at DEBUG, through a logger of ours that masks credentials."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from voxpipe.errors import ProviderError
from voxpipe_deepgram._connection import tls_context
from voxpipe_deepgram._errors import KEY_ENV_VAR, http_error, redact, transport, wrong_content

#: websockets' own keepalive pings: a half-open TCP connection is found within 20 + 10 s
#: even when the idle timeout does not apply (nothing is owed).
PING_INTERVAL_S, PING_TIMEOUT_S = 20.0, 10.0
#: How long a close handshake may take before the connection is simply dropped.
CLOSE_TIMEOUT_S = 2.0
#: The largest message accepted from the server (Deepgram's results are a few KB).
MAX_MESSAGE_BYTES = 1 << 20


class SocketClosed(Exception):
    """The connection ended: ``code`` and ``reason`` of the server's close frame, or code
    None when it was cut without one."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"closed ({code}: {reason})" if code is not None else "connection cut")
        self.code, self.reason = code, reason


class Socket(Protocol):
    """One WebSocket to a Deepgram-speaking server."""

    #: Deepgram's id of this connection (its handshake's ``dg-request-id``), if it said.
    request_id: str | None

    async def send(self, message: bytes | str) -> None:
        """Send one message; ``SocketClosed`` if the connection has ended."""

    async def recv(self) -> bytes | str:
        """The next message; ``SocketClosed`` once the connection has ended."""

    def abort(self) -> None:
        """Drop the connection at once (no close handshake)."""

    async def aclose(self) -> None:
        """Close the connection (a close handshake of at most ``CLOSE_TIMEOUT_S``)."""


#: Opens a socket: ``(url, headers) -> Socket``, raising what websockets raises when it
#: cannot (``InvalidStatus`` for a refused handshake, ``OSError``...). The caller bounds the
#: time it takes. Tests pass their own (``voxpipe_deepgram.testing.FakeDeepgram.connect``).
Connect = Callable[[str, Mapping[str, str]], Awaitable[Socket]]


class KeyMask(logging.Filter):
    """Masks credentials in the records of the websockets logger we hand it (the handshake's
    ``Authorization`` header is logged at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        key = os.environ.get(KEY_ENV_VAR, "").strip() or None
        record.msg = redact(str(record.msg), key)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a, key) if isinstance(a, str) else a for a in record.args)
        return True


#: The logger websockets logs our connections through (records propagate as usual).
socket_log = logging.getLogger("voxpipe_deepgram.websocket")
socket_log.addFilter(KeyMask())


class WebSocket:
    """A ``websockets`` client connection as a ``Socket``."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        response = connection.response
        self.request_id = response.headers.get("dg-request-id") if response else None

    async def send(self, message: bytes | str) -> None:
        try:
            await self._connection.send(message)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def recv(self) -> bytes | str:
        try:
            return await self._connection.recv()
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    def abort(self) -> None:
        self._connection.transport.abort()

    async def aclose(self) -> None:
        try:
            await self._connection.close()
        except BaseException:
            self.abort()  # cancelled mid-handshake: drop it
            raise


def _closed(exc: ConnectionClosed) -> SocketClosed:
    frame = exc.rcvd
    return SocketClosed(None) if frame is None else SocketClosed(frame.code, frame.reason)


async def open_websocket(url: str, headers: Mapping[str, str]) -> WebSocket:
    """Connect to ``url`` (the caller bounds how long it may take)."""
    connection = await connect(
        url,
        additional_headers=dict(headers),
        open_timeout=None,
        close_timeout=CLOSE_TIMEOUT_S,
        ping_interval=PING_INTERVAL_S,
        ping_timeout=PING_TIMEOUT_S,
        max_size=MAX_MESSAGE_BYTES,
        compression=None,  # PCM does not compress; deflate would only cost time
        ssl=tls_context() if url.startswith("wss://") else None,
        logger=socket_log,
    )
    return WebSocket(connection)


def connect_error(exc: Exception, what: str, key: str) -> ProviderError | None:
    """The voxpipe error of a failed connection attempt; None for an exception that says
    nothing about the connection (a bug, to be raised as it is)."""
    if isinstance(exc, InvalidStatus):
        response = exc.response
        headers = {k.lower(): v for k, v in response.headers.raw_items()}
        if 200 <= response.status_code < 300:  # an HTTP server, not a WebSocket endpoint
            problem = (
                f"the server answered HTTP {response.status_code} "
                f"({headers.get('content-type', 'no content type')}) instead of upgrading "
                "to a WebSocket"
            )
            return wrong_content(what, problem, bytes(response.body or b""), key)
        return http_error(what, response.status_code, headers, bytes(response.body or b""), key)
    if isinstance(exc, InvalidHandshake):
        return transport(what, f"the WebSocket handshake failed: {redact(str(exc), key)}")
    if isinstance(exc, OSError):
        reason = f"{type(exc).__name__}: {redact(str(exc), key)}"
        return transport(what, f"could not connect ({reason}); check base_url")
    if isinstance(exc, asyncio.IncompleteReadError | EOFError):
        return transport(what, "the connection was cut during the handshake")
    return None
