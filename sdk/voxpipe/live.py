"""What the terminal shows while a session runs, kept off the audio path.

The session's listeners only hand a turn or a budget miss to a queue (a few microseconds);
a printer thread renders and prints it, and the status line is redrawn by rich's own
refresh thread, on a timer, from the state the listeners last set.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console, RenderableType
from rich.text import Text

from voxpipe.events import BudgetMiss, StateChange
from voxpipe.metrics import SessionMetrics, TurnMetrics
from voxpipe.report import budget_line, summary_line, summary_table, turn_line, turn_table
from voxpipe.session import Session

__all__ = ["LiveView", "Verbosity"]


class Verbosity(enum.IntEnum):
    """How much the CLI prints: ``--quiet``, the default, ``--verbose``."""

    QUIET = 0
    NORMAL = 1
    VERBOSE = 2


class _Status:
    """The status line's text, made anew at every refresh: state and session time."""

    def __init__(self, duration_ms: float | None) -> None:
        self.state = "listening"
        started = time.monotonic()
        #: Milliseconds to show: wall time since the start until a session clock is followed.
        self.clock: Callable[[], float] = lambda: (time.monotonic() - started) * 1000
        self._duration_ms = duration_ms

    def __rich__(self) -> Text:
        where = f"{self.clock() / 1000:5.1f} s"
        if self._duration_ms is not None:
            where += f" / {self._duration_ms / 1000:.1f} s of input"
        return Text(f"{self.state}  {where}")


class LiveView:
    """Prints a session as it goes: a line (``VERBOSE``: tables) per turn, a line the moment
    a budget's deadline passes, a status line (``status``) refreshed on a timer; nothing
    but errors when ``QUIET``.

    Use as a context manager around the session; ``print`` queues anything else in order.
    """

    def __init__(
        self,
        console: Console,
        verbosity: Verbosity = Verbosity.NORMAL,
        *,
        duration_ms: float | None = None,
        status: bool = True,
        refresh_per_second: float = 4.0,
    ) -> None:
        self.console, self.verbosity = console, verbosity
        self._show_status = status and verbosity >= Verbosity.NORMAL
        self._status = _Status(duration_ms)
        self._live = console.status(
            self._status, spinner="dots", refresh_per_second=refresh_per_second
        )
        #: What to print, in order; None stops the printer.
        self._queue: queue.SimpleQueue[Callable[[], RenderableType] | None] = queue.SimpleQueue()
        self._printer = threading.Thread(target=self._print_queued, name="voxpipe-printer")

    def follow(self, session: Session) -> None:
        """Show the session's time on the status line (from when its clock starts)."""
        self._status.clock = lambda: session.clock.now_ms() if session.clock is not None else 0.0

    # -- session listeners (on the event loop: they only queue) ----------------------------

    def on_state(self, change: StateChange) -> None:
        self._status.state = change.new.value

    def on_turn(self, turn: TurnMetrics) -> None:
        if self.verbosity is Verbosity.VERBOSE:
            self._queue.put(lambda: turn_table(turn))
        elif self.verbosity is Verbosity.NORMAL:
            self._queue.put(lambda: turn_line(turn))

    def on_budget(self, miss: BudgetMiss) -> None:
        if self.verbosity >= Verbosity.NORMAL:
            self._queue.put(lambda: budget_line(miss))

    # -- the rest of the output ------------------------------------------------------------

    def print(
        self, renderable: RenderableType, *, min_verbosity: Verbosity = Verbosity.NORMAL
    ) -> None:
        """Print after everything queued before it, unless the verbosity is lower."""
        if self.verbosity >= min_verbosity:
            self._queue.put(lambda: renderable)

    def summary(self, session: SessionMetrics) -> None:
        if self.verbosity is Verbosity.VERBOSE:
            self.print(summary_table(session))
        else:
            self.print(summary_line(session))

    def __enter__(self) -> LiveView:
        self._printer.start()
        if self._show_status:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Print what is queued, stop the status line and the printer thread."""
        if self._printer.is_alive():
            self._queue.put(None)
            self._printer.join()
        self._live.stop()

    def _print_queued(self) -> None:
        while (render := self._queue.get()) is not None:
            self.console.print(render(), highlight=False)
