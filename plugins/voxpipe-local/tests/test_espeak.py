"""The espeak TTS: the conformance kit, audible speech at the session rate, streaming while
it synthesises, stopping, and one synthesis at a time."""

from __future__ import annotations

import asyncio
import sys
from contextlib import aclosing
from typing import Any, ClassVar

import espeakng_loader  # type: ignore[import-untyped]
import numpy as np
import pytest

from voxpipe import SimSpeechSource, VoiceAgent, load_config
from voxpipe.audio import AudioFrame
from voxpipe.errors import ConfigError
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import TTSOutput
from voxpipe.testing import ServerControl, TTSContract
from voxpipe_local import espeak
from voxpipe_local.espeak import SYNTH_LOCK, EspeakOptions, EspeakTTS

PHRASE = "Hello there. How can I help you today?"
#: Some twenty seconds of speech: long enough to stop in the middle.
LONG = " ".join(["This is a long sentence that espeak will take a while to say."] * 8)


class TestEspeakTTS(TTSContract):
    backend_name = "espeak"
    distribution = "voxpipe-local"
    failures = ()  # no provider: the library is in this process
    transport_closes = False
    emits_alignment = True  # the library's word events (tests/test_espeak_alignment.py)
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"rate": 10}, "rate"),
        ({"pitch": 100}, "pitch"),
        ({"voice": "../../etc"}, "voice"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> EspeakTTS:
        return EspeakTTS(EspeakOptions(), context)


async def spoken(tts: EspeakTTS, text: str = PHRASE) -> list[AudioFrame]:
    """The audio of ``text`` (without its alignment)."""
    return [item async for item in tts.synthesize(text) if isinstance(item, AudioFrame)]


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("sample_rate", [16_000, 24_000])
async def test_audible_speech_of_plausible_length_at_the_session_rate(sample_rate: int) -> None:
    frames = await spoken(EspeakTTS(EspeakOptions(), BackendContext(sample_rate, 20)))
    assert {(f.sample_rate, len(f.samples)) for f in frames} == {(sample_rate, sample_rate // 50)}
    assert [f.start_ms for f in frames] == [20.0 * i for i in range(len(frames))]
    seconds = len(frames) * 0.02
    assert 1.5 <= seconds <= 4.0  # eight words at 175 words per minute, with pauses
    audio = np.concatenate([f.samples for f in frames])
    assert AudioFrame(audio, sample_rate).energy_db > -30  # speech, not a whisper
    assert sum(f.energy_db > -40 for f in frames) > len(frames) / 2


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_rate_is_words_per_minute() -> None:
    slow = await spoken(EspeakTTS(EspeakOptions(rate=120)))
    fast = await spoken(EspeakTTS(EspeakOptions(rate=360)))
    assert len(slow) > 2 * len(fast)  # three times the rate: well under half the time


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_first_frame_comes_while_synthesis_goes_on() -> None:
    async with aclosing(EspeakTTS(EspeakOptions()).synthesize(LONG)) as stream:
        first = await anext(stream)  # audio: the first word's piece waits for the second word
        assert isinstance(first, AudioFrame) and first.start_ms == 0
        assert SYNTH_LOCK.locked()  # still synthesising
        rest = [item async for item in stream if isinstance(item, AudioFrame)]
    assert len(rest) * 0.02 > 15 and not SYNTH_LOCK.locked()


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("how", ["aclose", "cancel"])
async def test_stopping_stops_the_synthesis(how: str) -> None:
    got: list[TTSOutput] = []
    stream = EspeakTTS(EspeakOptions()).synthesize(LONG)
    if how == "aclose":
        got.append(await anext(stream))
        await stream.aclose()
    else:
        first = asyncio.Event()

        async def consume() -> None:
            async for frame in stream:
                got.append(frame)
                first.set()

        task = asyncio.create_task(consume())
        await first.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not SYNTH_LOCK.locked()  # the worker has returned, aborted
    assert sum(isinstance(item, AudioFrame) for item in got) * 0.02 < 5  # of twenty seconds
    # The library is free and whole: the next phrase is spoken in full.
    assert len(await spoken(EspeakTTS(EspeakOptions()))) * 0.02 > 1.5


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_phrases_synthesised_at_once_take_turns() -> None:
    tts = EspeakTTS(EspeakOptions())
    alone = await spoken(tts)
    together = await asyncio.gather(*(spoken(tts) for _ in range(3)))
    # Each phrase whole, not two mixed; espeak varies a little from one run to the next.
    n = len(alone) - 2
    envelope = np.array([f.energy_db for f in alone[:n]])
    for frames in together:
        assert abs(len(frames) - len(alone)) <= 2
        assert np.abs(np.array([f.energy_db for f in frames[:n]]) - envelope).mean() < 2


def test_an_unknown_voice_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\[tts\] voice: espeak-ng has no voice 'xx-nope'"):
        EspeakTTS(EspeakOptions(voice="xx-nope"))


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_espeak_speaks_in_a_conversation() -> None:
    agent = VoiceAgent.from_config(load_config({"tts": {"backend": "espeak", "rate": 200}}))
    metrics = await agent.run(SimSpeechSource(["hello there"]))
    (turn,) = metrics.turns
    assert [(a.backend, a.outcome) for a in turn.attempts if a.stage == "tts"] == [("espeak", "ok")]
    assert "first_sound" in turn.stamps


def test_no_espeakng_loader_is_an_error_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import fails
    with pytest.raises(ConfigError, match=r"espeak-ng not found.*pip install"):
        espeak._paths()


def test_a_missing_library_is_an_error_saying_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(espeakng_loader, "get_library_path", lambda: "/nowhere/libespeak-ng.so")
    with pytest.raises(ConfigError, match=r"not found beside /nowhere.*--force-reinstall"):
        espeak._paths()
