"""The VAD contract: a pytest base class that checks a VAD backend offline, deterministically.

A plugin's test module subclasses it (``class TestMyVAD(VADContract)``), names the backend
and its distribution, and inherits the checks: registration, options, silence, speech found
where it starts and ends (at each rate and frame length the backend supports), bounded
memory over a long stream, and instances that share no state. The backend is built from a
config, as a session builds it; override ``make_vad`` to build it another way, and
``speech`` when the kit's synthetic vowels are not speech to your VAD.
"""

from __future__ import annotations

import functools
import itertools
import tracemalloc
from collections.abc import Iterator, Sequence
from importlib import metadata
from typing import Any, ClassVar

import numpy as np
import pytest

from voxpipe.audio import AudioFrame, Int16Array, iter_frames
from voxpipe.config import load_config
from voxpipe.errors import ConfigError
from voxpipe.hookspecs import BackendContext
from voxpipe.registry import Registry
from voxpipe.turns import TurnSettings, VoiceTracker
from voxpipe.vad import Utterance

#: Where the kit's speech starts in its recordings, and the silence after it (ms).
LEAD_MS = 1_000
TAIL_MS = 1_000
#: The session's turn-taking the decisions go through, with its defaults.
TURNS = TurnSettings()
#: The long stream of the memory check: minutes, those of them that warm up, and how much
#: the memory held may grow after the warm-up (a VAD that keeps one bool per frame grows by
#: 96 KiB; those that keep nothing, by a few bytes).
LONG_STREAM_MINUTES = 5
WARM_UP_MINUTES = 1
MEMORY_GROWTH_LIMIT = 32 * 1024

#: Formants (Hz) of six English vowels, one per syllable in this order: /a/ /i/ /u/ /e/ /ɔ/ /æ/.
_VOWELS = (
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (570, 840, 2410),
    (660, 1720, 2410),
)
_BANDWIDTHS = (80, 100, 120)
_SYLLABLES_PER_S = 4.0


