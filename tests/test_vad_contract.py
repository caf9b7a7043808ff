"""The VAD contract: the energy VAD passes it, and VADs that misbehave fail the checks they
break (and only those)."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np
import pytest

from voxpipe.audio import AudioFrame
from voxpipe.hookspecs import BackendContext
from voxpipe.testing import VADContract, voiced_speech


class TestEnergyVAD(VADContract):
    backend_name = "energy"
    distribution = "voxpipe"
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"threshold_db": 5}, "threshold_db"),
        ({"threshold_db": "loud"}, "threshold_db"),
    ]


BROKEN_VADS = """
import numpy as np
from voxpipe.testing import VADContract
from voxpipe.vad import EnergyVAD

class TestEnergy(VADContract):
    backend_name = "energy"
    distribution = "voxpipe"

class AlwaysVoiced:
    def is_voiced(self, frame):
        return True

class TestAlwaysVoiced(TestEnergy):
    def make_vad(self, context):
        return AlwaysVoiced()

class NeverVoiced:
    def is_voiced(self, frame):
        return False

class TestNeverVoiced(TestEnergy):
    def make_vad(self, context):
        return NeverVoiced()

class SharedHangover(EnergyVAD):
    '''The energy VAD holding speech two frames past its end, the count kept on the class.'''
    frames_left = 0
    def is_voiced(self, frame):
        if super().is_voiced(frame):
            SharedHangover.frames_left = 2
            return True
        if SharedHangover.frames_left:
            SharedHangover.frames_left -= 1
            return True
        return False

class TestSharedHangover(TestEnergy):
    def make_vad(self, context):
        return SharedHangover()

class Hoarder(EnergyVAD):
    '''Keeps every frame it decides.'''
    def __init__(self):
        super().__init__()
        self.frames = []
    def is_voiced(self, frame):
        self.frames.append(frame)
        return super().is_voiced(frame)

class TestHoarder(TestEnergy):
    def make_vad(self, context):
        return Hoarder()

class NumpyBool(EnergyVAD):
    def is_voiced(self, frame):
        return np.float64(frame.energy_db) >= self.threshold_db

class TestNumpyBool(TestEnergy):
    def make_vad(self, context):
        return NumpyBool()
"""

CHECKS = ("silence", "speech_is_found", "memory", "share_no_state")
#: The checks each broken VAD must fail; it must pass the others.
FAILS = {
    "TestEnergy": (),
    "TestAlwaysVoiced": ("silence", "speech_is_found"),
    "TestNeverVoiced": ("speech_is_found",),
    "TestSharedHangover": ("share_no_state",),
    "TestHoarder": ("memory",),
    "TestNumpyBool": ("memory",),
}


def test_broken_vads_fail_the_checks_they_break(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plugin=BROKEN_VADS)
    selected = " or ".join(CHECKS)
    result = pytester.runpytest_subprocess("-q", "-rA", "-p", "no:cacheprovider", "-k", selected)
    outcomes = dict(
        (f"{cls}.{test}", outcome)
        for outcome, cls, test in re.findall(
            r"^(PASSED|FAILED) test_plugin\.py::(\w+)::(\w+)", result.stdout.str(), re.M
        )
    )
    expected = {
        f"{cls}.{test}": "FAILED" if any(c in test for c in fails) else "PASSED"
        for cls, fails in FAILS.items()
        for test in (
            "test_silence_is_never_voiced",
            "test_speech_is_found_where_it_starts_and_ends",
            "test_is_voiced_returns_a_bool_and_holds_bounded_memory",
            "test_instances_share_no_state",
        )
    }
    assert outcomes == expected
    result.stdout.fnmatch_lines_random(
        [
            "*digital silence at 8000 Hz in 10 ms frames was voiced at [[]0.0, 10.0*",
            "*speech from 1000 to 2500 ms at 8000 Hz in 10 ms frames: expected one utterance, "
            "found []*",
            "*the first stream's decisions changed while another instance decided another "
            "stream (at [[]*]*keep all state on the instance*",
            "*the memory held grew by * KiB over 4 minutes*never every frame*",
            "*is_voiced returned numpy.bool*: return a bool (wrap a numpy result in bool())*",
        ]
    )


@pytest.mark.parametrize("sample_rate", [8_000, 16_000, 48_000])
def test_the_kits_speech_is_loud_voiced_sound_from_end_to_end(sample_rate: int) -> None:
    speech = voiced_speech(1_500.0, sample_rate)
    assert len(speech) == sample_rate * 3 // 2 and not speech.flags.writeable
    frames = [
        AudioFrame(speech[at : at + sample_rate // 50], sample_rate)
        for at in range(0, len(speech), sample_rate // 50)
    ]
    assert min(f.energy_db for f in frames) > -40  # every 20 ms of it is heard
    spectrum = np.abs(np.fft.rfft(speech.astype(float)))
    pitch_band = np.fft.rfftfreq(len(speech), 1 / sample_rate) < 300
    assert spectrum[pitch_band].sum() < spectrum.sum() / 2  # formants, not a hum
    assert np.array_equal(speech, voiced_speech(1_500.0, sample_rate))


def test_make_vad_builds_from_config_with_the_options() -> None:
    class Quiet(TestEnergyVAD):
        options: ClassVar[dict[str, Any]] = {"threshold_db": -20}

    vad = Quiet().make_vad(BackendContext(24_000, 30))
    assert vad.threshold_db == -20
