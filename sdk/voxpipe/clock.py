"""The session clock: every timestamp in voxpipe is milliseconds since session start.

It reads the running event loop's clock, so timers, sleeps and stamps share one time base,
and tests under virtual time (looptime) are exact to the millisecond.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class SessionClock:
    """Milliseconds since the session started, on the event loop's monotonic clock."""

    __slots__ = ("_loop", "_t0")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._t0 = self._loop.time()

    def now_ms(self) -> float:
        """Milliseconds since session start."""
        return (self._loop.time() - self._t0) * 1000.0

    def loop_time(self, at_ms: float) -> float:
        """The event loop time (seconds) of session time ``at_ms``."""
        return self._t0 + at_ms / 1000.0

    async def sleep_until(self, at_ms: float) -> None:
        """Sleep until session time ``at_ms`` (returns at once if it has passed)."""
        delay = (self._t0 + at_ms / 1000.0) - self._loop.time()
        await asyncio.sleep(delay if delay > 0 else 0)

    def call_at(
        self, at_ms: float, callback: Callable[..., Any], *args: Any
    ) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` at session time ``at_ms``."""
        return self._loop.call_at(self._t0 + at_ms / 1000.0, callback, *args)
