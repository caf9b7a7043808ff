"""Tests for voxpipe.plot: what the timeline and summary figures draw, not only that a file
appears. The figures are inspected through the artists' gids (``stage-label:<stage>``,
``deadline:<budget>``, ``verdict:<budget>``, ``turn:<index>``, ...)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Annotation, Text

from voxpipe.budgets import DEADLINES, RATES
from voxpipe.metrics import STAGES, BudgetResult, SessionMetrics, TurnMetrics
from voxpipe.plot import (
    MAX_TIMELINE_TURNS,
    MISS_COLOUR,
    OK_COLOUR,
    OUTCOME_COLOURS,
    plot_session,
    plot_summary,
    plot_timeline,
)
from voxpipe.plot.summary import _summary_figure
from voxpipe.plot.timeline import _timeline_figure

PNG = b"\x89PNG\r\n\x1a\n"


def _turn(index: int, base: float, llm_ttft: float = 250.0, **fields: object) -> TurnMetrics:
    """A complete turn starting at ``base``: asr 220, handoff 1.5, llm ``llm_ttft``, first
    phrase 95.25, tts 140, playout 12 ms."""
    stamps = {
        "speech_start": base,
        "asr_first_partial": base + 60,
        "speech_end": base + 1500,
        "asr_final": base + 1720,
        "llm_request": base + 1721.5,
    }
    t = stamps["llm_request"] + llm_ttft
    stamps |= {
        "llm_first_token": t,
        "tts_request": t + 95.25,
        "tts_first_audio": t + 95.25 + 140,
        "first_sound": t + 95.25 + 140 + 12,
        "playout_start": t + 95.25 + 140 + 12,
        "llm_done": t + 400,
        "turn_end": t + 3200,
    }
    ttfa = stamps["playout_start"] - stamps["speech_end"]
    budgets = [
        BudgetResult("asr_processing", 80.0, 60.0, True),
        BudgetResult("llm_first_token", 300.0, llm_ttft, llm_ttft <= 300),
        BudgetResult("llm_token_generation", 20.0, 16.667, True),
        BudgetResult("time_to_first_audio", 800.0, ttfa, ttfa <= 800),
    ]
    turn = TurnMetrics(index=index, user_text=f"question {index}", agent_text="An answer.")
    turn.stamps, turn.budgets = stamps, budgets
    for name, value in fields.items():
        setattr(turn, name, value)
    return turn


def _failed(index: int, base: float) -> TurnMetrics:
    """The LLM failed 207 ms after its request: no first token, no audio."""
    turn = _turn(index, base)
    for name in ("llm_first_token", "tts_request", "tts_first_audio", "first_sound"):
        del turn.stamps[name]
    del turn.stamps["playout_start"], turn.stamps["llm_done"]
    turn.stamps["turn_end"] = turn.stamps["llm_request"] + 207
    turn.outcome, turn.error = "failed", "ProviderError: sim llm: HTTP 503 service unavailable"
    turn.agent_text = ""
    turn.budgets = [
        BudgetResult("llm_first_token", 300.0),
        BudgetResult("tts_first_chunk", 150.0),
        BudgetResult("time_to_first_audio", 800.0),
    ]
    return turn


@pytest.fixture
def session() -> SessionMetrics:
    return SessionMetrics(
        budgets_ms={"time_to_first_audio": 800.0},
        turns=[_turn(1, 1000.0, 250.0), _turn(2, 9000.0, 412.5)],
    )


def _axes(fig: Figure, gid: str) -> Axes:
    return next(ax for ax in fig.axes if ax.get_gid() == gid)


def _texts_by_gid(ax: Axes, prefix: str) -> dict[str, Text]:
    """The axes' texts whose gid starts with ``prefix``, by the rest of the gid."""
    return {
        gid.removeprefix(prefix): t
        for t in ax.texts
        if (gid := t.get_gid() or "").startswith(prefix)
    }


def _lines_by_gid(ax: Axes, prefix: str) -> dict[str, Line2D]:
    """The axes' lines whose gid starts with ``prefix``, by the rest of the gid."""
    return {
        gid.removeprefix(prefix): line
        for line in ax.lines
        if (gid := line.get_gid() or "").startswith(prefix)
    }


def _ys(line: Line2D) -> list[float]:
    return [float(y) for y in np.asarray(line.get_ydata(), dtype=float)]


