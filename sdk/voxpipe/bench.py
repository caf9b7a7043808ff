"""``voxpipe bench``: what the orchestrator itself costs, measured from outside it.

N concurrent sessions run in one process, in real time, against sim backends with fixed
latencies. For every turn, time to first audio is taken at the edges (the source notes when
the user's last voiced frame ended, the sink when the first answer frame arrives) and
compared with the theoretical minimum for voxpipe's phrase policy:

    ASR final delay + LLM first token + time to the token completing the first phrase + TTS TTFB

Overhead = measured - minimum. Each level of N runs in a fresh child process so memory and
garbage-collector figures belong to that level alone. With ``--floor`` each level also runs
the same conversations glued with bare asyncio (``voxpipe.bench_floor``), and voxpipe's
figures are given as ratios to that floor's.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from voxpipe import bench_floor
from voxpipe.agent import DEFAULT_LOOKAHEAD_MS, VoiceAgent
from voxpipe.audio import AudioFrame
from voxpipe.clock import SessionClock
from voxpipe.io.simspeech import SimSpeechSource
from voxpipe.metrics import SessionMetrics, percentiles
from voxpipe.runtime import freeze_gc, loop_factory
from voxpipe.sim import SimASR, SimASROptions, SimLLM, SimLLMOptions, SimTTS, SimTTSOptions
from voxpipe.text import PhraseChunker, PhrasePolicy
from voxpipe.turns import TurnSettings

REPLY = "The weather is sunny with a temperature of 72 degrees. Anything else?"
LINES = ("What's the weather like today?", "And what about tomorrow?", "Thanks, and the weekend?")
ASR_ENDPOINT_MS, ASR_FINALIZATION_MS = 200.0, 100.0  # final 300 ms after speech ends
LLM_FIRST_TOKEN_MS, LLM_TOKENS_PER_SECOND = 300.0, 50.0
TTS_FIRST_CHUNK_MS, TTS_SPEED = 150.0, 4.0
DEFAULT_LEVELS = (1, 10, 50, 100, 200, 400, 800, 1600)
DEFAULT_TURNS = 4
#: Sessions start at random over about one turn (speech, answer, pause), as independent
#: callers would, rather than all in the same phase.
START_SPREAD_MS = 8000.0
P99_LIMIT_MS = 50.0
CPU_SATURATED_PERCENT = 95.0


def minimum_ttfa_ms(policy: PhrasePolicy | None = None) -> float:
    """The fastest possible time to first audio with these backends and this phrase policy."""
    tokens = re.findall(r"\s*\S+", REPLY)  # SimLLM's deltas
    chunker = PhraseChunker(policy)
    index = next(i for i, t in enumerate(tokens) if chunker.feed(t))
    first_phrase_ms = index * 1000.0 / LLM_TOKENS_PER_SECOND
    return (
        ASR_ENDPOINT_MS
        + ASR_FINALIZATION_MS
        + LLM_FIRST_TOKEN_MS
        + first_phrase_ms
        + TTS_FIRST_CHUNK_MS
    )


class EdgeSource:
    """SimSpeechSource that notes, on the loop clock, when each utterance's speech ended."""

    def __init__(self, inner: SimSpeechSource) -> None:
        self.inner = inner
        self.speech_ends: list[float] = []

    def bind(self, session: Any) -> None:
        self.inner.bind(session)

    async def frames(self, clock: SessionClock) -> AsyncIterator[AudioFrame]:
        voiced_end: float | None = None
        async for frame in self.inner.frames(clock):
            if frame.script:
                voiced_end = frame.end_ms
            elif voiced_end is not None:
                self.speech_ends.append(clock.loop_time(voiced_end))
                voiced_end = None
            yield frame


class EdgeSink:
    """Notes, on the loop clock, the first agent frame after each end of user speech."""

    def __init__(self, source: EdgeSource) -> None:
        self.source = source
        self.first_audio: list[float] = []
        self._loop = asyncio.get_running_loop()

    async def write(self, frame: AudioFrame) -> None:
        if len(self.first_audio) < len(self.source.speech_ends):
            self.first_audio.append(self._loop.time())

    def clear(self, at_ms: float) -> float:
        return at_ms

    async def aclose(self) -> None:
        return None


TURNS = TurnSettings(endpoint_ms=ASR_ENDPOINT_MS)


