"""Running the ``voxpipe`` command in a test, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def voxpipe(*args: str, cwd: Path, timeout: float = 120) -> str:
    """``voxpipe ARGS`` in ``cwd`` with this environment (the plugin installed); its
    standard output. A non-zero exit fails the test with everything it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "voxpipe.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=os.environ | {"COLUMNS": "160"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
