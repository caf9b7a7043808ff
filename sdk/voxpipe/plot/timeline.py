"""The per-turn timeline: time to first audio at its own scale, then the whole turn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voxpipe.budgets import DEADLINES, RATES
from voxpipe.metrics import STAGES, BudgetResult, SessionMetrics, TurnMetrics
from voxpipe.plot.style import (
    _BARGE_IN_COLOUR,
    _DARK_STAGES,
    _DPI,
    _FIG_W,
    _FONT,
    _SMALL,
    _VERDICT_COLOURS,
    _WINDOW_COLOUR,
    MISS_COLOUR,
    OK_COLOUR,
    OUTCOME_COLOURS,
    SEGMENT_COLOURS,
    UNDECIDED_COLOUR,
    _fit,
    _ms,
    _spread,
    _text_w,
)
from voxpipe.report import turn_title

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


#: The timeline draws at most this many turns (the worst: failed and cancelled, then budget
#: misses, slowest first), in turn order, with a note. The summary always shows every turn.
MAX_TIMELINE_TURNS = 10

# Timeline geometry, inches.
_MARGIN = 0.15
_LEGEND_H = 0.55
_NOTE_H = 0.25
_TITLE_H = 0.3
_AXIS_H = 0.45
_TURN_GAP = 0.25
_PAD = 0.06
_LANE_H = 0.36  # stage labels that do not fit their segment
_BAR_H = 0.34
_EVENTS_H = 0.26
_ROW_H = 0.21
_LABEL_GAP = 0.08
_WHOLE_H = 1.1
_TEXT_LINE_H = 0.17
_NOTE_LINES = 6
_LANE_NAMES_W = 0.55  # "user" / "agent" left of the whole-turn panel


@dataclass(frozen=True, slots=True)
class _Segment:
    """One stage on the time-to-first-audio bar, in ms from the turn's origin."""

    name: str
    start: float
    end: float
    unfinished: bool

    @property
    def label(self) -> str:
        width = _ms(self.end - self.start)
        return (
            f"{self.name}\n≥{width} ms, unfinished"
            if self.unfinished
            else f"{self.name}\n{width} ms"
        )


@dataclass(frozen=True, slots=True)
class _BudgetRow:
    """One budget's row: left label, right verdict, and its span in ms from the origin."""

    name: str
    label: str
    verdict: str
    colour: str
    start: float | None = None
    deadline: float | None = None
    end: float | None = None
    unfinished: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class _Event:
    """A moment marked below the stage bar."""

    at: float
    text: str
    marker: str
    colour: str


@dataclass(frozen=True, slots=True)
class _Layout:
    """Column widths of the timeline and the height of a turn's block, inches."""

    label_w: float
    ttfa_w: float
    verdict_w: float
    whole_x: float
    whole_w: float
    rows: int

    @property
    def panel_h(self) -> float:
        return _PAD + _LANE_H + _BAR_H + _EVENTS_H + _ROW_H * self.rows + _PAD

    @property
    def turn_h(self) -> float:
        whole = _WHOLE_H + _AXIS_H + _NOTE_LINES * _TEXT_LINE_H
        return _TITLE_H + max(self.panel_h + _AXIS_H, whole) + _TURN_GAP


# What a turn shows, in ms from its origin.


def _origin(turn: TurnMetrics) -> float | None:
    """speech_end, else the first stamp: x = 0 of the turn's panels."""
    if "speech_end" in turn.stamps:
        return turn.stamps["speech_end"]
    return min(turn.stamps.values()) if turn.stamps else None


def _stop(turn: TurnMetrics) -> float | None:
    """When the turn stopped doing anything: turn_end, else its last stamp."""
    return turn.stamps.get("turn_end", max(turn.stamps.values(), default=None))


