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


class QuietTimer:
    """Calls ``on_quiet()`` once ``touch()`` has not been called for ``seconds`` (a client's
    idle limit, the end of a stretch of audio). One timer per quiet period, re-armed when it
    finds a touch since, so a touch costs a clock read, not a timer. ``cancel()`` stops it."""

    __slots__ = ("_last", "_loop", "_on_quiet", "_timer", "seconds")

    def __init__(self, seconds: float, on_quiet: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self.seconds, self._on_quiet = seconds, on_quiet
        self._last = self._loop.time()
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(seconds, self._check)

    def touch(self) -> None:
        self._last = self._loop.time()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        quiet = self._loop.time() - self._last
        if quiet >= self.seconds:
            self._timer = None
            self._on_quiet()
        else:
            self._timer = self._loop.call_later(self.seconds - quiet, self._check)
