"""The SDK client every backend holds: key from the environment, SDK retries off, the three
timeouts that bound every request (connect, first output, idle between chunks), and the HTTP
connection pool the backends of one event loop share (with one TLS context per process)."""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx2
import openai
from pydantic import BaseModel, ConfigDict, Field, field_validator

from voxpipe.errors import AuthError, ConfigError, ProviderError
from voxpipe.urls import checked_url, without_credentials
from voxpipe_openai._errors import KEY_ENV_VAR, PROVIDER, redact

T = TypeVar("T")

#: The longest any of the three timeouts may be set to (5 minutes).
MAX_TIMEOUT_MS = 300_000.0


def timeout_ms(default: float, description: str) -> Any:
    """A timeout option in ms: above 0, at most ``MAX_TIMEOUT_MS``."""
    return Field(default, gt=0, le=MAX_TIMEOUT_MS, description=f"{description}, ms")


class ConnectionOptions(BaseModel):
    """Where requests go; shared by every OpenAI backend's options. Every number is bounded
    (infinite and NaN ones are refused)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    base_url: str | None = Field(
        None,
        description="an OpenAI-compatible server (vLLM, llama.cpp, Ollama...), "
        "e.g. http://localhost:11434/v1; default: the SDK's (OPENAI_BASE_URL or api.openai.com)",
    )
    organization: str | None = Field(None, description="OpenAI organization id")
    connect_timeout_ms: float = timeout_ms(3_000, "longest wait to connect to the server")
    first_byte_timeout_ms: float = timeout_ms(
        10_000, "longest wait from the request (connecting included) to the first output"
    )
    idle_timeout_ms: float = timeout_ms(5_000, "longest wait between two chunks of a stream")

    @field_validator("base_url", mode="wrap")
    @classmethod
    def _http_url(cls, value: Any, handler: Any) -> str | None:
        url: str | None = handler(value)
        if url is None:
            return None
        return checked_url(
            cls, url, ("http", "https"), "http://localhost:8000/v1", env_var=KEY_ENV_VAR
        )


def api_key() -> str:
    """The key from ``OPENAI_API_KEY``; ``AuthError`` naming the variable when it is unset."""
    key = os.environ.get(KEY_ENV_VAR, "").strip()
    if not key:
        raise AuthError(
            f"{PROVIDER}: no API key. Set the {KEY_ENV_VAR} environment variable (keys are "
            "read from the environment only; a local server that ignores keys accepts any "
            "non-empty value).",
            provider=PROVIDER,
            env_var=KEY_ENV_VAR,
        )
    return key


def http_timeout(options: ConnectionOptions) -> httpx2.Timeout:
    """The HTTP client's own limits: connecting (and waiting for a pooled connection) within
    ``connect_timeout_ms``, each write within ``idle_timeout_ms``. Reads get the larger of the
    other two, a backstop only: ``Deadline`` bounds every wait for a response sooner."""
    connect = options.connect_timeout_ms / 1000
    idle = options.idle_timeout_ms / 1000
    read = max(options.first_byte_timeout_ms / 1000, idle)
    return httpx2.Timeout(connect=connect, read=read, write=idle, pool=connect)


def make_client(
    options: ConnectionOptions, http: httpx2.AsyncClient, key: str
) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` for ``options`` and ``key`` over the connection pool ``http``;
    voxpipe's budgets decide on retries, not the SDK. Bodies are asked for uncompressed: an
    event stream or PCM gains nothing from compression, and the checks read the bytes as they
    were sent."""
    try:
        return openai.AsyncOpenAI(
            api_key=key,
            organization=options.organization,
            base_url=options.base_url,
            max_retries=0,
            timeout=http_timeout(options),
            http_client=http,
            default_headers={"Accept-Encoding": "identity"},
        )
    except openai.OpenAIError as exc:
        raise ProviderError(
            f"{PROVIDER}: cannot create the client: {redact(str(exc), key)}", provider=PROVIDER
        ) from None


def _refuse_credentials_in_environment(options: ConnectionOptions) -> None:
    """``OPENAI_BASE_URL`` (the SDK's default for ``base_url``) carries no credentials either."""
    url = os.environ.get("OPENAI_BASE_URL")
    if options.base_url is None and url and (shown := without_credentials(url)) != url:
        raise ConfigError(
            f"OPENAI_BASE_URL ({shown}) must not carry credentials (user:password@ or a "
            f"key/token query parameter): remove them and set the key in {KEY_ENV_VAR}."
        )


def tls_context() -> ssl.SSLContext:
    """The TLS context every connection of the process uses: made once (loading the CA
    certificates takes tens of ms, blocking whatever loop is running), again only if
    ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` change. Contexts are safe to share across threads."""
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.cache
def _tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx2.create_ssl_context()  # reads SSL_CERT_FILE / SSL_CERT_DIR, as httpx2 does


@dataclass(eq=False)
class _Pool:
    """The connection pool of one event loop and how many backends hold it."""

    loop: asyncio.AbstractEventLoop
    http: httpx2.AsyncClient
    users: int = 0


