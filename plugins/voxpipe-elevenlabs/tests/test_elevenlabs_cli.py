"""``voxpipe run`` as a subprocess with each ElevenLabs backend, talking to the fake server
(in a thread of this process: the subprocess reaches it over 127.0.0.1). Real time: the CLI
refuses --virtual-time for network backends (``BackendSpec.virtual_time`` is False)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from el_wire import KEY

from voxpipe.audio import write_wav
from voxpipe.sim.voice import speech_like
from voxpipe_elevenlabs.testing import FakeElevenLabs

CONFIG = """
[asr]
backend = "sim"
finalization_ms = 50
[turns]
endpoint_ms = 100
[llm]
backend = "sim"
first_token_ms = 50
tokens_per_second = 100
responses = {{ default = "Got it. Thanks." }}
[tts]
backend = "{backend}"
base_url = "{base_url}"
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeElevenLabs]:
    with FakeElevenLabs.in_thread(key=KEY) as server:
        yield server


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    voice = speech_like(600, 16_000, seed=1)
    path = tmp_path / "speech.wav"
    samples = np.concatenate([np.zeros(1600, np.int16), voice, np.zeros(8000, np.int16)])
    write_wav(path, samples, 16_000)
    return path


def run(*args: object, key: str | None = KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELEVENLABS_")}
    env |= {"COLUMNS": "200", "VOXPIPE_LOOP": "asyncio"}
    if key is not None:
        env["ELEVENLABS_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "voxpipe.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("backend", ["elevenlabs", "elevenlabs-ws"])
def test_voxpipe_run_answers_through_elevenlabs(
    backend: str, fake: FakeElevenLabs, speech: Path, tmp_path: Path
) -> None:
    url = fake.http_url if backend == "elevenlabs" else fake.ws_url
    config = tmp_path / "el.toml"
    config.write_text(CONFIG.format(backend=backend, base_url=url))
    metrics = tmp_path / "m.json"
    result = run("run", "--config", config, "--input", speech, "--json", metrics, "-q")
    assert result.returncode == 0, result.stderr
    (turn,) = json.loads(metrics.read_text())["turns"]
    assert turn["agent_text"] == "Got it. Thanks." and turn["outcome"] == "ok"
    assert "playout_start" in turn["timestamps_ms"]
    # The fake's 120 ms to first audio, after the sims' 150 ms and the endpoint's 100 ms.
    assert 100 + 50 + 50 + 120 <= turn["latency_ms"]["time_to_first_audio"] < 1_500
    seen = fake.requests if backend == "elevenlabs" else fake.sockets
    assert seen and seen[-1].key_ok and seen[-1].audio_ms > 0


def test_a_missing_key_is_a_one_paragraph_error(tmp_path: Path, speech: Path) -> None:
    config = tmp_path / "el.toml"
    config.write_text(CONFIG.format(backend="elevenlabs", base_url="https://api.elevenlabs.io"))
    result = run("run", "--config", config, "--input", speech, key=None)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "ELEVENLABS_API_KEY" in message and "Traceback" not in message
