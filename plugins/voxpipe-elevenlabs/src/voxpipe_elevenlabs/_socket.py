"""Opening the stream-input WebSocket (``websockets.asyncio.client.connect``) within
``connect_timeout_ms``, a refused upgrade as the voxpipe error of its HTTP status. The key
travels in the ``xi-api-key`` header and never reaches a log: websockets logs the handshake's
headers at DEBUG through a logger of ours that masks it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from voxpipe.errors import ProviderError
from voxpipe_elevenlabs._connection import tls_context
from voxpipe_elevenlabs._errors import (
    http_error,
    redact,
    stalled,
    unreachable,
    wrong_content,
)

#: websockets' keepalive pings: a dead connection is found within 20 + 20 s even while
#: nothing is owed (the server waiting for text is not a stall).
PING_INTERVAL_S, PING_TIMEOUT_S = 20.0, 20.0
#: How long a close handshake may take before the connection is simply dropped.
CLOSE_TIMEOUT_S = 2.0
#: The largest message accepted (one audio chunk of base64 PCM is tens of KB).
MAX_MESSAGE_BYTES = 4 << 20
#: Messages held before the socket stops reading (about 100 s of audio). Reading on while
#: playout lags keeps the server's sends flowing, so a close when the user barges in is
#: answered within a round trip instead of waiting behind a full TCP buffer (CLOSE_TIMEOUT_S).
MAX_QUEUED_MESSAGES = 1024
KEY_HEADER = "xi-api-key"


class HideKey(logging.Filter):
    """Masks the ``xi-api-key`` header websockets logs at DEBUG, and key-shaped words."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            args = list(record.args)
            if len(args) == 2 and str(args[0]).lower() == KEY_HEADER:
                args[1] = "***"
            record.args = tuple(redact(a, None) if isinstance(a, str) else a for a in args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg, None)
        return True


#: The logger websockets logs our connections through (records propagate as usual).
socket_log = logging.getLogger("voxpipe_elevenlabs.websocket")
socket_log.addFilter(HideKey())


async def open_socket(url: str, key: str, connect_timeout_ms: float, what: str) -> ClientConnection:
    """The connection to ``url``, its handshake done within ``connect_timeout_ms``; a
    ``ProviderError`` (``AuthError``, ``RateLimited``) if it cannot be had."""
    options: dict[str, Any] = {}
    if url.startswith("wss://"):
        options["ssl"] = tls_context()
    try:
        async with asyncio.timeout(connect_timeout_ms / 1000):
            return await connect(
                url,
                additional_headers={KEY_HEADER: key},
                open_timeout=None,  # bounded here, with an error that names the option
                ping_interval=PING_INTERVAL_S,
                ping_timeout=PING_TIMEOUT_S,
                close_timeout=CLOSE_TIMEOUT_S,
                max_size=MAX_MESSAGE_BYTES,
                max_queue=MAX_QUEUED_MESSAGES,
                logger=socket_log,
                **options,
            )
    except TimeoutError:
        raise stalled(
            what,
            f"could not connect within {connect_timeout_ms:g} ms; check base_url, or raise "
            "connect_timeout_ms if the server is this slow to accept",
        ) from None
    except InvalidStatus as exc:
        raise refused(exc, what, key) from None
    except (InvalidHandshake, InvalidURI, OSError) as exc:
        raise unreachable(what, exc, key) from None


def refused(exc: InvalidStatus, what: str, key: str) -> ProviderError:
    """The error for an upgrade answered with an HTTP response instead of a WebSocket."""
    response = exc.response
    body = bytes(response.body or b"")
    status = response.status_code
    # The first value of each header (a repeated one would make Headers.get raise).
    headers = {name.lower(): value for name, value in reversed(list(response.headers.raw_items()))}
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if 200 <= status < 300:  # an HTML page, a JSON document: not an ElevenLabs socket
        problem = f"the server answered the WebSocket upgrade with HTTP {status} {kind}"
        return wrong_content(what, problem.rstrip(), body, key)
    return http_error(status, headers, body, what, key)
