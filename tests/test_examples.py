"""The example configs and scripts keep working as the README shows them."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from voxpipe import load_config

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_example_configs_load(path: Path) -> None:
    for name in ("openai", "deepgram", "elevenlabs"):
        if f'backend = "{name}' in path.read_text() and find_spec(f"voxpipe_{name}") is None:
            pytest.skip(f"needs voxpipe-{name}")
    config = load_config(path)
    assert config.source == str(path)


def test_compare_serial_prints_the_readme_figures() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "compare_serial.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    p50 = next(line for line in done.stdout.splitlines() if "p50" in line)
    assert [cell.strip() for cell in p50.split("│")[2:4]] == ["770", "870"]