def _stage_segments(turn: TurnMetrics, origin: float) -> list[_Segment]:
    """The stages whose stamps exist; a started stage with no end runs to the turn's stop."""
    out = []
    stop = _stop(turn)
    for name, (a, b) in STAGES.items():
        start, end = turn.stamps.get(a), turn.stamps.get(b)
        if start is not None and end is not None and end >= start:
            out.append(_Segment(name, start - origin, end - origin, False))
        elif start is not None and end is None and stop is not None and stop > start:
            out.append(_Segment(name, start - origin, stop - origin, True))
    return out


def _budget_order(name: str) -> tuple[int, str]:
    """Deadlines in the order of DEADLINES, then rates in the order of RATES, then others."""
    known = [*DEADLINES, *RATES]
    return (known.index(name), "") if name in known else (len(known), name)


def _verdict(b: BudgetResult) -> str:
    """The right-column text of a budget: actual, verdict, action taken."""
    acted = "" if b.action in ("none", "warn") else f", {b.action}"
    unit = " ms" if b.name not in RATES else " ms avg"
    if b.ok is None:
        return "n/a"
    if b.actual_ms is None:
        return f"over{acted}"
    actual = f"{b.actual_ms:.1f}" if b.name in RATES else _ms(b.actual_ms)
    if b.ok:
        return f"{actual}{unit} ok"
    return f"{actual}{unit} over +{_ms(b.actual_ms - b.budget_ms)}{acted}"


def _budget_rows(turn: TurnMetrics, origin: float) -> list[_BudgetRow]:
    """One row per budget, in the fixed budget order."""
    ordered = sorted(turn.budgets, key=lambda b: _budget_order(b.name))
    return [_budget_row(b, turn, origin) for b in ordered]


def _budget_row(b: BudgetResult, turn: TurnMetrics, origin: float) -> _BudgetRow:
    """A rate budget's row is text only; a deadline's spans from its stage's start to its
    deadline, with the actual time (to the turn's stop if the stage never ended)."""
    label, verdict = f"{b.name} ≤{_ms(b.budget_ms)} ms", _verdict(b)
    colour = _VERDICT_COLOURS[b.ok]
    if b.name not in DEADLINES:
        note = f"rate: {RATES.get(b.name, 'judged when its stage ends')}"
        return _BudgetRow(b.name, label, verdict, colour, note=note)
    begin, stop = turn.stamps.get(DEADLINES[b.name][0]), _stop(turn)
    if begin is None:
        return _BudgetRow(b.name, label, verdict, colour, note="stage not reached")
    start = begin - origin
    deadline = start + b.budget_ms
    end = None if b.actual_ms is None else start + b.actual_ms
    unfinished = end is None and stop is not None and stop > begin
    if unfinished and stop is not None:
        end = stop - origin
    note = "" if deadline >= 0 else "during user speech"
    return _BudgetRow(b.name, label, verdict, colour, start, deadline, end, unfinished, note)


def _filler(turn: TurnMetrics) -> str:
    """What the filler policy said, if it did."""
    said = next((b.detail for b in turn.budgets if b.action == "filler"), "")
    return said.removeprefix("said ")


def _events(turn: TurnMetrics, origin: float) -> list[_Event]:
    """First audio, a filler's first sound, a barge-in before first audio, a reply that
    stopped with no audio."""
    stamps = turn.stamps
    out = []
    playout = stamps.get("playout_start")
    if playout is not None:
        out.append(_Event(playout - origin, f"first audio {_ms(playout - origin)} ms", "v", "k"))
    sound = stamps.get("first_sound")
    if sound is not None and (playout is None or sound < playout):
        said = _filler(turn)
        text = f"{'filler' if said else 'first sound'} {_ms(sound - origin)} ms"
        out.append(_Event(sound - origin, text, "D", "k"))
    detected = stamps.get("interruption_detected")
    if detected is not None and (playout is None or detected < playout):
        out.append(
            _Event(
                detected - origin, f"barge-in {_ms(detected - origin)} ms", "|", _BARGE_IN_COLOUR
            )
        )
    stop = _stop(turn)
    if playout is None and stop is not None and detected is None:
        ended = turn.outcome if turn.outcome in ("failed", "cancelled") else "no audio by"
        colour = OUTCOME_COLOURS.get(turn.outcome, "k")
        out.append(_Event(stop - origin, f"{ended} {_ms(stop - origin)} ms", "X", colour))
    return sorted(out, key=lambda e: e.at)


