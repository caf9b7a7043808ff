"""What the CLI does when paths are wrong, files are unreadable, the session fails or a
signal stops it: refuse early with exit 2, or end cleanly with the metrics written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from run_cli import ENV, voxpipe
from voxpipe.audio import write_wav
from voxpipe.sim.voice import speech_like

FAST = """
[asr]
backend = "sim"
finalization_ms = 50
[turns]
endpoint_ms = 100
[llm]
backend = "sim"
first_token_ms = 50
tokens_per_second = 200
responses = { default = "Got it." }
[tts]
backend = "sim"
first_chunk_ms = 30
speed = 10
"""


def one_paragraph(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n\n") == 0
    return " ".join(result.stderr.split())


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "fast.toml"
    path.write_text(FAST)
    return path


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    """One second of speech, then silence: 10 s in all."""
    voice = speech_like(1000, 16_000, seed=3)
    samples = np.concatenate(
        [np.zeros(4000, np.int16), voice, np.zeros(16000 * 9 - 4000, np.int16)]
    )
    path = tmp_path / "speech.wav"
    write_wav(path, samples, 16_000)
    return path


@pytest.mark.parametrize("flag", ["--output", "--record", "--json"])
def test_an_output_that_is_the_input_is_refused_before_anything_runs(
    config: Path, speech: Path, flag: str
) -> None:
    before = speech.read_bytes()
    text = one_paragraph(voxpipe("run", "--config", config, "--input", speech, flag, speech))
    assert f"{flag} {speech} is the same file as --input" in text
    assert speech.read_bytes() == before
    text = one_paragraph(voxpipe("run", "--config", config, "--input", speech, "--json", config))
    assert "is the same file as --config" in text and config.read_text() == FAST


def test_two_outputs_on_one_file_are_refused(config: Path, speech: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    text = one_paragraph(
        voxpipe("run", "--config", config, "--input", speech, "--output", out, "--record", out)
    )
    assert "--record" in text and "is the same file as --output" in text


def test_bad_output_paths_are_refused_before_the_session(
    config: Path, speech: Path, tmp_path: Path
) -> None:
    started = time.perf_counter()
    text = one_paragraph(voxpipe("run", "--config", config, "--input", speech, "--json", tmp_path))
    assert "is a directory; give a file path" in text
    text = one_paragraph(
        voxpipe("run", "--config", config, "--input", speech, "--plot", tmp_path / "t.xyz")
    )
    assert "cannot write a .xyz file" in text and ".png" in text
    afile = tmp_path / "afile"
    afile.write_text("")
    text = one_paragraph(
        voxpipe("run", "--config", config, "--input", speech, "--json", afile / "m.json")
    )
    assert "cannot be created" in text
    assert time.perf_counter() - started < 30  # nothing of the 10 s session ran


def test_unreadable_configs_and_wavs_are_one_paragraph_errors(
    config: Path, speech: Path, tmp_path: Path
) -> None:
    text = one_paragraph(voxpipe("run", "--config", tmp_path, "--input", speech))
    assert f"{tmp_path}: is a directory, not a config file" in text
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[agent]\nsystem_prompt = "caf\xe9"\n'.encode("latin-1"))
    assert "not UTF-8 text" in one_paragraph(voxpipe("run", "--config", latin, "--input", speech))
    text = one_paragraph(voxpipe("run", "--config", config, "--input", tmp_path))
    assert f"{tmp_path}: is a directory, not a WAV file" in text


def test_paths_with_brackets_are_printed_as_they_are(config: Path, tmp_path: Path) -> None:
    odd = tmp_path / "[bold]x[/].wav"
    text = one_paragraph(voxpipe("run", "--config", config, "--input", odd))
    assert "[bold]x[/].wav: no such file" in text


def test_a_session_that_fails_still_writes_its_metrics(speech: Path, tmp_path: Path) -> None:
    failing = tmp_path / "auth.toml"
    failing.write_text(FAST.replace("[llm]\n", '[llm]\nerror_rate = 1\nfail_with = "auth"\n'))
    out = tmp_path / "m.json"
    result = voxpipe("run", "--config", failing, "--input", speech, "--json", out)
    assert result.returncode == 2 and "sim llm" in result.stderr
    ended = json.loads(out.read_text())["session"]["ended"]
    assert ended["reason"] == "error" and ended["error"].startswith("AuthError:")


@pytest.mark.parametrize(
    ("sig", "code", "reason"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_a_signal_ends_the_run_with_its_metrics_written(
    config: Path, speech: Path, tmp_path: Path, sig: signal.Signals, code: int, reason: str
) -> None:
    out = tmp_path / "m.json"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voxpipe.cli",
            "run",
            "--config",
            config,
            "--input",
            speech,
            "--json",
            out,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    time.sleep(4.0)  # the first answer has played by then; the input runs to 10 s
    run.send_signal(sig)
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == code, stderr
    data = json.loads(out.read_text())
    assert data["session"]["ended"] == {"reason": reason, "error": None}
    assert len(data["turns"]) == 1 and data["turns"][0]["agent_text"] == "Got it."
    assert f"voxpipe: {reason} by {sig.name}" in stderr
    assert os.path.getsize(out) > 0


def test_virtual_time_is_refused_for_a_network_backend(speech: Path, tmp_path: Path) -> None:
    pytest.importorskip("voxpipe_openai")
    config = tmp_path / "openai.toml"
    config.write_text('[llm]\nbackend = "openai"\n')
    env = {k: v for k, v in ENV.items() if k != "VOXPIPE_PLUGINS"} | {"OPENAI_API_KEY": "x"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxpipe.cli",
            "run",
            "--config",
            str(config),
            "--input",
            str(speech),
            "--virtual-time",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    text = one_paragraph(result)
    assert "--virtual-time needs backends that run on a simulated clock" in text
    assert "the llm backend 'openai'" in text
