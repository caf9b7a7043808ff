"""Event-loop choices and the overhead benchmark's own arithmetic."""

from __future__ import annotations

import asyncio
import selectors
import subprocess
import sys

import pytest

from run_cli import voxpipe
from voxpipe import SimSpeechSource, UsageError, VoiceAgent
from voxpipe.bench import minimum_ttfa_ms, run_level
from voxpipe.runtime import loop_factory
from voxpipe.text import PhrasePolicy

LOOP_TIMER_RESOLUTION_MS = 1.0
FAST = {
    "asr": {"finalization_ms": 20},
    "llm": {"first_token_ms": 20, "tokens_per_second": 500, "responses": {"default": "Hi."}},
    "tts": {"first_chunk_ms": 10, "speed": 20},
}


def test_loop_names() -> None:
    assert loop_factory("asyncio") is None
    select_loop = loop_factory("select")
    assert select_loop is not None
    loop = select_loop()
    try:
        assert isinstance(loop._selector, selectors.SelectSelector)  # type: ignore[attr-defined]
    finally:
        loop.close()
    with pytest.raises(UsageError, match="unknown event loop 'tokio'; choose from auto, asyncio"):
        loop_factory("tokio")


def test_auto_prefers_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    monkeypatch.delenv("VOXPIPE_LOOP", raising=False)
    assert loop_factory() is uvloop.new_event_loop
    monkeypatch.setenv("VOXPIPE_LOOP", "asyncio")
    assert loop_factory() is None


@pytest.mark.parametrize("name", ["asyncio", "select", "uvloop"])
def test_a_real_time_session_runs_on_each_loop(name: str) -> None:
    if name == "uvloop":
        pytest.importorskip("uvloop")
    config = {k: {"backend": "sim", **v} for k, v in FAST.items()}
    agent = VoiceAgent.from_config({**config, "turns": {"endpoint_ms": 60}})
    source = SimSpeechSource(["hello"], lead_ms=100, pause_ms=300)
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        session = runner.run(agent.run(source))
    (turn,) = session.turns
    assert turn.agent_text == "Hi."
    # Real time: at least the configured latencies (60 + 20 + 20 + 10 ms), less the
    # resolution of the loop's timers (uvloop's may fire up to 1 ms early), and not far beyond.
    assert 110 - LOOP_TIMER_RESOLUTION_MS <= (turn.latency("time_to_first_audio") or 0) < 400


def test_minimum_time_to_first_audio_follows_the_phrase_policy() -> None:
    # ASR 200 + 100, LLM first token 300, TTS first chunk 150, plus the first phrase:
    # "The weather is sunny with a" ends when the 7th token arrives (6 x 20 ms at 50/s);
    # without the word limit it runs to "degrees." (the 10th token), certain once the 11th
    # shows what follows it (10 x 20 ms).
    assert minimum_ttfa_ms() == pytest.approx(300 + 300 + 120 + 150)
    assert minimum_ttfa_ms(PhrasePolicy(first_max_words=None)) == pytest.approx(750 + 200)


def test_benchmark_level_measures_every_turn_from_the_edges() -> None:
    result = asyncio.run(run_level(2, turns=1, gc_freeze=False))
    assert result.sessions == 2 and result.turns == 2 and result.errors == 0
    assert result.overhead_p50_ms is not None and result.overhead_p99_ms is not None
    # Timers wake late, never early, on asyncio's loop; and nothing here should take 50 ms.
    assert 0 <= result.overhead_p50_ms <= result.overhead_p99_ms < 50
    assert result.cpu_s_per_session_minute > 0 and result.rss_per_session_kib >= 0


def test_bench_tables_show_every_level_and_the_breakdown() -> None:
    from rich.console import Console

    from voxpipe.bench import LevelResult, breakdown_table, results_table

    result = LevelResult(
        sessions=200,
        turns=800,
        overhead_p50_ms=3.3,
        overhead_p99_ms=6.9,
        overhead_max_ms=9.9,
        cpu_percent=24.0,
        cpu_s_per_session_minute=0.073,
        loop_lag_p99_ms=2.1,
        gc_pause_max_ms=9.0,
        rss_per_session_kib=97.0,
        idle_kib_per_session=12.4,
        stage_excess_p50_ms={"asr_finalization": 0.99, "handoff": 0.51, "playout": None},
        timer_lateness_p50_ms=0.87,
        wall_s=40.0,
    )
    console = Console(record=True, width=200)
    console.print(results_table([result], "title"))
    console.print(breakdown_table([result]))
    text = console.export_text()
    for figure in ("200", "800", "3.30", "6.90", "0.073", "97", "12", "0.99", "0.51", "0.87"):
        assert figure in text, figure
    assert "—" in text  # a stage with no figure


def test_the_tail_benchmark_compares_the_policies(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    out = tmp_path / "tail.json"
    done = voxpipe("bench", "tail", "--turns", "50", "--json", out, timeout=300)
    assert done.returncode == 0, done.stderr
    results = {r["policy"]: r for r in json.loads(out.read_text())}
    assert set(results) == {"warn", "fallback", "filler"} and "fallback" in done.stdout
    assert all(r["turns"] == 50 for r in results.values())
    warn, fallback, filler = results["warn"], results["fallback"], results["filler"]
    assert fallback["fallbacks"] > 0 and filler["fillers"] > 0 and warn["fallbacks"] == 0
    # The same draws for the primary LLM under every policy: hedging can only shorten the
    # tail, and a filler makes the first sound come no later than the deadline's.
    assert fallback["first_audio_ms"]["p99"] <= warn["first_audio_ms"]["p99"]
    assert filler["first_sound_ms"]["p99"] <= warn["first_sound_ms"]["p99"]


def test_freeze_gc_hides_start_up_objects_and_makes_full_collections_rarer() -> None:
    code = (
        "import gc; from voxpipe.runtime import GC_THRESHOLDS, freeze_gc; "
        "before = gc.get_threshold(); freeze_gc(); "
        "print(before, gc.get_threshold() == GC_THRESHOLDS, gc.get_freeze_count() > 1000)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["(700,", "10,", "10)", "True", "True"]
