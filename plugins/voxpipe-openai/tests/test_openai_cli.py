"""`voxpipe run` with OpenAI backends: a missing or rejected key is a one-paragraph error.

Real time, not --virtual-time: the rejecting server answers from another thread, and a
simulated clock could jump past the client's timeouts while it does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from voxpipe.audio import write_wav
from voxpipe.sim.voice import speech_like


class Rejecting(BaseHTTPRequestHandler):
    """An OpenAI-compatible server on 127.0.0.1 that rejects every key, as OpenAI does."""

    def do_POST(self) -> None:
        body = json.dumps(
            {
                "error": {
                    "message": "Incorrect API key provided: sk-bad***key.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            }
        ).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def rejecting_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Rejecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    voice = speech_like(600, 16_000, seed=1)
    path = tmp_path / "speech.wav"
    write_wav(
        path, np.concatenate([np.zeros(1600, np.int16), voice, np.zeros(8000, np.int16)]), 16_000
    )
    return path


def run(config: Path, speech: Path, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env |= {"COLUMNS": "200", "VOXPIPE_LOOP": "asyncio"}
    if key is not None:
        env["OPENAI_API_KEY"] = key
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "voxpipe.cli",
            "run",
            "--config",
            str(config),
            "--input",
            str(speech),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_missing_key_names_the_variable(tmp_path: Path, speech: Path) -> None:
    config = tmp_path / "openai.toml"
    config.write_text('[llm]\nbackend = "openai"\n')
    result = run(config, speech, key=None)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "OPENAI_API_KEY" in message and "Traceback" not in message


def test_rejected_key_is_a_one_paragraph_error(
    tmp_path: Path, speech: Path, rejecting_server: str
) -> None:
    config = tmp_path / "openai.toml"
    config.write_text(f'[llm]\nbackend = "openai"\nbase_url = "{rejecting_server}"\n')
    result = run(config, speech, key="sk-test-the-key-must-not-leak-42")
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "OPENAI_API_KEY" in message and "Traceback" not in message
    assert "sk-test-the-key-must-not-leak-42" not in result.stdout + result.stderr
    assert result.stderr.strip().count("\n\n") == 0
