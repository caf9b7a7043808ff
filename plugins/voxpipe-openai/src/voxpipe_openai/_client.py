"""The SDK client every backend holds: key from the environment, SDK retries off, and the
three timeouts that bound every request (connect, first output, idle between chunks)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx2
import openai
from pydantic import BaseModel, ConfigDict, Field, field_validator

from voxpipe.errors import AuthError, ProviderError
from voxpipe_openai._errors import KEY_ENV_VAR, PROVIDER, redact

T = TypeVar("T")

#: The longest any of the three timeouts may be set to (5 minutes).
MAX_TIMEOUT_MS = 300_000.0


def timeout_ms(default: float, description: str) -> Any:
    """A timeout option in ms: above 0, at most ``MAX_TIMEOUT_MS``."""
    return Field(default, gt=0, le=MAX_TIMEOUT_MS, description=f"{description}, ms")


class ConnectionOptions(BaseModel):
    """Where requests go; shared by every OpenAI backend's options."""

    model_config = ConfigDict(extra="forbid")

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

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, e.g. http://localhost:8000/v1")
        return value


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


def make_client(options: ConnectionOptions) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` for ``options``; voxpipe's budgets decide on retries, not the SDK."""
    key = api_key()
    try:
        return openai.AsyncOpenAI(
            api_key=key,
            organization=options.organization,
            base_url=options.base_url,
            max_retries=0,
            timeout=http_timeout(options),
        )
    except openai.OpenAIError as exc:
        raise ProviderError(
            f"{PROVIDER}: cannot create the client: {redact(str(exc), key)}", provider=PROVIDER
        ) from None


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
    """Holds the client; closes it on ``aclose()`` or at the end of ``async with``."""

    def __init__(self, options: ConnectionOptions) -> None:
        self._client = make_client(options)
        self._connection = options

    @property
    def _key(self) -> str:
        return self._client.api_key

    def _deadline(self, what: str, first: str) -> Deadline:
        """The limits of a request starting now."""
        return Deadline(self._connection, what, first)

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
