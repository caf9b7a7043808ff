"""The silero VAD: the VAD contract, espeak-ng's speech found in silence and in noise at 16
and 48 kHz in frames of any length, where it beats an energy threshold, and one model per
process."""

from __future__ import annotations

import functools
import threading
import time
from typing import Any, ClassVar

import numpy as np
import onnxruntime  # type: ignore[import-untyped]
import pytest
from test_webrtcvad import espeak_speech, noise, utterances

from voxpipe.audio import AudioFrame, Int16Array, iter_frames
from voxpipe.hookspecs import BackendContext
from voxpipe.testing import VADContract
from voxpipe.vad import EnergyVAD
from voxpipe_local import silero
from voxpipe_local.silero import SileroVAD, SileroVADOptions

#: Where the speech starts in the recordings (ms), and the noise level: ~8 dB below
#: espeak-ng's speech, above the energy VAD's threshold (-40 dBFS).
SPEECH_AT_MS = 1_000
NOISE_DBFS = -30


class TestSileroVAD(VADContract):
    backend_name = "silero"
    distribution = "voxpipe-local"
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"threshold": 0.1}, "threshold"),
        ({"threshold": 1.2}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"noise_gate_db": -1}, "noise_gate_db"),
        ({"noise_window_ms": 100}, "noise_window_ms"),
        ({"neg_threshold": 0.3}, "neg_threshold: unknown option"),
    ]


def pink_noise(ms: float, rate: int, db: float, seed: int = 7) -> np.typing.NDArray[np.float64]:
    """Noise with equal power per octave from 20 Hz (a room's rumble and hiss), RMS ``db``
    dBFS."""
    n = round(rate * ms / 1000)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    hz = np.fft.rfftfreq(n, 1 / rate)
    pink: np.typing.NDArray[np.float64] = np.fft.irfft(
        np.where(hz >= 20, spectrum / np.sqrt(np.maximum(hz, 20)), 0), n
    )
    return pink / np.sqrt(np.mean(pink**2)) * 32767 * 10 ** (db / 20)


@functools.cache
def sentence(rate: int) -> tuple[Int16Array, float, float]:
    """espeak-ng's sentence, where its voice starts and where its sound ends (ms).

    The voice starts at the vowel of "How": the first 10 ms above -30 dBFS. The breathy
    /h/ before it (~60 ms, -43 to -35 dBFS) is not speech to the model, nor is it heard in
    noise at ``NOISE_DBFS``."""
    speech, _, end_ms = espeak_speech(rate)
    tens = iter_frames(speech, rate, 10)
    voice_ms = next(f.start_ms for f in tens if f.energy_db > -30)
    return speech, voice_ms, end_ms


def recording(rate: int, background: str) -> tuple[Int16Array, float, float]:
    """The sentence ``SPEECH_AT_MS`` into three seconds of ``background``, and where its voice
    starts and its sound ends (ms)."""
    speech, voice_ms, end_ms = sentence(rate)
    audio = np.zeros(rate * 3 + len(speech))
    at = rate * SPEECH_AT_MS // 1000
    audio[at : at + len(speech)] += speech
    total_ms = len(audio) * 1000 / rate
    if background == "white noise":
        audio += noise(total_ms, rate, NOISE_DBFS)
    elif background == "pink noise":
        audio += pink_noise(total_ms, rate, NOISE_DBFS)
    samples = audio.clip(-32768, 32767).astype(np.int16)
    return samples, SPEECH_AT_MS + voice_ms, SPEECH_AT_MS + end_ms


def vad(rate: int = 16_000, frame_ms: int = 20, **options: float) -> SileroVAD:
    return SileroVAD(SileroVADOptions.model_validate(options), BackendContext(rate, frame_ms))


@pytest.mark.parametrize("background", ["silence", "white noise"])
@pytest.mark.parametrize("rate", [16_000, 48_000])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_speech_is_found_within_100_ms(rate: int, frame_ms: int, background: str) -> None:
    audio, voice_ms, end_ms = recording(rate, background)
    found = utterances(vad(rate, frame_ms), audio, rate, frame_ms)
    assert len(found) == 1, found
    assert abs(found[0].start_ms - voice_ms) <= 100, (found, voice_ms)
    assert abs(found[0].end_ms - end_ms) <= 100, (found, end_ms)


@pytest.mark.parametrize("background", ["white noise", "pink noise"])
def test_in_noise_the_energy_vad_hears_no_end_and_silero_hears_the_speech(
    background: str,
) -> None:
    audio, voice_ms, end_ms = recording(16_000, background)
    frames = list(iter_frames(audio, 16_000, 20))
    energy = EnergyVAD()
    assert all(energy.is_voiced(f) for f in frames)  # the noise is "speech" from the start
    assert not utterances(energy, audio, 16_000)  # that never ends

    (found,) = utterances(vad(), audio, 16_000)
    assert abs(found.start_ms - voice_ms) <= 100, (found, voice_ms)
    assert abs(found.end_ms - end_ms) <= 100, (found, end_ms)


def test_without_the_noise_gate_speech_ends_late_in_noise() -> None:
    """The model alone holds speech ~200 ms past its end in noise; the gate cuts it."""
    audio, _, end_ms = recording(16_000, "white noise")
    (gated,) = utterances(vad(), audio, 16_000)
    (model_alone,) = utterances(vad(noise_gate_db=0), audio, 16_000)
    assert model_alone.end_ms - end_ms >= 150
    assert abs(gated.end_ms - end_ms) <= 100


@pytest.mark.parametrize("frame_ms", [5, 25, 32, 100])
def test_frames_of_any_length_are_buffered_into_windows(frame_ms: int) -> None:
    audio, voice_ms, end_ms = recording(16_000, "silence")
    found = utterances(vad(frame_ms=frame_ms), audio, 16_000, frame_ms)
    assert len(found) == 1, found
    assert abs(found[0].start_ms - voice_ms) <= 100, (found, voice_ms)
    assert abs(found[0].end_ms - end_ms) <= 100, (found, end_ms)


def test_a_frame_that_completes_no_window_keeps_the_last_decision() -> None:
    audio, voice_ms, _ = recording(16_000, "silence")
    detector = vad(frame_ms=10)
    at = round(16 * (voice_ms + 300))  # well into the speech
    decisions = [
        detector.is_voiced(AudioFrame(audio[i : i + 160], 16_000, i / 16))
        for i in range(0, at, 160)
    ]
    assert decisions[-1]
    # 10 ms frames complete a 32 ms window in three or four: the decision holds between.
    completes = [(i + 1) * 160 // 512 > i * 160 // 512 for i in range(len(decisions))]
    for i in range(1, len(decisions)):
        if not completes[i]:
            assert decisions[i] == decisions[i - 1]


def test_one_model_per_process_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Instances share the model; loading it at once from several threads loads it once."""
    assert vad()._model is vad()._model is silero.model()
    assert silero.model().get_session_options().intra_op_num_threads == 1
    assert silero.model().get_session_options().inter_op_num_threads == 1

    loads: list[object] = []
    real = onnxruntime.InferenceSession

    def slow_load(*args: Any, **kwargs: Any) -> object:
        time.sleep(0.05)
        loads.append(real(*args, **kwargs))
        return loads[-1]

    monkeypatch.setattr(silero, "_model", None)
    monkeypatch.setattr(onnxruntime, "InferenceSession", slow_load)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(silero.model())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and got == loads * 4