def _xs(line: Line2D) -> list[float]:
    return [float(x) for x in np.asarray(line.get_xdata(), dtype=float)]


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.texts] + [t.get_text() for ax in fig.axes for t in ax.texts]


# Time to first audio panel: stages.


def test_every_stage_is_labelled_with_its_name_and_ms(session: SessionMetrics) -> None:
    fig = _timeline_figure(session)
    ax = _axes(fig, "ttfa:2")
    labels = _texts_by_gid(ax, "stage-label:")
    assert sorted(labels) == sorted(STAGES)
    expected = {
        "asr_finalization": "220",
        "handoff": "1.5",
        "llm_ttft": "412",  # 412.5 rounds to even
        "first_phrase": "95",
        "tts_ttfb": "140",
        "playout": "12",
    }
    for name, ms in expected.items():
        assert labels[name].get_text() == f"{name}\n{ms} ms"
    # wide stages are labelled inside their segment, narrow ones above it with a leader
    assert not isinstance(labels["llm_ttft"], Annotation)
    for narrow in ("handoff", "playout"):
        label = labels[narrow]
        assert isinstance(label, Annotation) and label.arrow_patch is not None


def test_x_runs_from_speech_end_to_just_past_first_audio_and_deadlines(
    session: SessionMetrics,
) -> None:
    ax = _axes(_timeline_figure(session), "ttfa:1")
    lo, hi = ax.get_xlim()
    assert lo == 0
    # first audio at 718.75 ms, the last deadline at 800 ms: a bit past 800, not seconds
    assert 800 < hi < 1000


def _tiny_stages_turn() -> TurnMetrics:
    """A slow LLM followed by four stages of a few ms: four labels in the same spot."""
    turn = _turn(1, 0.0, 1500.0)
    s = turn.stamps
    s["tts_request"] = s["llm_first_token"] + 3
    s["tts_first_audio"] = s["tts_request"] + 4
    s["playout_start"] = s["first_sound"] = s["tts_first_audio"] + 1
    return turn


def test_stage_labels_outside_their_segments_never_overlap() -> None:
    fig = _timeline_figure(SessionMetrics(turns=[_tiny_stages_turn()]))
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = _axes(fig, "ttfa:1")
    labels = list(_texts_by_gid(ax, "stage-label:").values())
    boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text, not its leader
    assert len(boxes) == len(STAGES)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    panel = ax.get_window_extent(renderer)
    for box in boxes:
        assert panel.x0 <= box.x0 and box.x1 <= panel.x1


# Time to first audio panel: budgets.


def _near_800() -> TurnMetrics:
    """Three deadlines within 10 ms of each other near 800 ms."""
    turn = _turn(1, 0.0, 250.0)
    # llm_request 221.5 ms after speech_end, tts_request 566.75 ms after it
    turn.budgets = [
        BudgetResult("time_to_first_audio", 800.0, 718.75, True),
        BudgetResult("tts_first_chunk", 230.0, 140.0, True),
        BudgetResult("llm_first_token", 570.0, 250.0, True),
        BudgetResult("asr_processing", 80.0, 60.0, True),
    ]
    return turn


def test_one_deadline_mark_per_latency_budget_at_its_own_x_and_row() -> None:
    ax = _axes(_timeline_figure(SessionMetrics(turns=[_near_800()])), "ttfa:1")
    deadlines = _lines_by_gid(ax, "deadline:")
    assert set(deadlines) == {
        "time_to_first_audio",
        "tts_first_chunk",
        "llm_first_token",
        "asr_processing",
    }
    xs = {name: set(_xs(line)) for name, line in deadlines.items()}
    assert xs["llm_first_token"] == {221.5 + 570}
    assert xs["tts_first_chunk"] == {566.75 + 230}
    assert xs["time_to_first_audio"] == {800.0}
    assert xs["asr_processing"] == {-1500 + 80}  # before speech_end: off the panel's left
    rows = [float(np.mean(_ys(line))) for line in deadlines.values()]
    assert len(set(rows)) == len(rows)
    # each mark is labelled: the budget's name and limit on its row
    names = {t.get_text(): t.get_position()[1] for t in ax.texts}
    for name, line in deadlines.items():
        budget = {
            "time_to_first_audio": 800,
            "tts_first_chunk": 230,
            "llm_first_token": 570,
            "asr_processing": 80,
        }[name]
        assert names[f"{name} ≤{budget} ms"] == pytest.approx(np.mean(_ys(line)))


