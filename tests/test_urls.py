"""voxpipe.urls: credentials never stay in a provider URL, and are only shown masked."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from voxpipe.urls import checked_url, without_credentials


class Options(BaseModel):
    base_url: str

    @field_validator("base_url", mode="wrap")
    @classmethod
    def _url(cls, value: Any, handler: Any) -> str:
        return checked_url(cls, handler(value), ("http", "https"), "http://x/v1", env_var="K")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://me:sk-123@api.example.com/v1", "https://***@api.example.com/v1"),
        (
            "https://api.example.com/v1?api-key=sk-123&x=1",
            "https://api.example.com/v1?api-key=***&x=1",
        ),
        ("http://h/v1?Token=abc", "http://h/v1?Token=***"),
        ("http://localhost:8000/v1?model=a", "http://localhost:8000/v1?model=a"),
    ],
)
def test_credentials_are_masked_and_nothing_else(url: str, shown: str) -> None:
    assert without_credentials(url) == shown


def test_a_url_with_credentials_is_refused_shown_masked_naming_the_variable() -> None:
    with pytest.raises(ValidationError) as info:
        Options(base_url="https://me:sk-secret@api.example.com/v1")
    message = str(info.value)
    assert "must not carry credentials" in message and "K environment variable" in message
    assert "sk-secret" not in message and "https://***@api.example.com/v1" in message


@pytest.mark.parametrize("url", ["ftp://h/v1", "api.example.com/v1", "me:sk-secret@host/v1"])
def test_a_url_of_another_scheme_is_refused_without_showing_secrets(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        Options(base_url=url)
    message = str(info.value)
    assert "must be an http:// or https:// URL, e.g. http://x/v1" in message
    assert "sk-secret" not in message


def test_a_plain_url_passes() -> None:
    assert Options(base_url="http://localhost:8000/v1").base_url == "http://localhost:8000/v1"
