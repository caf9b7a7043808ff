"""Time to first audio of the demo scenario (``voxpipe demo``: three turns, sim ASR and sim
LLM) with each way of speaking, against the fake ElevenLabs (first audio 120 ms after it has
enough text, as the sim TTS's ``first_chunk_ms = 120``), in real time:

- ``sim``: the sim TTS, per phrase (the reference);
- ``elevenlabs``: HTTP streaming, one request per phrase the session's chunker cuts;
- ``elevenlabs-ws``: stream-input fed the LLM's deltas, flushed at the first phrase's end
  and then at sentence ends (``flush_at = "phrase"``, the default);
- ``elevenlabs-ws sentence``: the same, flushed at sentence ends only.

    .venv/bin/python plugins/voxpipe-elevenlabs/scripts/ttfa.py [--runs 3]

Prints each turn's time to first audio (end of the user's speech -> first agent audio
played), the median over the runs, and the phrase the first audio spoke.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from voxpipe.cli import DEMO_LINES
from voxpipe.sim.voice import speech_like
from voxpipe_elevenlabs.testing import FakeElevenLabs, Voice

#: The sims the demo uses (their defaults), around each TTS section.
PIPELINE = """
[asr]
backend = "sim"
[llm]
backend = "sim"
[tts]
{tts}
"""
KEY = "sk_fake_key_for_the_local_server"


def variants(server: FakeElevenLabs) -> dict[str, str]:
    return {
        "sim": 'backend = "sim"\nfirst_chunk_ms = 120',
        "elevenlabs": f'backend = "elevenlabs"\nbase_url = "{server.http_url}"',
        "elevenlabs-ws": f'backend = "elevenlabs-ws"\nbase_url = "{server.ws_url}"',
        "elevenlabs-ws sentence": (
            f'backend = "elevenlabs-ws"\nbase_url = "{server.ws_url}"\nflush_at = "sentence"'
        ),
    }


def demo(tts: str, folder: Path) -> list[dict[str, object]]:
    """The turns of one real-time ``voxpipe demo`` run with ``[tts]`` as given."""
    config, metrics = folder / "demo.toml", folder / "metrics.json"
    config.write_text(PIPELINE.format(tts=tts))
    env = {**os.environ, "ELEVENLABS_API_KEY": KEY}
    command = [sys.executable, "-m", "voxpipe.cli", "demo", "--config", config, "--json", metrics]
    done = subprocess.run(
        [*map(str, command), "-q"], capture_output=True, text=True, env=env, timeout=300
    )
    if done.returncode != 0:
        raise SystemExit(f"voxpipe demo failed:\n{done.stderr}")
    turns: list[dict[str, object]] = json.loads(metrics.read_text())["turns"]
    return turns


def _ttfa(turn: dict[str, object]) -> float:
    latency = turn["latency_ms"]
    assert isinstance(latency, dict)
    return float(latency["time_to_first_audio"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="demo runs per variant")
    args = parser.parse_args()
    ttfa: dict[str, list[list[float]]] = {}
    first: dict[str, list[str]] = {}
    speech_like(1, 16_000)  # the fake's voice, made once: no variant pays for it
    fake = FakeElevenLabs.in_thread(voice=Voice(first_audio_ms=120, speed=4.0))
    with fake as server, tempfile.TemporaryDirectory() as folder:
        for name, tts in variants(server).items():
            for _ in range(args.runs):
                turns = demo(tts, Path(folder))
                ttfa.setdefault(name, []).append([_ttfa(turn) for turn in turns])
                first[name] = [str(turn["first_phrase"]) for turn in turns]
    width = max(map(len, ttfa)) + 2
    print(f"time to first audio, ms (median of {args.runs} real-time run(s) of voxpipe demo)")
    print(" " * width + "".join(f"turn {i + 1:<8}" for i in range(len(DEMO_LINES))))
    for name, runs in ttfa.items():
        medians = [statistics.median(turn) for turn in zip(*runs, strict=True)]
        print(f"{name:<{width}}" + "".join(f"{m:<13.0f}" for m in medians))
    print("\nwhat the first audio waited for (the first phrase, or the first delta for a socket):")
    for name, phrases in first.items():
        print(f"{name:<{width}}" + " | ".join(phrases))


if __name__ == "__main__":
    main()