def test_misses_are_drawn_in_the_warning_colour(session: SessionMetrics) -> None:
    ax = _axes(_timeline_figure(session), "ttfa:2")  # llm 412.5 > 300, ttfa 881.25 > 800
    deadlines = _lines_by_gid(ax, "deadline:")
    verdicts = _texts_by_gid(ax, "verdict:")
    for name in ("llm_first_token", "time_to_first_audio"):
        assert to_hex(deadlines[name].get_color()) == MISS_COLOUR
        assert to_hex(verdicts[name].get_color()) == MISS_COLOUR
    assert verdicts["llm_first_token"].get_text() == "412 ms over +112"
    assert to_hex(deadlines["asr_processing"].get_color()) == OK_COLOUR
    assert to_hex(verdicts["asr_processing"].get_color()) == OK_COLOUR
    actual = next(p for p in ax.patches if p.get_gid() == "actual:llm_first_token")
    assert to_hex(actual.get_facecolor()) == MISS_COLOUR


def test_rate_budgets_are_text_with_their_verdict(session: SessionMetrics) -> None:
    ax = _axes(_timeline_figure(session), "ttfa:1")
    assert "llm_token_generation" not in _lines_by_gid(ax, "deadline:")
    verdict = _texts_by_gid(ax, "verdict:")["llm_token_generation"]
    assert verdict.get_text() == "16.7 ms avg ok"
    assert any(RATES["llm_token_generation"] in t.get_text() for t in ax.texts)


def _row_order(fig: Figure, gid: str) -> list[str]:
    verdicts = _texts_by_gid(_axes(fig, gid), "verdict:")
    return sorted(verdicts, key=lambda name: verdicts[name].get_position()[1])


def test_budgets_are_drawn_in_a_fixed_order_whatever_order_they_come_in(
    session: SessionMetrics, tmp_path: Path
) -> None:
    shuffled = SessionMetrics.from_dict(session.to_dict())
    for turn in shuffled.turns:
        turn.budgets.reverse()
    order = [name for name in (*DEADLINES, *RATES) if session.turns[0].budget(name)]
    assert _row_order(_timeline_figure(session), "ttfa:1") == order
    assert _row_order(_timeline_figure(shuffled), "ttfa:1") == order
    a = plot_timeline(session, tmp_path / "a.png").read_bytes()
    b = plot_timeline(shuffled, tmp_path / "b.png").read_bytes()
    assert a == b


# Marks: first audio, filler, failure, barge-in.


def _event_labels(fig: Figure, gid: str) -> list[str]:
    return [t.get_text() for t in _axes(fig, gid).texts if t.get_gid() == "event-label"]


def test_first_audio_filler_and_failure_are_marked() -> None:
    filler = _turn(1, 0.0, 900.0)
    filler.stamps["first_sound"] = filler.stamps["speech_end"] + 800
    filler.budgets[-1] = BudgetResult(
        "time_to_first_audio", 800.0, 1368.75, False, "filler", 800.0, "said 'One moment.'"
    )
    failed = _failed(2, 10_000.0)
    fig = _timeline_figure(SessionMetrics(turns=[filler, failed]))
    assert _event_labels(fig, "ttfa:1") == ["filler 800 ms", "first audio 1369 ms"]
    assert "filler: 'One moment.'" in _texts(fig)
    assert _event_labels(fig, "ttfa:2") == ["failed 428 ms"]  # asr 220 + 1.5 + 207
    ax = _axes(fig, "ttfa:2")
    unfinished = next(p for p in ax.patches if p.get_gid() == "stage:llm_ttft")
    assert isinstance(unfinished, Rectangle) and unfinished.get_hatch()
    assert unfinished.get_width() == pytest.approx(207)
    assert _texts_by_gid(ax, "verdict:")["time_to_first_audio"].get_text() == "n/a"
    assert "failed: ProviderError: sim llm: HTTP 503 service unavailable" in _texts(fig)
    outcome = next(t for t in fig.texts if t.get_gid() == "outcome" and t.get_text() == "failed")
    assert to_hex(outcome.get_color()) == OUTCOME_COLOURS["failed"]


