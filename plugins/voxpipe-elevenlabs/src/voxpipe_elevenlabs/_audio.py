"""The provider's raw PCM (signed 16-bit little-endian mono at its rate, in chunks of any
size) as session frames: resampled with ``StreamResampler``, cut with ``Framer``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from voxpipe.audio import AudioFrame, Framer, StreamResampler
from voxpipe.hookspecs import BackendContext

_PCM16 = np.dtype("<i2")


class PcmFrames:
    """One synthesis stream's audio: ``push`` each chunk as it arrives and yield the frames
    it completes; ``end()`` once the stream is over for the rest (the resampler's held-back
    tail, the last frame zero-padded). A sample split across two chunks is joined."""

    def __init__(self, provider_rate: int, context: BackendContext) -> None:
        self.provider_rate = provider_rate
        self._resampler = StreamResampler(provider_rate, context.sample_rate)
        self._framer = Framer(context.sample_rate, context.frame_ms)
        self._odd = b""
        #: Bytes of audio received so far.
        self.received = 0

    @property
    def audio_ms(self) -> float:
        """How much audio the chunks so far hold, in ms (the time base of alignment)."""
        return self.received // 2 * 1000.0 / self.provider_rate

    def push(self, chunk: bytes) -> list[AudioFrame]:
        self.received += len(chunk)
        data = self._odd + chunk if self._odd else chunk
        whole = len(data) - len(data) % 2
        self._odd = data[whole:]
        samples = np.frombuffer(data, dtype=_PCM16, count=whole // 2).astype(np.int16)
        return list(self._framer.push(self._resampler.push(samples)))

    @property
    def half_sample(self) -> bool:
        """Whether the audio so far ends in the middle of a sample."""
        return bool(self._odd)

    def end(self) -> Iterator[AudioFrame]:
        """The frames left once the provider's audio has ended (call once)."""
        tail = self._resampler.push(np.zeros(0, dtype=np.int16), last=True)
        yield from self._framer.push(tail)
        yield from self._framer.flush()
