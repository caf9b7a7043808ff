"""The hook, the config and a whole conversation through the real orchestrator."""

from __future__ import annotations

import json

import pytest
from openai_wire import (
    PCM_HEADERS,
    SSE_HEADERS,
    USAGE,
    Wire,
    chat_events,
    pcm_24k,
    pieces,
    sse,
    transcription_body,
)

import voxpipe_openai.plugin
from voxpipe import Registry, SimSpeechSource, VoiceAgent, load_config
from voxpipe.errors import ConfigError
from voxpipe.hookspecs import PLUGIN_API_VERSION
from voxpipe.protocols import Message
from voxpipe_openai import (
    OpenAIASR,
    OpenAIASROptions,
    OpenAILLM,
    OpenAILLMOptions,
    OpenAITTS,
    OpenAITTSOptions,
)

OPENAI_ALL = {kind: {"backend": "openai"} for kind in ("asr", "llm", "tts")}


def registry() -> Registry:
    """This plugin beside the core's built-ins (the sim backends, the energy VAD)."""
    registry = Registry(entry_points=False)
    registry.register(voxpipe_openai.plugin, name="openai")
    return registry


def test_the_hook_returns_three_backends() -> None:
    specs = {(s.kind, s.name): s for s in voxpipe_openai.plugin.voxpipe_backends()}
    assert set(specs) == {("asr", "openai"), ("llm", "openai"), ("tts", "openai")}
    for spec in specs.values():
        assert spec.api_version == PLUGIN_API_VERSION
        assert spec.env_vars == ("OPENAI_API_KEY",)
        assert spec.description
    assert specs["asr", "openai"].options is OpenAIASROptions
    assert specs["llm", "openai"].options is OpenAILLMOptions
    assert specs["tts", "openai"].options is OpenAITTSOptions


def test_defaults() -> None:
    assert OpenAILLMOptions().model_dump() == {
        "base_url": None,
        "organization": None,
        "model": "gpt-4o-mini",
        "temperature": None,
        "max_tokens": None,
        "connect_timeout_ms": 3000,
        "first_byte_timeout_ms": 10_000,
        "idle_timeout_ms": 5000,
    }
    tts = OpenAITTSOptions()
    assert (tts.model, tts.voice, tts.instructions, tts.speed) == (
        "gpt-4o-mini-tts",
        "alloy",
        None,
        None,
    )
    asr = OpenAIASROptions()
    assert (asr.model, asr.language, asr.prompt) == ("gpt-4o-transcribe", None, None)


async def test_config_builds_the_backends_with_the_session_context() -> None:
    config = load_config(
        {
            "agent": {"sample_rate": 24_000, "frame_ms": 10},
            "asr": {"backend": "openai", "language": "en"},
            "llm": {"backend": "openai", "model": "gpt-4.1-mini", "temperature": 0.2},
            "tts": {"backend": "openai", "voice": "coral", "speed": 1.2},
        },
        registry=registry(),
    )
    asr, llm, tts = (config.build(kind) for kind in ("asr", "llm", "tts"))
    assert isinstance(asr, OpenAIASR) and asr.options.language == "en"
    assert isinstance(llm, OpenAILLM) and llm.options.temperature == 0.2
    assert isinstance(tts, OpenAITTS) and tts.options.voice == "coral"
    assert tts.context.sample_rate == 24_000 and tts.context.frame_ms == 10
    assert asr.context.sample_rate == 24_000
    for backend in (asr, llm, tts):
        await backend.aclose()


@pytest.mark.parametrize(
    ("kind", "options", "expected"),
    [
        ("tts", {"speed": 0.1}, "speed"),
        ("llm", {"temperature": -1}, "temperature"),
        ("llm", {"model": ""}, "model"),
        ("asr", {"base_url": "api.example.com"}, "http:// or https://"),
        ("llm", {"openai_api_key": "sk-x"}, "OPENAI_API_KEY"),
        ("asr", {"endpoint_ms": 500}, r"endpoint_ms has moved: set \[turns\] endpoint_ms"),
        ("asr", {"threshold_db": -30}, r"threshold_db has moved: set \[vad\] threshold_db"),
    ],
)
def test_bad_options(kind: str, options: dict[str, object], expected: str) -> None:
    config = {**OPENAI_ALL, kind: {"backend": "openai", **options}}
    with pytest.raises(ConfigError, match=expected):
        load_config(config, registry=registry())


@pytest.mark.looptime
async def test_a_whole_conversation_over_the_mocked_api(wire: Wire) -> None:
    said = ["What's the weather like?", "And tomorrow?"]
    replies = [
        ["It", " is", " sunny", " and", " warm", ".", " Anything", " else", "?"],
        ["Rain", " tomorrow", "."],
    ]
    heard, answers = iter(said), iter(replies)
    asr_route = wire.route(
        "/audio/transcriptions",
        lambda: pieces(transcription_body(next(heard))),
        headers=SSE_HEADERS,
    )
    llm_route = wire.route(
        "/chat/completions", lambda: pieces(sse(*chat_events(next(answers)))), headers=SSE_HEADERS
    )
    tts_route = wire.route("/audio/speech", pieces(pcm_24k(800), 4801), headers=PCM_HEADERS)
    config = {**OPENAI_ALL, "agent": {"system_prompt": "Be brief."}, "turns": {"endpoint_ms": 500}}

    async with VoiceAgent.from_config(config, registry=registry()) as agent:
        session = agent.session(SimSpeechSource(said))
        metrics = await session.run()

    answered = ["".join(reply) for reply in replies]
    assert [t.user_text for t in metrics.turns] == said
    assert [t.agent_text for t in metrics.turns] == answered
    assert session.history == [
        Message("user", said[0]),
        Message("assistant", answered[0]),
        Message("user", said[1]),
        Message("assistant", answered[1]),
    ]
    # One ASR stream heard both turns; the second request carries the first exchange.
    assert asr_route.call_count == 2 and llm_route.call_count == 2
    assert json.loads(llm_route.calls[1].request.content)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": said[0]},
        {"role": "assistant", "content": answered[0]},
        {"role": "user", "content": said[1]},
    ]
    for turn in metrics.turns:
        assert turn.extra["llm_usage"] == USAGE
        # The mocked API answers at once: what is left is the session's endpointing wait.
        assert turn.endpoint_detected == pytest.approx(turn.stamps["speech_end"] + 500)
        assert turn.latency("asr_finalization") == pytest.approx(500)
        for stamp in ("asr_final", "llm_first_token", "tts_first_audio", "playout_start"):
            assert turn.stamps[stamp] is not None
    assert tts_route.call_count >= 2
    assert all(body.closed for body in wire.bodies)
