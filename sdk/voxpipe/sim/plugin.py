"""The sim backends' plugin module, registered by the core distribution's own entry point."""

from __future__ import annotations

from voxpipe.hookspecs import PLUGIN_API_VERSION, BackendSpec, hookimpl
from voxpipe.sim.asr import SimASR, SimASROptions
from voxpipe.sim.llm import SimLLM, SimLLMOptions
from voxpipe.sim.tts import SimTTS, SimTTSOptions


@hookimpl
def voxpipe_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            "asr",
            "sim",
            SimASR,
            SimASROptions,
            PLUGIN_API_VERSION,
            "energy endpointing on the real frames; text from simulated speech",
        ),
        BackendSpec(
            "llm",
            "sim",
            SimLLM,
            SimLLMOptions,
            PLUGIN_API_VERSION,
            "keyword replies at a set first-token delay and token rate",
        ),
        BackendSpec(
            "tts",
            "sim",
            SimTTS,
            SimTTSOptions,
            PLUGIN_API_VERSION,
            "audible speech-like PCM, faster than real time",
        ),
    ]