def sim_backends(reply: str = REPLY) -> tuple[SimASR, SimLLM, SimTTS]:
    """The bench's ASR, LLM and TTS, with its fixed latencies."""
    return (
        SimASR(SimASROptions(finalization_ms=ASR_FINALIZATION_MS)),
        SimLLM(
            SimLLMOptions(
                first_token_ms=LLM_FIRST_TOKEN_MS,
                tokens_per_second=LLM_TOKENS_PER_SECOND,
                responses={"default": reply},
            )
        ),
        SimTTS(SimTTSOptions(first_chunk_ms=TTS_FIRST_CHUNK_MS, speed=TTS_SPEED)),
    )


def build_agent(reply: str = REPLY) -> VoiceAgent:
    """One agent for every session of a level: its sim backends are shared objects."""
    return VoiceAgent(*sim_backends(reply), turns=TURNS, lookahead_ms=DEFAULT_LOOKAHEAD_MS)


Conversation = Callable[[EdgeSource, EdgeSink], Awaitable[Any]]


def conversation(reply: str = REPLY, *, floor: bool = False) -> Conversation:
    """What holds one conversation over a source and a sink: voxpipe's agent, or the bare
    asyncio floor on the same (shared) sim backends and settings."""
    if not floor:
        return build_agent(reply).run
    asr, llm, tts = sim_backends(reply)

    async def converse(source: EdgeSource, sink: EdgeSink) -> int:
        return await bench_floor.converse(
            source, sink, asr, llm, tts, turns=TURNS, lookahead_ms=DEFAULT_LOOKAHEAD_MS
        )

    return converse


@dataclass
class LevelResult:
    """One level of concurrency, as measured in its child process."""

    sessions: int
    turns: int
    overhead_p50_ms: float | None
    overhead_p99_ms: float | None
    overhead_max_ms: float | None
    cpu_percent: float
    cpu_s_per_session_minute: float
    loop_lag_p99_ms: float | None
    gc_pause_max_ms: float
    rss_per_session_kib: float
    wall_s: float
    errors: int = 0
    #: RSS growth / N with the N sessions started and the users not yet talking.
    idle_kib_per_session: float | None = None
    #: Where the overhead went, from the agents' own stamps: p50 of each stage's excess over
    #: its ideal (0 for the orchestrator's own hand-offs, the sim latency for the others).
    stage_excess_p50_ms: dict[str, float | None] = field(default_factory=dict)
    #: p50 lateness of a plain asyncio.sleep on this loop: what each simulated delay costs.
    timer_lateness_p50_ms: float | None = None
    #: CPU one such wake-up costs, in µs: the floor under a lone session's CPU figure.
    timer_wakeup_cpu_us: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)


#: What each stage would take with perfect timers and a free orchestrator.
IDEAL_STAGE_MS = {
    "asr_finalization": ASR_ENDPOINT_MS + ASR_FINALIZATION_MS,
    "handoff": 0.0,
    "llm_ttft": LLM_FIRST_TOKEN_MS,
    "first_phrase": minimum_ttfa_ms()
    - (ASR_ENDPOINT_MS + ASR_FINALIZATION_MS + LLM_FIRST_TOKEN_MS + TTS_FIRST_CHUNK_MS),
    "tts_ttfb": TTS_FIRST_CHUNK_MS,
    "playout": 0.0,
}


async def _timer_cost(samples: int = 40) -> tuple[float | None, float]:
    """A plain asyncio.sleep on the idle loop: p50 lateness (ms) and CPU per wake-up (µs)."""
    late = []
    rng = random.Random(1)
    cpu0 = time.process_time()
    for _ in range(samples):
        delay = rng.uniform(0.015, 0.025)  # like a sim delay: not a whole millisecond
        t0 = time.perf_counter()
        await asyncio.sleep(delay)
        late.append((time.perf_counter() - t0 - delay) * 1000.0)
    cpu_us = (time.process_time() - cpu0) / samples * 1e6
    return _f(percentiles(late)["p50"]), cpu_us


def _rss_kib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


async def _lag_monitor(lags: list[float], interval: float = 0.05) -> None:
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(interval)
        lags.append((time.perf_counter() - t0 - interval) * 1000.0)


async def _idle_rss_kib(converse: Conversation, sessions: int, seconds: float = 1.0) -> float:
    """RSS growth per session with ``sessions`` sessions listening to silence for
    ``seconds``; then they are cancelled."""
    gc.collect()
    before = _rss_kib()
    sources = [EdgeSource(SimSpeechSource(["hi"], lead_ms=60_000)) for _ in range(sessions)]
    tasks = [asyncio.ensure_future(converse(src, EdgeSink(src))) for src in sources]
    await asyncio.sleep(seconds)
    gc.collect()
    grown = _rss_kib() - before
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return grown / sessions


