"""The session summary: time to first audio per turn against its budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voxpipe.metrics import OUTCOMES, SessionMetrics, TurnMetrics
from voxpipe.plot.style import _DPI, _FIG_W, _PERCENTILE_COLOUR, MISS_COLOUR, OUTCOME_COLOURS, _ms
from voxpipe.plot.timeline import _stop
from voxpipe.report import clip

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


# The session summary.


def _ttfa_budget(session: SessionMetrics) -> float | None:
    """The time_to_first_audio budget: the session's, else the first turn's that has one."""
    if "time_to_first_audio" in session.budgets_ms:
        return session.budgets_ms["time_to_first_audio"]
    found = (t.budget("time_to_first_audio") for t in session.turns)
    return next((b.budget_ms for b in found if b is not None), None)


def _summary_figure(session: SessionMetrics) -> Figure:
    """Time to first audio per turn (a bar; hatched for a turn with no audio) coloured by
    outcome, the budget as a line, p50 and p99 as dashed and dotted lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    turns = session.turns
    width = min(max(4 + 0.32 * len(turns), 9), _FIG_W)
    fig = Figure(figsize=(width, 4.8), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _style_summary(fig, ax, session)
    if not turns:
        ax.text(0.5, 0.5, "no turns", transform=ax.transAxes, ha="center", fontsize=12)
        return fig
    budget = _ttfa_budget(session)
    _draw_summary_marks(ax, turns, budget)
    _draw_summary_lines(ax, session, budget)
    _set_summary_limits(ax, session, budget)
    handles = _summary_legend(ax, turns)
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False
    )
    return fig


def _style_summary(fig: Figure, ax: Axes, session: SessionMetrics) -> None:
    """Title with the outcome counts, under it how the session ended if not completed,
    axis labels, grid."""
    counts = ", ".join(f"{n} {k}" for k, n in session.outcomes().items() if n)
    title = f"Time to first audio per turn: {len(session.turns)} turns"
    fig.suptitle(
        title + (f" ({counts})" if counts else ""),
        x=0.01,
        ha="left",
        fontsize=11,
        fontweight="bold",
    )
    if session.end_reason != "completed":
        error = f": {clip(session.end_error, 80)}" if session.end_error else ""
        ax.set_title(
            f"session ended: {session.end_reason}{error}", loc="left", fontsize=8, color=MISS_COLOUR
        )
    ax.set_xlabel("turn", fontsize=9)
    ax.set_ylabel("time to first audio, ms (speech_end -> playout_start)", fontsize=9)
    ax.grid(axis="y", color="#e6e6e6", lw=0.6)
    ax.set_axisbelow(True)


def _set_summary_limits(ax: Axes, session: SessionMetrics, budget: float | None) -> None:
    """Room above the highest bar, line and label; a tick per turn unless there are many."""
    from matplotlib.ticker import MaxNLocator

    indices = [t.index for t in session.turns]
    stats = session.summary()["time_to_first_audio_ms"]
    values = [t.latency("time_to_first_audio") or _waited_ms(t) or 0.0 for t in session.turns]
    values += [float(v) for v in (budget, stats["p99"]) if v is not None]
    ax.set_ylim(0, max(max(values) * 1.12, 100.0))
    ax.set_xlim(min(indices) - 0.7, max(indices) + 0.7)
    if len(indices) <= 40:
        ax.set_xticks(indices)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _draw_summary_marks(ax: Axes, turns: list[TurnMetrics], budget: float | None) -> None:
    """One mark per turn (see :func:`_draw_time_to_first_audio` and
    :func:`_draw_no_audio`), and a hollow diamond at its first sound when a filler came
    before the answer."""
    for turn in turns:
        ttfa = turn.latency("time_to_first_audio")
        if ttfa is None:
            _draw_no_audio(ax, turn)
        else:
            _draw_time_to_first_audio(ax, turn, ttfa, budget, labelled=len(turns) <= 40)
        sound = turn.latency("time_to_first_sound")
        if sound is not None and (ttfa is None or sound < ttfa):
            ax.plot(
                [turn.index],
                [sound],
                marker="D",
                ms=6,
                mfc="white",
                mec="k",
                ls="none",
                gid=f"first-sound:{turn.index}",
            )


