"""Simulated reference backends: real-time, parametric, reacting to the audio they get."""

from voxpipe.sim.asr import SimASR, SimASROptions
from voxpipe.sim.llm import SimLLM, SimLLMOptions
from voxpipe.sim.tts import SimStreamTTS, SimTTS, SimTTSOptions

__all__ = [
    "SimASR",
    "SimASROptions",
    "SimLLM",
    "SimLLMOptions",
    "SimStreamTTS",
    "SimTTS",
    "SimTTSOptions",
]