async def run_level(
    sessions: int, *, turns: int, gc_freeze: bool, seed: int = 0, floor: bool = False
) -> LevelResult:
    """Run ``sessions`` concurrent conversations of ``turns`` turns; measure from outside.
    ``floor``: the bare-asyncio floor holds them instead of voxpipe."""
    rng = random.Random(seed)
    gc_pauses: list[float] = []
    gc_started: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started.append(time.perf_counter())
        elif gc_started:
            gc_pauses.append((time.perf_counter() - gc_started.pop()) * 1000.0)

    lateness, wake_cpu_us = await _timer_cost()  # on the idle loop, before the sessions
    lines = [LINES[i % len(LINES)] for i in range(turns)]
    warm = conversation("Okay.", floor=floor)  # one-time costs stay out of the run
    warm_source = EdgeSource(SimSpeechSource(["hi"], lead_ms=0, pause_ms=0))
    await warm(warm_source, EdgeSink(warm_source))
    baseline = _rss_kib()
    converse = conversation(floor=floor)
    idle_kib = await _idle_rss_kib(converse, sessions)
    sources = [
        EdgeSource(SimSpeechSource(lines, lead_ms=400 + rng.uniform(0, START_SPREAD_MS)))
        for _ in range(sessions)
    ]
    sinks = [EdgeSink(s) for s in sources]
    if gc_freeze:
        freeze_gc()  # as the CLI and the server do
    gc.callbacks.append(on_gc)
    lags: list[float] = []
    monitor = asyncio.create_task(_lag_monitor(lags))
    peak = [baseline]

    async def sample_rss() -> None:
        while True:
            peak[0] = max(peak[0], _rss_kib())
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_rss())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(
        *(converse(src, sink) for src, sink in zip(sources, sinks, strict=True)),
        return_exceptions=True,
    )
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    monitor.cancel()
    sampler.cancel()
    gc.callbacks.remove(on_gc)
    peak[0] = max(peak[0], _rss_kib())

    minimum = minimum_ttfa_ms()
    overheads = [
        (first - end) * 1000.0 - minimum
        for src, sink in zip(sources, sinks, strict=True)
        for end, first in zip(src.speech_ends, sink.first_audio, strict=False)
    ]
    stats = percentiles(overheads)
    excess = {
        stage: percentiles(
            [
                v - ideal
                for metrics in results
                if isinstance(metrics, SessionMetrics)
                for t in metrics.turns
                if (v := t.latency(stage)) is not None
            ]
        )["p50"]
        for stage, ideal in IDEAL_STAGE_MS.items()
    }
    lag = percentiles(lags)
    session_minutes = sessions * wall / 60.0
    return LevelResult(
        sessions=sessions,
        turns=len(overheads),
        overhead_p50_ms=_f(stats["p50"]),
        overhead_p99_ms=_f(stats["p99"]),
        overhead_max_ms=max(overheads) if overheads else None,
        cpu_percent=100.0 * cpu / wall,
        cpu_s_per_session_minute=cpu / session_minutes,
        loop_lag_p99_ms=_f(lag["p99"]),
        gc_pause_max_ms=max(gc_pauses, default=0.0),
        rss_per_session_kib=(peak[0] - baseline) / sessions,
        wall_s=wall,
        idle_kib_per_session=idle_kib,
        errors=sum(isinstance(r, BaseException) for r in results),
        stage_excess_p50_ms={k: _f(v) for k, v in excess.items()},
        timer_lateness_p50_ms=lateness,
        timer_wakeup_cpu_us=wake_cpu_us,
    )