def _ttfa_xmax(turn: TurnMetrics, origin: float) -> float:
    """A bit past the later of first audio, the last deadline and what else is marked."""
    ends = [100.0]
    ends += [s.end for s in _stage_segments(turn, origin)]
    ends += [e.at for e in _events(turn, origin)]
    for row in _budget_rows(turn, origin):
        ends += [x for x in (row.deadline, row.end) if x is not None]
    return max(ends) * 1.12


# The per-turn timeline.


def _draw_stage_bar(ax: Axes, turn: TurnMetrics, origin: float, in_per_ms: float) -> None:
    """The stages, stacked; each labelled with its name and ms, inside when it fits, else
    above with a leader line."""
    top = _PAD + _LANE_H
    centre = top + _BAR_H / 2
    outside = []
    for seg in _stage_segments(turn, origin):
        ax.barh(
            centre,
            seg.end - seg.start,
            left=seg.start,
            height=_BAR_H,
            color="white" if seg.unfinished else SEGMENT_COLOURS[seg.name],
            edgecolor=SEGMENT_COLOURS[seg.name] if seg.unfinished else "white",
            hatch="///" if seg.unfinished else None,
            linewidth=0.8,
            gid=f"stage:{seg.name}",
        )
        fits = (seg.end - seg.start) * in_per_ms >= _text_w(seg.label, _SMALL) + 0.08
        if fits and not seg.unfinished:
            dark = seg.name in _DARK_STAGES
            ax.text(
                (seg.start + seg.end) / 2,
                centre,
                seg.label,
                ha="center",
                va="center",
                fontsize=_SMALL,
                color="white" if dark else "black",
                gid=f"stage-label:{seg.name}",
            )
        else:
            outside.append(seg)
    _draw_leader_labels(ax, outside, top, in_per_ms)


def _draw_leader_labels(ax: Axes, segs: list[_Segment], bar_top: float, in_per_ms: float) -> None:
    """Labels of segments too narrow for them, side by side above the bar, each with a line
    to its segment."""
    lo, hi = ax.get_xlim()
    widths = [_text_w(s.label, _SMALL) / in_per_ms for s in segs]
    centres = [(s.start + s.end) / 2 for s in segs]
    starts = [c - w / 2 for c, w in zip(centres, widths, strict=True)]
    margin, gap = 0.02 / in_per_ms, _LABEL_GAP / in_per_ms
    lefts = _spread(starts, widths, lo + margin, hi - margin, gap)
    for seg, left, width, centre in zip(segs, lefts, widths, centres, strict=True):
        ax.annotate(
            seg.label,
            (centre, bar_top),
            (left + width / 2, bar_top - _LABEL_GAP),
            ha="center",
            va="bottom",
            fontsize=_SMALL,
            arrowprops={"arrowstyle": "-", "lw": 0.6, "color": "#555555", "shrinkA": 0},
            gid=f"stage-label:{seg.name}",
        )


def _event_label_starts(
    events: list[_Event], widths: list[float], hi: float, gap: float
) -> list[float]:
    """Where each event's label wants to start: right of its marker, or left of it when it
    would cover the next marker or run past ``hi``."""
    starts = []
    for i, (event, width) in enumerate(zip(events, widths, strict=True)):
        limit = events[i + 1].at if i + 1 < len(events) else hi
        right = event.at + gap
        starts.append(right if right + width + gap <= limit else event.at - gap - width)
    return starts


