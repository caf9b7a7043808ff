"""benchmarks/transport_cost.py: each part of the transport runs on real protocol objects
and the script prints its cost per frame."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "transport_cost.py"


def test_the_transport_cost_script_prints_each_part() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--frames", "300", "--repeat", "1", "--rate", "48000"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    costs = {name: float(us) for us, name in re.findall(r"([\d.]+) µs  (\w+)", done.stdout)}
    assert set(costs) == {"decode", "frame", "encode", "in"}
    assert all(us > 0 for us in costs.values())
    parts = costs["decode"] + costs["frame"] + costs["encode"]
    assert abs(costs["in"] - parts) <= 0.15  # each printed to 0.1 µs
    assert "client at 48000 Hz" in done.stdout
