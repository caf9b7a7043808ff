"""Running the ``voxpipe`` command in a test, as a user would: a fresh process with only the
sim backends and a fixed terminal width."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ENV = {"COLUMNS": "160", "PATH": "/usr/bin:/bin", "VOXPIPE_PLUGINS": "sim"}


def voxpipe(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``voxpipe ARGS``: its exit code, standard output and standard error."""
    return subprocess.run(
        [sys.executable, "-m", "voxpipe.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        check=False,
    )
