"""The REST backends' HTTP client (httpx): one request's time limits (connecting, the first
byte, the pauses between chunks), error answers and transport failures as voxpipe errors,
and the response closed however the request ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self, TypeVar

import httpx

from voxpipe.errors import ProviderError
from voxpipe_deepgram._connection import (
    ConnectionOptions,
    api_key,
    endpoint,
    timeout_ms,
    tls_context,
)
from voxpipe_deepgram._errors import http_error, transport

T = TypeVar("T")
#: How much of a refused answer's body is read to show in its error.
HEAD_BYTES = 2_048


class HTTPOptions(ConnectionOptions):
    first_byte_timeout_ms: float = timeout_ms(
        10_000, "longest wait from the request (connecting and the upload included) to the answer"
    )
    idle_timeout_ms: float = timeout_ms(5_000, "longest wait between two chunks of the answer")


class Deadline:
    """One request's limits, started with it: the answer within ``first_byte_timeout_ms``,
    then each chunk within ``idle_timeout_ms`` of asking for it (time the consumer spends
    between chunks does not count). Running out is a retryable ``ProviderError`` naming what
    stalled and the option to raise; the awaited step is cancelled, which releases its
    connection."""

    def __init__(self, options: HTTPOptions, what: str) -> None:
        self._options, self._what = options, what
        self._loop = asyncio.get_running_loop()
        self._first_at = self._loop.time() + options.first_byte_timeout_ms / 1000
        self._flowing = False

    async def wait(self, step: Awaitable[T]) -> T:
        """``await step`` within the limit that applies now; httpx's own errors mapped."""
        options = self._options
        idle_s = options.idle_timeout_ms / 1000
        timeout = asyncio.timeout_at(
            self._loop.time() + idle_s if self._flowing else self._first_at
        )
        try:
            async with timeout:
                return await step
        except TimeoutError:
            if not timeout.expired():
                raise
            raise self._stalled() from None
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            raise transport(
                self._what,
                f"could not connect within {options.connect_timeout_ms:g} ms; check base_url, "
                "or raise connect_timeout_ms if the server is this slow to accept",
            ) from None
        except httpx.WriteTimeout:
            raise transport(
                self._what,
                f"sending the request stalled for {options.idle_timeout_ms:g} ms; raise "
                "idle_timeout_ms if the network is this slow",
            ) from None
        except httpx.TimeoutException:
            raise self._stalled() from None
        except httpx.TransportError as exc:
            raise transport(self._what, f"the connection failed ({type(exc).__name__})") from None

    def answered(self) -> None:
        """The answer has begun: from its next chunk on, the idle limit applies."""
        self._flowing = True

    def _stalled(self) -> Exception:
        options = self._options
        if self._flowing:
            return transport(
                self._what,
                f"the answer stalled: nothing for {options.idle_timeout_ms:g} ms after the last "
                "chunk; raise idle_timeout_ms if the server pauses this long",
            )
        return transport(
            self._what,
            f"no answer within {options.first_byte_timeout_ms:g} ms of the request; raise "
            "first_byte_timeout_ms if the server is this slow",
        )


class HTTPBackend:
    """Holds an ``httpx.AsyncClient`` for its backend's requests (the process's TLS context,
    the key in the ``Authorization`` header); ``aclose()`` closes it."""

    def __init__(self, options: HTTPOptions) -> None:
        self._key = api_key()
        self._options = options
        connect = options.connect_timeout_ms / 1000
        read = max(options.first_byte_timeout_ms, options.idle_timeout_ms) / 1000
        self._http = httpx.AsyncClient(
            verify=tls_context(),
            # Backstops only: Deadline bounds every wait for the answer sooner.
            timeout=httpx.Timeout(
                connect=connect, read=read, write=options.idle_timeout_ms / 1000, pool=connect
            ),
            headers={"Authorization": f"Token {self._key}"},
        )

    @asynccontextmanager
    async def _post(
        self,
        what: str,
        path: str,
        query: Mapping[str, object],
        content: bytes,
        content_type: str,
    ) -> AsyncIterator[tuple[httpx.Response, Deadline]]:
        """POST ``content`` to ``path``; the answer's headers and the request's deadline,
        once a success status has come. An error status raises its voxpipe error (with
        Deepgram's message); the response is closed however the block ends."""
        deadline = Deadline(self._options, what)
        url = endpoint(self._options.base_url, path, query, websocket=False)
        request = self._http.build_request(
            "POST", url, content=content, headers={"Content-Type": content_type}
        )
        response = await deadline.wait(self._http.send(request, stream=True))
        try:
            deadline.answered()
            if response.status_code >= 300:
                head = await read_head(response, deadline)
                raise http_error(what, response.status_code, response.headers, head, self._key)
            yield response, deadline
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def read_head(response: httpx.Response, deadline: Deadline, limit: int = HEAD_BYTES) -> bytes:
    """Up to ``limit`` first bytes of a body that is about to be refused; reading stops
    early, keeping what came, if the body ends, stalls or breaks."""
    head = b""
    chunks = response.aiter_bytes()
    try:
        while len(head) < limit:
            head += await deadline.wait(anext(chunks))
    except (StopAsyncIteration, ProviderError, httpx.HTTPError, httpx.StreamError):
        pass  # the end, a stall, a cut: what came is what is shown
    finally:
        await close_iterator(chunks)
    return head[:limit]


async def close_iterator(chunks: AsyncIterator[bytes]) -> None:
    """Close a body iterator at once (not later, through the garbage collector)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
