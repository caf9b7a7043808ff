"""ElevenLabs failures as voxpipe errors: HTTP statuses with their ``{"detail": ...}`` bodies,
the stream-input socket's error messages and close codes, malformed payloads. The key never
appears in a message."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from voxpipe.errors import AuthError, ProviderError, RateLimited, retry_after_s

PROVIDER = "elevenlabs"
KEY_ENV_VAR = "ELEVENLABS_API_KEY"

#: Key-shaped words: ElevenLabs keys are ``sk_`` and hex digits.
_KEY_LIKE = re.compile(r"\bsk_[A-Za-z0-9*]{3,}")
_MAX_DETAIL = 300
#: ``detail.status`` (or a socket error's ``error``) values that mean "slow down".
BUSY = frozenset({"too_many_concurrent_requests", "system_busy", "rate_limit_exceeded"})
#: Those that mean the key itself was refused.
BAD_KEY = frozenset({"invalid_api_key", "missing_api_key", "unauthorized", "invalid_authorization"})
#: What to change for the statuses whose fix is an option.
_FIXES = {
    "quota_exceeded": "the account is out of credits for this request: top up or change plan",
    "voice_not_found": "check voice_id (GET /v1/voices lists the voices of the key)",
    "model_not_found": "check model_id (e.g. eleven_flash_v2_5)",
    "invalid_uid": "check voice_id",
    "input_timeout_exceeded": "the text stopped coming for longer than the server waits: "
    "raise inactivity_timeout_s (at most 180) if the LLM pauses this long",
}


def api_key() -> str:
    """The key from ``ELEVENLABS_API_KEY``; an ``AuthError`` naming the variable when unset."""
    key = os.environ.get(KEY_ENV_VAR, "").strip()
    if not key:
        raise AuthError(
            f"{PROVIDER}: no API key. Set the {KEY_ENV_VAR} environment variable (keys are "
            "read from the environment only; a local test server accepts any non-empty value).",
            provider=PROVIDER,
            env_var=KEY_ENV_VAR,
        )
    return key


def redact(text: str, key: str | None) -> str:
    """``text`` without the key or anything shaped like one."""
    if key:
        text = text.replace(key, "***")
    return _KEY_LIKE.sub("sk_***", text)


def short(text: str, limit: int = _MAX_DETAIL) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def snippet(data: bytes, key: str | None, limit: int = 80) -> str:
    """The start of a body, for an error message: redacted, printable, quoted."""
    if not data:
        return "an empty body"
    text = redact(data.decode("utf-8", "replace"), key)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return f"{text[:limit]!r}..." if len(text) > limit else repr(text)


def error_detail(body: bytes) -> tuple[str | None, str]:
    """``(status, message)`` of an error body: ``{"detail": {"status", "message"}}``, a 422's
    ``{"detail": [{"loc", "msg", "type"}, ...]}``, a plain ``{"detail": "..."}`` or any text."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None, body.decode("utf-8", "replace").strip()
    detail = data.get("detail", data) if isinstance(data, dict) else data
    if isinstance(detail, dict):
        status = detail.get("status") or detail.get("code") or detail.get("error")
        message = detail.get("message") or detail.get("msg") or ""
        return (str(status) if status else None), str(message)
    if isinstance(detail, list):
        problems = [_problem(item) for item in detail]
        return None, "; ".join(p for p in problems if p)
    return None, str(detail)


def _problem(item: Any) -> str:
    """One entry of a 422's list: ``body.text: Field required``."""
    if not isinstance(item, dict):
        return str(item)
    loc = item.get("loc")
    where = ".".join(str(part) for part in loc) if isinstance(loc, list) else ""
    message = str(item.get("msg", ""))
    return f"{where}: {message}" if where else message


