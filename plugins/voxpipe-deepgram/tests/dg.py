"""What the tests share: the fake key, a user who talks into an ASR stream (speech-like
audio with the session VAD's marks), and reading a stream's events within a time limit."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from voxpipe.audio import AudioFrame, Int16Array, split_frames
from voxpipe.protocols import ASRStream, Transcript
from voxpipe.sim.voice import speech_like
from voxpipe.vad import Utterance

#: A distinctive fake key: tests assert it never shows up in errors or logs.
KEY = "dg-VOXPIPEtestKEY-8c1e4b7a2d9f0e3c"
RATE, FRAME_MS = 16_000, 20
#: The session VAD's silence window (speech_ended comes this long after the voice ends).
ENDPOINT_MS = 200.0


@dataclass
class Talk:
    """A user's audio and the utterances the session's VAD marks in it."""

    samples: Int16Array
    utterances: list[Utterance]

    def frames(self) -> list[AudioFrame]:
        return split_frames(self.samples, RATE, FRAME_MS)

    def pcm(self, from_ms: float = 0.0) -> bytes:
        """The linear16 bytes a stream sends of this audio from session ms ``from_ms``."""
        return self.samples[round(from_ms * RATE / 1000) :].astype("<i2").tobytes()


def talk(*parts: tuple[str, float]) -> Talk:
    """``talk(("silence", 300), ("speech", 1200), ("silence", 800))``."""
    chunks, utterances, at = [], [], 0.0
    for i, (kind, ms) in enumerate(parts):
        n = round(RATE * ms / 1000)
        if kind == "speech":
            chunks.append(speech_like(ms, RATE, seed=i))
            utterances.append(Utterance(at, at + ms, at + ms + ENDPOINT_MS))
        else:
            chunks.append(np.zeros(n, np.int16))
        at += ms
    return Talk(np.concatenate(chunks), utterances)


async def play(
    stream: ASRStream,
    audio: Talk,
    *,
    speed: float = 10.0,
    vad: bool = True,
    end: bool = True,
    pause_after_ms: float | None = None,
    pause_s: float = 0.0,
) -> None:
    """Push ``audio`` as the session does, ``speed`` times faster than real time, with the
    VAD's marks (``vad=False``: only speech_started, as with ``end_of_turn = "asr"``), then
    ``end_input()``. ``pause_after_ms``: the frames stop there for ``pause_s``."""
    for frame in audio.frames():
        stream.push(frame)
        for u in audio.utterances:
            if frame.start_ms == u.start_ms:
                stream.speech_started(u.start_ms)
            if vad and frame.end_ms == u.detected_ms:
                stream.speech_ended(u)
        await asyncio.sleep(FRAME_MS / 1000 / speed)
        if pause_after_ms is not None and frame.end_ms == pause_after_ms:
            await asyncio.sleep(pause_s)
    if end:
        stream.end_input()


async def hear(stream: ASRStream, audio: Talk, *, within_s: float = 10.0, **how: Any) -> list[Any]:
    """Every event of ``stream`` while ``audio`` is played into it (``play``'s options);
    fails with ``TimeoutError`` rather than hang. The stream is closed afterwards."""
    player = asyncio.create_task(play(stream, audio, **how))
    try:
        async with asyncio.timeout(within_s):
            return [event async for event in stream]
    finally:
        player.cancel()
        await asyncio.gather(player, return_exceptions=True)
        await stream.aclose()


def finals(events: Sequence[Any]) -> list[Transcript]:
    return [e for e in events if type(e) is Transcript and e.is_final]


def partials(events: Sequence[Any]) -> list[Transcript]:
    return [e for e in events if type(e) is Transcript and not e.is_final]


def of_type(events: Sequence[Any], kind: type) -> list[Any]:
    return [e for e in events if type(e) is kind]


async def tasks_left() -> set[asyncio.Task[Any]]:
    """Tasks other than this one once the loop has settled."""
    gc.collect()
    for _ in range(20):
        await asyncio.sleep(0)
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[arg-type]
