"""Event loops and garbage-collector settings for running many sessions in one process."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable
from selectors import SelectSelector

from voxpipe.errors import UsageError

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
LOOPS = ("auto", "asyncio", "uvloop", "select", "virtual")


def loop_factory(name: str | None = None) -> LoopFactory | None:
    """An event-loop factory for ``asyncio.Runner`` (None = asyncio's default).

    ``auto`` (the default, or ``$VOXPIPE_LOOP``): uvloop when installed (``pip install
    uvloop``), else asyncio. ``select``: asyncio on select(), whose timers have
    microsecond rather than millisecond resolution (few sockets only). ``virtual``: a
    simulated clock (looptime): sessions run instantly with exact timings.
    """
    name = name or os.environ.get("VOXPIPE_LOOP", "auto")
    if name == "auto":
        try:
            import uvloop
        except ImportError:
            return None
        return uvloop.new_event_loop
    if name == "asyncio":
        return None
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise UsageError(
                "the uvloop event loop needs uvloop: pip install uvloop (voxpipe's 'fast' extra)"
            ) from None
        return uvloop.new_event_loop
    if name == "select":
        return lambda: asyncio.SelectorEventLoop(SelectSelector())
    if name == "virtual":
        import looptime

        return looptime.new_event_loop
    raise UsageError(f"unknown event loop {name!r}; choose from {', '.join(LOOPS)}")


#: The collector's thresholds once sessions run: generations 0 and 1 as Python's default,
#: a full collection after 100 collections of generation 1 instead of 10 (README, "Overhead,
#: measured": at 300 sessions the longest pause of a 40 s run halved).
GC_THRESHOLDS = (700, 10, 100)


def freeze_gc() -> None:
    """Move everything alive now (modules, models, configs) out of the collector's sight,
    and make full collections ten times rarer (``GC_THRESHOLDS``).

    Call once after start-up, before sessions start: full collections then only walk what
    the sessions themselves allocate, so their pauses stay short, and come seldom: a
    session's objects are short-lived, and most die young in generations 0 and 1.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
