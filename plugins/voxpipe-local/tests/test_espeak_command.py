"""The espeak TTS over the espeak-ng command: its WAV stream with a fake length, the kit,
stopping kills the process, and when the command is the fallback."""

from __future__ import annotations

import io
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import test_espeak  # tests/ is on sys.path; its TestEspeakTTS is collected there, not here
from test_espeak import LONG, spoken

from voxpipe.errors import ConfigError
from voxpipe.hookspecs import BackendContext
from voxpipe.testing import ServerControl
from voxpipe_local import espeak
from voxpipe_local.espeak import EspeakOptions, EspeakTTS, LibraryEngine
from voxpipe_local.espeak_command import CommandEngine, read_wav_header

COMMAND = shutil.which("espeak-ng")
needs_command = pytest.mark.skipif(COMMAND is None, reason="the espeak-ng command is not installed")


def wav_stream(samples: bytes, *, extra_chunk: bool = False) -> io.BytesIO:
    """A WAV stream as espeak-ng writes one: sizes it cannot know, set to 0x7ffff000."""
    fake = 0x7FFFF000
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 22_050, 44_100, 2, 16)
    extra = struct.pack("<4sI", b"LIST", 3) + b"abc\x00" if extra_chunk else b""
    return io.BytesIO(b"RIFF" + struct.pack("<I", fake) + b"WAVE" + fmt + extra
                      + struct.pack("<4sI", b"data", fake) + samples)  # fmt: skip


@pytest.mark.parametrize("extra_chunk", [False, True])
def test_the_header_gives_the_format_and_its_sizes_are_ignored(extra_chunk: bool) -> None:
    stream = wav_stream(b"\x01\x00\x02\x00", extra_chunk=extra_chunk)
    assert read_wav_header(stream) == 22_050
    assert stream.read() == b"\x01\x00\x02\x00"  # the samples, however long the header says


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"<html>", "header"),
        (b"RIFF\0\0\0\0AVI LIST", "not a WAV"),
        (b"RIFF\0\0\0\0WAVE", "header"),
    ],
)
def test_what_is_no_wav_stream_is_refused(data: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        read_wav_header(io.BytesIO(data))


@needs_command
class TestEspeakCommandTTS(test_espeak.TestEspeakTTS):
    def make_backend(self, control: ServerControl, context: BackendContext) -> EspeakTTS:
        assert COMMAND
        return EspeakTTS(EspeakOptions(), context, engine=CommandEngine(COMMAND))

    emits_alignment = False  # the command gives no word events

    # Registration is the same backend's: checked once, by TestEspeakTTS.
    test_listed_by_voxpipe_plugins = None  # type: ignore[assignment]
    test_registered_through_the_entry_point = None  # type: ignore[assignment]


def espeak_children() -> list[int]:
    """Processes of this one running espeak-ng (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split()
        except OSError:
            continue
        if fields[1] == "(espeak-ng)" and int(fields[3]) == os.getpid():
            found.append(int(fields[0]))
    return found


@needs_command
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_command_speaks_and_stopping_kills_it() -> None:
    assert COMMAND
    tts = EspeakTTS(EspeakOptions(), BackendContext(24_000, 20), engine=CommandEngine(COMMAND))
    frames = await spoken(tts)
    assert 1.5 <= len(frames) * 0.02 <= 4.0
    assert {len(f.samples) for f in frames} == {480}
    assert np.concatenate([f.samples for f in frames]).std() > 1_000
    stream = tts.synthesize(LONG)
    await anext(stream)
    assert espeak_children()
    await stream.aclose()
    assert not espeak_children()


@needs_command
def test_an_unknown_voice_is_a_config_error_with_the_command_too() -> None:
    assert COMMAND
    with pytest.raises(ConfigError, match="no voice 'xx-nope'"):
        EspeakTTS(EspeakOptions(voice="xx-nope"), engine=CommandEngine(COMMAND))


@pytest.fixture
def no_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if espeakng-loader were not installed."""
    monkeypatch.setattr(espeak, "_library", None)
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)


@needs_command
@pytest.mark.usefixtures("no_loader")
def test_the_command_is_the_fallback_for_the_library() -> None:
    engine = EspeakTTS(EspeakOptions()).engine
    assert isinstance(engine, CommandEngine) and engine.path == COMMAND


@pytest.mark.usefixtures("no_loader")
def test_neither_library_nor_command_is_an_error_naming_both_fixes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install .*apt install espeak-ng") as info:
        EspeakTTS(EspeakOptions())
    assert "espeak-ng not found" in str(info.value)


def test_the_library_is_preferred() -> None:
    assert isinstance(EspeakTTS(EspeakOptions()).engine, LibraryEngine)
