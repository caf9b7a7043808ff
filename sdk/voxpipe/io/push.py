"""Push-style audio for transports (a WebSocket, a phone gateway): the transport puts the
user's audio in as it arrives and takes the agent's audio out as it plays.

Either side may speak another sample rate than the session: each converts once, at the edge,
with a streaming soxr resampler (``voxpipe.audio.StreamResampler``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from voxpipe.audio import AudioFrame, Framer, Int16Array, StreamResampler
from voxpipe.clock import QuietTimer, SessionClock
from voxpipe.errors import VoxpipeError
from voxpipe.streams import Channel

log = logging.getLogger("voxpipe")

#: A stretch of arrivals this long (s) that all came later than the clock mapping says
#: moves the mapping forward: audio was lost or the client stalled.
RESYNC_WINDOW_S = 0.5
#: ...when the earliest of them is later than the mapping by more than this (s).
RESYNC_AFTER_S = 0.1


class Overrun(VoxpipeError):
    """Audio came faster than real time beyond the allowance, or piled up untaken."""


class PushSource:
    """The user's audio as a transport receives it: ``push(data)`` PCM16 LE mono bytes at
    ``input_rate`` in chunks of any length; ``close()`` ends the input (the session then
    ends as when a WAV file runs out).

    ``frames`` yields exact ``frame_ms`` frames at ``sample_rate``. Each is stamped on the
    session clock by its place in the audio (sample count), mapped to the clock by the
    earliest arrival seen, so no frame is stamped after it arrived and a burst after a
    network stall is stamped when it was spoken. When arrivals stay later than that mapping
    (audio was lost), the mapping moves forward, leaving a gap; when one comes earlier than
    ever, it moves back, and the next frame overlaps the last by that much. Make it in the
    running loop, and push once the session runs.

    ``push`` raises ``Overrun`` (and drops the chunk) when the audio runs more than
    ``max_ahead_ms`` ahead of real time, or when more than ``max_queued_ms`` waits unread.
    """

    def __init__(
        self,
        input_rate: int,
        sample_rate: int = 16_000,
        frame_ms: int = 20,
        *,
        max_ahead_ms: float = 1_000.0,
        max_queued_ms: float = 2_000.0,
    ) -> None:
        self.input_rate, self.sample_rate, self.frame_ms = input_rate, sample_rate, frame_ms
        self.max_ahead_s, self.max_queued_ms = max_ahead_ms / 1000.0, max_queued_ms
        self._resampler = StreamResampler(input_rate, sample_rate)
        self._framer = Framer(sample_rate, frame_ms)
        self._frames: Channel[tuple[Int16Array, float]] = Channel()  # samples, loop time
        self._loop = asyncio.get_running_loop()
        self._odd = b""  # half a sample, kept for the next chunk
        self._received = 0  # input samples pushed
        self._emitted = 0  # frames cut
        self._offset: float | None = None  # loop time of input position 0, by earliest arrival
        self._anchor = 0.0  # the offset that "real time" is measured against
        self._window_start = 0.0
        self._window_min = 0.0

    @property
    def closed(self) -> bool:
        return self._frames.closed

    def push(self, data: bytes) -> None:
        """Add audio that just arrived; raises ``Overrun`` and drops it when it comes too
        fast, ``RuntimeError`` after ``close``."""
        if self.closed:
            raise RuntimeError("push() after close(): the input has ended")
        data = self._odd + data
        count = len(data) // 2
        now = self._loop.time()
        received = self._received + count
        arrival = now - received / self.input_rate  # loop time of position 0, by this chunk
        if self._offset is not None and self._anchor - arrival > self.max_ahead_s:
            raise Overrun(
                f"audio came {(self._anchor - arrival) * 1000:.0f} ms ahead of real time "
                f"(at most {self.max_ahead_s * 1000:.0f} ms): send it as it is captured"
            )
        chunk_ms = count * 1000.0 / self.input_rate
        if len(self._frames) * self.frame_ms + chunk_ms > self.max_queued_ms:
            raise Overrun(
                f"more than {self.max_queued_ms:.0f} ms of audio waits unread: the session "
                "is not keeping up"
            )
        self._odd, self._received = data[2 * count :], received
        self._map(arrival, now)
        samples = np.frombuffer(data, dtype="<i2", count=count).astype(np.int16, copy=False)
        self._put(self._framer.cut(self._resampler.push(samples)))

    def close(self) -> None:
        """No more audio: the rest is framed (the last frame zero-padded) and the frames end."""
        if self.closed:
            return
        if self._offset is not None:
            tail = self._resampler.push(np.zeros(0, dtype=np.int16), last=True)
            self._put(self._framer.cut(tail))
            if (rest := self._framer.rest()) is not None:
                self._put([rest])
        self._frames.close()

    async def frames(self, clock: SessionClock) -> AsyncIterator[AudioFrame]:
        origin, rate = clock.loop_time(0.0), self.sample_rate
        async for samples, start_s in self._frames:
            yield AudioFrame(samples, rate, (start_s - origin) * 1000.0)

    def _map(self, arrival: float, now: float) -> None:
        """Follow the earliest arrival; move forward when arrivals stay late."""
        if self._offset is None:
            self._offset = self._anchor = self._window_min = arrival
            self._window_start = now
            return
        self._offset = min(self._offset, arrival)
        self._window_min = min(self._window_min, arrival)
        if now - self._window_start >= RESYNC_WINDOW_S:
            if self._window_min - self._offset > RESYNC_AFTER_S:
                self._offset = self._anchor = self._window_min
            self._window_start, self._window_min = now, arrival

    def _put(self, frames: list[Int16Array]) -> None:
        """Queue whole frames' samples, each with the loop time it starts at."""
        assert self._offset is not None
        step = self.frame_ms / 1000.0
        for samples in frames:
            self._frames.put((samples, self._offset + self._emitted * step))
            self._emitted += 1


