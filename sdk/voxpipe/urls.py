"""Provider URLs in config (``base_url``): credentials never belong in them, and a URL that
may hold some is only ever shown masked. For plugins' option models::

    @field_validator("base_url", mode="wrap")
    @classmethod
    def _url(cls, value: Any, handler: Any) -> str:
        return checked_url(cls, handler(value), ("http", "https"), "http://localhost:8000/v1",
                           env_var="ACME_API_KEY")
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["CREDENTIAL_PARAMETERS", "checked_url", "refuse", "without_credentials"]

#: Query parameters that carry a credential (compared in lower case, "-" read as "_").
CREDENTIAL_PARAMETERS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "xi_api_key",
        "token",
        "access_token",
        "auth_token",
        "password",
        "secret",
    }
)


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


def checked_url(
    model: type[BaseModel], url: str, schemes: Sequence[str], example: str, *, env_var: str
) -> str:
    """``url`` when it is a URL of one of ``schemes`` with a host and no credentials; else a
    config error of ``model`` that shows it masked and names the fix (``env_var`` is where
    the key goes instead)."""
    shown = without_credentials(url)
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        if "@" in url and shown == url:  # not masked (no scheme?): it may hold credentials
            shown = "(not shown: it may hold credentials)"
        named = " or ".join(f"{scheme}://" for scheme in schemes)
        refuse(model, "url_scheme", f"must be an {named} URL, e.g. {example}", shown)
    if shown != url:
        refuse(
            model,
            "credentials_in_url",
            "must not carry credentials (user:password@ or a key/token query parameter): "
            f"remove them and set the key in the {env_var} environment variable",
            shown,
        )
    return url


def _is_credential(piece: str) -> bool:
    """Whether a query string's ``name=value`` piece names a credential."""
    name = unquote_plus(piece.split("=", 1)[0]).strip().lower().replace("-", "_")
    return name in CREDENTIAL_PARAMETERS


def refuse(model: type[BaseModel], kind: str, message: str, shown: str) -> None:
    """Fail ``model``'s validation with ``message`` (a ``kind`` of error), the config error
    showing ``shown`` as the value given: a ValidationError of its own, since a ValueError
    would show the value as it was (and with it any credentials)."""
    detail = InitErrorDetails(type=PydanticCustomError(kind, message), loc=(), input=shown)
    raise ValidationError.from_exception_data(model.__name__, [detail])
