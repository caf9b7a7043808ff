"""Credentials stay out of URLs and out of error messages: a ``base_url`` with user-info or a
key in its query string is refused (the HTTP library logs URLs), naming the variable to set,
and the refusal never shows the secret."""

from __future__ import annotations

import asyncio

import pytest
from openai_wire import KEY

import voxpipe_openai.plugin
from voxpipe import Registry, load_config
from voxpipe.errors import ConfigError
from voxpipe.urls import without_credentials
from voxpipe_openai import OpenAILLM, OpenAILLMOptions

SECRET = "hunter2-0123456789abcdef"


def registry() -> Registry:
    registry = Registry(entry_points=False)
    registry.register(voxpipe_openai.plugin, name="openai")
    return registry


def config_error(kind: str, **options: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config({kind: {"backend": "openai", **options}}, registry=registry())
    return str(info.value)


@pytest.mark.parametrize("kind", ["llm", "tts", "asr"])
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://user:{SECRET}@llm.example.com/v1", "https://***@llm.example.com/v1"),
        (f"https://{SECRET}@llm.example.com/v1", "https://***@llm.example.com/v1"),
        (f"https://llm.example.com/v1?key={SECRET}", "https://llm.example.com/v1?key=***"),
        (
            f"https://llm.example.com/v1?api-version=2024-10-21&api-key={SECRET}",
            "https://llm.example.com/v1?api-version=2024-10-21&api-key=***",
        ),
        (f"https://h/v1?API_KEY={SECRET}", "https://h/v1?API_KEY=***"),
        (f"https://h/v1?apiKey={SECRET}", "https://h/v1?apiKey=***"),
        (f"https://h/v1?Token={SECRET}", "https://h/v1?Token=***"),
        (f"https://h/v1?access_token={SECRET}&x=1", "https://h/v1?access_token=***&x=1"),
    ],
)
def test_credentials_in_base_url_are_refused_without_showing_them(
    kind: str, url: str, shown: str
) -> None:
    message = config_error(kind, base_url=url)
    assert f"[{kind}] base_url: must not carry credentials" in message
    assert "set the key in the OPENAI_API_KEY environment variable" in message
    assert SECRET not in message
    # The value the error gives the config's formatting to show (it may show less).
    assert without_credentials(url) == shown


def test_a_url_without_a_scheme_that_may_hold_credentials_is_not_shown() -> None:
    message = config_error("llm", base_url=f"user:{SECRET}@llm.example.com/v1")
    assert "http:// or https://" in message and SECRET not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:11434/v1",
        "https://llm.example.com/openai/v1?api-version=2024-10-21",
        "https://llm.example.com/v1?monkey=1&keyboard=2",  # names that only contain "key"
    ],
)
def test_urls_without_credentials_are_fine(url: str) -> None:
    assert without_credentials(url) == url
    load_config({"llm": {"backend": "openai", "base_url": url}}, registry=registry())


def test_credentials_in_openai_base_url_are_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK's default for base_url: the HTTP library would log it the same.
    monkeypatch.setenv("OPENAI_BASE_URL", f"https://h/v1?api_key={SECRET}")
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL") as info:
        OpenAILLM(OpenAILLMOptions())
    assert SECRET not in str(info.value) and "OPENAI_API_KEY" in str(info.value)
    # A base_url in the config wins over the variable: then the variable is not used.
    backend = OpenAILLM(OpenAILLMOptions(base_url="http://localhost:8000/v1"))
    asyncio.run(backend.aclose())


def test_a_wrongly_typed_value_that_looks_like_a_key_is_not_echoed() -> None:
    # The key put in the wrong place, as a list: the error must not print it. The core's
    # config formatting (sdk/voxpipe/config.py) decides what of a value is shown; this was
    # xfail(strict=True, reason="core: config error echoes the value") until it stopped.
    message = config_error("llm", model=[KEY])
    assert "[llm] model" in message
    assert KEY not in message and KEY[:12] not in message
