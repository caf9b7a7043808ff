"""Human-readable views of turn and session metrics: rich tables (the PNG timeline is in
:mod:`voxpipe.plot`).

Every figure shown here is derived from :class:`~voxpipe.metrics.TurnMetrics` stamps
(session-clock milliseconds); nothing is measured or recomputed differently from the JSON.
"""

from __future__ import annotations

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from voxpipe.events import BudgetMiss
from voxpipe.metrics import STAGES, SessionMetrics, TurnMetrics, percentiles

__all__ = [
    "print_session",
    "print_turn",
    "summary_line",
    "summary_table",
    "turn_line",
    "turn_table",
]

MISSING = "—"
_TITLE_TEXT = 30
_PERCENTILE_KEYS = ("p50", "p90", "p99", "mean")


def _ms(value: float | int | None) -> str:
    return MISSING if value is None else f"{value:.1f}"


def clip(text: str, limit: int = _TITLE_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def turn_title(turn: TurnMetrics) -> str:
    title = f'Turn {turn.index}: "{clip(turn.user_text)}" -> "{clip(turn.agent_text)}"'
    return title + " (interrupted)" if turn.interrupted else title


def budget_line(miss: BudgetMiss) -> Text:
    """One line the moment a deadline passes: which, when, and what was done."""
    result = miss.turn.budget(miss.name)
    budget = "" if result is None else f" ({result.budget_ms:.0f} ms)"
    action = "" if result is None else f": {result.action}"
    detail = f", {result.detail}" if result is not None and result.detail else ""
    return Text(
        f"turn {miss.turn.index}: budget {miss.name}{budget} passed at {miss.at_ms:.0f} ms"
        f"{action}{detail}",
        style="yellow",
    )


def _verdict(ok: bool | None) -> Text:
    if ok is None:
        return Text("n/a", style="dim")
    return Text("ok", style="green") if ok else Text("over", style="bold red")


def turn_table(turn: TurnMetrics) -> Table:
    """One turn: the stages that tile time to first audio, the totals, and budget verdicts."""
    ttfa = turn.latency("time_to_first_audio")
    stages = Table(title="Stages", box=box.SIMPLE_HEAD, title_justify="left")
    stages.add_column("stage")
    stages.add_column("ms", justify="right")
    stages.add_column("% of TTFA", justify="right")
    for name, value in turn.stages().items():
        share = MISSING if value is None or not ttfa else f"{100 * value / ttfa:.0f}%"
        if name in turn.cut_short:
            stages.add_row(name, Text("cut short", style="yellow"), "")
            continue
        stages.add_row(name, _ms(value), share)
    stages.add_section()
    stages.add_row(Text("time_to_first_audio", style="bold"), Text(_ms(ttfa), style="bold"), "")
    total = Text("cut short", style="yellow") if "total" in turn.cut_short else None
    stages.add_row("total", total or _ms(turn.latency("total")), "")

    budgets = Table(title="Budgets", box=box.SIMPLE_HEAD, title_justify="left")
    budgets.add_column("budget")
    budgets.add_column("budget ms", justify="right")
    budgets.add_column("actual ms", justify="right")
    budgets.add_column("verdict", justify="center")
    budgets.add_column("action")
    for b in turn.budgets:
        action = b.action if not b.detail else f"{b.action}: {b.detail}"
        budgets.add_row(b.name, _ms(b.budget_ms), _ms(b.actual_ms), _verdict(b.ok), Text(action))
    if not turn.budgets:
        budgets.add_row(Text("no budgets set", style="dim"), "", "", "", "")

    outer = Table.grid(padding=(0, 0, 1, 0))
    title = turn_title(turn)
    outer.title = Text(title)  # plain text: "[speech 1.2 s]" is not markup
    outer.min_width = cell_len(title)
    outer.title_justify = "left"
    outer.title_style = "bold"
    outer.add_column()
    outer.add_row(stages)
    outer.add_row(budgets)
    for line in interruption_lines(turn):
        outer.add_row(line)
    return outer


def interruption_lines(turn: TurnMetrics) -> list[Text]:
    """What the user's interruptions (or a failure) did to this turn's reply, in words."""
    lines = []
    if turn.outcome in ("failed", "cancelled"):
        lines.append(Text(f"{turn.outcome.capitalize()}: {turn.error}", style="bold red"))
    for a in turn.attempts:
        if a.outcome != "ok" or a.retries:
            retries = f", {a.retries} retr{'y' if a.retries == 1 else 'ies'}" if a.retries else ""
            why = f": {a.error}" if a.error else ""
            lines.append(
                Text(f"{a.stage} attempt on {a.backend}: {a.outcome}{retries}{why}", style="yellow")
            )
    stamps = turn.stamps
    for false in turn.false_interruptions:
        held = false["resumed_ms"] - false["silent_ms"]
        lines.append(
            Text(
                f"False interruption: output silent {false['silent_ms'] - false['detected_ms']:.0f}"
                f" ms after detection, resumed {held:.0f} ms later (no words)",
                style="yellow",
            )
        )
    detected, silent = stamps.get("interruption_detected"), stamps.get("output_silent")
    if turn.interrupted and detected is not None and silent is not None:
        start = stamps.get("playout_start")
        into = (
            "before any audio played"
            if start is None or start >= detected
            else f"{detected - start:.0f} ms into the answer"
        )
        lines.append(
            Text(
                f"Interrupted {into}: output silent {silent - detected:.0f} ms after detection."
                f' Heard: "{clip(turn.heard_text, 80)}"',
                style="bold yellow",
            )
        )
    return lines


def _verdict_word(turn: TurnMetrics) -> Text:
    """The turn's verdict in a word or two: "budgets ok", "2 over", "failed"."""
    if turn.outcome in ("failed", "cancelled"):
        return Text(turn.outcome, style="bold red")
    if not turn.budgets:
        return Text("no budgets", style="dim")
    missed = sum(b.ok is False for b in turn.budgets)
    return Text(f"{missed} over", style="yellow") if missed else Text("budgets ok", style="green")


def _details(turn: TurnMetrics) -> Text:
    """What went wrong in the turn, if anything: each budget missed with what was done, the
    first sound when a filler came before the answer, the error."""
    details = Text(style="yellow")
    for b in turn.budgets:
        if b.ok is False:
            over = "" if b.actual_ms is None else f" {b.actual_ms:.0f}/{b.budget_ms:.0f} ms"
            acted = f" → {b.action}" if b.action not in ("none", "warn") else ""
            if acted and b.detail:
                acted += f" ({b.detail})"
            details.append(f"{'; ' if details else ''}{b.name}{over}{acted}")
    first_sound = turn.latency("time_to_first_sound")
    ttfa = turn.latency("time_to_first_audio")
    if first_sound is not None and (ttfa is None or first_sound < ttfa):
        details.append(f"{'; ' if details else ''}first sound (a filler) at {first_sound:.0f} ms")
    if turn.error:
        details.append(f"{'; ' if details else ''}{turn.error}", style="red")
    return details


def turn_line(turn: TurnMetrics) -> Table:
    """One turn at a glance: its time to first audio, the budget verdict, and what was said
    (the agent's text in full, wrapped; what was heard of it when interrupted); below it,
    what went wrong, if anything."""
    ttfa = turn.latency("time_to_first_audio")
    said = Text(f'"{" ".join(turn.user_text.split())}"', style="bold")
    said.append(" → ")
    if turn.interrupted:
        said.append(" ".join(turn.heard_text.split()))
        said.append(" [interrupted]", style="yellow")
    else:
        said.append(" ".join(turn.agent_text.split()) or MISSING)
    line = Table.grid(padding=(0, 2, 0, 0))
    line.add_column(no_wrap=True)
    line.add_column(justify="right", no_wrap=True)
    line.add_column(no_wrap=True)
    line.add_column(ratio=1)
    ms = Text(MISSING if ttfa is None else f"{ttfa:.0f} ms", style="bold")
    line.add_row(f"Turn {turn.index}", ms, _verdict_word(turn), said)
    if details := _details(turn):
        line.add_row("", "", "", details)
    return line


def summary_line(session: SessionMetrics) -> Text:
    """The session in two lines: time to first audio percentiles, then what the turns did."""
    n = len(session.turns)
    line = Text(f"{n} turn{'' if n == 1 else 's'}", style="bold")
    firsts = [v for t in session.turns if (v := t.latency("time_to_first_audio")) is not None]
    if firsts:
        stats = percentiles(firsts)
        line.append(
            f": time to first audio p50 {stats['p50']:.0f} ms, p99 {stats['p99']:.0f} ms, "
            f"max {max(firsts):.0f} ms"
        )
    line.append("\n")
    checked = [t for t in session.turns if t.budgets]
    if checked:
        met = sum(all(b.ok is not False for b in t.budgets) for t in checked)
        style = "green" if met == len(checked) else "yellow"
        line.append(f"budgets met in {met}/{len(checked)} turns", style=style)
        line.append(", ")
    outcomes, counts = session.outcomes(), session.interruptions()
    line.append(
        f"{counts['interrupted_turns']} interrupted, {outcomes['failed']} failed, "
        f"{outcomes['cancelled']} cancelled"
    )
    return line


def _summary_order(keys: list[str]) -> list[str]:
    first = [f"{name}_ms" for name in STAGES if f"{name}_ms" in keys]
    return first + [k for k in keys if k not in first]


def summary_table(session: SessionMetrics) -> Table:
    """Percentiles of every latency and stage over the session, and budget failure counts."""
    n = len(session.turns)
    summary = session.summary()
    latencies = Table(title="Latencies (ms)", box=box.SIMPLE_HEAD, title_justify="left")
    latencies.add_column("latency")
    for key in _PERCENTILE_KEYS:
        latencies.add_column(key, justify="right")
    latencies.add_column("count", justify="right")
    for key in _summary_order(list(summary)):
        stats = summary[key]
        name = key.removesuffix("_ms")
        if name == "time_to_first_audio":
            latencies.add_section()
        count = stats.get("count")
        latencies.add_row(
            name,
            *(_ms(stats.get(p)) for p in _PERCENTILE_KEYS),
            MISSING if count is None else str(count),
        )

    failures = Table(title="Budget failures", box=box.SIMPLE_HEAD, title_justify="left")
    failures.add_column("budget")
    failures.add_column("budget ms", justify="right")
    failures.add_column("failed turns", justify="right")
    for name, count in session.budget_failures().items():
        failures.add_row(
            name,
            _ms(session.budgets_ms.get(name)),
            Text(f"{count}/{n}", style="bold red" if count else "green"),
        )
    if not failures.row_count:
        failures.add_row(Text("no budgets checked", style="dim"), "", "")

    outer = Table.grid(padding=(0, 0, 1, 0))
    outer.title_style = "bold"
    counts = session.interruptions()
    outcomes = session.outcomes()
    outer.title = (
        f"Session summary: {n} turn{'' if n == 1 else 's'}, "
        f"{counts['interrupted_turns']} interrupted, {counts['resumed_turns']} resumed, "
        f"{outcomes['failed']} failed, {outcomes['cancelled']} cancelled"
    )
    outer.title_justify = "left"
    if session.backends:
        outer.caption = Text("  ".join(f"{k}={v}" for k, v in session.backends.items()))
        outer.caption_justify = "left"
    outer.add_column()
    outer.add_row(latencies)
    outer.add_row(failures)
    return outer


def print_turn(turn: TurnMetrics, console: Console | None = None) -> None:
    """Print :func:`turn_table` for ``turn``."""
    (console or Console()).print(turn_table(turn))


def print_session(session: SessionMetrics, console: Console | None = None) -> None:
    """Print every turn's table, then the session summary."""
    console = console or Console()
    for turn in session.turns:
        console.print(turn_table(turn))
        console.print()
    console.print(summary_table(session))