def _draw_events(ax: Axes, turn: TurnMetrics, origin: float, in_per_ms: float) -> None:
    """Markers and labels below the bar; first audio and first sound also as lines down
    through the budget rows."""
    top = _PAD + _LANE_H
    y = top + _BAR_H + _EVENTS_H / 2
    events = _events(turn, origin)
    lo, hi = ax.get_xlim()
    widths = [_text_w(e.text, _FONT, bold=True) / in_per_ms for e in events]
    gap = _LABEL_GAP / in_per_ms
    lefts = _spread(_event_label_starts(events, widths, hi, gap), widths, lo, hi, gap)
    for event, left in zip(events, lefts, strict=True):
        if event.marker in "vD":
            ls = "-" if event.marker == "v" else ":"
            ax.axvline(event.at, ymin=0, ymax=1 - top / ax.get_ylim()[0], color="k", lw=1.4, ls=ls)
        ax.plot([event.at], [y], marker=event.marker, color=event.colour, ms=6, gid="event")
        ax.text(
            left,
            y,
            event.text,
            ha="left",
            va="center",
            fontsize=_FONT,
            fontweight="bold",
            color=event.colour,
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85},
            gid="event-label",
        )


def _row_y(i: int) -> float:
    """The centre of budget row ``i``, inches from the panel's top."""
    return _PAD + _LANE_H + _BAR_H + _EVENTS_H + _ROW_H * (i + 0.5)


def _draw_budget_rows(ax: Axes, rows: list[_BudgetRow], width_in: float) -> None:
    """One row per budget, shaded every other row: its texts, then its span."""
    for i, row in enumerate(rows):
        y = _row_y(i)
        if i % 2 == 0:
            ax.axhspan(y - _ROW_H / 2, y + _ROW_H / 2, color="#f4f4f4", lw=0, zorder=0)
        _draw_row_texts(ax, y, row, width_in)
        _draw_row_span(ax, y, row)


def _draw_row_texts(ax: Axes, y: float, row: _BudgetRow, width_in: float) -> None:
    """The budget's name and limit left of the axes, its verdict right of them in its
    colour, and a note in the row when it has no span to show."""
    lo, hi = ax.get_xlim()
    side = ax.get_yaxis_transform()
    ax.text(-0.08 / width_in, y, row.label, transform=side, ha="right", va="center", fontsize=_FONT)
    bold = "normal" if row.colour == OK_COLOUR else "bold"
    ax.text(
        1 + 0.08 / width_in,
        y,
        row.verdict,
        transform=side,
        ha="left",
        va="center",
        fontsize=_FONT,
        color=row.colour,
        fontweight=bold,
        gid=f"verdict:{row.name}",
    )
    if row.note:
        where = f" (deadline at {_ms(row.deadline)} ms)" if row.deadline is not None else ""
        ax.text(
            lo + 0.05 * (hi - lo) / width_in,
            y,
            row.note + where,
            ha="left",
            va="center",
            fontsize=_SMALL,
            color="#666666",
            style="italic",
        )


def _draw_row_span(ax: Axes, y: float, row: _BudgetRow) -> None:
    """The window from the stage's start to its deadline (grey line), the actual time (a bar
    in the verdict's colour, hatched while the stage never ended) and the deadline (a tick
    in the verdict's colour, outlined in white to stand out on the bar)."""
    from matplotlib.patheffects import withStroke

    if row.start is None or row.deadline is None:
        return
    ax.plot([row.start, row.deadline], [y, y], color="#b0b0b0", lw=1.0, solid_capstyle="butt")
    ax.plot([row.start], [y], marker="|", color="#808080", ms=7)
    if row.end is not None:
        ax.barh(
            y,
            row.end - row.start,
            left=row.start,
            height=_ROW_H * 0.45,
            color="white" if row.unfinished else row.colour,
            alpha=1.0 if row.unfinished else 0.45,
            edgecolor=row.colour,
            hatch="////" if row.unfinished else None,
            linewidth=0.6,
            gid=f"actual:{row.name}",
        )
    ax.plot(
        [row.deadline, row.deadline],
        [y - _ROW_H * 0.42, y + _ROW_H * 0.42],
        color=row.colour,
        lw=2.6,
        solid_capstyle="butt",
        zorder=3,
        path_effects=[withStroke(linewidth=4.2, foreground="white")],
        gid=f"deadline:{row.name}",
    )


