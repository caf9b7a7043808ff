"""benchmarks/gc_profile.py: pauses per generation and tracked allocations per line, from a
real (small) bench level."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gc_profile.py"


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--turns", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_pauses_are_summed_per_generation() -> None:
    out = run("pauses", "--sessions", "40")  # enough live objects for a few collections
    assert out.startswith("voxpipe, 40 sessions: overhead p99")
    assert re.search(r"generation 0: \d+ collections, pause median [\d.]+ ms", out)


def test_allocations_are_counted_by_the_line_that_made_them() -> None:
    out = run("allocations", "--floor", "--sessions", "2", "--top", "5")
    head, *lines = out.strip().splitlines()
    assert re.match(r"floor: \d+ tracked allocations per session", head)
    assert len(lines) == 5
    counts = [int(line.split()[0]) for line in lines]
    assert counts == sorted(counts, reverse=True) and counts[0] > 0
    assert any("asyncio/" in line for line in lines)  # the loop's own timers and handles


def test_survivors_are_what_the_finished_sessions_keep() -> None:
    out = run("survivors", "--sessions", "5", "--top", "3")
    head, *lines = out.strip().splitlines()
    found = re.match(r"voxpipe, 5 sessions x 1 turns.*alive after every session ended: (\d+)", head)
    assert found and int(found.group(1)) > 0
    assert len(lines) == 3 and any("voxpipe/" in line for line in lines)  # its turn records
