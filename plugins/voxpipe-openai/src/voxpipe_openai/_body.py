"""What a response body turned out to be: its content type, its first bytes, and whether an
event stream's end marker went by (a stream without one, and without a finish, was cut)."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing

import httpx2

from voxpipe.errors import ProviderError

#: The content type of a server-sent event stream.
SSE = "text/event-stream"
#: How many of a body's first bytes are kept to show in an error.
HEAD_BYTES = 512
#: Chat Completions' end marker, ``data: [DONE]`` (some servers leave out the space).
_DONE = re.compile(rb"data: ?\[DONE\]")
_DONE_SPAN = len(b"data: [DONE]")
#: How an event stream's first line starts: a field, or a comment (``:``, e.g. a keep-alive).
_SSE_LINE = re.compile(rb"\s*(data|event|id|retry)?:")


def content_type(headers: Mapping[str, str]) -> str:
    """The media type of a response, lower case, without parameters ("" when there is none)."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


def looks_like_sse(head: bytes) -> bool:
    """Whether a body starts as an event stream does (an empty one does not)."""
    return _SSE_LINE.match(head) is not None


async def read_head(
    chunks: AsyncIterator[bytes],
    wait: Callable[[Awaitable[bytes]], Awaitable[bytes]],
    limit: int = HEAD_BYTES,
) -> bytes:
    """Up to ``limit`` first bytes of a body that is about to be refused, each chunk awaited
    with ``wait`` (the request's ``Deadline.wait``). Reading stops early, keeping what came,
    if the body ends, stalls past the deadline or breaks; ``chunks`` is closed."""
    head = b""
    async with aclosing(_generator(chunks)) as body:
        while len(head) < limit:
            try:
                head += await wait(anext(body))
            except (StopAsyncIteration, ProviderError, httpx2.HTTPError, httpx2.StreamError):
                break
    return head[:limit]


async def _generator(chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


class BodyWatch(httpx2.AsyncByteStream):
    """A response's raw byte stream, watched on its way to the SDK's event decoder: keeps the
    first ``HEAD_BYTES``, counts the bytes, and notes whether ``data: [DONE]`` went by. The
    backends ask for uncompressed bodies (``Accept-Encoding: identity``); from a server that
    compresses anyway the marker is not seen and a stream needs its finish reason."""

    def __init__(self, inner: httpx2.AsyncByteStream) -> None:
        self._inner = inner
        self.head = b""
        self.size = 0
        self.done = False
        self._tail = b""

    @classmethod
    def install(cls, response: httpx2.Response) -> BodyWatch:
        """Watch ``response``'s body (before anything has read it)."""
        stream = response.stream
        if not isinstance(stream, httpx2.AsyncByteStream):  # an AsyncClient's never is
            raise TypeError(f"not the body of an async response: {type(stream).__name__}")
        watch = cls(stream)
        response.stream = watch
        return watch

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._inner.__aiter__()
        try:
            async for chunk in chunks:
                self._saw(chunk)
                yield chunk
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()

    async def aclose(self) -> None:
        await self._inner.aclose()

    @property
    def elapsed(self) -> object:
        """What httpx2 reports as the response's ``elapsed`` while it is open."""
        return getattr(self._inner, "elapsed", None)

    def _saw(self, chunk: bytes) -> None:
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self.size += len(chunk)
        if not self.done:
            window = self._tail + chunk
            self.done = _DONE.search(window) is not None
            self._tail = window[-_DONE_SPAN:]