def _draw_ttfa_panel(ax: Axes, turn: TurnMetrics, layout: _Layout) -> None:
    """Time to first audio: stages, events and budget rows, x in ms from speech_end."""
    ax.set_ylim(layout.panel_h, 0)
    ax.set_yticks([])
    origin = _origin(turn)
    if origin is None:
        ax.set_xticks([])
        ax.text(0.5, 0.5, "no timestamps recorded", transform=ax.transAxes, ha="center")
        return
    xmax = _ttfa_xmax(turn, origin)
    ax.set_xlim(0, xmax)
    in_per_ms = layout.ttfa_w / xmax
    ax.grid(axis="x", color="#e6e6e6", lw=0.6)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=_FONT)
    reference = "speech_end" if "speech_end" in turn.stamps else "the first stamp (no speech_end)"
    ax.set_xlabel(f"time to first audio: ms from {reference}", fontsize=_FONT)
    _draw_stage_bar(ax, turn, origin, in_per_ms)
    _draw_events(ax, turn, origin, in_per_ms)
    _draw_budget_rows(ax, _budget_rows(turn, origin), layout.ttfa_w)
    if not turn.budgets:
        ax.text(0.99, 0.05, "no budgets set", transform=ax.transAxes, ha="right", fontsize=_FONT)


def _span(ax: Axes, lane: float, a: float | None, b: float | None, **style: Any) -> None:
    """A bar on a lane of the whole-turn panel from ``a`` to ``b`` (seconds), if both exist."""
    if a is not None and b is not None and b > a:
        ax.barh(lane, b - a, left=a, height=0.55, **style)


def _span_label(ax: Axes, lane: float, a: float | None, b: float | None, in_per_s: float) -> None:
    """The length of a whole-turn span, inside it when it fits."""
    if a is None or b is None or b <= a:
        return
    text = f"{b - a:.1f} s"
    if (b - a) * in_per_s >= _text_w(text, _SMALL) + 0.06:
        ax.text((a + b) / 2, lane, text, ha="center", va="center", fontsize=_SMALL)


def _whole_turn_x(turn: TurnMetrics, after: TurnMetrics | None) -> tuple[float, float]:
    """Seconds from the origin covering every stamp of the turn (and a barge-in)."""
    origin = _origin(turn) or 0.0
    times = [v - origin for v in turn.stamps.values()]
    if after is not None and "speech_start" in after.stamps and turn.interrupted:
        times.append(after.stamps["speech_start"] - origin)
    lo, hi = min(times, default=0.0) / 1000, max(times, default=1.0) / 1000
    pad = 0.04 * max(hi - lo, 0.5)
    return lo - pad, hi + pad


def _draw_whole_turn_panel(
    ax: Axes, turn: TurnMetrics, after: TurnMetrics | None, layout: _Layout, xmax_ms: float
) -> None:
    """The whole turn in seconds from speech_end: user speech on one lane, the stages and
    the agent speaking on the other, the left panel's window shaded, a barge-in dashed."""
    ax.set_ylim(-0.7, 1.7)
    ax.set_yticks([1, 0], ["user", "agent"], fontsize=_FONT)
    ax.tick_params(axis="x", labelsize=_FONT)
    ax.set_xlabel("whole turn: s from speech_end", fontsize=_FONT)
    origin = _origin(turn)
    if origin is None:
        ax.set_xticks([])
        return
    lo, hi = _whole_turn_x(turn, after)
    ax.set_xlim(lo, hi)
    in_per_s = layout.whole_w / (hi - lo)
    ax.axvspan(0, xmax_ms / 1000, color=_WINDOW_COLOUR, lw=0, zorder=0)
    start, end = turn.stamps.get("speech_start"), turn.stamps.get("speech_end")
    if start is not None and end is not None:
        a, b = (start - origin) / 1000, (end - origin) / 1000
        _span(ax, 1, a, b, color=SEGMENT_COLOURS["user speech"])
        _span_label(ax, 1, a, b, in_per_s)
    _draw_agent_lane(ax, turn, origin, in_per_s)
    _draw_barge_in(ax, turn, after, origin)


