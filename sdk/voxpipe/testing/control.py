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
    complete). Where the kit gates the input instead (an ASR's audio, a streaming TTS's
    text) the mock need not hold: the kit sets ``release`` itself, and for an ASR it also
    means "stop the audio".

    The mock calls ``control.mark_opened()`` when the client opens a provider stream (an
    HTTP response, a gRPC call, a websocket) and ``control.mark_closed()`` when the client
    closes it (its fake body's ``aclose``, the call's or the socket's close), once per
    stream. Right after each stream of the backend ends (finished, ``aclose()``d, its
    consumer cancelled), before the event loop runs again, the kit asserts that no stream
    is left open (``open_streams``). A stream left to asyncio's finalizer for abandoned
    async generators, or to the garbage collector, is closed later, on the loop, so it is
    still open then: the backend itself must close what it opened. A mock that never calls
    ``mark_opened`` is checked only for one ``mark_closed`` when a stream is stopped early.
    """

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.closed = asyncio.Event()
        #: Provider streams the mock saw opened, and how many of them are not closed yet.
        self.opened = 0
        self.open_streams = 0

    async def hold(self) -> None:
        """Wait until the kit lets the rest of the response through."""
        await self.release.wait()

    def mark_opened(self) -> None:
        """The client opened a provider stream."""
        self.opened += 1
        self.open_streams += 1

    def mark_closed(self) -> None:
        """The client closed a provider stream."""
        self.open_streams = max(self.open_streams - 1, 0)  # 0: a mock that counts no opens
        self.closed.set()
