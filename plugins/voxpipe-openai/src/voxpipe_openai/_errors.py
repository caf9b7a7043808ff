"""OpenAI SDK exceptions (and malformed payloads) as voxpipe errors, with the key kept out."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx2
import openai

from voxpipe.errors import AuthError, ProviderError, RateLimited, retry_after_s

PROVIDER = "openai"
KEY_ENV_VAR = "OPENAI_API_KEY"

#: Key-shaped words (OpenAI masks keys in its 401 text but shows their ends).
_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{3,}")
#: A bearer token, as a proxy's error page may echo the request's Authorization header.
_BEARER = re.compile(r"\b(bearer\s+)[^\s\"'<>]+", re.IGNORECASE)
#: Error ``type``/``code`` values of a mid-stream error event worth retrying.
_TRANSIENT = {"server_error", "api_error", "overloaded_error", "service_unavailable", "timeout"}
_MAX_DETAIL = 300


def redact(text: str, key: str | None) -> str:
    """``text`` without the API key or anything shaped like one (bearer tokens too)."""
    if key:
        text = text.replace(key, "***")
    return _BEARER.sub(r"\1***", _KEY_LIKE.sub("sk-***", text))


def snippet(data: bytes, key: str | None, limit: int = 80) -> str:
    """The start of a body as it arrived, for an error message: decoded leniently, redacted,
    unprintable characters and runs of whitespace as one space, at most ``limit``
    characters, quoted (``'...'...`` when cut short)."""
    if not data:
        return "an empty body"
    text = redact(data.decode("utf-8", "replace"), key)
    if key:  # the body was cut: the key's first characters may end it
        for n in range(min(len(key), len(text)), 3, -1):
            if text.endswith(key[:n]):
                text = text[:-n] + "***"
                break
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return f"{text[:limit]!r}..." if len(text) > limit else repr(text)


def quoted(text: str, limit: int = 40) -> str:
    """What a stream had said before it was cut, short: ``'Sure, the'...``."""
    text = " ".join(text.split())
    return f"{text[:limit]!r}..." if text else "no text"


def truncated(what: str, detail: str) -> ProviderError:
    """A stream that ended before its end: retryable (the stream was cut, not refused)."""
    return ProviderError(f"{PROVIDER} {what}: {detail}", provider=PROVIDER, retryable=True)


def wrong_content(what: str, problem: str, head: bytes, key: str | None) -> ProviderError:
    """A 200 whose body is not what was asked for (an HTML page, a JSON document, bytes that
    are no event stream), ``problem`` saying how, its first bytes shown: never retried, a new
    request would get the same."""
    return ProviderError(
        f"{PROVIDER} {what}: {problem}: {snippet(head, key)} "
        "(is base_url an OpenAI-compatible API?)",
        provider=PROVIDER,
        retryable=False,
    )


def no_events(size: int) -> str:
    """The problem with a body of ``size`` bytes in which no event was found."""
    return f"the response is not an event stream (no event in its {size} bytes)"


def malformed(what: str, detail: str) -> ProviderError:
    """A payload that does not parse as OpenAI's format (never retried: it would repeat)."""
    return ProviderError(
        f"{PROVIDER} {what}: malformed response from the provider ({detail})",
        provider=PROVIDER,
        retryable=False,
    )


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
