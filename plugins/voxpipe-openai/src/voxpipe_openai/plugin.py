"""The plugin module named by the ``voxpipe`` entry point: the three OpenAI backends."""

from __future__ import annotations

from voxpipe.hookspecs import PLUGIN_API_VERSION, BackendSpec, hookimpl
from voxpipe_openai._errors import KEY_ENV_VAR
from voxpipe_openai.asr import OpenAIASR, OpenAIASROptions
from voxpipe_openai.llm import OpenAILLM, OpenAILLMOptions
from voxpipe_openai.tts import OpenAITTS, OpenAITTSOptions


@hookimpl
def voxpipe_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            "asr",
            "openai",
            OpenAIASR,
            OpenAIASROptions,
            PLUGIN_API_VERSION,
            "each utterance the session's VAD cuts is streamed back by /v1/audio/transcriptions",
            env_vars=(KEY_ENV_VAR,),
        ),
        BackendSpec(
            "llm",
            "openai",
            OpenAILLM,
            OpenAILLMOptions,
            PLUGIN_API_VERSION,
            "Chat Completions, streamed (OpenAI or any compatible server via base_url)",
            env_vars=(KEY_ENV_VAR,),
        ),
        BackendSpec(
            "tts",
            "openai",
            OpenAITTS,
            OpenAITTSOptions,
            PLUGIN_API_VERSION,
            "/v1/audio/speech as streamed 24 kHz PCM, resampled to the session rate",
            env_vars=(KEY_ENV_VAR,),
        ),
    ]
