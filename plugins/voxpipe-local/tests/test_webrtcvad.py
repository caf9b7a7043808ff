"""The webrtcvad VAD: the rates and frames it takes, speech found in silence and in noise,
what the noise gate adds to WebRTC, and a conversation on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from voxpipe import SimSpeechSource, VoiceAgent, load_config
from voxpipe.audio import AudioFrame, Int16Array, iter_frames
from voxpipe.errors import ConfigError
from voxpipe.hookspecs import BackendContext
from voxpipe.sim.voice import speech_like
from voxpipe.turns import TurnSettings, VoiceTracker
from voxpipe.vad import Utterance
from voxpipe_local.espeak import EspeakOptions, EspeakTTS
from voxpipe_local.webrtc import WebRTCVAD, WebRTCVADOptions

LEAD_MS, SPEECH_MS, TAIL_MS = 900, 1200, 800
#: The session's default onset hysteresis: enough with this VAD.
MIN_SPEECH_MS = TurnSettings().min_speech_ms


def noise(ms: float, rate: int, db: float, seed: int = 7) -> np.typing.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(round(rate * ms / 1000)) * 32767 * 10 ** (db / 20)


def recording(rate: int, background: str, speech_at_ms: float = LEAD_MS) -> Int16Array:
    """Speech (``SPEECH_MS`` from ``speech_at_ms``) in digital silence or in room noise from
    the first sample."""
    total_ms = speech_at_ms + SPEECH_MS + TAIL_MS
    audio = np.zeros(round(rate * total_ms / 1000))
    if background == "noise":
        audio += noise(total_ms, rate, -40)
    at = round(rate * speech_at_ms / 1000)
    audio[at : at + round(rate * SPEECH_MS / 1000)] += speech_like(SPEECH_MS, rate)
    return audio.clip(-32768, 32767).astype(np.int16)


def utterances(
    vad: WebRTCVAD, samples: Int16Array, rate: int, frame_ms: int = 20
) -> list[Utterance]:
    """The utterances the session's tracker makes of ``vad``'s decisions."""
    tracker = VoiceTracker(min_speech_ms=MIN_SPEECH_MS, endpoint_ms=200)
    found = [tracker.update(f, vad.is_voiced(f)) for f in iter_frames(samples, rate, frame_ms)]
    return [u for u in found if u is not None]


def vad(frame_ms: int = 20, rate: int = 16_000, **options: float) -> WebRTCVAD:
    return WebRTCVAD(WebRTCVADOptions.model_validate(options), BackendContext(rate, frame_ms))


@pytest.mark.parametrize("background", ["silence", "noise"])
@pytest.mark.parametrize("rate", [8_000, 16_000, 24_000, 44_100, 48_000])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_speech_is_found_within_100_ms(rate: int, frame_ms: int, background: str) -> None:
    found = utterances(vad(frame_ms, rate), recording(rate, background), rate, frame_ms)
    assert len(found) == 1, found  # nothing in the noise's onset or the noise itself
    assert abs(found[0].start_ms - LEAD_MS) <= 100, found
    assert abs(found[0].end_ms - (LEAD_MS + SPEECH_MS)) <= 100, found


def test_the_noise_gate_cuts_webrtcs_hangover_and_its_start_up() -> None:
    audio = recording(16_000, "noise")
    (gated,) = utterances(vad(), audio, 16_000)
    *first_noise, webrtc = utterances(vad(noise_gate_db=0), audio, 16_000)
    end_ms = LEAD_MS + SPEECH_MS
    assert webrtc.end_ms - end_ms >= 80  # WebRTC holds on past the speech
    assert [u.start_ms for u in first_noise] == [0.0]  # and takes the first noise for speech
    assert abs(gated.end_ms - end_ms) <= 40


@pytest.mark.parametrize("before_db", [None, -80])
def test_a_rising_noise_floor_stops_being_speech_within_the_window(
    before_db: float | None,
) -> None:
    """Digital silence or a quiet room, then a fan: WebRTC can take the new noise for speech
    and hold on to it."""
    rate, fan_at_ms, speech_at_ms = 16_000, 300, 3_000
    audio = recording(rate, "noise", speech_at_ms)
    at = round(rate * fan_at_ms / 1000)
    audio[:at] = 0 if before_db is None else noise(fan_at_ms, rate, before_db).astype(np.int16)

    *fan, speech = utterances(vad(noise_window_ms=2_000), audio, rate)
    assert all(u.end_ms <= fan_at_ms + 2_000 + 100 for u in fan)
    assert abs(speech.start_ms - speech_at_ms) <= 100
    assert abs(speech.end_ms - (speech_at_ms + SPEECH_MS)) <= 100
    if before_db is not None:  # without the gate: speech from the fan on, never ended
        assert not utterances(vad(noise_gate_db=0), audio, rate)


def test_audio_under_10_ms_waits_for_the_next_frame() -> None:
    detector, speech = vad(noise_gate_db=0), speech_like(200, 16_000)
    scraps = [AudioFrame(speech[at : at + 80], 16_000, at / 16) for at in range(0, 3200, 80)]
    decisions = [detector.is_voiced(scrap) for scrap in scraps]  # 5 ms each
    assert decisions[0] is False  # nothing decided yet
    assert all(decisions[5:])  # the speech, once 10 ms pieces complete


def test_a_frame_ms_webrtc_cannot_cut_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\[vad\] webrtcvad .* frames of 25 ms.*frame_ms"):
        vad(frame_ms=25)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"aggressiveness": 4}, "aggressiveness"),
        ({"aggressiveness": "high"}, "aggressiveness"),
        ({"noise_gate_db": -1}, "noise_gate_db"),
        ({"noise_gate_db": float("nan")}, "noise_gate_db"),
        ({"noise_window_ms": 100}, "noise_window_ms"),
        ({"min_voiced_frames": 3}, "min_voiced_frames: unknown option"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[vad\] {key}"):
        load_config({"vad": {"backend": "webrtcvad", **options}})


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_webrtcvad_takes_turns_in_a_conversation() -> None:
    agent = VoiceAgent.from_config(load_config({"vad": {"backend": "webrtcvad"}}))
    metrics = await agent.run(SimSpeechSource(["hello there", "what is the weather"]))
    assert len(metrics.turns) == 2
    assert all("first_sound" in turn.stamps for turn in metrics.turns)


def espeak_speech(rate: int) -> tuple[Int16Array, float, float]:
    """A sentence spoken by espeak at ``rate``, and where its sound starts and ends (ms)."""
    tts = EspeakTTS(EspeakOptions(), BackendContext(rate, 10))
    frames = asyncio.run(_collect(tts.synthesize("How can I help you with that today?")))
    audible = [f for f in frames if f.energy_db > -50]
    return np.concatenate([f.samples for f in frames]), audible[0].start_ms, audible[-1].end_ms


async def _collect(stream: AsyncIterator[Any]) -> list[AudioFrame]:
    return [item async for item in stream if isinstance(item, AudioFrame)]  # no Alignment


@pytest.mark.parametrize("background", ["silence", "noise"])
@pytest.mark.parametrize("rate", [16_000, 24_000])
def test_espeak_speech_is_found_within_100_ms(rate: int, background: str) -> None:
    speech, start_ms, end_ms = espeak_speech(rate)
    audio = np.zeros(rate * 3 + len(speech))
    at = rate * 1  # one second in
    audio[at : at + len(speech)] += speech
    if background == "noise":
        audio += noise(len(audio) * 1000 / rate, rate, -45)
    found = utterances(vad(20, rate), audio.clip(-32768, 32767).astype(np.int16), rate)
    assert len(found) == 1, found
    assert abs(found[0].start_ms - (1000 + start_ms)) <= 100, (found, start_ms)
    assert abs(found[0].end_ms - (1000 + end_ms)) <= 100, (found, end_ms)
