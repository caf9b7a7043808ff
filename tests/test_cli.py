"""The `voxpipe` command end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from run_cli import voxpipe
from voxpipe.audio import read_wav, resample, write_wav
from voxpipe.sim.voice import speech_like

CONTRACT_TIMESTAMPS = {
    "speech_start",
    "speech_end",
    "asr_first_partial",
    "asr_final",
    "llm_request",
    "llm_first_token",
    "llm_done",
    "tts_request",
    "tts_first_audio",
    "first_sound",
    "playout_start",
    "turn_end",
    "interruption_detected",
    "output_silent",
}
INTERRUPTION_TIMESTAMPS = {"interruption_detected", "output_silent"}
CONTRACT_LATENCIES = {
    "asr_finalization",
    "llm_ttft",
    "tts_ttfb",
    "time_to_first_audio",
    "time_to_first_sound",
    "total",
}


def demo(tmp_path: Path, *flags: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Path]]:
    """``voxpipe demo --virtual-time`` writing every output into ``tmp_path``."""
    out = {name: tmp_path / name for name in ("m.json", "t.png", "call.wav")}
    result = voxpipe(
        "demo",
        *flags,
        "--virtual-time",
        "--json",
        out["m.json"],
        "--plot",
        out["t.png"],
        "--record",
        out["call.wav"],
    )
    assert result.returncode == 0, result.stderr
    return result, out


def test_demo_runs_end_to_end_and_writes_every_output(tmp_path: Path) -> None:
    result, out = demo(tmp_path)
    data = json.loads(out["m.json"].read_text())
    lines = result.stdout.splitlines()
    starts = [line.split("  ")[0] for line in lines if line.startswith("Turn ")]
    assert starts == ["Turn 1", "Turn 2", "Turn 3"]  # a line per turn (wrapped under it)
    assert len(lines) <= 1 + 2 * 3 + 2 + 4  # header, turns, summary, the files written
    text = " ".join(result.stdout.split())
    for turn in data["turns"]:  # the agent's reply in full, with its time to first audio
        ttfa = turn["latency_ms"]["time_to_first_audio"]
        assert f'{ttfa:.0f} ms budgets ok "{turn["user_text"]}" → {turn["agent_text"]}' in text
    p50 = data["session"]["summary"]["time_to_first_audio_ms"]["p50"]
    assert f"3 turns: time to first audio p50 {p50:.0f} ms" in text
    assert "budgets met in 3/3 turns, 0 interrupted, 0 failed, 0 cancelled" in text
    assert "Stages" not in text and "Session summary" not in text  # the tables: --verbose
    assert data["session"]["backends"] == {
        "asr": "sim",
        "llm": "sim",
        "tts": "sim",
        "vad": "energy",
    }
    assert data["session"]["interrupted_turns"] == data["session"]["resumed_turns"] == 0
    assert set(data["session"]["summary"]["time_to_first_audio_ms"]) >= {"p50", "p90", "p99"}
    assert [t["user_text"] for t in data["turns"]] == [
        "Hello, how are you today?",
        "What's the weather like?",
        "Can you tell me the time?",
    ]
    for turn in data["turns"]:
        assert set(turn) >= {
            "index",
            "user_text",
            "agent_text",
            "interrupted",
            "timestamps_ms",
            "latency_ms",
            "budgets",
        }
        assert set(turn["timestamps_ms"]) == CONTRACT_TIMESTAMPS
        stamps = turn["timestamps_ms"]
        assert all(stamps[k] is not None for k in CONTRACT_TIMESTAMPS - INTERRUPTION_TIMESTAMPS)
        assert turn["interrupted"] is False and turn["heard_text"] == turn["agent_text"]
        assert (turn["outcome"], turn["error"]) == ("ok", None)
        assert stamps["first_sound"] == stamps["playout_start"]  # no filler: the answer
        assert set(turn["latency_ms"]) >= CONTRACT_LATENCIES
        names = {b["name"] for b in turn["budgets"]}
        assert names == {
            "asr_processing",
            "llm_first_token",
            "llm_token_generation",
            "tts_first_chunk",
            "time_to_first_audio",
        }
        for budget in turn["budgets"]:
            assert set(budget) >= {"name", "budget_ms", "actual_ms", "ok", "action"}
    assert out["t.png"].read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "t-summary.png").read_bytes()[:4] == b"\x89PNG"  # beside the timeline
    assert f"summary plot: {tmp_path / 't-summary.png'}" in result.stdout.splitlines()
    stereo, _ = read_wav(out["call.wav"])
    assert stereo.shape[1] == 2 and np.any(stereo[:, 0]) and np.any(stereo[:, 1])


def test_barge_in_demo_plays_one_interruption(tmp_path: Path) -> None:
    result, out = demo(tmp_path, "--barge-in")
    text = " ".join(result.stdout.split())
    assert '"What\'s the weather like?" → The weather is sunny [interrupted]' in text
    assert "1 interrupted, 0 failed, 0 cancelled" in text
    verbose = " ".join(demo(tmp_path, "--barge-in", "--verbose")[0].stdout.split())
    assert "Interrupted 1810 ms into the answer: output silent 0 ms after detection." in verbose
    assert "1 interrupted, 0 resumed, 0 failed, 0 cancelled" in verbose
    data = json.loads(out["m.json"].read_text())
    first, second, third = data["turns"]
    assert first["interrupted"] and not second["interrupted"] and not third["interrupted"]
    assert first["heard_text"] == "The weather is sunny"
    assert second["user_text"] == "Wait, stop. What time is it?"
    stamps = first["timestamps_ms"]
    assert stamps["output_silent"] == stamps["interruption_detected"] == stamps["turn_end"]
    assert first["cut_short"] == ["total"]
    assert data["session"]["interrupted_turns"] == 1
    # In the recording the agent's first answer stops where the JSON says.
    stereo, rate = read_wav(out["call.wav"])
    agent = stereo[:, 1]
    until_second = agent[: round(second["timestamps_ms"]["playout_start"] * rate / 1000)]
    last_ms = (np.flatnonzero(until_second)[-1] + 1) * 1000 / rate
    assert last_ms == pytest.approx(stamps["output_silent"], abs=20)
    assert out["t.png"].read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def speech_wav_44k_stereo(tmp_path: Path) -> Path:
    """One second of speech-like sound between silences, 44.1 kHz stereo."""
    voice = speech_like(1000, 16_000, seed=3)
    mono16k = np.concatenate([np.zeros(4000, np.int16), voice, np.zeros(16000, np.int16)])
    mono = resample(mono16k, 16_000, 44_100)
    path = tmp_path / "speech.wav"
    write_wav(path, np.stack([mono, mono], axis=1), 44_100)
    return path


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
responses = { default = "Got it. Thanks." }
[tts]
backend = "sim"
first_chunk_ms = 30
speed = 10
words_per_minute = 600
[budgets]
time_to_first_audio = 2000
"""