@dataclass(frozen=True, slots=True)
class _Clear:
    """Barge-in at ``at_ms``: in a sink's queue, after the audio sent before it."""

    at_ms: float


class _StretchEnd:
    """In a sink's queue: no frame came for two frames' time, the stretch has stopped."""


#: What a sink's sender takes: a frame, a clear or the end of a stretch.
_Item = AudioFrame | _Clear | _StretchEnd
_STRETCH_END = _StretchEnd()


class PushSink:
    """The agent's audio for a transport: each frame, resampled once to ``output_rate`` (the
    frame's own rate if None), goes to ``send_audio`` (async: a socket) as PCM16 LE bytes
    the moment it starts playing; playout paces the writes.

    ``clear(at_ms)`` (barge-in) drops what has not gone out, discards what the resampler
    holds of the cut audio and calls ``send_clear(at_ms)`` after the audio already sent, so
    the client drops what it has buffered. A stretch of audio that stops (the reply ended)
    has its resampler's last samples sent two frames later. One task sends, in order;
    ``write`` raises ``Overrun`` when more than ``max_queued_ms`` waits unsent, and the
    error a send failed with."""

    def __init__(
        self,
        send_audio: Callable[[bytes], Awaitable[None]],
        send_clear: Callable[[float], Awaitable[None]],
        *,
        output_rate: int | None = None,
        max_queued_ms: float = 2_000.0,
    ) -> None:
        self.output_rate, self.max_queued_ms = output_rate, max_queued_ms
        self._send_audio, self._send_clear = send_audio, send_clear
        self._items: Channel[_Item] = Channel()
        self._queued_ms = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # the stretch of contiguous audio being sent
        self._resampler: StreamResampler | None = None
        self._end_ms = 0.0
        self._quiet: QuietTimer | None = None  # no frame written for two frames ends it

    async def write(self, frame: AudioFrame) -> None:
        if self._closed:
            raise RuntimeError("write() after aclose()")
        task = self._task
        if task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        elif task.done():
            task.result()  # the error a send failed with
            raise RuntimeError("the sink's sender has stopped")
        if self._queued_ms + frame.duration_ms > self.max_queued_ms:
            raise Overrun(
                f"more than {self.max_queued_ms:.0f} ms of the agent's audio waits unsent: "
                "the client is not taking it"
            )
        self._queued_ms += frame.duration_ms
        if self._quiet is not None:
            self._quiet.touch()
        self._items.put(frame)

    def clear(self, at_ms: float) -> float:
        self._items.keep(lambda item: not isinstance(item, AudioFrame))
        self._queued_ms = 0.0
        if self._task is not None:
            self._items.put(_Clear(at_ms))
        return at_ms

    async def aclose(self) -> None:
        """Send what is queued and the last samples, then stop; a transport that takes
        nothing for ``max_queued_ms`` is given up on."""
        if self._closed:
            return
        self._closed = True
        task = self._task
        if task is None:
            return
        self._items.close()
        try:
            await asyncio.wait({task}, timeout=self.max_queued_ms / 1000.0)
        finally:
            task.cancel()
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
        if isinstance(outcome, Exception):  # the transport has gone: nothing left to tell it
            log.debug("voxpipe: push sink: %s", outcome)

    async def _run(self) -> None:
        try:
            async for item in self._items:
                if type(item) is _StretchEnd:
                    await self._end_stretch()
                elif isinstance(item, _Clear):
                    self._stop_stretch()  # what its resampler holds is of the cut audio
                    await self._send_clear(item.at_ms)
                else:
                    assert isinstance(item, AudioFrame)
                    self._queued_ms = max(self._queued_ms - item.duration_ms, 0.0)
                    await self._send(item)
            await self._end_stretch()  # aclose()
        finally:
            self._stop_stretch()

    async def _send(self, frame: AudioFrame) -> None:
        if self.output_rate in (None, frame.sample_rate):  # nothing to resample, nor flush
            await self._send_samples(frame.samples)
            return
        resampler = self._resampler
        if (
            resampler is None
            or resampler.from_rate != frame.sample_rate
            or abs(frame.start_ms - self._end_ms) > 1.0
        ):
            await self._end_stretch()
            resampler = self._resampler = StreamResampler(frame.sample_rate, self.output_rate)
            ended = functools.partial(self._items.put, _STRETCH_END)
            self._quiet = QuietTimer(2 * frame.duration_ms / 1000.0, ended)
        self._end_ms = frame.end_ms
        await self._send_samples(resampler.push(frame.samples))

    def _stop_stretch(self) -> StreamResampler | None:
        """The stretch ends: its timer stops; returns its resampler, if one was open."""
        if self._quiet is not None:
            self._quiet.cancel()
            self._quiet = None
        resampler, self._resampler = self._resampler, None
        return resampler

    async def _end_stretch(self) -> None:
        """The stretch ends, and its resampler's last samples go out."""
        resampler = self._stop_stretch()
        if resampler is not None:
            await self._send_samples(resampler.push(np.zeros(0, dtype=np.int16), last=True))

    async def _send_samples(self, samples: Int16Array) -> None:
        if len(samples):
            await self._send_audio(samples.astype("<i2", copy=False).tobytes())
