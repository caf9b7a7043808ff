"""The plugin module named by the ``voxpipe`` entry point: the two ElevenLabs TTS backends."""

from __future__ import annotations

from voxpipe.hookspecs import PLUGIN_API_VERSION, BackendSpec, hookimpl
from voxpipe_elevenlabs._errors import KEY_ENV_VAR
from voxpipe_elevenlabs.stream import ElevenLabsStreamOptions, ElevenLabsStreamTTS
from voxpipe_elevenlabs.tts import ElevenLabsTTS, ElevenLabsTTSOptions


@hookimpl
def voxpipe_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            "tts",
            "elevenlabs",
            ElevenLabsTTS,
            ElevenLabsTTSOptions,
            PLUGIN_API_VERSION,
            "ElevenLabs HTTP streaming: raw PCM per phrase, resampled to the session rate",
            env_vars=(KEY_ENV_VAR,),
        ),
        BackendSpec(
            "tts",
            "elevenlabs-ws",
            ElevenLabsStreamTTS,
            ElevenLabsStreamOptions,
            PLUGIN_API_VERSION,
            "ElevenLabs stream-input WebSocket: fed the LLM's text as it is written, with "
            "character timings (alignment)",
            env_vars=(KEY_ENV_VAR,),
        ),
    ]
