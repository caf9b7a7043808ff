"""A stand-in for a vendor's speech SDK (what ``pip install tone-sdk`` would bring), so the
example needs no account. It has the shape of real streaming SDKs that are not HTTP (a gRPC
server stream, a websocket): ``ToneClient.stream(text)`` starts a call whose messages are
raw PCM16 at 24 kHz in chunks of whatever size the service sends, and the call holds its
connection until ``aclose()``; reading it to the end or cancelling a read does not free it.

Calls go through a ``Transport``: ``LocalService`` (in this process) by default, a fake in
tests.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: The service's audio: signed 16-bit little-endian mono PCM at 24 kHz.
SAMPLE_RATE = 24_000


class Status(enum.Enum):
    """Why a call failed (gRPC's status names)."""

    INVALID_ARGUMENT = "invalid_argument"
    UNAUTHENTICATED = "unauthenticated"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"


class ToneError(Exception):
    """A failed call: its ``status``, the service's ``details`` and, for RESOURCE_EXHAUSTED,
    the seconds it asks the client to wait."""

    def __init__(self, status: Status, details: str, *, retry_after_s: float | None = None):
        super().__init__(f"{status.name}: {details}")
        self.status, self.details, self.retry_after_s = status, details, retry_after_s


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    text: str
    api_key: str
    pitch_hz: float


class Call(Protocol):
    """One call as a transport carries it."""

    async def receive(self) -> bytes | None:
        """The next message; None once the service has ended the call."""

    async def close(self) -> None:
        """Release the call and its connection."""


class Transport(Protocol):
    def open(self, request: SpeechRequest) -> Call: ...


class SpeechStream:
    """The audio of one request, chunk by chunk; ``aclose()`` ends the call."""

    def __init__(self, call: Call) -> None:
        self._call = call

    def __aiter__(self) -> SpeechStream:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._call.receive()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        await self._call.close()


class ToneClient:
    """The SDK's client; raises ``ToneError`` from the stream when a call fails."""

    def __init__(self, api_key: str, *, transport: Transport | None = None) -> None:
        self._key = api_key
        self._transport = transport or LocalService()

    def stream(self, text: str, *, pitch_hz: float = 440.0) -> SpeechStream:
        return SpeechStream(self._transport.open(SpeechRequest(text, self._key, pitch_hz)))


class LocalService:
    """The service, in this process: a tone per word with a pause after it, sent in chunks
    of an odd number of bytes (samples split across chunks, as a network cuts them)."""

    word_s = 0.4
    pause_s = 0.1
    chunk_bytes = 4801

    def open(self, request: SpeechRequest) -> Call:
        t = np.arange(round(SAMPLE_RATE * self.word_s)) / SAMPLE_RATE
        fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms fades: no clicks
        tone = 0.3 * fade * np.sin(2 * np.pi * request.pitch_hz * t)
        pause = np.zeros(round(SAMPLE_RATE * self.pause_s))
        audio = np.tile(np.concatenate((tone, pause)), len(request.text.split()))
        return _LocalCall((audio * 32767).astype("<i2").tobytes(), self.chunk_bytes)


class _LocalCall:
    def __init__(self, data: bytes, chunk_bytes: int) -> None:
        self._data, self._chunk_bytes, self._at = data, chunk_bytes, 0

    async def receive(self) -> bytes | None:
        await asyncio.sleep(0)  # a read from the connection
        if self._at >= len(self._data):
            return None
        chunk = self._data[self._at : self._at + self._chunk_bytes]
        self._at += len(chunk)
        return chunk

    async def close(self) -> None:
        self._at = len(self._data)
