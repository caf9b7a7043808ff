"""Energy VAD: clicks are not speech; speech is dated from its first frame to its last."""

from __future__ import annotations

import numpy as np
import pytest

from voxpipe import AudioFrame, SimSpeechSource, VoiceAgent
from voxpipe.vad import EnergyVAD, Utterance

LOUD = np.full(320, 8000, dtype=np.int16)
QUIET = np.zeros(320, dtype=np.int16)


def feed(vad: EnergyVAD, pattern: str) -> list[object]:
    """'x' = a voiced 20 ms frame, '.' = a silent one; returns what update() returned."""
    return [
        vad.update(AudioFrame(LOUD if c == "x" else QUIET, 16_000, i * 20.0))
        for i, c in enumerate(pattern)
    ]


def test_a_click_is_not_speech() -> None:
    vad = EnergyVAD(endpoint_ms=100, min_speech_ms=60)
    assert all(r is None for r in feed(vad, "..x..xx......"))
    assert not vad.in_speech


def test_speech_is_dated_back_to_its_first_voiced_frame_and_ends_at_its_last() -> None:
    vad = EnergyVAD(endpoint_ms=100, min_speech_ms=60)
    results = feed(vad, "..xxxxx.x......")
    (utterance,) = [r for r in results if isinstance(r, Utterance)]
    assert utterance.start_ms == 40.0
    assert utterance.end_ms == 180.0  # the end of the lone voiced frame after the gap
    assert utterance.detected_ms == 280.0  # 100 ms of silence later


@pytest.mark.looptime
async def test_a_click_before_speech_opens_no_turn_and_misses_no_budget() -> None:
    agent = VoiceAgent.from_config({"budgets": {"asr_processing": 80}})
    misses: list[object] = []
    agent.on("budget", misses.append)

    class ClickFirst(SimSpeechSource):
        def _quiet(self, start_ms: float) -> AudioFrame:
            click = start_ms == 100.0  # one loud 20 ms frame in the lead silence
            return AudioFrame(LOUD if click else self._silence, self.sample_rate, start_ms)

    session = await agent.run(ClickFirst(["hello there"], agent=agent, lead_ms=1000))
    (turn,) = session.turns
    assert turn.stamps["speech_start"] == pytest.approx(1000.0)
    assert misses == []
