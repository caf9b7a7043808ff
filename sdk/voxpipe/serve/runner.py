"""Running ``voxpipe serve``: uvicorn on a socket bound up front, where SIGTERM and SIGINT
drain the sessions (readiness fails, new sessions are refused, live ones are told and given
the grace period) before uvicorn stops. A second signal closes the sessions at once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from voxpipe.config import load_config
from voxpipe.errors import UsageError
from voxpipe.runtime import freeze_gc, loop_factory
from voxpipe.serve.app import WEBSOCKET_PATH, VoiceServer, create_app
from voxpipe.serve.limits import Limits

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765
#: Largest WebSocket message taken at all (bytes); larger ones close the connection (1009).
#: Audio beyond the limits' ``max_message_ms`` but below this gets an error event.
MAX_MESSAGE_BYTES = 1 << 20
#: Longest wait for uvicorn to start listening (s).
START_TIMEOUT_S = 30.0


class DrainingServer(uvicorn.Server):
    """uvicorn serving ``voice``; ``drain()`` (what SIGTERM and SIGINT do when
    ``handle_signals``) drains its sessions, then stops the server."""

    def __init__(self, voice: VoiceServer, *, handle_signals: bool = True) -> None:
        super().__init__(
            uvicorn.Config(
                create_app(voice),
                log_level="info",
                access_log=False,
                ws_max_size=MAX_MESSAGE_BYTES,
                ws_per_message_deflate=False,  # PCM hardly compresses: not worth the CPU
            )
        )
        self.voice, self.handle_signals = voice, handle_signals
        self._drain: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self.handle_signals:
            yield
            return
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self.drain)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    def drain(self) -> None:
        """Drain the sessions, then stop; called again, close the sessions now."""
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._drain_then_stop())
        else:
            self.voice.end_all()

    async def _drain_then_stop(self) -> None:
        try:
            await self.voice.drain()
        finally:
            self.should_exit = True

    async def started_on(self, sock: socket.socket) -> str:
        """Wait until the server listens on ``sock``; its http:// address."""
        async with asyncio.timeout(START_TIMEOUT_S):
            while not self.started:
                await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one)."""
    try:
        return socket.create_server((host, port))
    except OSError as error:
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({error}).") from None


def run(config_path: Path, host: str, port: int, limits: Limits) -> int:
    """``voxpipe serve``: serve the agent of ``config_path`` until SIGTERM / SIGINT."""
    config = load_config(config_path)
    sock = bind(host, port)

    async def main() -> None:
        server = DrainingServer(VoiceServer(config, limits))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        address = await server.started_on(sock)
        print(
            f"voxpipe serve: listening on {address} (WebSocket {WEBSOCKET_PATH}); "
            f"up to {limits.max_sessions} sessions; talk to the agent at {address}/",
            file=sys.stderr,
            flush=True,
        )
        await serving

    freeze_gc()
    with sock, asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
    return 0