def _interrupted() -> tuple[TurnMetrics, TurnMetrics]:
    first = _turn(1, 0.0, interrupted=True, heard_text="An", outcome="interrupted")
    first.stamps["interruption_detected"] = first.stamps["playout_start"] + 1810
    first.stamps["output_silent"] = first.stamps["interruption_detected"] + 4
    first.stamps["turn_end"] = first.stamps["output_silent"]
    first.cut_short = ["total"]
    first.false_interruptions = [{"detected_ms": 3000.0, "silent_ms": 3000.0, "resumed_ms": 3500.0}]
    second = _turn(2, first.stamps["interruption_detected"] - 300)
    return first, second


def test_a_barge_in_is_drawn_on_the_whole_turn_panel() -> None:
    first, second = _interrupted()
    fig = _timeline_figure(SessionMetrics(turns=[first, second]))
    whole = _axes(fig, "whole:1")
    line = next(x for x in whole.lines if x.get_gid() == "barge-in")
    detected_s = (first.stamps["interruption_detected"] - first.stamps["speech_end"]) / 1000
    assert _xs(line) == pytest.approx([detected_s] * 2)
    lo, hi = whole.get_xlim()
    assert lo < -1.5 and hi > detected_s  # the user's 1.5 s of speech and the whole answer
    notes = [t.get_text() for t in fig.texts if t.get_gid() == "note:1"]
    assert notes[2] == (
        "barge-in 1.81 s into the answer, after 300 ms of speech; silent 4 ms later"
    )
    assert notes[3] == 'heard: "An"'


def test_an_interrupted_session_survives_a_json_round_trip(tmp_path: Path) -> None:
    session = SessionMetrics(turns=list(_interrupted()))
    again = SessionMetrics.from_dict(json.loads(session.to_json()))
    assert plot_timeline(again, tmp_path / "t.png").read_bytes().startswith(PNG)


# Sizes: empty, partial, 1 and 30 turns.


def test_writes_png_creating_directories_and_grows_with_turns(
    session: SessionMetrics, tmp_path: Path
) -> None:
    out = plot_timeline(session, tmp_path / "nested" / "dir" / "timeline.png")
    assert out == tmp_path / "nested" / "dir" / "timeline.png"
    assert out.read_bytes().startswith(PNG)
    one = plot_timeline(SessionMetrics(turns=session.turns[:1]), str(tmp_path / "one.png"))
    assert _png_height(out) > _png_height(one)


def _png_height(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[20:24], "big")


def test_empty_sessions_and_turns_with_missing_stamps_draw(
    session: SessionMetrics, tmp_path: Path
) -> None:
    partial = TurnMetrics(
        index=3,
        interrupted=True,
        stamps={
            "speech_start": 20000.0,
            "speech_end": 20400.0,
            "asr_final": 20610.0,
            "llm_request": 20611.0,
        },
        budgets=[BudgetResult("llm_first_token", 300.0), BudgetResult("tts_first_chunk", 150.0)],
    )
    no_speech_end = TurnMetrics(
        index=4, stamps={"llm_request": 100.0, "llm_first_token": 90.0, "playout_start": 500.0}
    )
    session.turns += [partial, no_speech_end, TurnMetrics(index=5)]
    fig = _timeline_figure(session)
    assert "no timestamps recorded" in _texts(fig)
    assert "time to first audio: ms from the first stamp (no speech_end)" in [
        ax.get_xlabel() for ax in fig.axes
    ]
    assert _event_labels(fig, "ttfa:3") == ["no audio by 211 ms"]
    paths = plot_session(session, tmp_path / "partial.png")
    assert all(p.read_bytes().startswith(PNG) for p in paths)

    empty = SessionMetrics()
    assert "no turns" in _texts(_timeline_figure(empty))
    assert "no turns" in _texts(_summary_figure(empty))
    for path in plot_session(empty, tmp_path / "empty.png"):
        assert path.read_bytes().startswith(PNG)


