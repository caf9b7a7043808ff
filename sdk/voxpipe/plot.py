"""The PNG timeline of a session's turns, drawn from the same stamps as the JSON."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from voxpipe.budgets import DEADLINES
from voxpipe.metrics import STAGES, SessionMetrics, TurnMetrics
from voxpipe.report import clip, turn_title

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_timeline"]

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
    ax.set_title(turn_title(turn), loc="left", fontsize=9)
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
            f' {silent - detected:.0f} ms after; heard "{clip(turn.heard_text, 40)}"',
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
