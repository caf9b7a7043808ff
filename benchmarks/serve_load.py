"""Load on one ``voxpipe serve`` worker: N WebSocket clients on 127.0.0.1, each streaming
real-time audio (speech, then silence while the agent answers, again and again), for a
bounded time.

    .venv/bin/python benchmarks/serve_load.py --clients 20 --seconds 60 [--server-cpu 0]

Prints time to first audio as the clients measured it (the end of the user's speech in the
audio sent -> the first agent audio received), p50 / p99 / max, beside what the server
reported for the same turns; the server's CPU (percent of one core, from /proc) and the
load generator's. ``--server-cpu`` pins the server to one core (Linux), so the figure is
per worker process; run the clients on the others (``--client-cpu``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voxpipe.metrics import percentiles
from voxpipe.serve.client import VoiceClient
from voxpipe.sim.voice import speech_like

MAX_CLIENTS, MAX_SECONDS = 500, 600
#: The sim agent at its default latencies (as in examples/agent.toml), one short answer.
CONFIG = """
[asr]
backend = "sim"
[llm]
backend = "sim"
responses = {default = "Sure, I can help with that."}
[tts]
backend = "sim"
"""
SPEECH_MS, ANSWER_WAIT_MS, FRAME_MS = 1_500, 3_500, 20


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Tally:
    """What the clients saw."""

    client_ttfa: list[float] = field(default_factory=list)  # ms, measured by the clients
    server_ttfa: list[float] = field(default_factory=list)  # ms, from the turn events
    unanswered: int = 0  # no agent audio before the client spoke again
    errors: int = 0  # error events


async def talk(url: str, rate: int, until: float, tally: Tally) -> None:
    """One client: speak, wait for the answer in silence, again, until loop time ``until``."""
    loop = asyncio.get_running_loop()
    speech = speech_like(SPEECH_MS, rate)
    quiet = np.zeros(rate * ANSWER_WAIT_MS // 1000, dtype=np.int16)
    client = await VoiceClient.connect(url)
    try:
        await client.start(rate)
        while loop.time() + (SPEECH_MS + ANSWER_WAIT_MS) / 1000 < until:
            await client.stream(speech, rate, FRAME_MS)
            spoken, received = loop.time(), len(client.audio_times)
            await client.stream(quiet, rate, FRAME_MS)
            first = next((t for t, _ in client.audio_times[received:] if t >= spoken), None)
            if first is None:
                tally.unanswered += 1
            else:
                tally.client_ttfa.append((first - spoken) * 1000)
        await client.send({"type": "stop"})
        await client.next("end", timeout_s=10)
    finally:
        await client.aclose()
    tally.errors += sum(e["type"] == "error" for e in client.events)
    tally.server_ttfa += [
        e["metrics"]["latency_ms"]["time_to_first_audio"]
        for e in client.events
        if e["type"] == "turn" and e["metrics"]["outcome"] == "ok"
    ]


async def load(url: str, clients: int, seconds: float, rate: int) -> Tally:
    """``clients`` at once, their starts spread over one turn's length."""
    until = asyncio.get_running_loop().time() + seconds
    tally = Tally()
    turn_s = (SPEECH_MS + ANSWER_WAIT_MS) / 1000

    async def one(i: int) -> None:
        await asyncio.sleep(i * turn_s / clients)
        await talk(url, rate, until, tally)

    async with asyncio.timeout(seconds + 60):
        await asyncio.gather(*(one(i) for i in range(clients)))
    return tally


async def start_server(
    config: Path, clients: int, cpu: int | None
) -> tuple[asyncio.subprocess.Process, str, asyncio.Task[None]]:
    """``voxpipe serve`` on a free port: the process, its WebSocket URL and the task that
    reads its log."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "voxpipe.cli", "serve", "--config", str(config)),
        *("--port", "0", "--max-sessions", str(clients), "--grace-s", "5"),
        stderr=asyncio.subprocess.PIPE,
    )
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    assert process.stderr is not None
    async with asyncio.timeout(30):
        while line := (await process.stderr.readline()).decode():
            if found := re.search(r"listening on http://(\S+)", line):
                logging = asyncio.create_task(_discard(process.stderr))
                return process, f"ws://{found.group(1)}/ws", logging
    raise RuntimeError("voxpipe serve did not start")


async def _discard(pipe: asyncio.StreamReader) -> None:
    while await pipe.readline():
        pass


def show(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no turns"
    p = percentiles(values)
    return (
        f"{name}: p50 {p['p50']:.0f} ms, p99 {p['p99']:.0f} ms, max {max(values):.0f} ms "
        f"({len(values)} turns)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10, help=f"1..{MAX_CLIENTS}")
    parser.add_argument("--seconds", type=float, default=30, help=f"1..{MAX_SECONDS}")
    parser.add_argument("--rate", type=int, default=16_000, help="the clients' sample rate")
    parser.add_argument("--config", type=Path, help="agent config (default: sim, one answer)")
    parser.add_argument("--server-cpu", type=int, help="pin the server to this core")
    parser.add_argument("--client-cpu", type=int, help="pin the clients to this core")
    args = parser.parse_args()
    if not (1 <= args.clients <= MAX_CLIENTS and 1 <= args.seconds <= MAX_SECONDS):
        parser.error(f"--clients 1..{MAX_CLIENTS}, --seconds 1..{MAX_SECONDS}")
    if args.client_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})
    with tempfile.TemporaryDirectory() as tmp:
        config = args.config or Path(tmp) / "agent.toml"
        if args.config is None:
            config.write_text(CONFIG)
        process, url, logging = await start_server(config, args.clients, args.server_cpu)
        try:
            server0, client0 = cpu_seconds(process.pid), time.process_time()
            wall0 = time.perf_counter()
            tally = await load(url, args.clients, args.seconds, args.rate)
            wall = time.perf_counter() - wall0
            server_cpu = cpu_seconds(process.pid) - server0
            client_cpu = time.process_time() - client0
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
            await logging
    print(f"{args.clients} clients at {args.rate} Hz for {args.seconds:.0f} s ({wall:.1f} s wall)")
    print(show("time to first audio at the client", tally.client_ttfa))
    print(show("time to first audio, server-reported", tally.server_ttfa))
    print(f"unanswered turns {tally.unanswered}, error events {tally.errors}")
    print(
        f"server CPU {100 * server_cpu / wall:.0f}% of a core "
        f"({server_cpu / (wall * args.clients / 60):.3f} CPU-s per session-minute); "
        f"load generator CPU {100 * client_cpu / wall:.0f}%"
    )


if __name__ == "__main__":
    asyncio.run(main())
