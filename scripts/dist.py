"""Build, check and try the installable packages: the core and every plugin.

    .venv/bin/python scripts/dist.py [--out dist] [--smoke]

Builds a wheel and an sdist of each package (``python -m build``) into ``--out``, checks
them (``twine check --strict``), and with ``--smoke`` installs the wheels into a fresh venv
made by uv (voxpipe's packages from the built files only, their dependencies from the
package index) and runs ``voxpipe plugins`` and the demo there, outside the checkout.
``make dist`` runs it with ``--smoke``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from uv import find_uv_bin

ROOT = Path(__file__).resolve().parent.parent


def packages() -> list[Path]:
    """Every package of the repository: the core, then plugins/* and examples/*."""
    found = sorted(ROOT.glob("plugins/*/pyproject.toml")) + sorted(
        ROOT.glob("examples/*/pyproject.toml")
    )
    return [ROOT, *(p.parent for p in found)]


def run(*command: str | Path, cwd: Path | None = None) -> str:
    """Run a command; on failure, stop with what it printed."""
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"dist: `{' '.join(map(str, command))}` failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def build(out: Path) -> list[Path]:
    """A wheel and an sdist of every package into ``out``; returns the wheels."""
    out.mkdir(parents=True, exist_ok=True)
    built: list[Path] = []
    for package in packages():
        started = time.monotonic()
        # --no-isolation: the build backend (hatchling) comes from this venv, so no download.
        said = run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, package)
        names = re.search(r"Successfully built (\S+) and (\S+)", said)
        if names is None:
            sys.exit(f"dist: python -m build said nothing of what it built:\n{said}")
        built += [out / names[1], out / names[2]]
        took = time.monotonic() - started
        print(f"built {names[1]} and {names[2]} ({took:.1f} s)")
    run(sys.executable, "-m", "twine", "check", "--strict", *built)
    print(f"twine check passed: {len(built)} files in {out}")
    return [path for path in built if path.suffix == ".whl"]


def smoke(wheels: list[Path]) -> dict[str, object]:
    """Install ``wheels`` into a fresh venv and run ``voxpipe plugins`` and the demo there."""
    uv = find_uv_bin()  # uv installs the dependencies in seconds (pip: about a minute)
    with tempfile.TemporaryDirectory(prefix="voxpipe-dist-") as tmp:
        where = Path(tmp)
        run(uv, "venv", "--quiet", "--python", sys.executable, where / "venv")
        python = where / "venv" / "bin" / "python"
        started = time.monotonic()
        run(uv, "pip", "install", "--quiet", "--python", python, *wheels)
        print(
            f"installed {len(wheels)} wheels into a fresh venv ({time.monotonic() - started:.0f} s)"
        )
        voxpipe = where / "venv" / "bin" / "voxpipe"
        listed = json.loads(run(voxpipe, "plugins", "--json", cwd=where))
        demo = where / "demo.json"
        run(voxpipe, "demo", "--virtual-time", "--quiet", "--json", demo, cwd=where)
        turns = len(json.loads(demo.read_text())["turns"])
        version = run(voxpipe, "--version", cwd=where).strip()
    backends = sorted(f"{b['kind']}:{b['name']}" for b in listed["backends"] if b["status"] == "ok")
    print(f"{version}: {len(backends)} backends ({', '.join(backends)}); demo: {turns} turns")
    if listed["failures"]:
        sys.exit(f"dist: plugins failed to load from the wheels: {listed['failures']}")
    return {"version": version, "backends": backends, "demo_turns": turns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where to write them")
    parser.add_argument("--smoke", action="store_true", help="install and run them in a venv")
    args = parser.parse_args()
    wheels = build(args.out)
    if args.smoke:
        smoke(wheels)


if __name__ == "__main__":
    main()