def _draw_agent_lane(ax: Axes, turn: TurnMetrics, origin: float, in_per_s: float) -> None:
    """The stages (as on the left, small), the agent speaking, pauses after false
    interruptions (dotted) and a filler's first sound (a diamond)."""
    at = {k: (v - origin) / 1000 for k, v in turn.stamps.items()}
    for seg in _stage_segments(turn, origin):
        colour = SEGMENT_COLOURS[seg.name]
        if seg.unfinished:
            _span(
                ax,
                0,
                seg.start / 1000,
                seg.end / 1000,
                color="white",
                edgecolor=colour,
                hatch="///",
            )
        else:
            _span(ax, 0, seg.start / 1000, seg.end / 1000, color=colour)
    speaking_end = at.get("output_silent", at.get("turn_end"))
    _span(ax, 0, at.get("playout_start"), speaking_end, color=SEGMENT_COLOURS["agent speaking"])
    _span_label(ax, 0, at.get("playout_start"), speaking_end, in_per_s)
    for pause in turn.false_interruptions:
        a, b = (pause["silent_ms"] - origin) / 1000, (pause["resumed_ms"] - origin) / 1000
        _span(ax, 0, a, b, color="white", edgecolor=_BARGE_IN_COLOUR, hatch="...", lw=0.5)
    if "first_sound" in at and at["first_sound"] < at.get("playout_start", float("inf")):
        ax.plot([at["first_sound"]], [0], marker="D", color="k", ms=5)


def _draw_barge_in(ax: Axes, turn: TurnMetrics, after: TurnMetrics | None, origin: float) -> None:
    """The next turn's speech that interrupted this answer, up to its detection."""
    detected = turn.stamps.get("interruption_detected")
    if detected is None:
        return
    ax.axvline((detected - origin) / 1000, color=_BARGE_IN_COLOUR, lw=1.4, ls="--", gid="barge-in")
    start = after.stamps.get("speech_start") if after is not None else None
    if start is not None and start <= detected:
        _span(
            ax,
            1,
            (start - origin) / 1000,
            (detected - origin) / 1000,
            color=SEGMENT_COLOURS["user speech"],
            edgecolor=_BARGE_IN_COLOUR,
            hatch="//",
            lw=0.6,
        )


def _turn_notes(turn: TurnMetrics, after: TurnMetrics | None) -> list[str]:
    """The lines under the whole-turn panel: what was said, what went wrong, what was
    heard of an interrupted answer, and what the filler and fallback policies did."""
    lines = [f'user: "{turn.user_text}"', f'agent: "{turn.agent_text}"']
    if turn.error:
        prefix = "" if turn.error.startswith(turn.outcome) else f"{turn.outcome}: "
        lines.append(prefix + turn.error)
    detected = turn.stamps.get("interruption_detected")
    if detected is not None:
        start = after.stamps.get("speech_start") if after is not None else None
        into = turn.stamps.get("playout_start")
        speech = "" if start is None else f", after {_ms(detected - start)} ms of speech"
        when = "" if into is None else f" {(detected - into) / 1000:.2f} s into the answer"
        silent = turn.stamps.get("output_silent", detected) - detected
        lines.append(f"barge-in{when}{speech}; silent {_ms(silent)} ms later")
        lines.append(f'heard: "{turn.heard_text}"')
    said = _filler(turn)
    if said:
        lines.append(f"filler: {said}")
    fallbacks = sorted(
        (b for b in turn.budgets if b.action == "fallback" and b.detail),
        key=lambda b: _budget_order(b.name),
    )
    lines += [f"{b.name} passed, fallback: {b.detail}" for b in fallbacks]
    return lines[:_NOTE_LINES]


