"""Audio placed on the session clock: one track per voice, and a stereo call recorder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxpipe.audio import AudioFrame, Int16Array, write_wav


class Track:
    """Frames placed at their ``start_ms`` (in time order); renders to one int16 array, with
    silence in between."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._pieces: list[tuple[int, Int16Array]] = []
        self.end_sample = 0

    def add(self, frame: AudioFrame) -> None:
        samples = (
            frame.samples
            if frame.sample_rate == self.sample_rate
            else frame.resampled(self.sample_rate).samples
        )
        at = round(frame.start_ms * self.sample_rate / 1000.0)
        self._pieces.append((at, samples))
        self.end_sample = max(self.end_sample, at + len(samples))

    def cut(self, at_ms: float) -> None:
        """Drop the audio from ``at_ms`` on (the output was stopped there)."""
        at = round(at_ms * self.sample_rate / 1000.0)
        while self._pieces and self._pieces[-1][0] >= at:
            self._pieces.pop()
        if self._pieces:
            start, samples = self._pieces[-1]
            if start + len(samples) > at:
                self._pieces[-1] = (start, samples[: at - start])
        self.end_sample = max((s + len(x) for s, x in self._pieces), default=0)

    def render(self, length: int | None = None) -> Int16Array:
        out = np.zeros(self.end_sample if length is None else length, dtype=np.int32)
        for at, samples in self._pieces:
            piece = samples[: max(len(out) - at, 0)]
            out[at : at + len(piece)] += piece
        return np.clip(out, -32768, 32767).astype(np.int16)


class CallRecorder:
    """A stereo WAV of the call: the user on the left channel, the agent on the right,
    both placed on the session clock, so the gap between them is what a listener hears."""

    def __init__(self, path: str | Path, sample_rate: int = 16_000) -> None:
        self.path = Path(path)
        self.user = Track(sample_rate)
        self.agent = Track(sample_rate)

    def close(self) -> Path:
        """Write the WAV file and return its path."""
        length = max(self.user.end_sample, self.agent.end_sample)
        stereo = np.stack([self.user.render(length), self.agent.render(length)], axis=1)
        write_wav(self.path, stereo, self.user.sample_rate)
        return self.path
