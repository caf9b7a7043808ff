"""The plugin module named by the ``voxpipe`` entry point: the three Deepgram backends."""

from __future__ import annotations

from voxpipe.hookspecs import PLUGIN_API_VERSION, BackendSpec, hookimpl
from voxpipe_deepgram._errors import KEY_ENV_VAR
from voxpipe_deepgram.live import DeepgramASR, DeepgramASROptions
from voxpipe_deepgram.rest import DeepgramRESTASR, DeepgramRESTASROptions
from voxpipe_deepgram.tts import DeepgramTTS, DeepgramTTSOptions


@hookimpl
def voxpipe_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            "asr",
            "deepgram",
            DeepgramASR,
            DeepgramASROptions,
            PLUGIN_API_VERSION,
            "live /v1/listen WebSocket: partials, finals, Deepgram's own end of turn",
            env_vars=(KEY_ENV_VAR,),
        ),
        BackendSpec(
            "asr",
            "deepgram-rest",
            DeepgramRESTASR,
            DeepgramRESTASROptions,
            PLUGIN_API_VERSION,
            "each utterance the session's VAD cuts is sent to pre-recorded /v1/listen",
            env_vars=(KEY_ENV_VAR,),
        ),
        BackendSpec(
            "tts",
            "deepgram",
            DeepgramTTS,
            DeepgramTTSOptions,
            PLUGIN_API_VERSION,
            "Aura /v1/speak as streamed linear16, resampled to the session rate if needed",
            env_vars=(KEY_ENV_VAR,),
        ),
    ]