@functools.lru_cache(maxsize=8)
def voiced_speech(duration_ms: float, sample_rate: int, level: float = 0.3) -> Int16Array:
    """``duration_ms`` of synthetic voiced speech, sounding from the first sample to the last:
    vowels at four syllables a second, each the harmonics of a wavering, jittered ~120 Hz
    pitch weighted by its three formants, gliding into the next vowel and dipping between
    syllables. Deterministic; peak at ``level`` of full scale. (A plain harmonic tone is not
    speech to a neural VAD; this is, to Silero as to WebRTC and an energy threshold.)"""
    n = round(sample_rate * duration_ms / 1000)
    t = np.arange(n) / sample_rate
    block = sample_rate // 250  # the pitch jitters every 4 ms
    jitter = np.repeat(np.random.default_rng(0).standard_normal(n // block + 1), block)[:n]
    f0 = 120 * (1 + 0.1 * np.sin(2 * np.pi * 1.1 * t) + 0.05 * np.sin(2 * np.pi * 3.3 * t))
    f0 *= 1 + 0.02 * jitter
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    syllable = t * _SYLLABLES_PER_S
    index = syllable.astype(int)
    within = syllable - index
    vowels = np.array(_VOWELS, dtype=float)
    glide = (0.5 - 0.5 * np.cos(np.pi * np.clip((within - 0.3) / 0.4, 0, 1)))[:, None]
    formants = vowels[index % 6] * (1 - glide) + vowels[(index + 1) % 6] * glide
    voice = np.zeros(n)
    top = min(4_000.0, 0.45 * sample_rate)
    for k in range(1, int(top / 100) + 1):
        harmonic = k * f0
        gain = sum(
            (1 / (j + 1)) / (1 + ((harmonic - formants[:, j]) / width) ** 2)
            for j, width in enumerate(_BANDWIDTHS)
        )
        voice += np.where(harmonic < top, gain, 0) * np.sin(k * phase)
    voice *= np.clip(1.4 * np.sin(np.pi * within), 0, 1) ** 0.7
    samples: Int16Array = np.round(voice / np.max(np.abs(voice)) * level * 32767).astype(np.int16)
    samples.flags.writeable = False
    return samples


class VADContract:
    """Checks for a VAD backend (``is_voiced(frame) -> bool``). Set ``backend_name`` and
    ``distribution``; the other class attributes have defaults."""

    #: The name a config uses (``[vad] backend = "..."``).
    backend_name: ClassVar[str]
    #: The distribution that provides it, as ``voxpipe plugins`` shows it.
    distribution: ClassVar[str]
    #: The options the checks build it with.
    options: ClassVar[dict[str, Any]] = {}
    #: Options the options model must refuse, each with text the error must contain.
    bad_options: ClassVar[Sequence[tuple[dict[str, Any], str]]] = ()
    #: The sample rates and frame lengths the backend supports (a session's ``[agent]
    #: sample_rate`` and ``frame_ms``): the speech checks run at each combination.
    sample_rates: ClassVar[Sequence[int]] = (8_000, 16_000, 24_000, 48_000)
    frame_lengths_ms: ClassVar[Sequence[int]] = (10, 20, 30)
    #: How far from where the speech starts and ends the session may date them (ms).
    tolerance_ms: ClassVar[float] = 100.0
    #: How long the speech of the speech checks lasts (ms).
    speech_ms: ClassVar[float] = 1_500.0

    def make_vad(self, context: BackendContext) -> Any:
        """A new instance for one stream of ``context``'s audio: by default built from a
        config with ``options``, as a session builds it."""
        agent = {"sample_rate": context.sample_rate, "frame_ms": context.frame_ms}
        vad = {"backend": self.backend_name, **self.options}
        return load_config({"agent": agent, "vad": vad}).build("vad")

    def speech(self, sample_rate: int) -> Int16Array:
        """Speech at ``sample_rate``, sounding from its first sample to its last:
        ``speech_ms`` of the kit's synthetic vowels unless overridden."""
        return voiced_speech(self.speech_ms, sample_rate)

    # --- registration and options ------------------------------------------------------

    def test_registered_through_the_entry_point(self) -> None:
        infos = [b for b in Registry().backends("vad") if b.name == self.backend_name]
        assert infos, (
            f"no vad backend {self.backend_name!r} among the installed entry points: is the "
            "plugin installed (pip install -e .) with a [project.entry-points.voxpipe]?"
        )
        (info,) = infos
        assert info.status == "ok", info.status
        assert info.distribution == self.distribution
        assert info.version == metadata.version(self.distribution)

    def test_bad_options_are_config_errors_naming_the_key(self) -> None:
        for options, expected in self.bad_options:
            with pytest.raises(ConfigError) as info:
                load_config({"vad": {"backend": self.backend_name, **options}})
            assert "[vad]" in str(info.value) and expected in str(info.value)

    def test_unknown_option_is_a_config_error(self) -> None:
        config = {"vad": {"backend": self.backend_name, "no_such_option_xyz": 1}}
        with pytest.raises(ConfigError, match="no_such_option_xyz: unknown option"):
            load_config(config)

    # --- decisions -----------------------------------------------------------------------

    def test_silence_is_never_voiced(self) -> None:
        for rate, frame_ms in self._formats():
            quiet = np.random.default_rng(1).normal(0, 32768 * 10 ** (-70 / 20), rate * 3)
            for name, audio in (
                ("digital silence", np.zeros(rate * 3, dtype=np.int16)),
                ("noise at -70 dBFS", np.round(quiet).astype(np.int16)),
            ):
                vad = self.make_vad(BackendContext(rate, frame_ms))
                voiced = [
                    f.start_ms for f in iter_frames(audio, rate, frame_ms) if vad.is_voiced(f)
                ]
                assert not voiced, (
                    f"{name} at {rate} Hz in {frame_ms} ms frames was voiced at {voiced[:5]} ms"
                )

    def test_speech_is_found_where_it_starts_and_ends(self) -> None:
        for rate, frame_ms in self._formats():
            speech = self.speech(rate)
            audio = self._recording(speech, rate)
            found = self._utterances(
                self.make_vad(BackendContext(rate, frame_ms)), audio, rate, frame_ms
            )
            end_ms = LEAD_MS + len(speech) * 1000 / rate
            where = f"speech from {LEAD_MS} to {end_ms:.0f} ms at {rate} Hz in {frame_ms} ms frames"
            assert len(found) == 1, f"{where}: expected one utterance, found {found}"
            (utterance,) = found
            assert abs(utterance.start_ms - LEAD_MS) <= self.tolerance_ms, (
                f"{where}: it started at {utterance.start_ms:.0f} ms, more than "
                f"{self.tolerance_ms:.0f} ms off"
            )
            assert abs(utterance.end_ms - end_ms) <= self.tolerance_ms, (
                f"{where}: it ended at {utterance.end_ms:.0f} ms, more than "
                f"{self.tolerance_ms:.0f} ms off"
            )

    def test_is_voiced_returns_a_bool_and_holds_bounded_memory(self) -> None:
        """Minutes of speech and silence: the memory Python holds (tracemalloc) may not grow
        after the first (a VAD that keeps frames, or a value per frame, grows without end)."""
        rate, frame_ms = 16_000, 20
        vad = self.make_vad(BackendContext(rate, frame_ms))
        frames = self._fresh_frames(self._recording(self.speech(rate), rate), rate, frame_ms)
        per_minute = 60_000 // frame_ms

        def decide(minutes: int) -> None:
            for frame in itertools.islice(frames, minutes * per_minute):
                voiced = vad.is_voiced(frame)
                kind = type(voiced)
                assert isinstance(voiced, bool), (
                    f"is_voiced returned {kind.__module__}.{kind.__qualname__}: return a bool "
                    "(wrap a numpy result in bool())"
                )

        tracemalloc.start()
        try:
            decide(WARM_UP_MINUTES)
            warm, _ = tracemalloc.get_traced_memory()
            decide(LONG_STREAM_MINUTES - WARM_UP_MINUTES)
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert held - warm <= MEMORY_GROWTH_LIMIT, (
            f"the memory held grew by {(held - warm) / 1024:.0f} KiB over "
            f"{LONG_STREAM_MINUTES - WARM_UP_MINUTES} minutes of audio after the first: keep "
            "a bounded window (a deque with maxlen), never every frame or a value per frame"
        )

    def test_instances_share_no_state(self) -> None:
        """Two streams, speech at different times, decided frame by frame in turn by two
        instances, get the decisions each gets from an instance alone."""
        rate, frame_ms = 16_000, 20
        context = BackendContext(rate, frame_ms)
        speech = self.speech(rate)
        streams = [
            list(iter_frames(self._recording(speech, rate, lead_ms, tail_ms), rate, frame_ms))
            for lead_ms, tail_ms in ((LEAD_MS, TAIL_MS), (300, TAIL_MS + LEAD_MS - 300))
        ]
        alone = []
        for frames in streams:
            vad = self.make_vad(context)
            alone.append([vad.is_voiced(frame) for frame in frames])
        vads = [self.make_vad(context) for _ in streams]
        together: list[list[bool]] = [[] for _ in streams]
        for at_once in zip(*streams, strict=True):
            for vad, frame, decisions in zip(vads, at_once, together, strict=True):
                decisions.append(vad.is_voiced(frame))
        for name, got, expected in zip(("first", "second"), together, alone, strict=True):
            differ = [
                i * frame_ms for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e
            ]
            assert not differ, (
                f"the {name} stream's decisions changed while another instance decided "
                f"another stream (at {differ[:5]} ms): keep all state on the instance, none on "
                "the class or the module"
            )

    # --- helpers -------------------------------------------------------------------------

    def _formats(self) -> Iterator[tuple[int, int]]:
        return itertools.product(self.sample_rates, self.frame_lengths_ms)

    @staticmethod
    def _recording(
        speech: Int16Array, rate: int, lead_ms: float = LEAD_MS, tail_ms: float = TAIL_MS
    ) -> Int16Array:
        """``speech`` from ``lead_ms``, in digital silence, and ``tail_ms`` of it after."""
        lead, tail = (
            np.zeros(round(rate * ms / 1000), dtype=np.int16) for ms in (lead_ms, tail_ms)
        )
        return np.concatenate((lead, speech, tail))

    @staticmethod
    def _utterances(vad: Any, audio: Int16Array, rate: int, frame_ms: int) -> list[Utterance]:
        """What the session's turn-taking makes of ``vad``'s decisions."""
        tracker = VoiceTracker(TURNS.min_speech_ms, TURNS.endpoint_ms)
        found = [tracker.update(f, vad.is_voiced(f)) for f in iter_frames(audio, rate, frame_ms)]
        return [u for u in found if u is not None]

    @staticmethod
    def _fresh_frames(audio: Int16Array, rate: int, frame_ms: int) -> Iterator[AudioFrame]:
        """``audio`` over and over, each frame new samples (keeping one costs memory)."""
        size = rate * frame_ms // 1000
        pieces = [audio[at : at + size] for at in range(0, len(audio) - size + 1, size)]
        for i, piece in enumerate(itertools.cycle(pieces)):
            yield AudioFrame(piece.copy(), rate, float(i * frame_ms))