def _draw_turn(
    fig: Figure, turn: TurnMetrics, after: TurnMetrics | None, top: float, layout: _Layout
) -> None:
    """One turn's block, ``top`` inches below the figure's top: header, both panels, notes."""
    _draw_turn_header(fig, turn, top, layout)
    panel_top = top + _TITLE_H
    left = _MARGIN + layout.label_w
    rect = _rect(fig, left, panel_top, layout.ttfa_w, layout.panel_h)
    ttfa = fig.add_axes(rect, gid=f"ttfa:{turn.index}")
    _draw_ttfa_panel(ttfa, turn, layout)
    rect = _rect(fig, layout.whole_x, panel_top, layout.whole_w, _WHOLE_H)
    whole = fig.add_axes(rect, gid=f"whole:{turn.index}")
    xmax = ttfa.get_xlim()[1] if _origin(turn) is not None else 0.0
    _draw_whole_turn_panel(whole, turn, after, layout, xmax)
    _draw_turn_notes(fig, turn, after, panel_top + _WHOLE_H + _AXIS_H, layout)


def _draw_turn_header(fig: Figure, turn: TurnMetrics, top: float, layout: _Layout) -> None:
    """The turn's title on the left, its outcome in its colour above the verdicts."""
    y = fig.get_figheight() - top
    inches = fig.dpi_scale_trans
    fig.text(
        _MARGIN, y, turn_title(turn), transform=inches, va="top", fontsize=10, fontweight="bold"
    )
    right = _MARGIN + layout.label_w + layout.ttfa_w + layout.verdict_w
    fig.text(
        right,
        y,
        turn.outcome,
        transform=inches,
        ha="right",
        va="top",
        fontsize=10,
        fontweight="bold",
        color=OUTCOME_COLOURS.get(turn.outcome, "k"),
        gid="outcome",
    )


def _draw_turn_notes(
    fig: Figure, turn: TurnMetrics, after: TurnMetrics | None, top: float, layout: _Layout
) -> None:
    """The transcripts, barge-in, filler and error lines under the whole-turn panel."""
    left = layout.whole_x - _LANE_NAMES_W
    width = _FIG_W - _MARGIN - left
    for i, line in enumerate(_turn_notes(turn, after)):
        y = fig.get_figheight() - top - i * _TEXT_LINE_H
        fig.text(
            left,
            y,
            _fit(line, width, _SMALL),
            transform=fig.dpi_scale_trans,
            va="top",
            fontsize=_SMALL,
            gid=f"note:{turn.index}",
        )


def _rect(
    fig: Figure, left: float, top: float, width: float, height: float
) -> tuple[float, float, float, float]:
    """An axes rectangle in figure fractions from inches (``top`` measured from the top)."""
    w, h = fig.get_figwidth(), fig.get_figheight()
    return (left / w, (h - top - height) / h, width / w, height / h)


def _layout(turns: list[TurnMetrics]) -> _Layout:
    """Columns sized to the widest budget label and verdict of the turns drawn."""
    rows = [_budget_rows(t, o) for t in turns if (o := _origin(t)) is not None]
    label_w = max((_text_w(r.label) for rs in rows for r in rs), default=0.0) + 0.2
    verdict_w = max((_text_w(r.verdict, bold=True) for rs in rows for r in rs), default=0.0)
    verdict_w += 0.25
    free = _FIG_W - 2 * _MARGIN - label_w - verdict_w - _LANE_NAMES_W
    ttfa_w = free * 0.64
    whole_x = _MARGIN + label_w + ttfa_w + verdict_w + _LANE_NAMES_W
    n_rows = max((len(rs) for rs in rows), default=0)
    return _Layout(label_w, ttfa_w, verdict_w, whole_x, free - ttfa_w, n_rows)


