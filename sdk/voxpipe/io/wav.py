"""WAV file source (paced in real time) and sinks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from voxpipe.audio import AudioFrame, read_speech, split_frames, write_wav
from voxpipe.clock import SessionClock
from voxpipe.io.recorder import Track


class WavSource:
    """Streams a WAV file (any rate, mono or stereo) as session-rate frames in real time:
    each frame is delivered when it has been fully "captured", at its end time."""

    def __init__(
        self,
        path: str | Path,
        sample_rate: int = 16_000,
        frame_ms: int = 20,
        *,
        realtime: bool = True,
    ) -> None:
        self.path = Path(path)
        samples = read_speech(self.path, sample_rate)
        self._frames = split_frames(samples, sample_rate, frame_ms)
        self.realtime = realtime
        self.duration_ms = len(samples) * 1000.0 / sample_rate
        #: Session time of the last frame delivered (for progress displays).
        self.position_ms = 0.0

    async def frames(self, clock: SessionClock) -> AsyncIterator[AudioFrame]:
        start = clock.now_ms()
        for frame in self._frames:
            placed = frame.at(start + frame.start_ms)
            if self.realtime:
                await clock.sleep_until(placed.end_ms)
            self.position_ms = placed.end_ms - start
            yield placed


class WavSink:
    """Writes the agent's audio to a mono WAV, placed on the session clock (silence between
    answers), so it lines up with the input file."""

    def __init__(self, path: str | Path, sample_rate: int = 16_000) -> None:
        self.path = Path(path)
        self.track = Track(sample_rate)

    async def write(self, frame: AudioFrame) -> None:
        self.track.add(frame)

    async def aclose(self) -> None:
        write_wav(self.path, self.track.render(), self.track.sample_rate)


class NullSink:
    """Discards audio (benchmarks, tests, headless runs)."""

    async def write(self, frame: AudioFrame) -> None:
        return None

    async def aclose(self) -> None:
        return None
