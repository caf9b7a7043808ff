"""The hook that registers voxpipe-local's backends (entry point ``local``)."""

from __future__ import annotations

from voxpipe import PLUGIN_API_VERSION, BackendSpec, hookimpl
from voxpipe_local.espeak import EspeakOptions, EspeakTTS
from voxpipe_local.rules import RulesLLM, RulesOptions
from voxpipe_local.silero import SileroVAD, SileroVADOptions
from voxpipe_local.sphinx import PocketsphinxASR
from voxpipe_local.sphinx_model import PocketsphinxOptions
from voxpipe_local.webrtc import WebRTCVAD, WebRTCVADOptions


@hookimpl
def voxpipe_backends() -> list[BackendSpec]:
    # virtual_time: the rules LLM waits only on asyncio.sleep (the loop's timers); the VAD
    # is a synchronous computation per frame, waiting on nothing; espeak waits only on its
    # own CPU work in the loop's executor, which looptime waits for in real time (and the
    # synthesis then costs ~0 virtual ms); so does pocketsphinx, in its stream's executor.
    return [
        BackendSpec(
            "asr",
            "pocketsphinx",
            PocketsphinxASR,
            PocketsphinxOptions,
            PLUGIN_API_VERSION,
            description="CMU PocketSphinx en-us, streaming, optional phrase vocabulary, offline",
            virtual_time=True,
        ),
        BackendSpec(
            "llm",
            "rules",
            RulesLLM,
            RulesOptions,
            PLUGIN_API_VERSION,
            description="deterministic replies by intent (keywords, regex), offline",
            virtual_time=True,
        ),
        BackendSpec(
            "tts",
            "espeak",
            EspeakTTS,
            EspeakOptions,
            PLUGIN_API_VERSION,
            description="espeak-ng formant speech synthesis in process, offline (GPL-3)",
            virtual_time=True,
        ),
        BackendSpec(
            "vad",
            "webrtcvad",
            WebRTCVAD,
            WebRTCVADOptions,
            PLUGIN_API_VERSION,
            description="the WebRTC voice activity detector (GMM), offline",
            virtual_time=True,
        ),
        BackendSpec(
            "vad",
            "silero",
            SileroVAD,
            SileroVADOptions,
            PLUGIN_API_VERSION,
            description="the Silero VAD neural network (ONNX), for noisy audio, offline",
            virtual_time=True,
        ),
    ]
