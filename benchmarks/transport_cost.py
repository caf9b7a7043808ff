"""What the WebSocket transport costs per 20 ms frame, part by part, in one process on one
core: the parts ``voxpipe serve`` runs for every frame besides the session itself.

    .venv/bin/python benchmarks/transport_cost.py [--frames 20000] [--rate 16000] [--cpu 0]

- decode: a client's masked binary WebSocket message parsed by websockets' sans-I/O server
  protocol (what uvicorn runs on the bytes it reads);
- frame: the payload pushed into a ``PushSource`` and read out as the session's frame;
- encode: an agent frame through a ``PushSink`` (its sender task) to bytes, then framed as
  a server message by the same protocol.

Prints CPU µs per frame for each (best of ``--repeat`` runs). Socket reads and writes, the
event loop's wake-ups and uvicorn's per-message queue are not in these: compare the sum with
``serve_load.py``'s server CPU per session-minute to see their share.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from voxpipe.audio import AudioFrame
from voxpipe.clock import SessionClock
from voxpipe.io.push import PushSink, PushSource
from voxpipe.sim.voice import speech_like

FRAME_MS = 20


def open_pair() -> tuple[ClientProtocol, ServerProtocol]:
    """A client and a server protocol after a real opening handshake (no sockets)."""
    client, server = ClientProtocol(parse_uri("ws://127.0.0.1/ws")), ServerProtocol()
    client.send_request(client.connect())
    server.receive_data(b"".join(client.data_to_send()))
    (request,) = server.events_received()
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    client.receive_data(b"".join(server.data_to_send()))
    assert client.state is State.OPEN and server.state is State.OPEN
    return client, server


def decode_cost(payloads: list[bytes]) -> float:
    """CPU s to parse each payload as a client's binary message."""
    client, server = open_pair()
    wire = []
    for data in payloads:
        client.send_binary(data)
        wire.append(b"".join(client.data_to_send()))
    received = 0
    start = time.process_time()
    for message in wire:
        server.receive_data(message)
        for event in server.events_received():
            assert isinstance(event, Frame)
            received += len(event.data)
    spent = time.process_time() - start
    assert received == sum(map(len, payloads)), "the server did not get every message"
    return spent


def frame_cost(payloads: list[bytes], rate: int) -> float:
    """CPU s to push each payload into a PushSource and read the session's frames (all
    pushed first: a resampler holds its first samples back, so a frame need not follow
    each push)."""

    async def run() -> float:
        source = PushSource(rate, 16_000, FRAME_MS, max_ahead_ms=1e12, max_queued_ms=1e12)
        frames = source.frames(SessionClock())
        start = time.process_time()
        for data in payloads:
            source.push(data)
        source.close()
        read = [frame async for frame in frames]
        spent = time.process_time() - start
        assert len(read) >= len(payloads), f"{len(read)} frames from {len(payloads)} pushes"
        return spent

    return asyncio.run(run())


def encode_cost(frames: list[AudioFrame], rate: int) -> float:
    """CPU s to send each agent frame through a PushSink and frame it as a server message."""
    _, server = open_pair()
    sent = 0  # bytes of audio

    async def send_audio(data: bytes) -> None:
        nonlocal sent
        server.send_binary(data)
        server.data_to_send()
        sent += len(data)

    async def send_clear(at_ms: float) -> None:
        return None

    async def run() -> float:
        sink = PushSink(send_audio, send_clear, output_rate=rate)
        start = time.process_time()
        for frame in frames:
            await sink.write(frame)
            await asyncio.sleep(0)  # the sender task sends it
        await sink.aclose()
        return time.process_time() - start

    spent = asyncio.run(run())
    expected = 2 * rate * FRAME_MS // 1000 * len(frames)
    assert abs(sent - expected) <= expected // 100, f"sent {sent} bytes, not {expected}"
    return spent


def best(measure: Callable[[], float], repeat: int) -> float:
    return min(measure() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=16_000, help="the client's sample rate")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", type=int, help="pin to this core")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    n, rate = args.frames, args.rate
    audio = speech_like(n * FRAME_MS, rate)
    size = rate * FRAME_MS // 1000
    payloads = [audio[i * size : (i + 1) * size].tobytes() for i in range(n)]
    session = speech_like(n * FRAME_MS, 16_000)
    frames = [AudioFrame(session[i * 320 : (i + 1) * 320], 16_000, i * FRAME_MS) for i in range(n)]
    us = 1e6 / n
    parts = {
        "decode (websockets parses a client message)": best(
            lambda: decode_cost(payloads), args.repeat
        ),
        "frame (PushSource: push, read the session frame)": best(
            lambda: frame_cost(payloads, rate), args.repeat
        ),
        "encode (PushSink's sender, websockets frames it)": best(
            lambda: encode_cost(frames, rate), args.repeat
        ),
    }
    print(f"{n} frames of {FRAME_MS} ms, client at {rate} Hz, session at 16000 Hz")
    for name, spent in parts.items():
        print(f"  {spent * us:7.1f} µs  {name}")
    print(f"  {sum(parts.values()) * us:7.1f} µs  in all, per frame in and out")


if __name__ == "__main__":
    main()
