"""SIGTERM to a real ``voxpipe serve`` process with live sessions: it stops taking new ones,
tells the live ones, lets them finish within the grace period, closes the rest with 1001 and
exits 0. The CLI's defaults are the server's; without the serve extra the error says what to
install."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from voxpipe import cli
from voxpipe.serve import DEFAULT_HOST, DEFAULT_PORT
from voxpipe.serve.client import VoiceClient

CONFIG = """
[asr]
backend = "sim"
finalization_ms = 50
[llm]
backend = "sim"
first_token_ms = 100
[tts]
backend = "sim"
first_chunk_ms = 50
"""
GRACE_S = 2.0


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def keep_talking(client: VoiceClient) -> None:
    """Silence, in real time, until the connection closes."""
    quiet = np.zeros(16_000, dtype=np.int16)
    while not client.closed.is_set():
        await client.stream(quiet, 16_000)


async def test_sigterm_drains_live_sessions_then_exits_0(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voxpipe.cli",
        "serve",
        "--config",
        str(config),
        "--port",
        "0",
        "--grace-s",
        str(GRACE_S),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not (found := re.search(r"listening on (http://\S+)", "".join(log))):
                line = await process.stderr.readline()
                assert line, f"voxpipe serve ended: {''.join(log)}"
                log.append(line.decode())
        http = found.group(1)
        ws = http.replace("http://", "ws://") + "/ws"
        reading = asyncio.create_task(_drain_pipe(process.stderr, log))

        finishing, staying = await VoiceClient.connect(ws), await VoiceClient.connect(ws)
        for client in (finishing, staying):
            await client.start(16_000)
        talking = [asyncio.create_task(keep_talking(c)) for c in (finishing, staying)]
        await asyncio.sleep(0.5)
        loop = asyncio.get_running_loop()
        process.send_signal(signal.SIGTERM)
        terminated = loop.time()

        for client in (finishing, staying):
            notice = await client.next("shutdown", timeout_s=5)
            assert notice["grace_s"] == GRACE_S
        status, body = await asyncio.to_thread(get, http + "/readyz")
        assert status == 503 and json.loads(body)["status"] == "draining"
        assert await asyncio.to_thread(get, http + "/healthz") == (200, '{"status":"ok"}')
        late = await VoiceClient.connect(ws)
        await late.wait_closed()
        assert (late.close_code, late.close_reason) == (1001, "the server is shutting down")

        talking[0].cancel()
        await finishing.send({"type": "stop"})  # this one finishes in time
        assert (await finishing.next("end"))["reason"] == "completed"
        await finishing.wait_closed()
        assert finishing.close_code == 1000

        await staying.wait_closed(GRACE_S + 5)  # this one is closed at the end of the grace
        closed_after = loop.time() - terminated
        assert staying.events[-1]["type"] == "end"
        assert staying.events[-1]["reason"] == "shutdown"
        assert (staying.close_code, staying.close_reason) == (1001, "the server is shutting down")
        assert GRACE_S - 0.2 <= closed_after <= GRACE_S + 2

        assert await asyncio.wait_for(process.wait(), GRACE_S + 5) == 0
        await asyncio.gather(*talking, reading, return_exceptions=True)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "Traceback" not in "".join(log)


async def _drain_pipe(pipe: asyncio.StreamReader, log: list[str]) -> None:
    while line := await pipe.readline():
        log.append(line.decode())


def test_the_cli_defaults_are_the_servers() -> None:
    args = cli._parser().parse_args(["serve", "--config", "agent.toml"])
    assert (args.host, args.port) == (DEFAULT_HOST, DEFAULT_PORT)


def test_without_the_serve_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in [m for m in sys.modules if m == "voxpipe.serve" or m.startswith("voxpipe.serve.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "starlette", None)  # as if it were not installed
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG)
    assert cli.main(["serve", "--config", str(config)]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "voxpipe serve needs starlette" in error
    assert "pip install 'voxpipe[serve]'" in error
