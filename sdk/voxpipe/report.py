"""Human-readable views of turn and session metrics: rich tables and a PNG timeline.

Every figure shown here is derived from :class:`~voxpipe.metrics.TurnMetrics` stamps
(session-clock milliseconds); nothing is measured or recomputed differently from the JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from voxpipe.budgets import DEADLINES
from voxpipe.events import BudgetMiss
from voxpipe.metrics import STAGES, SessionMetrics, TurnMetrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_timeline", "print_session", "print_turn", "summary_table", "turn_table"]

MISSING = "—"
_TITLE_TEXT = 30
_PERCENTILE_KEYS = ("p50", "p90", "p99", "mean")

#: Bar colours of the timeline. Green and red are kept for budget verdicts.
SEGMENT_COLOURS: dict[str, str] = {
    "user speech": "#c6dbef",
    "asr_finalization": "#1f77b4",
    "handoff": "#8c564b",
    "llm_ttft": "#ff7f0e",
    "first_phrase": "#e377c2",
    "tts_ttfb": "#9467bd",
    "playout": "#17becf",
    "agent speaking": "#d9d9d9",
}
_VERDICT_COLOURS = {True: "#2ca02c", False: "#d62728", None: "#7f7f7f"}
_BARGE_IN_COLOUR = "#ff7f0e"


def _ms(value: float | int | None) -> str:
    return MISSING if value is None else f"{value:.1f}"


def _clip(text: str, limit: int = _TITLE_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _turn_title(turn: TurnMetrics) -> str:
    title = f'Turn {turn.index}: "{_clip(turn.user_text)}" -> "{_clip(turn.agent_text)}"'
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
    title = _turn_title(turn)
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
                f' Heard: "{_clip(turn.heard_text, 80)}"',
                style="bold yellow",
            )
        )
    return lines


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


# --- timeline -----------------------------------------------------------------------------

_FIG_WIDTH_IN = 14.0
_TURN_HEIGHT_IN = 2.7
_BAR_Y, _BAR_H = 0.62, 0.22
_CHAR_IN = 0.075  # rough width of one 7 pt character, for deciding where labels fit


def _origin(turn: TurnMetrics) -> float | None:
    if "speech_end" in turn.stamps:
        return turn.stamps["speech_end"]
    return min(turn.stamps.values()) if turn.stamps else None


def _segments(turn: TurnMetrics) -> list[tuple[str, float, float]]:
    """(colour key, start stamp, end stamp) for every segment whose stamps exist."""
    spans = [
        ("user speech", ("speech_start", "speech_end")),
        *STAGES.items(),
        ("agent speaking", ("playout_start", "turn_end")),
    ]
    out = []
    for key, (a, b) in spans:
        start, end = turn.stamps.get(a), turn.stamps.get(b)
        if start is not None and end is not None and end >= start:
            out.append((key, start, end))
    return out


def _x_range(turns: list[TurnMetrics]) -> tuple[float, float]:
    lo, hi = 0.0, 1.0
    for turn in turns:
        origin = _origin(turn)
        if origin is not None:
            lo = min(lo, *(v - origin for v in turn.stamps.values()))
            hi = max(hi, *(v - origin for v in turn.stamps.values()))
            for b in turn.budgets:
                start = turn.stamps.get(DEADLINES[b.name][0]) if b.name in DEADLINES else None
                if start is not None:
                    hi = max(hi, start + b.budget_ms - origin)
    pad = 0.03 * (hi - lo)
    return lo - pad, hi + pad


def _barge_in_ms(turn: TurnMetrics, after: TurnMetrics | None) -> float:
    start = after.stamps.get("speech_start") if after is not None else None
    detected = turn.stamps.get("interruption_detected", 0.0)
    return 0.0 if start is None else detected - start


def _draw_barge_in(ax: Axes, turn: TurnMetrics, after: TurnMetrics | None, origin: float) -> None:
    """The user's speech that interrupted this turn's answer (the next turn's), up to the
    moment it was detected."""
    detected = turn.stamps.get("interruption_detected")
    start = after.stamps.get("speech_start") if after is not None else None
    if detected is None or start is None or start > detected:
        return
    ax.barh(
        _BAR_Y - _BAR_H,
        detected - start,
        left=start - origin,
        height=_BAR_H / 2,
        color=SEGMENT_COLOURS["user speech"],
        edgecolor=_BARGE_IN_COLOUR,
        hatch="//",
        linewidth=0.5,
    )


def _draw_turn(
    ax: Axes, turn: TurnMetrics, in_per_ms: float, after: TurnMetrics | None = None
) -> None:
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_title(_turn_title(turn), loc="left", fontsize=9)
    origin = _origin(turn)
    if origin is None:
        ax.text(
            0.5,
            0.5,
            "no timestamps recorded",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="#7f7f7f",
        )
        return

    above = 0
    for key, start, end in _segments(turn):
        x, width = start - origin, end - start
        ax.barh(
            _BAR_Y,
            width,
            left=x,
            height=_BAR_H,
            color=SEGMENT_COLOURS[key],
            edgecolor="white",
            linewidth=0.5,
        )
        label = f"{width:.0f}" if key in STAGES else f"{key} {width:.0f} ms"
        centre = x + width / 2
        if width * in_per_ms > len(label) * _CHAR_IN + 0.1:
            dark = key in STAGES and key != "playout"
            ax.text(
                centre,
                _BAR_Y,
                label,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
            )
        else:
            level = _BAR_Y + _BAR_H / 2 + 0.06 + 0.09 * (above % 2)
            above += 1
            ax.annotate(
                label,
                (centre, _BAR_Y + _BAR_H / 2),
                (centre, level),
                ha="center",
                va="bottom",
                fontsize=7,
                arrowprops={"arrowstyle": "-", "lw": 0.5},
            )

    markers = []
    for b in turn.budgets:
        begin = turn.stamps.get(DEADLINES[b.name][0]) if b.name in DEADLINES else None
        if begin is not None:
            markers.append((begin + b.budget_ms - origin, b.name, b.budget_ms, b.ok, b.action))
    levels = max(len(markers), 1)
    for i, (x, name, budget_ms, ok, action) in enumerate(sorted(markers)):
        colour = _VERDICT_COLOURS[ok]
        ax.axvline(
            x,
            ymin=0.02,
            ymax=_BAR_Y + _BAR_H / 2,
            color=colour,
            lw=1.2,
            ls="-" if ok is not None else ":",
        )
        y = _BAR_Y - _BAR_H / 2 - 0.07 - i * (_BAR_Y - _BAR_H / 2 - 0.17) / levels
        verdict = {True: "ok", False: "over", None: "n/a"}[ok]
        acted = f", {action}" if action not in ("none", "warn") else ""
        ax.text(
            x,
            y,
            f" {name} ≤{budget_ms:.0f} ({verdict}{acted})",
            fontsize=7,
            color=colour,
            va="center",
            ha="left",
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
        )

    _draw_barge_in(ax, turn, after, origin)
    detected = turn.stamps.get("interruption_detected")
    if detected is not None:
        x = detected - origin
        silent = turn.stamps.get("output_silent", detected)
        ax.axvline(x, ymin=0.0, ymax=0.95, color=_BARGE_IN_COLOUR, lw=1.8, ls="--")
        ax.text(
            x,
            0.97,
            f" barge-in: {_barge_in_ms(turn, after):.0f} ms of user speech, output silent"
            f' {silent - detected:.0f} ms after; heard "{_clip(turn.heard_text, 40)}"',
            fontsize=8,
            color=_BARGE_IN_COLOUR,
            va="top",
            ha="left",
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    for false in turn.false_interruptions:
        ax.axvspan(
            false["silent_ms"] - origin,
            false["resumed_ms"] - origin,
            ymin=_BAR_Y - _BAR_H / 2,
            ymax=_BAR_Y + _BAR_H / 2,
            color="white",
            hatch="///",
            ec=_BARGE_IN_COLOUR,
            lw=0,
        )

    playout = turn.stamps.get("playout_start")
    if playout is not None:
        x = playout - origin
        # Stops at the top of the bar so it never crosses the stage labels above it.
        ax.axvline(x, ymin=0.0, ymax=_BAR_Y + _BAR_H / 2, color="black", lw=1.8)
        ttfa = turn.latency("time_to_first_audio")
        text = " first audio" + ("" if ttfa is None else f": {ttfa:.0f} ms")
        ax.text(
            x,
            0.03,
            text,
            fontsize=8,
            fontweight="bold",
            va="bottom",
            ha="left",
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    if "speech_end" in turn.stamps:
        ax.axvline(0, color="#404040", lw=0.8, ls="--")
    else:
        ax.text(
            0.99,
            0.97,
            "no speech_end: x relative to first stamp",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
            color="#d62728",
        )


def plot_timeline(session: SessionMetrics, path: str | Path) -> Path:
    """Write a PNG timeline with one row per turn; x is ms relative to the turn's speech_end.

    Each row shows user speech, the stages that tile time to first audio, and the agent
    speaking, with a vertical line per deadline budget (green ok, red over, grey undecided)
    at the moment it would fire, and a black line where time to first audio ends.
    Segments whose stamps are missing are left out. Parent directories are created.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    turns = session.turns
    rows = max(len(turns), 1)
    fig = Figure(figsize=(_FIG_WIDTH_IN, 1.2 + _TURN_HEIGHT_IN * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    lo, hi = _x_range(turns)
    axes[0].set_xlim(lo, hi)
    in_per_ms = _FIG_WIDTH_IN * 0.9 / (hi - lo)
    if not turns:
        axes[0].set_yticks([])
        axes[0].text(0.5, 0.5, "no turns", transform=axes[0].transAxes, ha="center")
    for i, (ax, turn) in enumerate(zip(axes, turns, strict=False)):
        _draw_turn(ax, turn, in_per_ms, turns[i + 1] if i + 1 < len(turns) else None)
        ax.grid(axis="x", color="#eeeeee", lw=0.6)
        ax.set_axisbelow(True)
    axes[-1].set_xlabel("ms relative to the end of user speech (0 = speech_end)")

    handles: list[Patch | Line2D] = [
        Patch(color=colour, label=key) for key, colour in SEGMENT_COLOURS.items()
    ]
    handles += [
        Line2D([], [], color=_VERDICT_COLOURS[True], label="budget ok"),
        Line2D([], [], color=_VERDICT_COLOURS[False], label="budget over"),
        Line2D([], [], color="black", lw=1.8, label="first audio"),
        Line2D([], [], color=_BARGE_IN_COLOUR, lw=1.8, ls="--", label="barge-in detected"),
    ]
    fig.legend(
        handles=handles, loc="outside upper center", ncol=len(handles), fontsize=8, frameon=False
    )
    fig.savefig(out, dpi=100)
    return out
