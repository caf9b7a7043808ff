"""OpenAI SDK exceptions (and malformed payloads) as voxpipe errors, with the key kept out."""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx2
import openai

from voxpipe.errors import AuthError, ProviderError, RateLimited

PROVIDER = "openai"
KEY_ENV_VAR = "OPENAI_API_KEY"

#: Key-shaped words (OpenAI masks keys in its 401 text but shows their ends).
_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{3,}")
#: Error ``type``/``code`` values of a mid-stream error event worth retrying.
_TRANSIENT = {"server_error", "api_error", "overloaded_error", "service_unavailable", "timeout"}
_MAX_DETAIL = 300


def redact(text: str, key: str | None) -> str:
    """``text`` without the API key or anything shaped like one."""
    if key:
        text = text.replace(key, "***")
    return _KEY_LIKE.sub("sk-***", text)


def malformed(what: str, detail: str) -> ProviderError:
    """A payload that does not parse as OpenAI's format (never retried: it would repeat)."""
    return ProviderError(
        f"{PROVIDER} {what}: malformed response from the provider ({detail})",
        provider=PROVIDER,
        retryable=False,
    )


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (number or HTTP date)."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            seconds = float(value) / 1000.0
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = max(when.timestamp() - time.time(), 0.0)  # a date: wall clock, by nature
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _detail(error: openai.APIError) -> str:
    """The provider's own message (from its ``{"error": {...}}`` body when there is one)."""
    body = error.body
    message: object = None
    if isinstance(body, Mapping):
        message = body.get("message")
    elif isinstance(body, str) and body.strip():
        message = body.strip()
    if not isinstance(message, str) or not message:
        message = error.message
    message = " ".join(message.split())
    return message if len(message) <= _MAX_DETAIL else message[: _MAX_DETAIL - 3] + "..."


def to_voxpipe_error(exc: BaseException, what: str, key: str | None) -> ProviderError:
    """Map an exception raised by the SDK (or its transport) while doing ``what``."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = redact(_detail(exc), key)
        if status == 401:
            return AuthError(
                f"{PROVIDER} rejected the API key ({what}: HTTP 401: {detail}). "
                f"Check that {KEY_ENV_VAR} holds a valid key for this server.",
                provider=PROVIDER,
                env_var=KEY_ENV_VAR,
            )
        if status == 429 and exc.code != "insufficient_quota":
            wait = retry_after_s(exc.response.headers)
            hint = f"; retry after {wait:g} s" if wait is not None else ""
            return RateLimited(
                f"{PROVIDER} {what}: rate limited (HTTP 429: {detail}){hint}",
                provider=PROVIDER,
                retry_after=wait,
            )
        retryable = status >= 500 or status in (408, 409)
        return ProviderError(
            f"{PROVIDER} {what}: HTTP {status}: {detail}", provider=PROVIDER, retryable=retryable
        )
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        cause = f" ({type(exc.__cause__).__name__})" if exc.__cause__ is not None else ""
        return ProviderError(
            f"{PROVIDER} {what}: {exc.message.rstrip('.')}{cause}",
            provider=PROVIDER,
            retryable=True,
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return malformed(what, redact(exc.message, key))
    if isinstance(exc, openai.APIError):  # an error event in the middle of a stream
        kind = f"{exc.type or ''} {exc.code or ''}".split()
        return ProviderError(
            f"{PROVIDER} {what}: the stream ended with an error: {redact(_detail(exc), key)}",
            provider=PROVIDER,
            retryable=any(k in _TRANSIENT for k in kind),
        )
    if isinstance(exc, openai.OpenAIError):
        return ProviderError(f"{PROVIDER} {what}: {redact(str(exc), key)}", provider=PROVIDER)
    if isinstance(exc, httpx2.StreamError):  # read after close, consumed twice: a bug, not I/O
        return ProviderError(f"{PROVIDER} {what}: {type(exc).__name__}", provider=PROVIDER)
    if isinstance(exc, httpx2.HTTPError):  # transport errors the SDK does not wrap (raw bodies)
        return ProviderError(
            f"{PROVIDER} {what}: connection failed while reading the response "
            f"({type(exc).__name__})",
            provider=PROVIDER,
            retryable=True,
        )
    return malformed(what, f"{type(exc).__name__}: {redact(str(exc), key)}"[:_MAX_DETAIL])


#: What the SDK raises on a payload it cannot parse (bad JSON, bad UTF-8, wrong shapes).
_PARSE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError)


@contextmanager
def translated(what: str, key: str | None) -> Iterator[None]:
    """Raise SDK, transport and parse errors inside the block as voxpipe errors.

    Wrap calls into the SDK only, never a ``yield``: errors a consumer throws into a
    generator are not the provider's.
    """
    try:
        yield
    except (openai.OpenAIError, httpx2.HTTPError, httpx2.StreamError, *_PARSE_ERRORS) as exc:
        raise to_voxpipe_error(exc, what, key) from None
