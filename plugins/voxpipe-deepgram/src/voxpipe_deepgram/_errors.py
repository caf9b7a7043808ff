"""Deepgram's error answers as voxpipe errors: HTTP error bodies (REST and a refused WebSocket
handshake alike), WebSocket close frames, and malformed payloads; the key kept out of all."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from voxpipe.errors import AuthError, ProviderError, RateLimited, retry_after_s

PROVIDER = "deepgram"
KEY_ENV_VAR = "DEEPGRAM_API_KEY"

#: An ``Authorization`` value, as a proxy's error page may echo the request's headers.
_CREDENTIAL = re.compile(r"\b((?:token|bearer)\s+)[^\s\"'<>,;]+", re.IGNORECASE)
_MAX_DETAIL = 300
#: What Deepgram's close frames say (their reason), and whether trying again may help.
CLOSE_REASONS: dict[str, tuple[str, bool]] = {
    "DATA-0000": ("Deepgram could not decode the audio (DATA-0000)", False),
    "NET-0000": ("Deepgram's service timed out (NET-0000)", True),
    "NET-0001": ("Deepgram received no audio or KeepAlive within its timeout (NET-0001)", True),
}


def redact(text: str, key: str | None) -> str:
    """``text`` without the API key or anything shaped like an ``Authorization`` value."""
    if key:
        text = text.replace(key, "***")
    return _CREDENTIAL.sub(r"\1***", text)


def snippet(data: bytes, key: str | None, limit: int = 80) -> str:
    """The start of a body for an error message: redacted, whitespace runs as one space,
    quoted, at most ``limit`` characters (``'...'...`` when cut short)."""
    if not data:
        return "an empty body"
    text = redact(data.decode("utf-8", "replace"), key)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return f"{text[:limit]!r}..." if len(text) > limit else repr(text)


def short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def malformed(what: str, detail: str) -> ProviderError:
    """A payload that is not Deepgram's format (never retried: it would repeat)."""
    return ProviderError(
        f"{PROVIDER} {what}: malformed response from the provider ({detail})",
        provider=PROVIDER,
        retryable=False,
    )


def wrong_content(what: str, problem: str, head: bytes, key: str | None) -> ProviderError:
    """A success whose body is not what was asked for (an HTML page, JSON where audio was
    asked for): never retried, the same request would get the same."""
    return ProviderError(
        f"{PROVIDER} {what}: {problem}: {snippet(head, key)} (is base_url a Deepgram API?)",
        provider=PROVIDER,
        retryable=False,
    )


def transport(what: str, reason: str) -> ProviderError:
    """A connection that failed, stalled or was cut: retryable."""
    return ProviderError(f"{PROVIDER} {what}: {reason}", provider=PROVIDER, retryable=True)


def _error_body(body: bytes) -> tuple[str, str, str]:
    """``(message, code, request id)`` of Deepgram's error JSON: ``{"err_code", "err_msg",
    "request_id"}`` (or the newer ``{"category", "message", "request_id"}``); empty strings
    for what it lacks or when it is no such JSON."""
    try:
        data = json.loads(body)
    except ValueError:
        return "", "", ""
    if not isinstance(data, dict):
        return "", "", ""

    def text(*names: str) -> str:
        values = (data.get(name) for name in names)
        return next((v for v in values if isinstance(v, str) and v.strip()), "")

    return text("err_msg", "message"), text("err_code", "category"), text("request_id")


def http_error(
    what: str, status: int, headers: Mapping[str, str], body: bytes, key: str | None
) -> ProviderError:
    """The error for an HTTP ``status`` answer (a REST call, or a WebSocket handshake that
    was refused), with Deepgram's message, error code and request id when it gave them."""
    message, code, request_id = _error_body(body)
    message = message or headers.get("dg-error", "") or (snippet(body, key) if body else "")
    detail = redact(short(message), key) or "no message"
    if code and code not in detail:
        detail += f" ({code})"
    request_id = headers.get("dg-request-id") or request_id
    if request_id:
        detail += f"; request id {request_id}"
    if status == 401:
        return AuthError(
            f"{PROVIDER} rejected the API key ({what}: HTTP 401: {detail}). "
            f"Check that {KEY_ENV_VAR} holds a valid key for this server.",
            provider=PROVIDER,
            env_var=KEY_ENV_VAR,
        )
    if status == 429:
        wait = retry_after_s(headers)
        hint = f"; retry after {wait:g} s" if wait is not None else ""
        return RateLimited(
            f"{PROVIDER} {what}: rate limited (HTTP 429: {detail}){hint}",
            provider=PROVIDER,
            retry_after=wait,
        )
    if status == 404:
        detail += "; check base_url: the server's root (https://api.deepgram.com), without /v1"
    retryable = status >= 500 or status == 408
    return ProviderError(
        f"{PROVIDER} {what}: HTTP {status}: {detail}", provider=PROVIDER, retryable=retryable
    )


def close_error(what: str, code: int | None, reason: str) -> ProviderError:
    """The error for a WebSocket closed by the server (``code`` None: without a close frame,
    the connection was cut). Deepgram's close reasons are named; a cut is retryable."""
    if code is None:
        return transport(what, "the connection was cut (no close frame)")
    known = CLOSE_REASONS.get(reason.strip())
    if known is not None:
        text, retryable = known
        return ProviderError(
            f"{PROVIDER} {what}: {text}; close code {code}", provider=PROVIDER, retryable=retryable
        )
    shown = f": {short(reason)}" if reason.strip() else ""
    retryable = code != 1008  # a policy violation (bad audio, bad parameters) would repeat
    return ProviderError(
        f"{PROVIDER} {what}: the server closed the connection (close code {code}{shown})",
        provider=PROVIDER,
        retryable=retryable,
    )
