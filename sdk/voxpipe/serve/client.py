"""A small Python client of the ``voxpipe serve`` protocol: streams audio in real time and
collects the server's events and audio as they come (tests, the load script, the start of
a gateway)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voxpipe.audio import Int16Array


class VoiceClient:
    """One connection. ``events`` are the JSON events in order; ``audio`` the agent's audio
    bytes, with ``audio_times`` (loop time each message came, its byte count); ``closed`` is
    set once the server closed (``close_code``, ``close_reason``)."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.events: list[dict[str, Any]] = []
        self.audio = bytearray()
        self.audio_times: list[tuple[float, int]] = []
        #: ``len(audio)`` when each event came: the audio received before it.
        self.audio_before: list[int] = []
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, timeout_s: float = 10.0) -> VoiceClient:
        async with asyncio.timeout(timeout_s):
            websocket = await connect(url, compression=None, max_size=None)
        return cls(websocket)

    @property
    def close_code(self) -> int | None:
        return self.websocket.close_code

    @property
    def close_reason(self) -> str | None:
        return self.websocket.close_reason

    async def start(
        self, sample_rate: int, output_sample_rate: int | None = None, timeout_s: float = 10.0
    ) -> dict[str, Any]:
        """Send ``start``; the ``ready`` event."""
        message: dict[str, Any] = {"type": "start", "sample_rate": sample_rate}
        if output_sample_rate is not None:
            message["output_sample_rate"] = output_sample_rate
        await self.send(message)
        return await self.next("ready", timeout_s=timeout_s)

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.websocket.send(json.dumps(message) if isinstance(message, dict) else message)

    async def stream(self, samples: Int16Array, sample_rate: int, frame_ms: int = 20) -> None:
        """Send ``samples`` in frames, each once it has been "captured" (real time)."""
        loop = asyncio.get_running_loop()
        step = sample_rate * frame_ms // 1000
        start = loop.time()
        for at in range(0, len(samples), step):
            piece = samples[at : at + step]
            await asyncio.sleep(max(start + (at + len(piece)) / sample_rate - loop.time(), 0))
            await self.websocket.send(piece.astype("<i2").tobytes())

    async def next(
        self, kind: str, *, after: int = 0, timeout_s: float = 10.0, **fields: Any
    ) -> dict[str, Any]:
        """The first ``kind`` event from index ``after`` on whose ``fields`` match, waiting
        for it; ``TimeoutError``, or ``EOFError`` once closed without it."""
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self.events[after:]:
                    if event["type"] == kind and all(event.get(k) == v for k, v in fields.items()):
                        return event
                if self.closed.is_set():
                    raise EOFError(f"closed ({self.close_code}) without a {kind} event")
                self._changed.clear()
                await self._changed.wait()

    async def wait_closed(self, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            await self.closed.wait()

    async def aclose(self) -> None:
        await self.websocket.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for message in self.websocket:
                if isinstance(message, bytes):
                    self.audio += message
                    self.audio_times.append((loop.time(), len(message)))
                else:
                    self.events.append(json.loads(message))
                    self.audio_before.append(len(self.audio))
                self._changed.set()
        except ConnectionClosed:
            pass  # abnormal closes: the code and reason tell
        finally:
            self.closed.set()
            self._changed.set()
