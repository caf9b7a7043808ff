"""WAV file source (paced in real time) and sinks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from voxpipe.audio import AudioFrame, iter_frames, read_speech
from voxpipe.clock import SessionClock
from voxpipe.io.recorder import WINDOW_MS, Recording, Track, TrackFile


class WavSource:
    """Streams a WAV file (any rate, mono or stereo) as session-rate frames in real time:
    each frame is delivered when it has been fully "captured", at its end time."""

    def __init__(self, path: str | Path, sample_rate: int = 16_000, frame_ms: int = 20) -> None:
        self.path = Path(path)
        self.sample_rate, self.frame_ms = sample_rate, frame_ms
        self._samples = read_speech(self.path, sample_rate)
        self.duration_ms = len(self._samples) * 1000.0 / sample_rate
        #: Session time of the last frame delivered (for progress displays).
        self.position_ms = 0.0

    async def frames(self, clock: SessionClock) -> AsyncIterator[AudioFrame]:
        start = clock.now_ms()
        for frame in iter_frames(self._samples, self.sample_rate, self.frame_ms, start):
            await clock.sleep_until(frame.end_ms)
            self.position_ms = frame.end_ms - start
            yield frame


class WavSink(Recording):
    """Writes the agent's audio to a mono WAV, placed on the session clock (silence between
    answers), so it lines up with the input file.

    The file is opened here and written as the call goes (only ``window_ms`` of it is held
    in memory); ``aclose`` writes the rest and the header, and may be called again."""

    def __init__(
        self, path: str | Path, sample_rate: int = 16_000, *, window_ms: float = WINDOW_MS
    ) -> None:
        self.path = Path(path)
        self.track = Track(sample_rate, "agent")
        self._out = TrackFile(self.path, (self.track,), "WAV sink", window_ms)

    async def write(self, frame: AudioFrame) -> None:
        self.track.add(frame)

    def clear(self, at_ms: float) -> float:
        self.track.cut(at_ms)
        return at_ms

    async def aclose(self) -> None:
        self._out.close()


class NullSink:
    """Discards audio (benchmarks, tests, headless runs)."""

    async def write(self, frame: AudioFrame) -> None:
        return None

    def clear(self, at_ms: float) -> float:
        return at_ms

    async def aclose(self) -> None:
        return None
