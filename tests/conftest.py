"""Shared test fixtures: an agent on sim backends with round latencies."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from voxpipe import TurnSettings, VoiceAgent
from voxpipe.bench import REPLY
from voxpipe.sim import SimASR, SimASROptions, SimLLM, SimLLMOptions, SimTTS, SimTTSOptions

pytest_plugins = ["pytester"]

# The tests share run_cli.py; --import-mode=importlib does not put this folder on sys.path.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def make_agent() -> Callable[..., VoiceAgent]:
    """An agent on sim backends with round latencies: speech ends -> final transcript 300 ms
    (200 ms endpoint + 100 ms), LLM first token 300 ms then a word per 20 ms answering
    ``bench.REPLY``, TTS first audio 150 ms at 4x real time, 400 ms a word."""

    def make(
        *,
        llm: Any = None,
        tts: Any = None,
        asr: Any = None,
        responses: dict[str, str] | None = None,
        **settings: Any,
    ) -> VoiceAgent:
        turns = settings.pop("turns", None) or TurnSettings(endpoint_ms=200)
        return VoiceAgent(
            asr or SimASR(SimASROptions(finalization_ms=100)),
            llm
            or SimLLM(
                SimLLMOptions(
                    first_token_ms=300,
                    tokens_per_second=50,
                    responses=responses or {"default": REPLY},
                )
            ),
            tts or SimTTS(SimTTSOptions(first_chunk_ms=150, speed=4.0)),
            turns=turns,
            **settings,
        )

    return make