def test_run_streams_a_wav_in_real_time_and_writes_outputs(
    tmp_path: Path, speech_wav_44k_stereo: Path
) -> None:
    config = tmp_path / "fast.toml"
    config.write_text(FAST)
    out = {name: tmp_path / name for name in ("agent.wav", "call.wav", "m.json", "t.png")}
    result = voxpipe(
        "run",
        "--config",
        config,
        "--input",
        speech_wav_44k_stereo,
        "--output",
        out["agent.wav"],
        "--record",
        out["call.wav"],
        "--json",
        out["m.json"],
        "--plot",
        out["t.png"],
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out["m.json"].read_text())
    (turn,) = data["turns"]
    assert turn["user_text"] == "[speech 1.0 s]"
    assert turn["agent_text"] == "Got it. Thanks."
    # Real time: the measured TTFA is at least the sim latencies, and not far above them.
    assert 100 + 50 + 50 + 30 <= turn["latency_ms"]["time_to_first_audio"] < 600
    agent_audio, rate = read_wav(out["agent.wav"])
    assert rate == 16_000 and agent_audio.shape[1] == 1
    first_sound_ms = np.flatnonzero(agent_audio[:, 0])[0] * 1000 / rate
    assert first_sound_ms == pytest.approx(turn["timestamps_ms"]["playout_start"], abs=20)
    assert read_wav(out["call.wav"])[0].shape[1] == 2
    assert out["t.png"].exists()


