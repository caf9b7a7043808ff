"""What the kit and a plugin's mocked transport share."""

from __future__ import annotations

import asyncio
import enum


class Failure(enum.Enum):
    """Provider failures a mocked transport must be able to produce."""

    AUTH = "auth"  # HTTP 401 / the provider's "bad key" answer
    RATE_LIMIT = "rate_limit"  # HTTP 429 with retry-after: RETRY_AFTER_S
    SERVER = "server"  # HTTP 5xx
    MALFORMED = "malformed"  # a payload that does not parse as the provider's format

    #: Seconds the RATE_LIMIT answer asks to wait (its ``retry-after`` header).
    RETRY_AFTER_S = enum.nonmember(7)


class ServerControl:
    """Handles a mocked provider uses so the kit can watch the stream from the outside.

    The mock sends the first part of its response at once, then ``await control.hold()``
    before sending the rest (so the kit can see that output arrives before the response is
    complete), and calls ``control.mark_closed()`` when the client closes or abandons the
    response (its fake body's ``aclose``, or the socket's close). Where the kit gates the
    input instead (an ASR's audio, a streaming TTS's text) the mock need not hold: the kit
    sets ``release`` itself, and for an ASR it also means "stop the audio".
    """

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.closed = asyncio.Event()

    async def hold(self) -> None:
        """Wait until the kit lets the rest of the response through."""
        await self.release.wait()

    def mark_closed(self) -> None:
        self.closed.set()