def _f(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def _child(args: argparse.Namespace) -> None:
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    level = run_level(args.sessions, turns=args.turns, gc_freeze=args.gc_freeze, floor=args.floor)
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        result = runner.run(level)
    result.settings = {
        "loop": args.loop,
        "gc_freeze": args.gc_freeze,
        "cpu": args.cpu,
        "pipeline": "floor" if args.floor else "voxpipe",
    }
    print(json.dumps(asdict(result)))


def run_child(
    sessions: int,
    *,
    turns: int,
    loop: str,
    gc_freeze: bool,
    cpu: int | None,
    console: Any,
    floor: bool = False,
) -> LevelResult:
    """One level in a fresh child process (voxpipe, or the floor)."""
    command = [
        sys.executable,
        "-m",
        "voxpipe.bench",
        "--child",
        "--sessions",
        str(sessions),
        "--turns",
        str(turns),
        "--loop",
        loop,
        "--gc-freeze" if gc_freeze else "--no-gc-freeze",
    ]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    if floor:
        command.append("--floor")
    what = "the floor" if floor else "voxpipe"
    with console.status(f"{what}: {sessions} concurrent session(s), {turns} turns each..."):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child ({what}, N={sessions}) failed:\n{done.stderr}")
    result = LevelResult(**json.loads(done.stdout.strip().splitlines()[-1]))
    console.print(f"{what}, {_row_text(result)}" if floor else _row_text(result))
    return result


def run_levels(
    levels: Sequence[int], *, turns: int, loop: str, gc_freeze: bool, cpu: int | None
) -> list[LevelResult]:
    """Each level in a fresh child process, until p99 overhead passes the limit or the CPU
    saturates."""
    from rich.console import Console

    console = Console(stderr=True)
    results: list[LevelResult] = []
    for n in levels:
        result = run_child(n, turns=turns, loop=loop, gc_freeze=gc_freeze, cpu=cpu, console=console)
        results.append(result)
        if _saturated(result) or (result.overhead_p99_ms or 0) > P99_LIMIT_MS:
            break
    return results


def run_floor_levels(
    levels: Sequence[int], *, turns: int, loop: str, gc_freeze: bool, cpu: int | None
) -> list[tuple[LevelResult, LevelResult]]:
    """Each level twice, the floor then voxpipe, each in its own child process with the same
    sessions; until voxpipe saturates the CPU. (voxpipe, floor) pairs."""
    from rich.console import Console

    console = Console(stderr=True)
    pairs: list[tuple[LevelResult, LevelResult]] = []
    for n in levels:
        child = functools.partial(
            run_child, n, turns=turns, loop=loop, gc_freeze=gc_freeze, cpu=cpu, console=console
        )
        floor = child(floor=True)
        voxpipe = child()
        pairs.append((voxpipe, floor))
        if _saturated(voxpipe):
            break
    return pairs


def _saturated(result: LevelResult) -> bool:
    return result.cpu_percent > CPU_SATURATED_PERCENT


def _row_text(r: LevelResult) -> str:
    return (
        f"N={r.sessions}: overhead p50 {r.overhead_p50_ms:.1f} ms, p99 {r.overhead_p99_ms:.1f}"
        f" ms, CPU {r.cpu_percent:.0f}%, {r.cpu_s_per_session_minute:.3f} CPU-s/session-min"
    )


def results_table(results: Sequence[LevelResult], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for column in (
        "sessions",
        "turns",
        "overhead p50 ms",
        "overhead p99 ms",
        "max ms",
        "CPU %",
        "CPU s / session-min",
        "loop lag p99 ms",
        "max GC pause ms",
        "KiB / session",
        "KiB / idle session",
    ):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            str(r.sessions),
            str(r.turns),
            _fmt(r.overhead_p50_ms),
            _fmt(r.overhead_p99_ms),
            _fmt(r.overhead_max_ms),
            f"{r.cpu_percent:.0f}",
            f"{r.cpu_s_per_session_minute:.3f}",
            _fmt(r.loop_lag_p99_ms),
            f"{r.gc_pause_max_ms:.1f}",
            f"{r.rss_per_session_kib:.0f}",
            _kib(r.idle_kib_per_session),
        )
    return table


def breakdown_table(results: Sequence[LevelResult]) -> Any:
    """Where the overhead went: each stage's p50 excess over its ideal, per level."""
    from rich.table import Table

    table = Table(title="Where it went: p50 ms over each stage's ideal (agents' own stamps)")
    table.add_column("sessions", justify="right")
    for stage in IDEAL_STAGE_MS:
        table.add_column(stage, justify="right")
    table.add_column("one timer's lateness", justify="right")
    table.add_column("CPU µs per wake-up", justify="right")
    for r in results:
        table.add_row(
            str(r.sessions),
            *(_fmt(r.stage_excess_p50_ms.get(stage)) for stage in IDEAL_STAGE_MS),
            _fmt(r.timer_lateness_p50_ms),
            _fmt(r.timer_wakeup_cpu_us),
        )
    return table


#: The figures ``--floor`` compares: (column, LevelResult field).
FLOOR_FIGURES = (
    ("overhead p50 ms", "overhead_p50_ms"),
    ("overhead p99 ms", "overhead_p99_ms"),
    ("CPU s / session-min", "cpu_s_per_session_minute"),
)


def floor_ratios(voxpipe: LevelResult, floor: LevelResult) -> dict[str, float | None]:
    """voxpipe / floor for each compared figure (None when the floor's is not above 0)."""
    ratios: dict[str, float | None] = {}
    for _, name in FLOOR_FIGURES:
        ours, theirs = getattr(voxpipe, name), getattr(floor, name)
        ratios[name] = ours / theirs if ours is not None and theirs and theirs > 0 else None
    return ratios


def floor_table(pairs: Sequence[tuple[LevelResult, LevelResult]], title: str) -> Any:
    """voxpipe beside the bare-asyncio floor, level by level, and their ratios."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("sessions", justify="right")
    table.add_column("CPU % voxpipe / floor", justify="right")
    for column, _ in FLOOR_FIGURES:
        for who in ("voxpipe", "floor", "ratio"):
            table.add_column(f"{column} {who}", justify="right")
    table.add_column("max GC pause ms voxpipe / floor", justify="right")
    table.add_column("KiB / idle session voxpipe / floor", justify="right")
    for voxpipe, floor in pairs:
        ratios = floor_ratios(voxpipe, floor)
        cells = []
        for _, name in FLOOR_FIGURES:
            ratio = ratios[name]
            cells += [
                _fmt(getattr(voxpipe, name)),
                _fmt(getattr(floor, name)),
                "—" if ratio is None else f"{ratio:.2f}x",
            ]
        cpu = f"{voxpipe.cpu_percent:.0f} / {floor.cpu_percent:.0f}"
        gc_pause = f"{voxpipe.gc_pause_max_ms:.1f} / {floor.gc_pause_max_ms:.1f}"
        idle = f"{_kib(voxpipe.idle_kib_per_session)} / {_kib(floor.idle_kib_per_session)}"
        table.add_row(str(voxpipe.sessions), cpu, *cells, gc_pause, idle)
    return table


def _kib(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what",
        nargs="?",
        choices=("overhead", "tail"),
        default="overhead",
        help="overhead: what the orchestrator costs (default); tail: what the budget "
        "policies do to a slow LLM's latency tail (virtual time)",
    )
    parser.add_argument(
        "--sessions",
        type=int,
        nargs="+",
        default=list(DEFAULT_LEVELS),
        metavar="N",
        help="concurrency levels to try, in order",
    )
    parser.add_argument(
        "--turns", type=int, help="turns per session (overhead: 4); tail: turns per policy (1000)"
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "select", "uvloop"),
        default="asyncio",
        help="event loop: asyncio's default (epoll), asyncio on select() "
        "(microsecond timers), or uvloop",
    )
    parser.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gc.freeze() after start-up (default on)",
    )
    parser.add_argument("--cpu", type=int, help="pin the sessions to this CPU (like taskset -c)")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run each level glued with bare asyncio (no voxpipe orchestration) and give "
        "voxpipe's overhead and CPU as ratios to that floor's; levels go up until voxpipe "
        "saturates the CPU",
    )
    parser.add_argument("--json", type=Path, help="write the results here")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voxpipe.bench", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.sessions, args.turns = args.sessions[0], args.turns or DEFAULT_TURNS
        _child(args)
        return 0
    return run_and_report(args)


def run_and_report(args: argparse.Namespace) -> int:
    """Run the levels, print the table, write JSON (shared by ``voxpipe bench``)."""
    from rich.console import Console

    if args.what == "tail":
        from voxpipe import tail

        return tail.run_and_report(args)
    args.turns = args.turns or DEFAULT_TURNS
    loop_factory(args.loop)  # a missing uvloop is a usage error, before any child starts
    where = f"CPU {args.cpu}" if args.cpu is not None else f"{os.cpu_count()} CPUs"
    conditions = (
        f"{args.loop}, gc.freeze {'on' if args.gc_freeze else 'off'}, {where}; "
        f"minimum TTFA {minimum_ttfa_ms():.0f} ms"
    )
    console = Console(width=None if sys.stdout.isatty() else 200)
    turns, loop, gc_freeze, cpu = args.turns, args.loop, args.gc_freeze, args.cpu
    pairs: list[tuple[LevelResult, LevelResult]] = []
    if args.floor:
        pairs = run_floor_levels(
            args.sessions, turns=turns, loop=loop, gc_freeze=gc_freeze, cpu=cpu
        )
        results = [voxpipe for voxpipe, _ in pairs]
        console.print(floor_table(pairs, f"voxpipe against the bare-asyncio floor ({conditions})"))
    else:
        results = run_levels(args.sessions, turns=turns, loop=loop, gc_freeze=gc_freeze, cpu=cpu)
        console.print(results_table(results, f"voxpipe orchestrator overhead ({conditions})"))
    console.print(breakdown_table(results))
    report: dict[str, Any] = {
        "minimum_ttfa_ms": minimum_ttfa_ms(),
        "results": [asdict(r) for r in results],
    }
    if args.floor:
        report["floor"] = [asdict(floor) for _, floor in pairs]
        report["ratios"] = [
            {"sessions": voxpipe.sessions, **floor_ratios(voxpipe, floor)}
            for voxpipe, floor in pairs
        ]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
