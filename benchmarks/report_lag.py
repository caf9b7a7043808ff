"""How much printing a turn delays the event loop: the demo's three turns in real time, a
ticker on the loop measuring how late it wakes, with the turns printed the old way (the
turn table printed by the session's listener, on the loop) and through ``LiveView`` (the
listener queues, a printer thread prints).

    .venv/bin/python benchmarks/report_lag.py

Prints, per way (and with nothing printed, for reference), the ticker's worst lateness
within 100 ms after each turn ended.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from rich.console import Console

from voxpipe import SimSpeechSource, VoiceAgent
from voxpipe.cli import DEMO_LINES
from voxpipe.config import parse_config
from voxpipe.live import LiveView, Verbosity
from voxpipe.metrics import TurnMetrics
from voxpipe.report import print_turn

TICK_S = 0.002


async def _ticker(lateness: list[tuple[float, float]]) -> None:
    """Sleep TICK_S again and again; record (wake time, how late)."""
    while True:
        due = time.perf_counter() + TICK_S
        await asyncio.sleep(TICK_S)
        now = time.perf_counter()
        lateness.append((now, now - due))


async def _session(on_turn: Callable[[TurnMetrics], None]) -> list[float]:
    """Run the demo; the worst lateness (ms) within 100 ms after each turn's end."""
    lateness: list[tuple[float, float]] = []
    turn_ends: list[float] = []

    def record(turn: TurnMetrics) -> None:
        turn_ends.append(time.perf_counter())
        on_turn(turn)

    agent = VoiceAgent.from_config(parse_config({}, "demo"))
    ticker = asyncio.create_task(_ticker(lateness))
    async with agent:
        session = agent.session(SimSpeechSource(DEMO_LINES), None)
        session.on("turn", record)
        await session.run()
    await asyncio.sleep(0.15)  # the last turn's printing too
    ticker.cancel()
    return [
        1000 * max((late for at, late in lateness if end <= at <= end + 0.1), default=0.0)
        for end in turn_ends
    ]


def main() -> None:
    console = Console(file=open(os.devnull, "w"), width=110, force_terminal=True)  # noqa: SIM115
    quiet = asyncio.run(_session(lambda turn: None))
    print("nothing printed:                 " + ", ".join(f"{ms:.1f}" for ms in quiet) + " ms")
    old = asyncio.run(_session(lambda turn: print_turn(turn, console)))
    print("turn table printed on the loop:  " + ", ".join(f"{ms:.1f}" for ms in old) + " ms")
    for verbosity in (Verbosity.NORMAL, Verbosity.VERBOSE):
        with LiveView(console, verbosity) as view:
            lags = asyncio.run(_session(view.on_turn))
        print(
            f"LiveView, {verbosity.name.lower():<8}        "
            + ", ".join(f"{ms:.1f}" for ms in lags)
            + " ms"
        )


if __name__ == "__main__":
    main()
