"""The ASGI app of ``voxpipe serve``: the WebSocket endpoint, health, readiness and metrics,
and ``VoiceServer``, the worker they share (the agent, limits, metrics, live connections)."""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from voxpipe.agent import VoiceAgent
from voxpipe.config import AgentConfig
from voxpipe.serve.connection import FLUSH_TIMEOUT_S, Connection, Ending
from voxpipe.serve.limits import Limits
from voxpipe.serve.metrics import ServeMetrics

WEBSOCKET_PATH = "/ws"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
PAGE_PATH = "/"  # the page to talk to the agent; its files under /static
STATIC_DIR = Path(__file__).parent / "static"
# Module scripts need a JavaScript type; some systems' mime tables map .js to text/plain.
mimetypes.add_type("text/javascript", ".js")

log = logging.getLogger("voxpipe.serve")


class VoiceServer:
    """One worker: the agent built once from ``config`` (each session builds its own
    backends from it), the limits, the metrics, the live connections."""

    def __init__(self, config: AgentConfig, limits: Limits | None = None) -> None:
        self.config, self.limits = config, limits or Limits()
        self.agent = VoiceAgent.from_config(config)
        self.metrics = ServeMetrics()
        self.connections: set[Connection] = set()
        self.draining = False
        self._none_left = asyncio.Event()
        self._none_left.set()

    def not_ready(self) -> str | None:
        """Why a new session would be refused now ("draining", "full"), or None."""
        if self.draining:
            return "draining"
        if len(self.connections) >= self.limits.max_sessions:
            return "full"
        return None

    def admit(self, connection: Connection) -> Ending | None:
        """Count ``connection`` in, or say why it is refused."""
        why = self.not_ready()
        if why is not None:
            self.metrics.refused.labels(why).inc()
            if why == "draining":
                return Ending("shutdown", "the server is shutting down", code=1001)
            most = self.limits.max_sessions
            return Ending("error", f"the server is full ({most} sessions): try again", code=1013)
        self.connections.add(connection)
        self._none_left.clear()
        self.metrics.active.set(len(self.connections))
        return None

    def release(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self.metrics.active.set(len(self.connections))
        if not self.connections:
            self._none_left.set()

    async def drain(self) -> None:
        """Refuse new sessions, tell the live ones, give them ``grace_s`` to finish, then
        close the rest (1001)."""
        self.draining = True
        grace = self.limits.grace_s
        for connection in list(self.connections):
            connection.notify_shutdown(grace)
        try:
            async with asyncio.timeout(grace):
                await self._none_left.wait()
        except TimeoutError:
            self.end_all()
            try:
                async with asyncio.timeout(FLUSH_TIMEOUT_S + 1.0):
                    await self._none_left.wait()
            except TimeoutError:
                log.warning("voxpipe serve: %d sessions did not close", len(self.connections))

    def end_all(self) -> None:
        """Close every live session now (1001)."""
        for connection in list(self.connections):
            connection.end(Ending("shutdown", "the server is shutting down", code=1001))


def create_app(server: VoiceServer) -> Starlette:
    """The ASGI app serving ``server``."""

    async def conversation(websocket: WebSocket) -> None:
        connection = Connection(websocket, server)
        refusal = server.admit(connection)
        try:
            await connection.run(refusal)
        finally:
            server.release(connection)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        why = server.not_ready()
        body = {
            "status": why or "ready",
            "sessions": len(server.connections),
            "max_sessions": server.limits.max_sessions,
        }
        return JSONResponse(body, status_code=200 if why is None else 503)

    async def metrics(request: Request) -> Response:
        return Response(server.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await server.agent.aclose()

    return Starlette(
        routes=[
            WebSocketRoute(WEBSOCKET_PATH, conversation),
            Route(HEALTH_PATH, health),
            Route(READY_PATH, ready),
            Route(METRICS_PATH, metrics),
            Route(PAGE_PATH, page),
            Mount("/static", StaticFiles(directory=STATIC_DIR)),
        ],
        lifespan=lifespan,
    )