@pytest.mark.parametrize(
    ("config_text", "expected"),
    [
        ('[agent]\nsample_rate = "fast"\n', "[agent] sample_rate"),
        ('[tts]\nbackend = "sim"\nvoice = "alloy"\n', "[tts] voice: unknown option"),
        ('[llm]\nbackend = "openai"\n', "pip install plugins/voxpipe-openai"),
        ("[llm\nbackend = 1", "not valid TOML"),
    ],
)
def test_bad_config_is_a_one_paragraph_error_with_exit_code_2(
    tmp_path: Path, speech_wav_44k_stereo: Path, config_text: str, expected: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(config_text)
    result = voxpipe("run", "--config", config, "--input", speech_wav_44k_stereo)
    assert result.returncode == 2
    assert expected in " ".join(result.stderr.split())
    assert str(config) in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n\n") == 0


def test_bad_wav_is_a_one_paragraph_error_with_exit_code_2(tmp_path: Path) -> None:
    config = tmp_path / "ok.toml"
    config.write_text("")
    not_wav = tmp_path / "notes.wav"
    not_wav.write_text("these are not samples")
    result = voxpipe("run", "--config", config, "--input", not_wav)
    assert result.returncode == 2
    assert "not a readable WAV file" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_local_demo_without_the_local_plugin_says_how_to_install_it() -> None:
    result = voxpipe("demo", "--local", "--virtual-time")  # VOXPIPE_PLUGINS=sim: no plugin
    assert result.returncode == 2
    error = " ".join(result.stderr.split())
    assert "voxpipe-local plugin, which is not installed" in error
    assert "pip install plugins/voxpipe-local" in error and "Traceback" not in error


def test_local_demo_takes_no_config(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("")
    result = voxpipe("demo", "--local", "--config", config)
    assert result.returncode == 2 and "not both" in result.stderr


def test_usage_error_exits_2() -> None:
    assert voxpipe("run", "--config").returncode == 2
    assert voxpipe("fly").returncode == 2


def test_plugins_lists_the_sim_backends_with_their_distribution() -> None:
    result = voxpipe("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["backends"]
    sims = [r for r in rows if r["name"] == "sim"]
    assert sorted(r["kind"] for r in sims) == ["asr", "llm", "tts"]
    assert all(r["distribution"] == "voxpipe" and r["status"] == "ok" for r in sims)
    table = voxpipe("plugins")
    assert table.returncode == 0 and "voxpipe" in table.stdout and "sim" in table.stdout


def test_report_reads_a_saved_metrics_file(tmp_path: Path) -> None:
    metrics = tmp_path / "m.json"
    assert voxpipe("demo", "--virtual-time", "--json", metrics).returncode == 0
    result = voxpipe("report", metrics, "--plot", tmp_path / "again.png")
    assert result.returncode == 0, result.stderr
    assert "Turn 3 " in result.stdout and (tmp_path / "again.png").exists()
    tables = voxpipe("report", metrics, "--verbose")
    assert "Turn 3:" in tables.stdout and "Stages" in tables.stdout
    assert voxpipe("report", metrics, "--quiet").stdout == ""
    garbage = tmp_path / "garbage.json"
    garbage.write_text("[1, 2")
    bad = voxpipe("report", garbage)
    assert bad.returncode == 2 and "not a voxpipe metrics file" in bad.stderr


def test_a_policy_acts_in_the_demo_and_the_terminal_says_so(tmp_path: Path) -> None:
    config = tmp_path / "fallback.toml"
    config.write_text(
        """
[llm]
backend = "sim"
first_token_ms = 1500
fallback = [{backend = "sim", first_token_ms = 200}]
[budgets]
llm_first_token = {ms = 500, action = "fallback"}
"""
    )
    result, out = demo(tmp_path, "--config", str(config))
    text = " ".join(result.stdout.split())
    assert "budget llm_first_token (500 ms) passed at" in text
    assert ": fallback, started sim#2 beside" in text
    assert "llm_first_token 700/500 ms → fallback (started sim#2 beside)" in text
    verbose = " ".join(demo(tmp_path, "--config", str(config), "-v")[0].stdout.split())
    assert "llm attempt on sim: lost" in verbose
    for turn in json.loads(out["m.json"].read_text())["turns"]:
        (budget,) = turn["budgets"]
        assert (budget["action"], budget["detail"]) == ("fallback", "started sim#2 beside")
        assert turn["latency_ms"]["llm_ttft"] == pytest.approx(700, abs=1)
        assert [(a["backend"], a["outcome"]) for a in turn["attempts"][:2]] == [
            ("sim", "lost"),
            ("sim#2", "ok"),
        ]


def test_run_says_a_filler_when_the_llm_is_late(
    tmp_path: Path, speech_wav_44k_stereo: Path
) -> None:
    config = tmp_path / "filler.toml"
    config.write_text(
        FAST.replace("first_token_ms = 50", "first_token_ms = 1500").replace(
            "[budgets]\n", '[budgets]\nllm_first_token = {ms = 300, action = "filler"}\n'
        )
    )
    out = tmp_path / "m.json"
    result = voxpipe("run", "--config", config, "--input", speech_wav_44k_stereo, "--json", out)
    assert result.returncode == 0, result.stderr
    assert "llm_first_token (300 ms) passed at" in result.stdout
    assert "filler, said 'One moment.'" in " ".join(result.stdout.split())
    (turn,) = json.loads(out.read_text())["turns"]
    stamps = turn["timestamps_ms"]
    assert stamps["first_sound"] == pytest.approx(stamps["llm_request"] + 300, abs=25)
    assert stamps["playout_start"] > stamps["first_sound"]
    assert turn["latency_ms"]["time_to_first_sound"] < turn["latency_ms"]["time_to_first_audio"]


def test_quiet_prints_nothing_but_errors_and_still_writes_every_output(tmp_path: Path) -> None:
    result, out = demo(tmp_path, "--quiet")
    assert result.stdout == "" and result.stderr == ""
    assert len(json.loads(out["m.json"].read_text())["turns"]) == 3
    assert out["t.png"].exists() and out["call.wav"].exists()
    bad = voxpipe("run", "--config", tmp_path / "missing.toml", "--input", out["call.wav"], "-q")
    assert bad.returncode == 2 and bad.stdout == "" and "missing.toml" in bad.stderr


def test_verbose_and_quiet_are_exclusive() -> None:
    result = voxpipe("demo", "--verbose", "--quiet")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


def test_version_and_help_list_every_command() -> None:
    from voxpipe import __version__

    version = voxpipe("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"voxpipe {__version__}"
    help_text = voxpipe("--help").stdout
    for command in ("demo", "run", "plugins", "bench", "report"):
        assert f"    {command} " in help_text
    assert "``" not in help_text and "Exit codes" in help_text
