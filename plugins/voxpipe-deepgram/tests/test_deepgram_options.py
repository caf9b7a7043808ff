"""Options: every number bounded, ``base_url`` checked (its scheme, and no credentials in
it: the error names the variable to use and never shows the secret), the key from the
environment only."""

from __future__ import annotations

import pytest

import voxpipe_deepgram.plugin
from voxpipe import Registry, load_config
from voxpipe.errors import AuthError, ConfigError
from voxpipe.urls import without_credentials
from voxpipe_deepgram import DeepgramASR, DeepgramASROptions, DeepgramTTS, DeepgramTTSOptions
from voxpipe_deepgram._connection import endpoint

SECRET = "hunter2-0123456789abcdef"
BACKENDS = [("asr", "deepgram"), ("asr", "deepgram-rest"), ("tts", "deepgram")]


def registry() -> Registry:
    registry = Registry(entry_points=False)
    registry.register(voxpipe_deepgram.plugin, name="deepgram")
    return registry


def config_error(kind: str, name: str, **options: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config({kind: {"backend": name, **options}}, registry=registry())
    return str(info.value)


@pytest.mark.parametrize(("kind", "name"), BACKENDS)
@pytest.mark.parametrize(
    "option",
    [
        {"connect_timeout_ms": 0},
        {"connect_timeout_ms": float("inf")},
        {"connect_timeout_ms": float("nan")},
        {"connect_timeout_ms": 300_001},
        {"idle_timeout_ms": -1},
    ],
)
def test_timeouts_are_bounded(kind: str, name: str, option: dict[str, float]) -> None:
    (key,) = option
    assert f"[{kind}] {key}:" in config_error(kind, name, **option)


@pytest.mark.parametrize(
    ("kind", "name", "option"),
    [
        ("asr", "deepgram", {"endpointing_ms": 9}),
        ("asr", "deepgram", {"endpointing_ms": 10_001}),
        ("asr", "deepgram", {"utterance_end_ms": 999}),
        ("asr", "deepgram", {"connect_timeout_ms": 30_001}),
        ("asr", "deepgram", {"idle_timeout_ms": 60_001}),
        ("asr", "deepgram", {"model": ""}),
        ("asr", "deepgram-rest", {"max_utterance_ms": 600_001}),
        ("tts", "deepgram", {"sample_rate": 44_100}),
        ("tts", "deepgram", {"first_byte_timeout_ms": 0}),
    ],
)
def test_other_numbers_are_bounded(kind: str, name: str, option: dict[str, object]) -> None:
    (key,) = option
    assert f"[{kind}] {key}:" in config_error(kind, name, **option)


def test_the_defaults_validate() -> None:
    config = load_config(
        {"asr": {"backend": "deepgram", "utterance_end_ms": None}, "tts": {"backend": "deepgram"}},
        registry=registry(),
    )
    options = config.backend("asr")[1]
    assert isinstance(options, DeepgramASROptions) and options.utterance_end_ms is None


@pytest.mark.parametrize(("kind", "name"), BACKENDS)
@pytest.mark.parametrize(
    "url",
    [
        f"https://user:{SECRET}@api.deepgram.com",
        f"wss://{SECRET}@api.deepgram.com",
        f"https://api.deepgram.com?token={SECRET}",
        f"http://localhost:8080/?API_KEY={SECRET}",
    ],
)
def test_credentials_in_base_url_are_refused_without_showing_them(
    kind: str, name: str, url: str
) -> None:
    message = config_error(kind, name, base_url=url)
    assert f"[{kind}] base_url: must not carry credentials" in message
    assert "set the key in the DEEPGRAM_API_KEY environment variable" in message
    assert SECRET not in message
    assert "***" in without_credentials(url)


@pytest.mark.parametrize(
    "url", ["localhost:8080", "ftp://dg.example.com", "http://", f"{SECRET}@host"]
)
def test_base_url_needs_an_http_or_ws_url(url: str) -> None:
    message = config_error("asr", "deepgram", base_url=url)
    assert (
        "must be an http:// or https:// or ws:// or wss:// URL" in message and SECRET not in message
    )


@pytest.mark.parametrize(
    ("base_url", "websocket", "expected"),
    [
        ("https://api.deepgram.com", True, "wss://api.deepgram.com/v1/listen?a=true"),
        ("http://localhost:8080/", True, "ws://localhost:8080/v1/listen?a=true"),
        ("wss://dg.example.com/proxy", False, "https://dg.example.com/proxy/v1/listen?a=true"),
        ("ws://127.0.0.1:9000", False, "http://127.0.0.1:9000/v1/listen?a=true"),
    ],
)
def test_one_base_url_serves_the_websocket_and_rest(
    base_url: str, websocket: bool, expected: str
) -> None:
    url = DeepgramASROptions(base_url=base_url).base_url
    assert endpoint(url, "/v1/listen", {"a": True}, websocket=websocket) == expected


def test_a_key_in_the_config_is_refused_naming_the_variable() -> None:
    message = config_error("asr", "deepgram", api_key="dg-in-a-file")
    assert "never read from config files" in message and "DEEPGRAM_API_KEY" in message


@pytest.mark.parametrize("value", ["", "   "])
def test_a_missing_key_is_an_auth_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DEEPGRAM_API_KEY", value)
    for build in (
        lambda: DeepgramASR(DeepgramASROptions()),
        lambda: DeepgramTTS(DeepgramTTSOptions()),
    ):
        with pytest.raises(AuthError, match="Set the DEEPGRAM_API_KEY environment variable"):
            build()


def test_the_backends_are_network_backends() -> None:
    specs = voxpipe_deepgram.plugin.voxpipe_backends()
    assert [(s.kind, s.name) for s in specs] == BACKENDS
    assert all(not s.virtual_time and s.env_vars == ("DEEPGRAM_API_KEY",) for s in specs)
    live = next(s for s in specs if s.name == "deepgram" and s.kind == "asr")
    assert getattr(live.factory, "detects_end_of_turn", False)  # [turns] end_of_turn = "asr"


def test_the_example_config_validates() -> None:
    pytest.importorskip("voxpipe_openai")  # its LLM is OpenAI's
    from pathlib import Path

    config = load_config(Path(__file__).parents[3] / "examples" / "deepgram.toml")
    assert config.backend("asr")[0].name == "deepgram" and config.turns.end_of_turn == "first"
