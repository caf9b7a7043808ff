"""The core's sinks pass the sink contract; the WAV file holds nothing of a reply after its cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voxpipe.audio import read_wav
from voxpipe.clock import SessionClock
from voxpipe.io import NullSink, WavSink
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
