"""What the kit and a plugin's mocked transport share."""

from __future__ import annotations

import asyncio
import enum


class Failure(enum.Enum):
    """Provider failures a mocked transport must be able to produce (a backend lists those
    it can in ``failures``). Each must end the stream in a ``ProviderError`` naming the
    provider; the kit checks the subclass and ``retryable`` the budget policies rely on.

    ``TRUNCATED``: the response starts as it should and ends early, without its end: an LLM
    stream with some text but no finish reason or end marker (``[DONE]``), an ASR stream with
    partial transcripts but no final one, a TTS response with no audio at all (audio that
    ends early cannot be told from a shorter phrase). Retryable: the stream was cut.

    ``WRONG_CONTENT_TYPE``: a success status whose body is not the format asked for, such as
    an HTML page (a proxy, a captive portal, a wrong base URL), a JSON document where a
    stream or audio was asked for, or bytes that are no event stream. Not retryable.
    """

    AUTH = "auth"  # HTTP 401 / the provider's "bad key" answer
    RATE_LIMIT = "rate_limit"  # HTTP 429 with retry-after: RETRY_AFTER_S
    SERVER = "server"  # HTTP 5xx
    MALFORMED = "malformed"  # a payload that does not parse as the provider's format
    TRUNCATED = "truncated"  # a stream that ends without its end (see above)
    WRONG_CONTENT_TYPE = "wrong_content_type"  # a 200 that is HTML, JSON, not the format

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
