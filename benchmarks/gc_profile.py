"""Where the garbage collector's time goes in the bench's conversation, voxpipe's or the
bare-asyncio floor's (``voxpipe bench --floor``), in one process.

    .venv/bin/python benchmarks/gc_profile.py pauses --sessions 300 [--floor] [--cpu 0]
    .venv/bin/python benchmarks/gc_profile.py allocations --sessions 10 [--floor]
    .venv/bin/python benchmarks/gc_profile.py survivors --sessions 100 --turns 2 [--floor]

``pauses``: the bench's level in real time; each collection during the run (after the
collector is frozen; not the explicit collections before it), its generation, pause and
the objects it freed, summed per generation. ``allocations``: every allocation of an object
the collector tracks, counted by the line that made it (a collection after each one, under
tracemalloc: slow, so few sessions), per session. Objects that live on (queued frames,
timers, coroutines) are what the young generations walk; allocations are what fills them.
``survivors``: the sessions under virtual time with the collector off: how far the count
that starts a young collection (allocations minus frees) grew, and the objects made
during the run still alive once every session has ended (what a session keeps: its
records), by line. ``--thresholds 10000,10,100`` runs ``pauses`` with other thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

from voxpipe import bench, runtime
from voxpipe.io.simspeech import SimSpeechSource
from voxpipe.runtime import freeze_gc, loop_factory


def pauses(sessions: int, turns: int, floor: bool) -> None:
    started: list[float] = []
    seen: dict[int, list[tuple[float, int, float]]] = collections.defaultdict(list)
    run_start: float | None = None  # set when the bench freezes the collector: the run

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if run_start is None:
            return
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            began = started.pop()
            pause = (time.perf_counter() - began) * 1000.0
            seen[info["generation"]].append((pause, info["collected"], began - run_start))

    def freeze_then_watch() -> None:
        nonlocal run_start
        freeze_gc()
        run_start = time.perf_counter()

    bench.freeze_gc = freeze_then_watch  # type: ignore[attr-defined]  # the bench calls it
    gc.callbacks.append(on_gc)
    result = asyncio.run(bench.run_level(sessions, turns=turns, gc_freeze=True, floor=floor))
    gc.callbacks.remove(on_gc)
    print(
        f"{'floor' if floor else 'voxpipe'}, {sessions} sessions: overhead p99 "
        f"{result.overhead_p99_ms:.1f} ms, {result.cpu_s_per_session_minute:.3f} CPU-s per "
        f"session-minute, {result.wall_s:.0f} s; collector thresholds {gc.get_threshold()}"
    )
    if not seen:
        print("  no collection during the run")
    for generation in sorted(seen):
        times = [pause for pause, _, _ in seen[generation]]
        longest = max(seen[generation])
        print(
            f"  generation {generation}: {len(times)} collections, pause median "
            f"{statistics.median(times):.2f} ms, max {longest[0]:.2f} ms "
            f"({longest[2]:.1f} s into the run), {sum(times):.0f} ms in all, "
            f"{sum(c for _, c, _ in seen[generation])} objects freed"
        )


def allocations(sessions: int, turns: int, floor: bool, top: int) -> None:
    sites: collections.Counter[str] = collections.Counter()
    counting = False

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase != "start" or not counting:
            return
        for obj in gc.get_objects(0):  # the objects made since the last collection
            trace = tracemalloc.get_object_traceback(obj)
            if trace is not None:
                where = trace[0]
                sites[f"{_short(where.filename)}:{where.lineno} {type(obj).__qualname__}"] += 1

    def freeze_then_count() -> None:
        nonlocal counting
        gc.collect()
        gc.freeze()
        gc.set_threshold(1, 1 << 30, 1 << 30)  # a young collection after each allocation
        counting = True

    bench.freeze_gc = freeze_then_count  # type: ignore[attr-defined]  # the bench calls it
    tracemalloc.start(1)
    gc.callbacks.append(on_gc)
    asyncio.run(bench.run_level(sessions, turns=turns, gc_freeze=True, floor=floor))
    counting = False
    gc.callbacks.remove(on_gc)
    total = sum(sites.values())
    print(
        f"{'floor' if floor else 'voxpipe'}: {total / sessions:.0f} tracked allocations per "
        f"session ({sessions} sessions x {turns} turns); the top {top} lines:"
    )
    for site, count in sites.most_common(top):
        print(f"  {count / sessions:8.0f}  {site}")


def survivors(sessions: int, turns: int, floor: bool, top: int) -> None:
    lines = [bench.LINES[i % len(bench.LINES)] for i in range(turns)]

    async def run() -> list[object]:
        warm = bench.conversation("Okay.", floor=floor)  # imports and caches stay out
        warm_source = bench.EdgeSource(SimSpeechSource(["hi"], lead_ms=0, pause_ms=0))
        await warm(warm_source, bench.EdgeSink(warm_source))
        converse = bench.conversation(floor=floor)
        sources = [
            bench.EdgeSource(SimSpeechSource(lines, lead_ms=400 + 10 * i)) for i in range(sessions)
        ]
        freeze_gc()
        gc.disable()
        tracemalloc.start(1)
        return await asyncio.gather(*(converse(s, bench.EdgeSink(s)) for s in sources))

    with asyncio.Runner(loop_factory=loop_factory("virtual")) as runner:
        kept = runner.run(run())  # what the sessions return (voxpipe: their metrics)
    grown = gc.get_count()[0]
    sites: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects(0):
        trace = tracemalloc.get_object_traceback(obj)
        if trace is not None:
            where = trace[0]
            sites[f"{_short(where.filename)}:{where.lineno} {type(obj).__qualname__}"] += 1
    gc.enable()
    print(
        f"{'floor' if floor else 'voxpipe'}, {sessions} sessions x {turns} turns, virtual "
        f"time, collector off: allocations minus frees {grown} ({grown / sessions:.0f} per "
        f"session); alive after every session ended: {sum(sites.values()) / sessions:.0f} per "
        f"session ({len(kept)} results kept); the top {top} lines:"
    )
    for site, count in sites.most_common(top):
        print(f"  {count / sessions:8.1f}  {site}")


def _short(filename: str) -> str:
    path = Path(filename)
    for anchor in ("site-packages", "sdk", f"python3.{sys.version_info.minor}"):
        if anchor in path.parts:
            return "/".join(path.parts[path.parts.index(anchor) + 1 :])
    return filename


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("pauses", "allocations", "survivors"))
    parser.add_argument("--sessions", type=int, default=None)
    parser.add_argument("--turns", type=int, default=None)
    parser.add_argument("--floor", action="store_true", help="the bare-asyncio floor")
    parser.add_argument("--cpu", type=int, help="pin to this core")
    parser.add_argument("--top", type=int, default=25, help="lines shown")
    parser.add_argument(
        "--thresholds",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        help="the collector's thresholds after the freeze, as 700,10,100 (runtime's default)",
    )
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.thresholds is not None:
        runtime.GC_THRESHOLDS = args.thresholds
    if args.what == "pauses":
        pauses(args.sessions or 300, args.turns or 4, args.floor)
    elif args.what == "allocations":
        allocations(args.sessions or 10, args.turns or 2, args.floor, args.top)
    else:
        survivors(args.sessions or 100, args.turns or 2, args.floor, args.top)


if __name__ == "__main__":
    main()