#: The shared pool of each running event loop (by id; the pool keeps its loop alive, so an
#: id is not reused while its pool is here). A pool leaves with its last backend.
_pools: dict[int, _Pool] = {}


def _new_http() -> httpx2.AsyncClient:
    """A connection pool with the SDK's own defaults and the shared TLS context. Timeouts,
    base URL and headers come with each request from its ``AsyncOpenAI``, so one pool serves
    backends of any options."""
    return openai.DefaultAsyncHttpxClient(verify=tls_context())


def _acquire_pool() -> _Pool | None:
    """The running loop's pool, one more backend holding it; None outside a running loop
    (connections belong to the loop that opens them: such a backend gets a pool of its own)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    pool = _pools.get(id(loop))
    if pool is None or pool.loop is not loop or pool.http.is_closed:
        pool = _pools[id(loop)] = _Pool(loop, _new_http())
    pool.users += 1
    return pool


async def _release_pool(pool: _Pool) -> None:
    """One backend fewer holds ``pool``; the last one closes it."""
    pool.users -= 1
    if pool.users > 0:
        return
    if _pools.get(id(pool.loop)) is pool:
        del _pools[id(pool.loop)]
    await pool.http.aclose()


class Deadline:
    """The time limits of one request, started when it is: its first output (``first``, e.g.
    "first token") within ``first_byte_timeout_ms`` of the start, and once that has come each
    later chunk within ``idle_timeout_ms`` of asking for it (time the consumer spends between
    chunks does not count). Running out is a retryable ``ProviderError`` naming what stalled
    and the option to raise; the awaited step is cancelled, which releases its connection."""

    def __init__(self, options: ConnectionOptions, what: str, first: str) -> None:
        self._options, self._what, self._first = options, what, first
        self._loop = asyncio.get_running_loop()
        self._first_at = self._loop.time() + options.first_byte_timeout_ms / 1000
        self._flowing = False

    def output_came(self) -> None:
        """The first output has arrived: from now on the idle timeout applies."""
        self._flowing = True

    async def wait(self, step: Awaitable[T]) -> T:
        """``await step`` within the limit that applies now."""
        idle_s = self._options.idle_timeout_ms / 1000
        when = self._loop.time() + idle_s if self._flowing else self._first_at
        timeout = asyncio.timeout_at(when)
        try:
            async with timeout:
                return await step
        except TimeoutError:
            if not timeout.expired():
                raise
            raise self._stalled() from None
        except (openai.APITimeoutError, httpx2.TimeoutException) as exc:  # the HTTP client's
            cause = exc.__cause__ if isinstance(exc, openai.APITimeoutError) else exc
            if isinstance(cause, httpx2.ConnectTimeout | httpx2.PoolTimeout):
                raise self._error(
                    f"could not connect within {self._options.connect_timeout_ms:g} ms; check "
                    "base_url, or raise connect_timeout_ms if the server is this slow to accept"
                ) from None
            if isinstance(cause, httpx2.WriteTimeout):
                raise self._error(
                    f"sending the request stalled for {self._options.idle_timeout_ms:g} ms; "
                    "raise idle_timeout_ms if the network is this slow"
                ) from None
            raise self._stalled() from None

    def _stalled(self) -> ProviderError:
        options = self._options
        if self._flowing:
            return self._error(
                f"the stream stalled: nothing for {options.idle_timeout_ms:g} ms after the "
                "last chunk; raise idle_timeout_ms if the server pauses this long"
            )
        return self._error(
            f"no {self._first} within {options.first_byte_timeout_ms:g} ms of the request; "
            "raise first_byte_timeout_ms if the server is this slow"
        )

    def _error(self, reason: str) -> ProviderError:
        return ProviderError(
            f"{PROVIDER} {self._what}: {reason}", provider=PROVIDER, retryable=True
        )


class ClientBackend:
    """Holds an ``AsyncOpenAI`` client over its loop's shared connection pool. ``aclose()``
    (or the end of ``async with``) lets go of the pool; the last backend of the loop to do so
    closes it, so closing one backend never breaks another's requests. Building one costs
    well under a millisecond once the process's TLS context exists."""

    def __init__(self, options: ConnectionOptions) -> None:
        key = api_key()  # no key: fail before taking a share of the pool
        _refuse_credentials_in_environment(options)
        self._pool = _acquire_pool()
        self._http = self._pool.http if self._pool is not None else _new_http()
        try:
            self._client = make_client(options, self._http, key)
        except BaseException:
            if self._pool is not None:
                self._pool.users -= 1  # nothing used it: the next backend of the loop will
            raise
        self._closed = False
        self._connection = options

    @property
    def _key(self) -> str:
        return self._client.api_key

    def _deadline(self, what: str, first: str) -> Deadline:
        """The limits of a request starting now."""
        return Deadline(self._connection, what, first)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            await _release_pool(self._pool)
        else:
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
