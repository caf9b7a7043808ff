"""The VAD and the speech tracker: clicks are not speech; speech is dated from its first
frame to its last; the energy VAD is the default [vad] backend."""

from __future__ import annotations

import numpy as np
import pytest

from voxpipe import AudioFrame, ConfigError, SimSpeechSource, VoiceAgent, load_config
from voxpipe.turns import VoiceTracker
from voxpipe.vad import EnergyVAD, Utterance

LOUD = np.full(320, 8000, dtype=np.int16)
QUIET = np.zeros(320, dtype=np.int16)


def feed(tracker: VoiceTracker, pattern: str) -> list[object]:
    """'x' = a voiced 20 ms frame, '.' = a silent one; returns what update() returned."""
    vad = EnergyVAD()
    out = []
    for i, c in enumerate(pattern):
        frame = AudioFrame(LOUD if c == "x" else QUIET, 16_000, i * 20.0)
        out.append(tracker.update(frame, vad.is_voiced(frame)))
    return out


def test_the_energy_vad_compares_frame_energy_with_its_threshold() -> None:
    frame = AudioFrame(np.full(320, 330, dtype=np.int16), 16_000)  # about -40 dBFS
    assert EnergyVAD(-41).is_voiced(frame)
    assert not EnergyVAD(-39).is_voiced(frame)


def test_a_click_is_not_speech() -> None:
    tracker = VoiceTracker(min_speech_ms=60, endpoint_ms=100)
    assert all(r is None for r in feed(tracker, "..x..xx......"))
    assert not tracker.in_speech


def test_speech_is_dated_back_to_its_first_voiced_frame_and_ends_at_its_last() -> None:
    tracker = VoiceTracker(min_speech_ms=60, endpoint_ms=100)
    results = feed(tracker, "..xxxxx.x......")
    (utterance,) = [r for r in results if isinstance(r, Utterance)]
    assert utterance.start_ms == 40.0
    assert utterance.end_ms == 180.0  # the end of the lone voiced frame after the gap
    assert utterance.detected_ms == 280.0  # 100 ms of silence later


def test_vad_and_turn_settings_come_from_config() -> None:
    config = load_config(
        {"vad": {"backend": "energy", "threshold_db": -30}, "turns": {"endpoint_ms": 500}}
    )
    vad = config.build("vad")
    assert isinstance(vad, EnergyVAD) and vad.threshold_db == -30
    assert config.turns.endpoint_ms == 500
    with pytest.raises(ConfigError, match=r"\[agent\] vad_threshold_db has moved.*\[vad\]"):
        load_config({"agent": {"vad_threshold_db": -30}})
    with pytest.raises(ConfigError, match=r"\[asr\] endpoint_ms has moved.*\[turns\]"):
        load_config({"asr": {"backend": "sim", "endpoint_ms": 300}})
    with pytest.raises(ConfigError, match=r"\[vad\] threshold_db"):
        load_config({"vad": {"threshold_db": 3}})


@pytest.mark.looptime
async def test_a_click_before_speech_opens_no_turn_and_misses_no_budget() -> None:
    agent = VoiceAgent.from_config({"budgets": {"asr_processing": 80}})
    misses: list[object] = []
    agent.on("budget", misses.append)

    class ClickFirst(SimSpeechSource):
        def _quiet(self, start_ms: float) -> AudioFrame:
            click = start_ms == 100.0  # one loud 20 ms frame in the lead silence
            return AudioFrame(LOUD if click else self._silence, self.sample_rate, start_ms, "")

    session = await agent.run(ClickFirst(["hello there"], lead_ms=1000))
    (turn,) = session.turns
    assert turn.stamps["speech_start"] == pytest.approx(1000.0)
    assert misses == []
