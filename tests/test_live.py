"""LiveView: what the CLI prints while a session runs, and that printing is off the loop."""

from __future__ import annotations

import io
import threading
import time

from rich.console import Console

from voxpipe.events import AgentState, BudgetMiss, StateChange
from voxpipe.live import LiveView, Verbosity, _Status
from voxpipe.metrics import BudgetResult, SessionMetrics, TurnMetrics


def a_turn(index: int, agent_text: str = "Sure, here it is.") -> TurnMetrics:
    turn = TurnMetrics(index=index, user_text="Hi there", agent_text=agent_text)
    for name, at in (("speech_end", 1000.0), ("playout_start", 1700.0), ("turn_end", 3000.0)):
        turn.stamp(name, at)
    turn.budgets.append(BudgetResult("time_to_first_audio", 800, 700, ok=True))
    return turn


def recording_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100, color_system=None), out


class BlockingFile(io.StringIO):
    """A terminal that hangs on its first write until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        assert self.release.wait(10), "the test never released the terminal"
        return super().write(text)


def test_the_listeners_only_queue_a_hung_terminal_does_not_hold_the_caller() -> None:
    terminal = BlockingFile()
    view = LiveView(Console(file=terminal, width=100, color_system=None), status=False)
    with view:
        view.on_turn(a_turn(1))
        assert terminal.entered.wait(10)  # the printer thread is stuck writing turn 1 ...
        view.on_turn(a_turn(2))  # ... and the session's listeners still return at once
        view.on_budget(BudgetMiss("llm_first_token", a_turn(2), 1300.0))
        view.print("after the turns")
        terminal.release.set()
    text = terminal.getvalue()
    assert text.index("Turn 1") < text.index("Turn 2") < text.index("after the turns")
    assert "budget llm_first_token" in text


def test_normal_prints_a_line_per_turn_with_the_whole_reply() -> None:
    console, out = recording_console()
    reply = "A long answer " * 12 + "that ends here."
    with LiveView(console, status=False) as view:
        view.on_turn(a_turn(1, reply))
        view.summary(SessionMetrics(turns=[a_turn(1, reply)]))
    text = " ".join(out.getvalue().split())
    assert f'Turn 1 700 ms budgets ok "Hi there" → {" ".join(reply.split())}' in text
    assert "1 turn: time to first audio p50 700 ms" in text
    assert "Stages" not in text


def test_verbose_prints_the_tables_and_quiet_prints_nothing() -> None:
    console, out = recording_console()
    with LiveView(console, Verbosity.VERBOSE, status=False) as view:
        view.on_turn(a_turn(1))
        view.summary(SessionMetrics(turns=[a_turn(1)]))
    assert "Stages" in out.getvalue() and "Session summary" in out.getvalue()

    console, out = recording_console()
    with LiveView(console, Verbosity.QUIET) as view:
        view.on_turn(a_turn(1))
        view.on_budget(BudgetMiss("llm_first_token", a_turn(1), 1300.0))
        view.summary(SessionMetrics(turns=[a_turn(1)]))
        view.print("metrics: out.json")
    assert out.getvalue() == ""


def test_the_status_text_follows_the_clock_between_state_changes() -> None:
    status = _Status(duration_ms=10_600)
    now = [2_600.0]
    status.clock = lambda: now[0]
    status.state = "speaking"
    assert status.__rich__().plain == "speaking    2.6 s / 10.6 s of input"
    now[0] = 7_000.0  # no state change since
    assert status.__rich__().plain == "speaking    7.0 s / 10.6 s of input"


def test_the_status_line_is_redrawn_on_a_timer() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system=None)
    now = [1_000.0]
    view = LiveView(console, refresh_per_second=50)
    view._status.clock = lambda: now[0]
    with view:
        view.on_state(StateChange(AgentState.THINKING, AgentState.SPEAKING, 900.0))
        deadline = time.monotonic() + 10
        while "1.0 s" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        now[0] = 7_000.0  # the clock moves; nothing else happens
        while "7.0 s" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "speaking    1.0 s" in out.getvalue() and "speaking    7.0 s" in out.getvalue()
