"""``voxpipe demo --local``: espeak-ng says the demo's lines as the user, pocketsphinx hears
them, the rules LLM answers and espeak-ng speaks: real audio in and out, offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import soundfile
from voxpipe_cli import voxpipe

from voxpipe.demo import DEMO_LINES, words


def test_the_local_demo_hears_every_line_and_answers_it_aloud(tmp_path: Path) -> None:
    command = ["demo", "--local", "--virtual-time", "--json", "m.json"]
    command += ["--record", "call.wav", "--plot", "t.png"]
    out = voxpipe(*command, cwd=tmp_path)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["session"]["backends"] == {
        "asr": "pocketsphinx",
        "llm": "rules",
        "tts": "espeak",
        "vad": "webrtcvad",
    }
    turns = metrics["turns"]
    assert [t["user_text"] for t in turns] == [words(line) for line in DEMO_LINES]
    assert [t["outcome"] for t in turns] == ["ok"] * 3
    assert turns[0]["agent_text"].startswith("Hello")  # the rules' greeting, weather, time
    assert "weather" in turns[1]["agent_text"] and turns[2]["agent_text"].startswith("It is")
    for turn in turns:  # the endpointing silence, then a few ms of real work
        assert 200 <= turn["latency_ms"]["time_to_first_audio"] < 500

    # What was said, beside what was heard, in the terminal.
    for line in DEMO_LINES:
        assert re.search(rf"{re.escape(line)} +=  ?{re.escape(words(line))}", out), out

    # The call: the user's espeak voice on the left, the agent's on the right, both audible.
    call, rate = soundfile.read(tmp_path / "call.wav", dtype="int16")
    assert call.ndim == 2 and call.shape[1] == 2 and rate == 16_000
    user, agent = (np.abs(call[:, ch]).astype(np.int32) for ch in (0, 1))
    assert (user > 1_000).sum() > rate and (agent > 1_000).sum() > rate
    for turn in turns:  # the agent is silent before its first audio, speaking after it
        first = round(turn["timestamps_ms"]["playout_start"] * rate / 1000)
        assert agent[first - rate // 10 : first].max() < 100
        assert agent[first : first + rate // 2].max() > 1_000
    assert (tmp_path / "t.png").stat().st_size > 10_000
