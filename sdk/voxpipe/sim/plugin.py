"""The built-in backends (the simulated ones and the energy VAD), registered by the core
distribution's own entry point exactly as a third-party plugin registers."""

from __future__ import annotations

from voxpipe.hookspecs import PLUGIN_API_VERSION, BackendSpec, hookimpl
from voxpipe.sim.asr import SimASR, SimASROptions
from voxpipe.sim.llm import SimLLM, SimLLMOptions
from voxpipe.sim.tts import SimStreamTTS, SimTTS, SimTTSOptions
from voxpipe.vad import EnergyVAD, EnergyVADOptions


@hookimpl
def voxpipe_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            "asr",
            "sim",
            SimASR,
            SimASROptions,
            PLUGIN_API_VERSION,
            "text from simulated speech, on the session's VAD",
            virtual_time=True,
        ),
        BackendSpec(
            "llm",
            "sim",
            SimLLM,
            SimLLMOptions,
            PLUGIN_API_VERSION,
            "keyword replies at a set first-token delay and token rate",
            virtual_time=True,
        ),
        BackendSpec(
            "tts",
            "sim",
            SimTTS,
            SimTTSOptions,
            PLUGIN_API_VERSION,
            "audible speech-like PCM, faster than real time, with word alignment",
            virtual_time=True,
        ),
        BackendSpec(
            "tts",
            "sim-stream",
            SimStreamTTS,
            SimTTSOptions,
            PLUGIN_API_VERSION,
            "like sim, fed the reply's text as it is written (streaming text input)",
            virtual_time=True,
        ),
        BackendSpec(
            "vad",
            "energy",
            EnergyVAD.from_options,
            EnergyVADOptions,
            PLUGIN_API_VERSION,
            "frame energy against a threshold (dBFS)",
            virtual_time=True,
        ),
    ]
