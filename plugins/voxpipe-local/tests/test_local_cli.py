"""``voxpipe run`` end to end on voxpipe-local's four backends, offline: espeak-ng's speech in
a WAV, heard by pocketsphinx with a vocabulary, answered by the rules LLM, spoken by espeak,
the turns cut by webrtcvad. Under --virtual-time (every backend allows it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from voxpipe_cli import voxpipe

from voxpipe.audio import AudioFrame, read_wav, write_wav
from voxpipe.hookspecs import BackendContext
from voxpipe_local.espeak import EspeakOptions, EspeakTTS

SAID = "can you tell me the time"
CONFIG = """\
[asr]
backend = "pocketsphinx"
vocabulary = ["what's the weather like", "can you tell me the time", "hello how are you"]

[llm]
backend = "rules"

[tts]
backend = "espeak"

[vad]
backend = "webrtcvad"
"""


@pytest.mark.asyncio
async def test_a_spoken_question_is_heard_answered_and_spoken(tmp_path: Path) -> None:
    tts = EspeakTTS(EspeakOptions(), BackendContext(16_000, 20))
    spoken = [f.samples async for f in tts.synthesize(SAID) if isinstance(f, AudioFrame)]
    speech = np.concatenate(spoken)
    silence = np.zeros(16_000, np.int16)
    write_wav(tmp_path / "in.wav", np.concatenate((silence, speech, 3 * silence)), 16_000)
    (tmp_path / "local.toml").write_text(CONFIG)
    command = ["run", "--virtual-time", "--config", "local.toml", "--input", "in.wav"]
    command += ["--output", "out.wav", "--json", "run.json"]
    voxpipe(*command, cwd=tmp_path)
    metrics = json.loads((tmp_path / "run.json").read_text())
    (turn,) = metrics["turns"]
    assert turn["user_text"] == SAID and turn["outcome"] == "ok"
    assert turn["agent_text"].startswith("It is ")  # the rules LLM's time intent
    assert metrics["session"]["backends"]["asr"] == "pocketsphinx"
    audio, rate = read_wav(tmp_path / "out.wav")
    assert len(audio) > rate / 2 and np.abs(audio).max() > 1_000  # a spoken answer