def _turns_to_draw(turns: list[TurnMetrics]) -> list[int]:
    """Positions of the turns the timeline shows, in turn order: all of them, or the
    MAX_TIMELINE_TURNS worst: failed and cancelled first, then those that missed a budget,
    each group slowest first audio first."""
    if len(turns) <= MAX_TIMELINE_TURNS:
        return list(range(len(turns)))

    def rank(i: int) -> tuple[int, float, int]:
        turn = turns[i]
        missed = any(b.ok is False for b in turn.budgets)
        group = 0 if turn.outcome in ("failed", "cancelled") else 1 if missed else 2
        return (group, -(turn.latency("time_to_first_audio") or 0.0), i)

    return sorted(sorted(range(len(turns)), key=rank)[:MAX_TIMELINE_TURNS])


def _legend_handles() -> list[Any]:
    """The timeline's legend: stage colours, verdicts, marks."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [Patch(color=c, label=k) for k, c in SEGMENT_COLOURS.items()]
    handles += [
        Patch(facecolor="white", edgecolor="#555555", hatch="///", label="unfinished"),
        Line2D([], [], color=OK_COLOUR, lw=2.4, label="deadline met"),
        Line2D([], [], color=MISS_COLOUR, lw=2.4, label="deadline missed"),
        Line2D([], [], color=UNDECIDED_COLOUR, lw=2.4, label="not decided"),
        Line2D([], [], color="#b0b0b0", lw=1, label="budget window"),
        Line2D([], [], color="k", marker="v", lw=1.4, label="first audio"),
        Line2D([], [], color="k", marker="D", ls=":", lw=1.4, label="first sound (filler)"),
        Line2D([], [], color=_BARGE_IN_COLOUR, ls="--", lw=1.4, label="barge-in"),
        Patch(color=_WINDOW_COLOUR, label="left panel's window"),
    ]
    return handles


def _timeline_figure(session: SessionMetrics) -> Figure:
    """The per-turn timeline (see the module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    turns = session.turns
    shown = _turns_to_draw(turns)
    layout = _layout([turns[i] for i in shown])
    note_h = _NOTE_H if len(shown) < len(turns) else 0.0
    height = _LEGEND_H + note_h + layout.turn_h * max(len(shown), 1) + _MARGIN
    fig = Figure(figsize=(_FIG_W, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    handles = _legend_handles()
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=(len(handles) + 1) // 2,
        fontsize=_FONT,
        frameon=False,
        bbox_to_anchor=(0.5, 1.0),
    )
    if note_h:
        _draw_cap_note(fig, turns, shown, height - _LEGEND_H)
    if not turns:
        fig.text(0.5, 0.4, "no turns", ha="center", va="center", fontsize=12)
    for n, i in enumerate(shown):
        after = turns[i + 1] if i + 1 < len(turns) else None
        _draw_turn(fig, turns[i], after, _LEGEND_H + note_h + n * layout.turn_h, layout)
    return fig


def _draw_cap_note(fig: Figure, turns: list[TurnMetrics], shown: list[int], y: float) -> None:
    """Which turns a capped timeline shows, and why, ``y`` inches from the bottom."""
    fig.text(
        _MARGIN,
        y,
        f"Showing {len(shown)} of {len(turns)} turns (failed and cancelled first, then "
        "budget misses, slowest first audio first): "
        + ", ".join(str(turns[i].index) for i in shown)
        + ". The summary figure shows every turn.",
        transform=fig.dpi_scale_trans,
        va="top",
        fontsize=9,
        style="italic",
        gid="cap-note",
    )