def test_many_turns_draw_the_worst_few_and_say_so() -> None:
    turns = [_turn(i, 10_000.0 * i, 200.0 + 5 * i) for i in range(1, 31)]
    turns[4], turns[21] = _failed(5, 50_000.0), _failed(22, 220_000.0)
    session = SessionMetrics(turns=turns)
    fig = _timeline_figure(session)
    gids = [ax.get_gid() or "" for ax in fig.axes]
    shown = [int(gid.removeprefix("ttfa:")) for gid in gids if gid.startswith("ttfa:")]
    assert len(shown) == MAX_TIMELINE_TURNS == 10
    # the two failures, then the slowest of the turns that missed a budget, in turn order
    assert shown == [5, 22, *range(23, 31)]
    note = next(t for t in fig.texts if t.get_gid() == "cap-note").get_text()
    assert "Showing 10 of 30 turns" in note and ", ".join(map(str, shown)) in note
    ten = _timeline_figure(SessionMetrics(turns=[turns[i - 1] for i in shown]))
    assert fig.get_figheight() == pytest.approx(ten.get_figheight() + 0.25)  # + the note
    assert len(_summary_marks(_summary_figure(session))) == 30


# The summary figure.


def _summary_marks(fig: Figure) -> dict[str, Rectangle | Line2D]:
    ax = fig.axes[0]
    marks: dict[str, Rectangle | Line2D] = {}
    for artist in [*ax.patches, *ax.lines]:
        gid = artist.get_gid() or ""
        if gid.startswith("turn:") and isinstance(artist, Rectangle | Line2D):
            assert gid not in marks
            marks[gid] = artist
    return marks


def test_summary_has_one_mark_per_turn_coloured_by_outcome_and_the_percentiles() -> None:
    turns = [_turn(1, 0.0, 250.0), _turn(2, 10_000.0, 412.5), _turn(3, 20_000.0, 300.0)]
    turns[2].outcome = "interrupted"
    turns.append(_failed(4, 30_000.0))
    session = SessionMetrics(budgets_ms={"time_to_first_audio": 800.0}, turns=turns)
    fig = _summary_figure(session)
    marks = _summary_marks(fig)
    assert list(marks) == ["turn:1", "turn:2", "turn:3", "turn:4"]
    ttfa = [718.75, 881.25, 768.75]
    for i, value in enumerate(ttfa, start=1):
        bar = marks[f"turn:{i}"]
        assert isinstance(bar, Rectangle) and bar.get_height() == pytest.approx(value)
        assert to_hex(bar.get_facecolor()) == OUTCOME_COLOURS[turns[i - 1].outcome]
        over = value > 800
        assert to_hex(bar.get_edgecolor()) == (MISS_COLOUR if over else to_hex(bar.get_facecolor()))
    # no audio: hatched, as high as the user waited (asr 220 + handoff 1.5 + 207 ms)
    failed = marks["turn:4"]
    assert isinstance(failed, Rectangle) and failed.get_hatch()
    assert failed.get_height() == pytest.approx(428.5)
    assert to_hex(failed.get_edgecolor()) == OUTCOME_COLOURS["failed"]
    lines = {line.get_gid(): line for line in fig.axes[0].lines}
    for key, p in (("p50", 50), ("p99", 99)):
        expected = float(np.percentile(ttfa, p))
        assert _ys(lines[key]) == pytest.approx([expected] * 2, abs=1e-3)
    assert _ys(lines["budget"]) == [800.0, 800.0]
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == [
        "budget 800 ms",
        "p50 769 ms (of 3 with audio)",
        "p99 879 ms (of 3 with audio)",
    ]


def test_plot_session_writes_the_timeline_and_the_summary_beside_it(
    session: SessionMetrics, tmp_path: Path
) -> None:
    timeline, summary = plot_session(session, tmp_path / "out" / "call.png")
    assert timeline == tmp_path / "out" / "call.png"
    assert summary == tmp_path / "out" / "call-summary.png"
    assert timeline.read_bytes() == plot_timeline(session, tmp_path / "t.png").read_bytes()
    assert summary.read_bytes() == plot_summary(session, tmp_path / "s.png").read_bytes()


# Reproducible files.


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_same_session_gives_the_same_bytes(
    session: SessionMetrics, tmp_path: Path, suffix: str
) -> None:
    session.turns.append(_failed(3, 20_000.0))
    first = [p.read_bytes() for p in plot_session(session, tmp_path / f"a{suffix}")]
    again = SessionMetrics.from_dict(json.loads(session.to_json()))
    second = [p.read_bytes() for p in plot_session(again, tmp_path / f"b{suffix}")]
    assert first == second
    if suffix == ".png":
        assert all(b"Software" not in data and b"atplotlib" not in data for data in first)