def http_error(
    status: int, headers: Mapping[str, str], body: bytes, what: str, key: str | None
) -> ProviderError:
    """The voxpipe error for an HTTP answer ``status`` (a request, or a refused upgrade)."""
    code, message = error_detail(body)
    message = short(redact(message, key)) or f"HTTP {status}"
    said = f"HTTP {status}" + (f" {code}" if code else "") + f": {message}"
    if code in BAD_KEY or (status == 401 and code not in _FIXES):
        return AuthError(
            f"{PROVIDER} rejected the API key ({what}: {said}). Check that {KEY_ENV_VAR} holds "
            "a valid key for this server.",
            provider=PROVIDER,
            env_var=KEY_ENV_VAR,
        )
    if status == 429 or code in BUSY:
        wait = retry_after_s(headers)
        hint = f"; retry after {wait:g} s" if wait is not None else ""
        return RateLimited(
            f"{PROVIDER} {what}: rate limited ({said}){hint}", provider=PROVIDER, retry_after=wait
        )
    fix = _FIXES.get(code or "")
    if fix is None and status == 422:
        fix = "an option has a value the API refuses"
    return ProviderError(
        f"{PROVIDER} {what}: {said}" + (f" ({fix})" if fix else ""),
        provider=PROVIDER,
        retryable=status >= 500 or status in (408, 409),
    )


def socket_error(message: Mapping[str, Any], what: str, key: str | None) -> ProviderError:
    """The voxpipe error for a stream-input error message (``{"message", "error", "code"}``)."""
    code = str(message.get("error") or "") or None
    text = short(redact(str(message.get("message") or ""), key)) or "no message"
    close = message.get("code")
    said = (f"{code}: " if code else "") + text + (f" (code {close})" if close else "")
    if code in BAD_KEY:
        return AuthError(
            f"{PROVIDER} rejected the API key ({what}: {said}). Check that {KEY_ENV_VAR} holds "
            "a valid key for this server.",
            provider=PROVIDER,
            env_var=KEY_ENV_VAR,
        )
    if code in BUSY:
        return RateLimited(f"{PROVIDER} {what}: rate limited ({said})", provider=PROVIDER)
    fix = _FIXES.get(code or "")
    return ProviderError(
        f"{PROVIDER} {what}: the server ended the stream with an error: {said}"
        + (f" ({fix})" if fix else ""),
        provider=PROVIDER,
        retryable=code in ("internal_error", "internal_server_error", "service_unavailable"),
    )


#: Close codes after which the same request may well succeed (RFC 6455 and IANA registry).
_TRANSIENT_CLOSES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})


def closed_early(code: int | None, reason: str, what: str, key: str | None) -> ProviderError:
    """The socket closed before the final message: retryable when it was cut (a normal
    close, a dropped connection, a server error), not when the server refused (1008...)."""
    if code is None:
        how = "the connection was cut"
    else:
        said = f": {short(redact(reason, key))}" if reason else ""
        how = f"the server closed it ({code}{said})"
    return ProviderError(
        f"{PROVIDER} {what}: the stream ended before its final message: {how}",
        provider=PROVIDER,
        retryable=code is None or code == 1000 or code in _TRANSIENT_CLOSES,
    )


def truncated(what: str, detail: str) -> ProviderError:
    """A stream that ended without its end: retryable (the stream was cut, not refused)."""
    return ProviderError(f"{PROVIDER} {what}: {detail}", provider=PROVIDER, retryable=True)


def malformed(what: str, detail: str) -> ProviderError:
    """A payload that is not ElevenLabs' format (never retried: it would repeat)."""
    return ProviderError(
        f"{PROVIDER} {what}: malformed response from the provider ({detail})", provider=PROVIDER
    )


def wrong_content(what: str, problem: str, head: bytes, key: str | None) -> ProviderError:
    """A success whose body is not what was asked for (an HTML page, JSON): not retried."""
    return ProviderError(
        f"{PROVIDER} {what}: {problem}: {snippet(head, key)} (is base_url an ElevenLabs API?)",
        provider=PROVIDER,
    )


def unreachable(what: str, exc: BaseException, key: str | None) -> ProviderError:
    """A connection that failed below HTTP (refused, reset, DNS): retryable."""
    detail = short(redact(str(exc), key), 120)
    return ProviderError(
        f"{PROVIDER} {what}: connection failed ({type(exc).__name__}"
        + (f": {detail})" if detail else ")"),
        provider=PROVIDER,
        retryable=True,
    )


def stalled(what: str, reason: str) -> ProviderError:
    """A wait that ran out (``reason`` names the option to raise): retryable."""
    return ProviderError(f"{PROVIDER} {what}: {reason}", provider=PROVIDER, retryable=True)