def _draw_time_to_first_audio(
    ax: Axes, turn: TurnMetrics, ttfa: float, budget: float | None, labelled: bool
) -> None:
    """A bar in the outcome's colour; over budget, edged in the warning colour and, when
    ``labelled``, topped with how far over."""
    colour = OUTCOME_COLOURS.get(turn.outcome, "k")
    over = budget is not None and ttfa > budget
    ax.bar(
        turn.index,
        ttfa,
        width=0.7,
        color=colour,
        edgecolor=MISS_COLOUR if over else colour,
        lw=2 if over else 0,
        gid=f"turn:{turn.index}",
    )
    if over and budget is not None and labelled:
        ax.text(
            turn.index,
            ttfa,
            f"+{_ms(ttfa - budget)}",
            ha="center",
            va="bottom",
            fontsize=7,
            color=MISS_COLOUR,
            fontweight="bold",
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"},
        )


def _waited_ms(turn: TurnMetrics) -> float | None:
    """How long after speech_end the turn stopped, if it did after it."""
    stop, end = _stop(turn), turn.stamps.get("speech_end")
    return None if stop is None or end is None or stop <= end else stop - end


def _draw_no_audio(ax: Axes, turn: TurnMetrics) -> None:
    """A turn that never played its answer: a hatched bar, edged in the outcome's colour, as
    high as the user waited (speech_end to the turn's stop), or an x at 0 if unknown."""
    colour = OUTCOME_COLOURS.get(turn.outcome, "k")
    waited = _waited_ms(turn)
    if waited is None:
        ax.plot(
            [turn.index],
            [0],
            marker="X",
            ms=9,
            color=colour,
            clip_on=False,
            gid=f"turn:{turn.index}",
        )
        return
    ax.bar(
        turn.index,
        waited,
        width=0.7,
        color="white",
        edgecolor=colour,
        hatch="///",
        lw=1.2,
        gid=f"turn:{turn.index}",
    )


def _draw_summary_lines(ax: Axes, session: SessionMetrics, budget: float | None) -> None:
    """The budget (solid) and the session's p50 / p99 (dashed, dotted) over the turns that
    played audio, as in the report's tables."""
    stats = session.summary()["time_to_first_audio_ms"]
    if budget is not None:
        ax.axhline(budget, color="k", lw=1.8, gid="budget", label=f"budget {_ms(budget)} ms")
    for key, ls in (("p50", "--"), ("p99", ":")):
        value = stats[key]
        if value is not None:
            ax.axhline(
                value,
                color=_PERCENTILE_COLOUR,
                lw=1.5,
                ls=ls,
                gid=key,
                label=f"{key} {_ms(float(value))} ms (of {stats['count']} with audio)",
            )


def _summary_legend(ax: Axes, turns: list[TurnMetrics]) -> list[Any]:
    """Lines drawn, outcomes present, and the marks used."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = list(ax.get_legend_handles_labels()[0])
    present = [
        o
        for o in (*OUTCOMES, *sorted({t.outcome for t in turns} - set(OUTCOMES)))
        if any(t.outcome == o for t in turns)
    ]
    handles += [Patch(color=OUTCOME_COLOURS.get(o, "k"), label=o) for o in present]
    handles += [
        Patch(facecolor="white", edgecolor=MISS_COLOUR, lw=2, label="over budget (+ms)"),
        Patch(
            facecolor="white", edgecolor="k", hatch="///", label="no audio (until the turn stopped)"
        ),
        Line2D([], [], marker="D", mfc="white", mec="k", ls="none", label="first sound (filler)"),
    ]
    return handles
