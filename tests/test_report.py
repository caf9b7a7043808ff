"""Tests for voxpipe.report: rich tables (the PNG figures are tested in test_plot.py)."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console
from rich.table import Table

from voxpipe.metrics import STAGES, BudgetResult, SessionMetrics, TurnMetrics
from voxpipe.report import print_session, print_turn, summary_table, turn_table

BUDGETS_MS = {"asr_processing": 80.0, "llm_first_token": 300.0, "time_to_first_audio": 800.0}


def _turn(index: int, base: float, llm_ttft: float, user: str, agent: str) -> TurnMetrics:
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
        "playout_start": t + 95.25 + 140 + 12,
        "llm_done": t + 400,
        "turn_end": t + 3200,
    }
    ttfa = stamps["playout_start"] - stamps["speech_end"]
    budgets = [
        BudgetResult("asr_processing", 80.0, 60.0, True),
        BudgetResult(
            "llm_first_token",
            300.0,
            llm_ttft,
            llm_ttft <= 300,
            "none" if llm_ttft <= 300 else "warn",
            None if llm_ttft <= 300 else stamps["llm_request"] + 300,
        ),
        BudgetResult("time_to_first_audio", 800.0, ttfa, ttfa <= 800),
        BudgetResult("llm_token_generation", 20.0),  # never judged: shown as n/a
    ]
    return TurnMetrics(
        index=index,
        user_text=user,
        agent_text=agent,
        stamps=stamps,
        budgets=budgets,
        endpoint_detected=base + 1700,
    )


@pytest.fixture
def session() -> SessionMetrics:
    return SessionMetrics(
        backends={"asr": "sim", "llm": "sim", "tts": "sim"},
        budgets_ms=BUDGETS_MS,
        turns=[
            _turn(1, 1000.0, 250.0, "Hello there.", "Hi! How can I help you today?"),
            _turn(
                2,
                9000.0,
                412.5,
                "What's the weather like in the north of Scotland this coming weekend?",
                "The weather is expected to be wet and windy.",
            ),
        ],
    )


def _render(table: Table) -> str:
    console = Console(record=True, width=140, file=io.StringIO())
    console.print(table)
    return console.export_text()


def test_turn_table_shows_stages_totals_and_verdicts(session: SessionMetrics) -> None:
    text = _render(turn_table(session.turns[1]))
    # turn 2: asr 220, handoff 1.5, llm 412.5, first phrase 95.25, tts 140, playout 12
    assert 'Turn 2: "What\'s the weather like in..." -> "The weather is expected to..."' in text
    assert "this coming weekend" not in text
    stages_text, budgets_text = text.split("\nBudgets")
    lines = stages_text.splitlines()

    def row(name: str, lines: list[str] = lines) -> str:
        return next(line for line in lines if line.strip().startswith(name + " "))

    expected = {
        "asr_finalization": "220.0",
        "handoff": "1.5",
        "llm_ttft": "412.5",
        "first_phrase": "95.2",
        "tts_ttfb": "140.0",
        "playout": "12.0",
        "time_to_first_audio": "881.2",
        "total": "3834.0",
    }
    for name, value in expected.items():
        assert value in row(name).split(), (name, row(name))
    stage_rows = [i for i, line in enumerate(lines) if line.strip().split(" ")[0] in STAGES]
    assert [lines[i].split()[0] for i in stage_rows] == list(STAGES)

    blines = budgets_text.splitlines()
    assert row("llm_first_token", blines).split()[1:] == ["300.0", "412.5", "over", "warn"]
    assert row("time_to_first_audio", blines).split()[1:] == ["800.0", "881.2", "over", "none"]
    assert row("asr_processing", blines).split()[1:] == ["80.0", "60.0", "ok", "none"]
    assert row("llm_token_generation", blines).split()[1:] == ["20.0", "—", "n/a", "none"]


def test_turn_table_passing_turn_has_no_over(session: SessionMetrics) -> None:
    text = _render(turn_table(session.turns[0]))
    assert "Turn 1:" in text
    assert "over" not in text
    assert "718.8" in text  # time to first audio: 220 + 1.5 + 250 + 95.25 + 140 + 12


def test_turn_table_verdict_colours(session: SessionMetrics) -> None:
    console = Console(
        record=True, width=140, force_terminal=True, color_system="truecolor", file=io.StringIO()
    )
    console.print(turn_table(session.turns[1]))
    html = console.export_html(inline_styles=True)
    verdicts = re.findall(r'<span style="([^"]*)">\s*(ok|over|n/a)\s*</span>', html)
    colours = {word: style for style, word in verdicts}
    assert len(verdicts) == 4
    assert "#800000" in colours["over"]  # red
    assert "#008000" in colours["ok"]  # green
    assert "#800000" not in colours["n/a"] and "#008000" not in colours["n/a"]


def test_turn_table_missing_stamps_shows_dash() -> None:
    turn = TurnMetrics(
        index=3,
        user_text="Stop.",
        interrupted=True,
        stamps={"speech_start": 0.0, "speech_end": 400.0, "asr_final": 610.0},
    )
    text = _render(turn_table(turn))
    assert "(interrupted)" in text
    lines = text.splitlines()
    asr = next(line for line in lines if line.strip().startswith("asr_finalization"))
    assert "210.0" in asr.split()
    llm = next(line for line in lines if line.strip().startswith("llm_ttft"))
    assert llm.split()[1] == "—"
    assert "no budgets set" in text


def test_summary_table(session: SessionMetrics) -> None:
    text = _render(summary_table(session))
    lines = text.splitlines()
    assert "Session summary: 2 turns" in text
    assert "asr=sim" in text
    for key in session.summary():
        assert any(line.strip().startswith(key.removesuffix("_ms") + " ") for line in lines), key
    llm = next(line for line in lines if line.strip().startswith("llm_ttft "))
    # p50 of 250 and 412.5 is 331.25; mean too; count 2
    assert llm.split()[1] == "331.2" and llm.split()[4] == "331.2" and llm.split()[5] == "2"
    assert next(line for line in lines if line.strip().startswith("handoff ")).split()[1] == "1.5"
    failures = {
        line.split()[0]: line.split()[-1]
        for line in lines
        if line.split() and line.split()[-1].count("/") == 1
    }
    assert failures == {
        "asr_processing": "0/2",
        "llm_first_token": "1/2",
        "time_to_first_audio": "1/2",
        "llm_token_generation": "0/2",
    }


def test_print_functions_write_to_console(session: SessionMetrics) -> None:
    console = Console(record=True, width=140, file=io.StringIO())
    print_turn(session.turns[0], console)
    one = console.export_text()
    assert "Turn 1:" in one and "Turn 2:" not in one

    console = Console(record=True, width=140, file=io.StringIO())
    print_session(session, console)
    text = console.export_text()
    assert text.index("Turn 1:") < text.index("Turn 2:") < text.index("Session summary")


def test_round_trip_gives_same_tables(session: SessionMetrics) -> None:
    restored = SessionMetrics.from_dict(session.to_dict())
    for a, b in zip(session.turns, restored.turns, strict=True):
        assert _render(turn_table(a)) == _render(turn_table(b))
    assert _render(summary_table(session)) == _render(summary_table(restored))


def test_titles_show_bracketed_transcripts_literally() -> None:
    turn = TurnMetrics(index=1, user_text="[speech 1.2 s]", agent_text="[bold]hi[/bold]")
    console = Console(record=True, width=140)
    console.print(turn_table(turn))
    text = console.export_text()
    assert '"[speech 1.2 s]"' in text and "[bold]hi[/bold]" in text


def _interrupted() -> tuple[TurnMetrics, TurnMetrics]:
    first = _turn(1, 0.0, 250.0, "What's the weather like?", "The weather is sunny today.")
    first.stamps["interruption_detected"] = first.stamps["playout_start"] + 1810
    first.stamps["output_silent"] = first.stamps["interruption_detected"] + 4
    first.stamps["turn_end"] = first.stamps["output_silent"]
    first.interrupted, first.heard_text = True, "The weather is"
    first.cut_short = ["total"]
    first.false_interruptions = [{"detected_ms": 3000.0, "silent_ms": 3000.0, "resumed_ms": 3500.0}]
    second = _turn(2, first.stamps["interruption_detected"] - 300, 250.0, "wait stop", "Okay.")
    return first, second


def test_an_interruption_is_told_in_the_turn_table_and_the_summary() -> None:
    first, second = _interrupted()
    console = Console(record=True, width=200)
    console.print(turn_table(first))
    console.print(summary_table(SessionMetrics(turns=[first, second])))
    text = console.export_text()
    assert (
        'Interrupted 1810 ms into the answer: output silent 4 ms after detection. Heard: "The '
        'weather is"' in text
    )
    assert "False interruption: output silent 0 ms after detection, resumed 500 ms later" in text
    assert re.search(r"total\s+cut short", text)
    assert "2 turns, 1 interrupted, 1 resumed, 0 failed, 0 cancelled" in " ".join(text.split())


def test_interruption_fields_survive_a_json_round_trip() -> None:
    first, second = _interrupted()
    session = SessionMetrics(turns=[first, second])
    again = SessionMetrics.from_dict(json.loads(session.to_json()))
    assert again.turns[0].heard_text == "The weather is"
    assert again.turns[0].cut_short == ["total"]
    assert again.turns[0].false_interruptions == first.false_interruptions
    assert again.turns[0].stamps["output_silent"] == first.stamps["output_silent"]
    assert again.interruptions() == {"interrupted_turns": 1, "resumed_turns": 1}
    # "total" was cut short: it is left out of the statistics, the second turn's is in.
    assert again.summary()["total_ms"]["count"] == 1
