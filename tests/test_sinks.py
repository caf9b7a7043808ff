"""The core's sinks pass the sink contract; the WAV file holds nothing of a reply after its cut,
is written as the call goes (the same file the in-memory sink wrote) and fails early on a bad
path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from voxpipe.audio import AudioFrame, Int16Array, read_wav, write_wav
from voxpipe.clock import SessionClock
from voxpipe.errors import AudioFormatError, UsageError
from voxpipe.io import NullSink, WavSink
from voxpipe.io.recorder import BLOCK_MS, WINDOW_MS
from voxpipe.testing import SinkContract


class TestNullSink(SinkContract):
    def make_sink(self, sample_rate: int) -> NullSink:
        return NullSink()


class TestWavSink(SinkContract):
    @pytest.fixture(autouse=True)
    def _in_tmp_path(self, tmp_path: Path) -> None:
        self.path = tmp_path / "agent.wav"

    def make_sink(self, sample_rate: int) -> WavSink:
        return WavSink(self.path, sample_rate)

    @pytest.mark.looptime
    async def test_the_file_holds_no_audio_after_the_cut(self) -> None:
        rate = 16_000
        sink = self.make_sink(rate)
        clock = SessionClock()
        silent = await self.play_reply(sink, clock, rate, 0.0, self.cut_ms)
        assert silent is not None
        await self.play_reply(sink, clock, rate, self.next_reply_ms)
        await sink.aclose()
        samples, file_rate = read_wav(self.path)
        cut, resumed = (round(ms * file_rate / 1000) for ms in (silent, self.next_reply_ms))
        assert file_rate == rate
        assert np.count_nonzero(samples[:cut]) > 0.9 * cut  # the reply, up to the cut
        assert not samples[cut:resumed].any()  # nothing of it after the cut
        assert samples[resumed:].any()  # the next reply


def reference_wav(path: Path, events: list[AudioFrame | float], rate: int) -> None:
    """What the in-memory WavSink wrote: every frame kept, rendered on close."""
    pieces: list[tuple[int, Int16Array]] = []
    for item in events:
        if isinstance(item, AudioFrame):
            pieces.append((round(item.start_ms * rate / 1000), item.samples))
        else:
            at = round(item * rate / 1000)
            while pieces and pieces[-1][0] >= at:
                pieces.pop()
            if pieces and pieces[-1][0] + len(pieces[-1][1]) > at:
                pieces[-1] = (pieces[-1][0], pieces[-1][1][: at - pieces[-1][0]])
    out = np.zeros(max((s + len(x) for s, x in pieces), default=0), dtype=np.int32)
    for at, samples in pieces:
        out[at : at + len(samples)] += samples
    write_wav(path, np.clip(out, -32768, 32767).astype(np.int16), rate)


def replies(rate: int, seconds: float, cut_every: int = 3) -> list[AudioFrame | float]:
    """Frames and cuts as playout hands them over: a 4 s answer every 7 s, each third one
    cut mid-frame 1.5 s in."""
    rng = np.random.default_rng(4)
    n = rate * 20 // 1000
    events: list[AudioFrame | float] = []
    for i, start in enumerate(np.arange(500.0, seconds * 1000, 7_000.0)):
        cut = start + 1_503.7 if i % cut_every == 0 else None
        for k in range(200):
            at = float(start) + 20 * k
            if cut is not None and at > cut:
                break
            events.append(AudioFrame(rng.integers(-9000, 9000, n, np.int16), rate, at))
        if cut is not None:
            events.append(cut)
    return events


async def test_the_streamed_file_is_what_the_in_memory_sink_wrote(tmp_path: Path) -> None:
    events = replies(16_000, 40)
    sink = WavSink(tmp_path / "streamed.wav", 16_000)
    for item in events:
        if isinstance(item, AudioFrame):
            await sink.write(item)
        else:
            assert sink.clear(item) == item
    assert sink.track.taken > 30 * 16_000  # written as it went
    await sink.aclose()
    reference_wav(tmp_path / "kept.wav", events, 16_000)
    assert (tmp_path / "streamed.wav").read_bytes() == (tmp_path / "kept.wav").read_bytes()
    assert sink.late_count == 0


async def test_the_sink_holds_only_a_window(tmp_path: Path) -> None:
    sink = WavSink(tmp_path / "agent.wav", 16_000)
    held = 0
    for item in replies(16_000, 600):  # ten minutes
        if isinstance(item, AudioFrame):
            await sink.write(item)
        else:
            sink.clear(item)
        held = max(held, sink.buffered_samples)
    await sink.aclose()
    assert held <= (WINDOW_MS + BLOCK_MS + 40) * 16
    assert soundfile.info(tmp_path / "agent.wav").duration > 595


async def test_aclose_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "agent.wav"
    sink = WavSink(path, 16_000)
    assert path.is_file()  # opened at once
    await sink.write(AudioFrame(np.ones(320, np.int16), 16_000, 100.0))
    await sink.aclose()
    content = path.read_bytes()
    await sink.aclose()
    await sink.write(AudioFrame(np.ones(320, np.int16), 16_000, 200.0))
    await sink.aclose()
    assert sink.closed and path.read_bytes() == content
    assert read_wav(path)[0].shape == (1920, 1)


def test_a_bad_output_path_fails_when_the_sink_is_made(tmp_path: Path) -> None:
    with pytest.raises(AudioFormatError, match="cannot be written as 16-bit PCM"):
        WavSink(tmp_path / "agent.ogg", 16_000)
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="cannot be written"):
        WavSink(tmp_path / "file" / "agent.wav", 16_000)
