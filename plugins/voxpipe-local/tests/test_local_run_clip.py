"""``voxpipe run`` on a committed recording of a human reader (LibriVox, public domain):
webrtcvad cuts the turn, pocketsphinx writes the transcript, the rules LLM answers and espeak
speaks, offline, under --virtual-time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from voxpipe_cli import voxpipe

from voxpipe.audio import read_wav

CLIP = Path(__file__).parent / "data" / "librivox" / "sense_and_sensibility_01_austen_64kb-0880"
CONFIG = """\
[asr]
backend = "pocketsphinx"
vocabulary = ["{said}", "what's the weather like", "can you tell me the time"]

[llm]
backend = "rules"
default_reply = "I heard you."

[tts]
backend = "espeak"

[vad]
backend = "webrtcvad"
"""


def test_a_recorded_sentence_is_transcribed_answered_and_spoken(tmp_path: Path) -> None:
    said = CLIP.with_suffix(".txt").read_text().strip()
    (tmp_path / "local.toml").write_text(CONFIG.format(said=said))
    command = ["run", "--virtual-time", "--config", "local.toml", "--input", f"{CLIP}.wav"]
    command += ["--output", "out.wav", "--json", "run.json"]
    voxpipe(*command, cwd=tmp_path)
    (turn,) = json.loads((tmp_path / "run.json").read_text())["turns"]
    assert turn["user_text"] == said  # "he was not an ill disposed young man"
    assert turn["agent_text"] == "I heard you." and turn["outcome"] == "ok"
    audio, rate = read_wav(tmp_path / "out.wav")
    spoken = audio[round(turn["timestamps_ms"]["playout_start"] * rate / 1000) :]
    assert np.abs(spoken[: rate // 2]).max() > 1_000  # the answer, aloud
