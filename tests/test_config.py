"""AgentConfig: TOML files and dicts validated, including each backend's options."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voxpipe.budgets import LatencyBudgets
from voxpipe.config import AgentConfig, load_config, parse_config
from voxpipe.errors import BackendNotFound, ConfigError, UsageError
from voxpipe.hookspecs import BackendContext
from voxpipe.registry import Registry
from voxpipe.sim import SimASR, SimASROptions, SimLLM, SimLLMOptions, SimTTS, SimTTSOptions
from voxpipe.text import PhrasePolicy
from voxpipe.vad import EnergyVAD

VALID_TOML = """\
[agent]
system_prompt = "You are terse."
sample_rate = 24000
frame_ms = 30
playout_lookahead_ms = 500

[agent.phrases]
first_max_words = 4
min_words = 3

[asr]
backend = "sim"
finalization_ms = 80
confidence = 0.8

[vad]
threshold_db = -35.5

[turns]
endpoint_ms = 300
min_interruption_ms = 250

[llm]
backend = "sim"
first_token_ms = 120
tokens_per_second = 40
responses = { weather = "Sunny, about 72 degrees." }

[tts]
backend = "sim"
first_chunk_ms = 90
pitch_hz = 150

[budgets]
llm_first_token = 300
time_to_first_audio = 800.5
"""


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Only the core's sim backends, whatever other plugins are installed."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VOXPIPE_PLUGINS", "sim")
        return Registry()


def write(tmp_path: Path, text: str, name: str = "agent.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_valid_toml(tmp_path: Path, registry: Registry) -> None:
    path = write(tmp_path, VALID_TOML)
    config = load_config(path, registry=registry)
    assert isinstance(config, AgentConfig)
    assert config.source == str(path)

    agent = config.agent
    assert agent.system_prompt == "You are terse."
    assert (agent.sample_rate, agent.frame_ms, agent.playout_lookahead_ms) == (24_000, 30, 500)
    assert agent.phrases == PhrasePolicy(first_max_words=4, min_words=3)
    assert config.context == BackendContext(sample_rate=24_000, frame_ms=30)

    asr_spec, asr_options = config.backend("asr")
    assert (asr_spec.kind, asr_spec.name) == ("asr", "sim")
    assert type(asr_options) is SimASROptions
    assert (asr_options.finalization_ms, asr_options.confidence) == (80, 0.8)
    assert asr_options.first_partial_ms == SimASROptions().first_partial_ms  # default kept

    vad_spec, vad_options = config.backend("vad")
    assert (vad_spec.name, vad_options.threshold_db) == ("energy", -35.5)  # type: ignore[attr-defined]
    assert (config.turns.endpoint_ms, config.turns.min_interruption_ms) == (300, 250)
    assert config.turns.resume_timeout_ms == 2000  # default kept

    llm_spec, llm_options = config.backend("llm")
    assert llm_spec.name == "sim"
    assert type(llm_options) is SimLLMOptions
    assert (llm_options.first_token_ms, llm_options.tokens_per_second) == (120, 40)
    assert llm_options.responses == {"weather": "Sunny, about 72 degrees."}

    _, tts_options = config.backend("tts")
    assert type(tts_options) is SimTTSOptions
    assert (tts_options.first_chunk_ms, tts_options.pitch_hz) == (90, 150)

    assert config.budgets == LatencyBudgets(llm_first_token=300, time_to_first_audio=800.5)
    assert config.budgets.items() == [("llm_first_token", 300.0), ("time_to_first_audio", 800.5)]


def test_build_constructs_the_sim_backends(tmp_path: Path, registry: Registry) -> None:
    config = load_config(write(tmp_path, VALID_TOML), registry=registry)
    assert isinstance(config.build("asr"), SimASR)
    assert isinstance(config.build("llm"), SimLLM)
    assert isinstance(config.build("tts"), SimTTS)
    assert isinstance(config.build("vad"), EnergyVAD)


def test_load_from_dict(registry: Registry) -> None:
    config = load_config(
        {
            "agent": {"frame_ms": 10},
            "asr": {"finalization_ms": 250},
            "llm": {"backend": "sim"},
            "budgets": {"asr_processing": 80},
        },
        registry=registry,
    )
    assert config.source == "<dict>"
    assert config.agent.frame_ms == 10
    assert config.agent.sample_rate == 16_000
    _, asr_options = config.backend("asr")
    assert asr_options == SimASROptions(finalization_ms=250)
    _, tts_options = config.backend("tts")
    assert tts_options == SimTTSOptions()
    assert config.budgets.items() == [("asr_processing", 80.0)]


def test_empty_config_uses_defaults_and_the_default_registry() -> None:
    config = parse_config({})
    for kind, options_type in [
        ("asr", SimASROptions),
        ("llm", SimLLMOptions),
        ("tts", SimTTSOptions),
    ]:
        spec, options = config.backend(kind)
        assert spec.name == "sim"
        assert options == options_type()
    # No [budgets] section: the tutorial's defaults, all warn, so every turn has verdicts.
    assert config.budgets.items() == [
        ("asr_processing", 100.0),
        ("asr_finalization", 300.0),
        ("llm_first_token", 500.0),
        ("llm_token_generation", 20.0),
        ("tts_first_chunk", 200.0),
        ("tts_chunk_generation", 50.0),
        ("time_to_first_audio", 1000.0),
    ]
    assert {config.budgets.action(name) for name, _ in config.budgets.items()} == {"warn"}


def test_parse_config_names_its_source(registry: Registry) -> None:
    with pytest.raises(ConfigError, match=r"^settings\.json: "):
        parse_config({"agent": {"frame_ms": 1}}, "settings.json", registry=registry)


# --- errors ------------------------------------------------------------------------------

BAD_CONFIGS = [
    pytest.param(
        "[network]\nport = 1\n",
        r"network: unknown section \(valid: agent, asr",
        id="unknown-section",
    ),
    pytest.param(
        '[agent]\nvoice = "alto"\n', r"\[agent\] voice: unknown option", id="unknown-agent-key"
    ),
    pytest.param(
        '[agent]\nsample_rate = "fast"\n',
        r"\[agent\] sample_rate: Input should be a valid integer.*\(got 'fast'\)",
        id="wrong-type",
    ),
    pytest.param(
        "[agent]\nframe_ms = 5\n",
        r"\[agent\] frame_ms: Input should be greater than or equal to 10 \(got 5\)",
        id="out-of-range",
    ),
    pytest.param(
        "[agent.phrases]\nmax_words = 0\n",
        r"\[agent\.phrases\] max_words: Input should be greater than or equal to 1",
        id="nested-out-of-range",
    ),
    pytest.param(
        '[asr]\nbackend = "sim"\nendpoint = 300\n',
        r"\[asr\] endpoint: unknown option for the asr backend 'sim' "
        r"\(valid: backend, latency, error_rate, fail_with, retry_after_ms, seed, "
        r"idle_timeout_ms, finalization_ms, first_partial_ms, partial_interval_ms, confidence\)",
        id="unknown-backend-option",
    ),
    pytest.param(
        "[tts]\npitch_hz = 5000\n",
        r"\[tts\] pitch_hz: Input should be less than 1000 \(got 5000\)",
        id="backend-option-out-of-range",
    ),
    pytest.param(
        "[budgets]\nllm_latency = 300\n",
        r"\[budgets\] llm_latency: unknown option",
        id="unknown-budget",
    ),
    pytest.param(
        "[budgets]\nllm_first_token = -5\n",
        r"\[budgets.llm_first_token\] ms: Input should be greater than 0 \(got -5\)",
        id="negative-budget",
    ),
    pytest.param("[agent]\nframe_ms = = 20\n", r"not valid TOML \(.*line 2", id="bad-toml"),
    pytest.param(
        '[llm]\nbackend = "sim"\napi_key = "sk-123"\n',
        r"\[llm\] api_key: API keys are never read from config files; "
        r"remove it and set .* in the environment instead",
        id="api-key",
    ),
]


@pytest.mark.parametrize(("text", "problem"), BAD_CONFIGS)
def test_bad_config_names_file_key_and_problem(
    tmp_path: Path, registry: Registry, text: str, problem: str
) -> None:
    path = write(tmp_path, text, "bad.toml")
    with pytest.raises(ConfigError) as info:
        load_config(path, registry=registry)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert re.search(problem, message), message
    assert isinstance(info.value, UsageError)


def test_several_problems_are_reported_together(registry: Registry) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"agent": {"frame_ms": 5, "sample_rate": 1}}, registry=registry)
    message = str(info.value)
    assert "[agent] frame_ms:" in message
    assert "[agent] sample_rate:" in message


@pytest.mark.parametrize(
    "key", ["api_key", "apikey", "token", "auth_token", "password", "client_secret"]
)
def test_secrets_are_refused_whatever_the_backend(registry: Registry, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[tts\] {key}: API keys are never read"):
        load_config({"tts": {key: "hunter2"}}, registry=registry)


@pytest.mark.parametrize("key", ["eos_token", "stop_token", "cache_key", "keyword"])
def test_options_that_merely_mention_keys_are_not_secrets(registry: Registry, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[tts\] {key}: unknown option"):
        load_config({"tts": {key: "x"}}, registry=registry)


def test_missing_file(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"config file not found") as info:
        load_config(path, registry=registry)
    assert str(info.value).startswith(f"{path}: ")


def test_unknown_backend_lists_installed_ones(tmp_path: Path, registry: Registry) -> None:
    path = write(tmp_path, '[tts]\nbackend = "nope"\n')
    with pytest.raises(BackendNotFound) as info:
        load_config(path, registry=registry)
    message = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert message.startswith(f"{path}: [tts] backend: ")
    assert "no tts backend named 'nope'" in message
    assert "Installed tts backends: sim (voxpipe), sim-stream (voxpipe)." in message
    assert "pip install" not in message


def test_unknown_known_backend_says_what_to_install(registry: Registry) -> None:
    with pytest.raises(BackendNotFound) as info:
        load_config({"llm": {"backend": "openai", "model": "gpt-4o-mini"}}, registry=registry)
    message = str(info.value)
    assert "[llm] backend: no llm backend named 'openai'" in message
    assert "Installed llm backends: sim (voxpipe)." in message
    assert "`pip install plugins/voxpipe-openai`" in message
    assert "`pip install dist/voxpipe_openai-*.whl`" in message


def test_budgets_take_a_number_or_a_table_and_can_be_turned_off(registry: Registry) -> None:
    budgets = load_config(
        {"budgets": {"llm_first_token": {"ms": 500, "action": "fallback"}, "tts_first_chunk": 250}},
        registry=registry,
    ).budgets
    assert budgets.items() == [("llm_first_token", 500.0), ("tts_first_chunk", 250.0)]
    assert (budgets.action("llm_first_token"), budgets.action("tts_first_chunk")) == (
        "fallback",
        "warn",
    )
    off = load_config({"budgets": {"enabled": False, "llm_first_token": 300}}, registry=registry)
    assert off.budgets.items() == []


@pytest.mark.parametrize(
    ("budgets", "expected"),
    [
        ({"llm_first_token": {"ms": 500, "action": "panic"}}, r"llm_first_token.*action.*'warn'"),
        (
            {"asr_finalization": {"ms": 300, "action": "filler"}},
            r"asr_finalization: action 'filler' does not apply",
        ),
        ({"llm_first_token": {"ms": -5}}, r"llm_first_token.*ms"),
        ({"llm_first_token": {"action": "warn"}}, r"llm_first_token.*ms.*Field required"),
    ],
)
def test_bad_budgets_are_config_errors(
    registry: Registry, budgets: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config({"budgets": budgets}, registry=registry)


def test_a_secret_in_the_wrong_option_is_not_echoed(registry: Registry) -> None:
    key = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
    with pytest.raises(ConfigError) as info:
        load_config({"llm": {"backend": "sim", "first_token_ms": [key]}}, registry=registry)
    assert key not in str(info.value) and "not shown: it may hold a secret" in str(info.value)
    with pytest.raises(ConfigError, match=r"\(got 'soon'\)"):  # plain values still shown
        load_config({"llm": {"backend": "sim", "first_token_ms": "soon"}}, registry=registry)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("agent", "playout_lookahead_ms"),
        ("turns", "endpoint_ms"),
        ("turns", "min_interruption_ms"),
        ("turns", "resume_timeout_ms"),
        ("turns", "final_timeout_ms"),
        ("vad", "threshold_db"),
    ],
)
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e300])
def test_numeric_options_are_finite_and_bounded(
    registry: Registry, section: str, key: str, value: float
) -> None:
    with pytest.raises(ConfigError, match=rf"\[{section}\] {key}"):
        load_config({section: {key: value}}, registry=registry)


def test_budgets_are_finite() -> None:
    with pytest.raises(ConfigError, match=r"\[budgets.llm_first_token\] ms"):
        load_config({"budgets": {"llm_first_token": float("inf")}})


def test_a_bad_list_item_is_named_by_its_index() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"agent": {"fillers": ["One moment.", 3]}}, "x.toml")
    assert "[agent] fillers[1]: Input should be a valid string (got 3)" in str(info.value)
