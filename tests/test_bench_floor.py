"""The bare-asyncio floor under ``voxpipe bench``, and ``voxpipe bench --floor``."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

import pytest

import run_cli
from voxpipe import bench
from voxpipe.audio import AudioFrame
from voxpipe.bench import LINES, EdgeSink, EdgeSource, LevelResult, minimum_ttfa_ms
from voxpipe.bench_floor import converse
from voxpipe.io.simspeech import SimSpeechSource
from voxpipe.protocols import LLMEvent, Message
from voxpipe.sim import SimLLM


class CountingSink(EdgeSink):
    """The bench's edge sink, also counting the frames of each answer."""

    def __init__(self, source: EdgeSource) -> None:
        super().__init__(source)
        self.frames: list[int] = []

    async def write(self, frame: AudioFrame) -> None:
        if len(self.first_audio) < len(self.source.speech_ends):
            self.frames.append(0)
        self.frames[-1] += 1
        await super().write(frame)


class AskedLLM(SimLLM):
    """The bench's LLM, noting the user's words of each request."""

    def __init__(self, llm: SimLLM) -> None:
        super().__init__(llm.options)
        self.asked: list[str] = []

    def chat(self, messages: Sequence[Message]) -> AsyncGenerator[LLMEvent, None]:
        self.asked.append(messages[-1].content)
        return super().chat(messages)


def conversation() -> tuple[EdgeSource, CountingSink]:
    source = EdgeSource(SimSpeechSource(list(LINES), lead_ms=400))
    return source, CountingSink(source)


def time_to_first_audio_ms(source: EdgeSource, sink: EdgeSink) -> list[float]:
    return [
        (first - end) * 1000.0
        for end, first in zip(source.speech_ends, sink.first_audio, strict=True)
    ]


@pytest.mark.looptime
async def test_the_floor_answers_each_line_at_the_theoretical_minimum() -> None:
    asr, llm, tts = bench.sim_backends()
    asking = AskedLLM(llm)
    source, sink = conversation()

    answered = await converse(source, sink, asr, asking, tts, turns=bench.TURNS)

    assert answered == len(LINES) and asking.asked == list(LINES)
    assert len(source.speech_ends) == len(LINES)
    assert time_to_first_audio_ms(source, sink) == pytest.approx(
        [minimum_ttfa_ms()] * len(LINES), abs=1e-6
    )


@pytest.mark.looptime
async def test_the_floor_holds_the_same_conversation_as_voxpipe() -> None:
    runs = []
    for floor in (True, False):
        source, sink = conversation()
        await bench.conversation(floor=floor)(source, sink)
        runs.append((source.speech_ends, sink.frames, time_to_first_audio_ms(source, sink)))
    (floor_ends, floor_frames, floor_ttfa), (ends, frames, ttfa) = runs
    # The same lines at the same moments (each cued when the answer before has played), the
    # same answers, frame for frame, and voxpipe at the minimum too under virtual time.
    assert [end - floor_ends[0] for end in floor_ends] == pytest.approx(
        [end - ends[0] for end in ends], abs=1e-9
    )
    assert floor_frames == frames and len(frames) == len(LINES) and min(frames) > 100
    assert floor_ttfa == pytest.approx(ttfa, abs=1e-6)


def test_ratios_are_voxpipe_over_the_floor() -> None:
    def level(p50: float | None, cpu: float) -> LevelResult:
        return LevelResult(
            sessions=10,
            turns=40,
            overhead_p50_ms=p50,
            overhead_p99_ms=8.0,
            overhead_max_ms=9.0,
            cpu_percent=5.0,
            cpu_s_per_session_minute=cpu,
            loop_lag_p99_ms=1.0,
            gc_pause_max_ms=0.5,
            rss_per_session_kib=40.0,
            wall_s=20.0,
        )

    ratios = bench.floor_ratios(level(3.0, 0.3), level(2.0, 0.2))
    assert ratios == pytest.approx(
        {"overhead_p50_ms": 1.5, "overhead_p99_ms": 1.0, "cpu_s_per_session_minute": 1.5}
    )
    # A floor at or under zero overhead (timers firing early) has no ratio.
    assert bench.floor_ratios(level(3.0, 0.3), level(-0.2, 0.2))["overhead_p50_ms"] is None


def test_bench_floor_prints_the_ratios_and_writes_both(tmp_path: Path) -> None:
    out = tmp_path / "floor.json"
    done = run_cli.voxpipe(
        "bench", "--floor", "--sessions", "2", "--turns", "1", "--json", out, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    (voxpipe,), (floor,), (ratios,) = report["results"], report["floor"], report["ratios"]
    assert voxpipe["settings"]["pipeline"] == "voxpipe" and floor["settings"]["pipeline"] == "floor"
    for result in (voxpipe, floor):
        assert result["sessions"] == 2 and result["turns"] == 2 and result["errors"] == 0
        assert isinstance(result["idle_kib_per_session"], float)  # measured before the run
    idle = [bench._kib(r["idle_kib_per_session"]) for r in (voxpipe, floor)]
    assert " / ".join(idle) in done.stdout
    assert f"{voxpipe['gc_pause_max_ms']:.1f} / {floor['gc_pause_max_ms']:.1f}" in done.stdout
    assert ratios["sessions"] == 2
    for name, ratio in ratios.items():
        if name != "sessions" and ratio is not None:
            assert ratio == pytest.approx(voxpipe[name] / floor[name])
            assert f"{ratio:.2f}x" in done.stdout
    assert "floor" in done.stdout and "ratio" in done.stdout
    assert re.search(r"\d\.\d\dx", done.stdout)
