"""What every backend shares: where requests go (``base_url``, checked for credentials), the
key from the environment, the timeout options, and the process's one TLS context."""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from voxpipe.errors import AuthError
from voxpipe_deepgram._errors import KEY_ENV_VAR, PROVIDER

DEFAULT_BASE_URL = "https://api.deepgram.com"
#: The longest any timeout may be set to (5 minutes).
MAX_TIMEOUT_MS = 300_000.0
_SCHEMES = ("http://", "https://", "ws://", "wss://")
#: Query parameters that carry a credential (compared in lower case, "-" read as "_").
CREDENTIAL_PARAMETERS = frozenset(
    {"key", "api_key", "apikey", "token", "access_token", "auth_token", "password", "secret"}
)


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
        url: str = handler(value)
        shown = without_credentials(url)
        if not url.startswith(_SCHEMES) or not urlsplit(url).hostname:
            if "@" in url:  # credentials in a URL without a scheme are not masked: hide it
                shown = "(not shown: it may hold credentials)"
            _refuse(
                cls,
                "url_scheme",
                "must be an http(s):// or ws(s):// URL of the server's root, e.g. "
                "http://localhost:8080",
                shown,
            )
        if shown != url:
            _refuse(
                cls,
                "credentials_in_url",
                "must not carry credentials (user:password@ or a key/token query parameter): "
                f"remove them and set the key in the {KEY_ENV_VAR} environment variable",
                shown,
            )
        return url.rstrip("/")


def _refuse(model: type[BaseModel], kind: str, message: str, shown: str) -> None:
    """Fail validation with ``message``, the config error showing ``shown`` as the value
    given (a ValidationError of its own: a ValueError would show the value as it was)."""
    detail = InitErrorDetails(type=PydanticCustomError(kind, message), loc=(), input=shown)
    raise ValidationError.from_exception_data(model.__name__, [detail])


def without_credentials(url: str) -> str:
    """``url`` with its user-info and the values of credential query parameters masked
    (``***``); the same string when it carries none."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(
        f"{piece.split('=', 1)[0]}=***" if _is_credential(piece) else piece
        for piece in parts.query.split("&")
    )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _is_credential(piece: str) -> bool:
    name = unquote_plus(piece.split("=", 1)[0]).strip().lower().replace("-", "_")
    return name in CREDENTIAL_PARAMETERS


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
