"""``voxpipe run`` end to end with ``[asr] backend = "deepgram"``, its ``base_url`` pointed at
``FakeDeepgram`` (served from a thread of this process) and the sim LLM and TTS: the turn has
the fake's transcript. Real time (network backends refuse --virtual-time): 2.5 s of speech."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from dg import KEY

from voxpipe.audio import write_wav
from voxpipe.sim.voice import speech_like
from voxpipe_deepgram.testing import Connection, FakeDeepgram

TEXT = "What is the weather like today?"


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Any], list[Connection]]]:
    """One ``voxpipe run``: its metrics JSON, and what the fake saw."""
    tmp = tmp_path_factory.mktemp("cli")
    speech = tmp / "speech.wav"
    samples = [
        np.zeros(4_800, np.int16),
        speech_like(1_200, 16_000, seed=2),
        np.zeros(16_000, np.int16),
    ]
    write_wav(speech, np.concatenate(samples), 16_000)
    fake = FakeDeepgram([TEXT], key=KEY)
    with fake.serve_in_thread() as base_url:
        config = tmp / "deepgram.toml"
        config.write_text(
            f'[asr]\nbackend = "deepgram"\nbase_url = "{base_url}"\n\n'
            '[llm]\nbackend = "sim"\nresponses = {default = "Sunny."}\n\n'
            '[tts]\nbackend = "sim"\nwords_per_minute = 600\n\n'
            '[turns]\nend_of_turn = "first"\n'
        )
        metrics = tmp / "run.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPGRAM_")}
        env |= {"DEEPGRAM_API_KEY": KEY, "COLUMNS": "200", "VOXPIPE_LOOP": "asyncio"}
        command = ["run", "--config", str(config), "--input", str(speech), "--json", str(metrics)]
        done = subprocess.run(
            [sys.executable, "-m", "voxpipe.cli", *command],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert KEY not in done.stdout + done.stderr
    yield json.loads(metrics.read_text()), fake.connections


def test_the_turn_has_the_fakes_transcript(run: tuple[dict[str, Any], list[Connection]]) -> None:
    metrics, connections = run
    (turn,) = metrics["turns"]
    assert turn["user_text"] == TEXT and turn["outcome"] == "ok" and turn["agent_text"]
    assert metrics["session"]["backends"]["asr"] == "deepgram"
    (connection,) = connections  # one WebSocket for the session
    assert connection.controls[-1] == "CloseStream"
    assert connection.audio_ms == pytest.approx(2_500, abs=20)  # the whole input, once


def test_the_turn_records_deepgrams_request_id(
    run: tuple[dict[str, Any], list[Connection]],
) -> None:
    metrics, connections = run
    (turn,) = metrics["turns"]
    assert turn["extra"]["asr_request_ids"] == [connections[0].request_id]
