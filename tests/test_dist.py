"""`make dist`: every package builds, passes twine check, installs from its wheel alone into
a fresh venv and works there."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from voxpipe import __version__

ROOT = Path(__file__).resolve().parent.parent


def version_of(package: Path) -> tuple[str, str]:
    """(distribution name as in wheel names, __version__ from the package's one place)."""
    pyproject = (package / "pyproject.toml").read_text()
    name = re.search(r'^name = "([^"]+)"', pyproject, re.M)
    path = re.search(r'\[tool\.hatch\.version\]\npath = "([^"]+)"', pyproject)
    assert name and path, f"{package}: no name or [tool.hatch.version] path"
    version = re.search(r'^__version__ = "([^"]+)"', (package / path[1]).read_text(), re.M)
    assert version, f"{package / path[1]}: no __version__"
    return name[1].replace("-", "_"), version[1]


def test_every_package_builds_checks_installs_from_its_wheel_and_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, ROOT / "scripts" / "dist.py", "--out", tmp_path, "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = [*ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("examples/*/pyproject.toml")]
    packages = [ROOT, *(p.parent for p in found)]
    for name, version in map(version_of, packages):
        assert (tmp_path / f"{name}-{version}-py3-none-any.whl").exists(), name
        assert (tmp_path / f"{name}-{version}.tar.gz").exists(), name
    assert f"twine check passed: {2 * len(packages)} files" in done.stdout
    said = re.search(
        r"^voxpipe (\S+): \d+ backends \((.*)\); demo: (\d+) turns$", done.stdout, re.M
    )
    assert said, done.stdout
    assert said[1] == __version__ and said[3] == "3"
    backends = set(said[2].split(", "))
    assert {"asr:sim", "llm:openai", "llm:echo", "tts:tone"} <= backends
