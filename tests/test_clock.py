"""QuietTimer: one callback once nothing touched it for its time, exact under virtual time."""

from __future__ import annotations

import asyncio

import pytest

from voxpipe.clock import QuietTimer


@pytest.mark.looptime
async def test_quiet_fires_once_the_touches_stop_for_its_time() -> None:
    loop = asyncio.get_running_loop()
    start, fired = loop.time(), []
    quiet = QuietTimer(1.0, lambda: fired.append(loop.time() - start))
    for _ in range(5):  # a touch every 0.4 s keeps it quiet...
        await asyncio.sleep(0.4)
        quiet.touch()
    await asyncio.sleep(3.0)  # ...then none
    assert fired == pytest.approx([3.0])  # 1 s after the last touch, once


@pytest.mark.looptime
async def test_a_cancelled_quiet_timer_never_fires() -> None:
    fired: list[bool] = []
    quiet = QuietTimer(1.0, lambda: fired.append(True))
    await asyncio.sleep(0.5)
    quiet.touch()
    await asyncio.sleep(0.9)  # its first check has re-armed it
    quiet.cancel()
    await asyncio.sleep(5.0)
    assert fired == []
