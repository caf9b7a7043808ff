"""What every backend shares: where requests go (``base_url``, checked for credentials), the
key from the environment, the timeout options, and the process's one TLS context."""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from voxpipe.errors import AuthError
from voxpipe.urls import checked_url
from voxpipe_deepgram._errors import KEY_ENV_VAR, PROVIDER

DEFAULT_BASE_URL = "https://api.deepgram.com"
#: The longest any timeout may be set to (5 minutes).
MAX_TIMEOUT_MS = 300_000.0


def timeout_ms(default: float, description: str, maximum: float = MAX_TIMEOUT_MS) -> Any:
    """A timeout option in ms: above 0, at most ``maximum``."""
    return Field(default, gt=0, le=maximum, description=f"{description}, ms")


class ConnectionOptions(BaseModel):
    """Where requests go, shared by every Deepgram backend's options. Every number is bounded
    (infinite and NaN ones are refused)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    base_url: str = Field(
        DEFAULT_BASE_URL,
        description="the server's root: Deepgram's, or a self-hosted one (http(s):// or "
        "ws(s)://, e.g. http://localhost:8080); /v1/listen and /v1/speak are appended",
    )
    connect_timeout_ms: float = timeout_ms(
        3_000, "longest wait to connect (DNS, TCP, TLS, the WebSocket handshake)"
    )

    @field_validator("base_url", mode="wrap")
    @classmethod
    def _server_url(cls, value: Any, handler: Any) -> str:
        url = checked_url(
            cls,
            handler(value),
            ("http", "https", "ws", "wss"),
            "http://localhost:8080 (the server's root)",
            env_var=KEY_ENV_VAR,
        )
        return url.rstrip("/")


def endpoint(base_url: str, path: str, query: Mapping[str, object], *, websocket: bool) -> str:
    """``base_url`` + ``path`` + ``query`` in the scheme of the protocol: ws(s) for a
    WebSocket, http(s) otherwise, whichever ``base_url`` was given in. Booleans are sent as
    Deepgram spells them (``true``/``false``)."""
    parts = urlsplit(base_url)
    secure = parts.scheme in ("https", "wss")
    scheme = ("wss" if secure else "ws") if websocket else ("https" if secure else "http")
    values = {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}
    return urlunsplit((scheme, parts.netloc, parts.path + path, urlencode(values), ""))


def api_key() -> str:
    """The key from ``DEEPGRAM_API_KEY``; ``AuthError`` naming the variable when unset."""
    key = os.environ.get(KEY_ENV_VAR, "").strip()
    if not key:
        raise AuthError(
            f"{PROVIDER}: no API key. Set the {KEY_ENV_VAR} environment variable (keys are "
            "read from the environment only; a self-hosted server that ignores keys accepts "
            "any non-empty value).",
            provider=PROVIDER,
            env_var=KEY_ENV_VAR,
        )
    return key


def tls_context() -> ssl.SSLContext:
    """The TLS context of every connection of the process (HTTP and WebSocket alike): made
    once (loading the CA certificates takes tens of ms), again only if ``SSL_CERT_FILE`` or
    ``SSL_CERT_DIR`` change."""
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.cache
def _tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # reads SSL_CERT_FILE / SSL_CERT_DIR, as httpx does
