"""The hook, the options (bounds, defaults, where requests go) and credentials kept out of
URLs: a ``base_url`` with user-info or a key in its query string is refused, naming the
variable to set, without showing the secret."""

from __future__ import annotations

import pytest

import voxpipe_elevenlabs.plugin
from voxpipe import Registry, load_config
from voxpipe.errors import AuthError, ConfigError
from voxpipe.hookspecs import PLUGIN_API_VERSION, BackendContext
from voxpipe.urls import without_credentials
from voxpipe_elevenlabs import (
    ElevenLabsStreamOptions,
    ElevenLabsStreamTTS,
    ElevenLabsTTS,
    ElevenLabsTTSOptions,
)

SECRET = "hunter2-0123456789abcdef"
BACKENDS = ("elevenlabs", "elevenlabs-ws")


def registry() -> Registry:
    registry = Registry(entry_points=False)
    registry.register(voxpipe_elevenlabs.plugin, name="elevenlabs")
    return registry


def config_error(name: str, **options: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config({"tts": {"backend": name, **options}}, registry=registry())
    return str(info.value)


def test_the_hook_returns_both_tts_backends_for_real_time_only() -> None:
    specs = {s.name: s for s in voxpipe_elevenlabs.plugin.voxpipe_backends()}
    assert set(specs) == set(BACKENDS)
    assert specs["elevenlabs"].factory is ElevenLabsTTS
    assert specs["elevenlabs-ws"].factory is ElevenLabsStreamTTS
    for spec in specs.values():
        assert spec.kind == "tts" and spec.api_version == PLUGIN_API_VERSION
        assert spec.env_vars == ("ELEVENLABS_API_KEY",) and spec.description
        assert spec.virtual_time is False  # it waits on a network: --virtual-time refuses it


def test_defaults() -> None:
    http = ElevenLabsTTSOptions()
    assert http.model_dump() == {
        "voice_id": "JBFqnCBsd6RMkjVDRZzb",
        "model_id": "eleven_flash_v2_5",
        "base_url": "https://api.elevenlabs.io",
        "pcm_rate": None,
        "stability": None,
        "similarity_boost": None,
        "style": None,
        "speed": None,
        "connect_timeout_ms": 3000,
        "first_byte_timeout_ms": 5000,
        "idle_timeout_ms": 3000,
        "optimize_streaming_latency": None,
    }
    ws = ElevenLabsStreamOptions()
    assert (ws.flush_at, ws.chunk_length_schedule, ws.inactivity_timeout_s) == (
        "phrase",
        [120, 160, 250, 290],
        None,
    )


@pytest.mark.parametrize(
    ("session_rate", "pcm_rate"),
    [
        (8_000, 8_000),
        (16_000, 16_000),
        (22_050, 22_050),
        (24_000, 24_000),
        (32_000, 24_000),
        (44_100, 44_100),
        (48_000, 44_100),
        (11_025, 8_000),
        (12_000, 16_000),
    ],
)
def test_the_pcm_rate_nearest_the_session_is_asked_for(session_rate: int, pcm_rate: int) -> None:
    assert ElevenLabsTTSOptions().output_rate(session_rate) == pcm_rate
    assert ElevenLabsTTSOptions(pcm_rate=22_050).output_rate(session_rate) == 22_050


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://api.elevenlabs.io", "wss://api.elevenlabs.io"),
        ("http://127.0.0.1:8080/", "ws://127.0.0.1:8080"),
        ("wss://proxy.example.com/el", "wss://proxy.example.com/el"),
    ],
)
def test_the_socket_goes_to_the_base_urls_host(base_url: str, url: str) -> None:
    options = ElevenLabsStreamOptions(base_url=base_url, model_id="eleven_turbo_v2_5")
    assert options.socket_url(22_050) == (
        f"{url}/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb/stream-input"
        "?model_id=eleven_turbo_v2_5&output_format=pcm_22050"
    )


def test_the_http_backend_takes_no_socket_url() -> None:
    assert "https:// or http:// URL" in config_error("elevenlabs", base_url="wss://h")


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://user:{SECRET}@api.elevenlabs.io", "https://***@api.elevenlabs.io"),
        (
            f"https://api.elevenlabs.io?xi-api-key={SECRET}",
            "https://api.elevenlabs.io?xi-api-key=***",
        ),
        (f"https://h?api_key={SECRET}&x=1", "https://h?api_key=***&x=1"),
        (f"https://h?Token={SECRET}", "https://h?Token=***"),
    ],
)
def test_credentials_in_base_url_are_refused_without_showing_them(
    name: str, url: str, shown: str
) -> None:
    message = config_error(name, base_url=url)
    assert "[tts] base_url: must not carry credentials" in message
    assert "set the key in the ELEVENLABS_API_KEY environment variable" in message
    assert SECRET not in message
    assert without_credentials(url) == shown


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"user:{SECRET}@api.elevenlabs.io", "URL, e.g. https://api.elevenlabs.io"),
        ("https://api.elevenlabs.io/v1", "without /v1"),
        ("https://api.elevenlabs.io?region=eu", "must not have a query string"),
        ("https://", "URL, e.g."),
    ],
)
def test_a_base_url_that_cannot_work_says_why(url: str, expected: str) -> None:
    message = config_error("elevenlabs-ws", base_url=url)
    assert expected in message and SECRET not in message


def test_a_schedule_value_out_of_range_names_the_option() -> None:
    message = config_error("elevenlabs-ws", chunk_length_schedule=[120, 20])
    assert "chunk_length_schedule" in message and "greater than or equal to 50" in message


@pytest.mark.parametrize("name", BACKENDS)
def test_an_api_key_in_the_config_is_refused_naming_the_variable(name: str) -> None:
    message = config_error(name, xi_api_key="sk_in_a_file")
    assert "never read from config files" in message and "ELEVENLABS_API_KEY" in message


@pytest.mark.parametrize("factory", [ElevenLabsTTS, ElevenLabsStreamTTS])
def test_a_missing_key_is_an_auth_error_before_anything_opens(
    factory: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY")
    options = ElevenLabsTTSOptions() if factory is ElevenLabsTTS else ElevenLabsStreamOptions()
    with pytest.raises(AuthError, match="Set the ELEVENLABS_API_KEY environment variable") as info:
        factory(options, BackendContext())
    assert info.value.env_var == "ELEVENLABS_API_KEY"


async def test_the_config_builds_the_backend_with_the_session_context() -> None:
    config = load_config(
        {"agent": {"sample_rate": 24_000}, "tts": {"backend": "elevenlabs-ws", "speed": 0.9}},
        registry=registry(),
    )
    ((spec, options),) = config.chain("tts")
    backend = spec.factory(options, BackendContext(24_000, 20))
    assert isinstance(backend, ElevenLabsStreamTTS)
    assert backend.rate == 24_000 and "output_format=pcm_24000" in backend.url
