"""One WebSocket connection: one Session of the server's agent, from the client's ``start``
to the server's ``end`` event and the close.

Three tasks while it runs: the reader (the client's messages), the session, and the writer,
which sends the outbox (events and audio, in order) to the socket. Whatever ends the
connection first (the session ending, the client leaving, a limit, too many bad messages,
the server shutting down) decides the ``end`` event and the close code; the session is
cancelled if it still runs, which closes its backends and sink.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from voxpipe.attempts import describe
from voxpipe.clock import QuietTimer
from voxpipe.events import BudgetMiss, Interruption, StateChange
from voxpipe.io.push import Overrun, PushSink, PushSource
from voxpipe.metrics import SessionMetrics, TurnMetrics
from voxpipe.protocols import Transcript
from voxpipe.serve import protocol
from voxpipe.serve.protocol import EndReason, ProtocolError, Start, Stop
from voxpipe.session import Session
from voxpipe.streams import Channel

if TYPE_CHECKING:
    from voxpipe.serve.app import VoiceServer

log = logging.getLogger("voxpipe.serve")

#: How long the last events may take to go out before the socket is closed anyway (s).
FLUSH_TIMEOUT_S = 5.0
#: Agent audio the outbox holds before the sink has to wait (ms of audio).
OUTBOX_AUDIO_MS = 2_000.0


@dataclass(frozen=True, slots=True)
class Ending:
    """Why a connection ends: the ``end`` event's reason and message, and the close code."""

    reason: EndReason
    message: str
    code: int = 1000


class Connection:
    """A client's conversation over ``websocket`` with ``server``'s agent."""

    def __init__(self, websocket: WebSocket, server: VoiceServer) -> None:
        self.websocket, self.server, self.limits = websocket, server, server.limits
        self.id = uuid.uuid4().hex
        self.session: Session | None = None
        self._source: PushSource | None = None
        self._stopped = False  # the client sent stop
        self._errors = 0
        self._session_task: asyncio.Task[SessionMetrics] | None = None
        self._ending: asyncio.Future[Ending] = asyncio.get_running_loop().create_future()
        # the outbox: JSON text and audio bytes in order, closed at the end
        self._outbox: Channel[str | bytes] = Channel()
        self._outbox_bytes = 0  # of audio
        self._outbox_limit = 0
        self._room = asyncio.Event()
        self._gone = False  # the socket is closed: nothing more can be sent
        self._spoken: tuple[object, int] = (None, 0)  # the reply whose text was sent, its length

    async def run(self, refusal: Ending | None) -> None:
        """Hold the connection until it ends (``refusal``: accept only to say why not)."""
        await self.websocket.accept()
        if refusal is not None:
            error = protocol.error("refused", refusal.message)
            await self.websocket.send_text(protocol.encode(error))
            await self.websocket.close(refusal.code, _close_reason(refusal.message))
            return
        longest = self.limits.max_session_s
        timer = asyncio.get_running_loop().call_later(
            longest, self.end, Ending("max_length", f"the session reached {longest:g} s")
        )
        writer = asyncio.create_task(self._write())
        try:
            ending = await self._hold()
            self.server.metrics.ended.labels(ending.reason).inc()
            metrics = None if self.session is None else self.session.metrics
            self._send(protocol.end(ending.reason, ending.message, metrics))
            await self._close(writer, ending)
        finally:
            timer.cancel()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    def end(self, ending: Ending) -> None:
        """End the connection (the first reason given wins)."""
        if not self._ending.done():
            self._ending.set_result(ending)

    def notify_shutdown(self, grace_s: float) -> None:
        self._send(protocol.shutdown(grace_s))

    # --- the client's messages ----------------------------------------------------------

    async def _read(self) -> None:
        receive = self.websocket.receive
        idle = QuietTimer(self.limits.idle_timeout_s, self._idle)
        try:
            while True:
                message = await receive()
                idle.touch()
                if message["type"] == "websocket.disconnect":
                    self._lost(Ending("client_left", "the client closed the connection"))
                    return
                try:
                    if message.get("bytes") is not None:
                        self._on_audio(message["bytes"])
                    elif message.get("text") is not None:
                        self._on_text(message["text"])
                except ProtocolError as error:
                    self._on_error(error)
        finally:
            idle.cancel()

    def _idle(self) -> None:
        """The client sent nothing for ``idle_timeout_s``: the connection ends (unless it
        sent ``stop``: the session then ends on its own)."""
        if not self._stopped:
            idle = self.limits.idle_timeout_s
            self.end(Ending("idle_timeout", f"no message from the client for {idle:g} s"))

    def _on_audio(self, data: bytes) -> None:
        source = self._source
        if source is None:
            raise ProtocolError(
                "not_started",
                'audio before the start message: send {"type": "start", "sample_rate": ...} first',
            )
        if self._stopped:
            raise ProtocolError("audio_after_stop", "audio after stop: the input has ended")
        most = round(source.input_rate * self.limits.max_message_ms / 1000.0) * 2
        if len(data) > most:
            raise ProtocolError(
                "frame_too_large",
                f"a binary message of {len(data)} bytes: at most {most} "
                f"({self.limits.max_message_ms:g} ms at {source.input_rate} Hz); "
                "send audio as it is captured, in short messages",
            )
        try:
            source.push(data)
        except Overrun as error:
            raise ProtocolError("too_fast", str(error)) from None

    def _on_text(self, text: str) -> None:
        message = protocol.parse(text)
        if isinstance(message, Start):
            if self.session is not None:
                raise ProtocolError("already_started", "start was sent already")
            self._start(message)
        elif isinstance(message, Stop):
            if self._source is None:
                raise ProtocolError("not_started", "stop before start")
            if not self._stopped:
                self._stopped = True
                self._source.close()

    def _on_error(self, error: ProtocolError) -> None:
        self._errors += 1
        self.server.metrics.protocol_errors.labels(error.code).inc()
        self._send(protocol.error(error.code, str(error)))
        if self._errors >= self.limits.max_errors:
            self.end(
                Ending(
                    "protocol_errors",
                    f"{self._errors} bad messages (the last: {error.code})",
                    code=1008,
                )
            )

    # --- the session ----------------------------------------------------------------------

    def _start(self, start: Start) -> None:
        settings = self.server.config.agent
        self._outbox_limit = round(start.output_rate * OUTBOX_AUDIO_MS / 1000.0) * 2
        self._source = PushSource(
            start.sample_rate,
            settings.sample_rate,
            settings.frame_ms,
            max_ahead_ms=self.limits.max_ahead_ms,
        )
        sink = PushSink(self._send_audio, self._send_clear, output_rate=start.output_rate)
        agent = self.server.agent
        session = self.session = agent.session(self._source, sink)
        self._send(
            protocol.ready(
                self.id, start, settings.sample_rate, settings.frame_ms, agent.backend_names
            )
        )
        session.on("state", self._on_state)
        session.on("transcript", self._on_transcript)
        session.on("turn", self._on_turn)
        session.on("budget", self._on_budget)
        session.on("interruption", self._on_interruption)
        self._session_task = asyncio.create_task(session.run())
        self._session_task.add_done_callback(self._session_ended)

    def _session_ended(self, task: asyncio.Task[SessionMetrics]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            self.end(Ending("completed", "the input ended and the last answer has played"))
        else:
            log.warning("voxpipe serve: session %s failed: %s", self.id, describe(error))
            self.end(Ending("error", describe(error), code=1011))

    async def _hold(self) -> Ending:
        """Read the client's messages until the connection ends; then stop reading, and
        stop the session if it still runs (closing its backends and sink)."""
        reader = asyncio.create_task(self._read())
        try:
            return await self._ending
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if self._session_task is not None:
                self._session_task.cancel()
                await asyncio.gather(self._session_task, return_exceptions=True)

    def _on_state(self, change: StateChange) -> None:
        self._send(protocol.state(change))

    def _on_transcript(self, heard: Transcript) -> None:
        self._send(protocol.transcript(heard))

    def _on_turn(self, turn: TurnMetrics) -> None:
        self._send(protocol.turn(turn))
        self.server.metrics.on_turn(turn, self.server.agent.backend_names)

    def _on_budget(self, miss: BudgetMiss) -> None:
        self._send(protocol.budget(miss))
        self.server.metrics.on_budget(miss)

    def _on_interruption(self, event: Interruption) -> None:
        self._send(protocol.interruption(event))
        self.server.metrics.on_interruption(event)

    # --- the sink's side ------------------------------------------------------------------

    async def _send_audio(self, data: bytes) -> None:
        """The agent's audio as it plays, after its text when the text grew."""
        while self._outbox_bytes > self._outbox_limit and not self._gone:
            self._room.clear()
            await self._room.wait()
        self._send_agent_text()
        self._outbox_bytes += len(data)
        self._outbox.put(data)

    async def _send_clear(self, at_ms: float) -> None:
        """Barge-in: drop the audio not yet sent; the client drops what it buffered."""
        self._outbox.keep(lambda item: not isinstance(item, bytes))
        self._outbox_bytes = 0
        self._room.set()
        self._send(protocol.clear(at_ms))

    def _send_agent_text(self) -> None:
        """The text of the reply playing, when it is new or has grown since it was last sent
        (a reply's text grows as its LLM writes it; a ``say`` has it from the start)."""
        session = self.session
        reply = next((r for r in session.replies if r.playing), None) if session else None
        if reply is None or not reply.text or self._spoken == (reply, len(reply.text)):
            return
        self._spoken = (reply, len(reply.text))
        turn = None if reply.turn is None else reply.turn.metrics.index
        self._send(protocol.agent_text(reply.text, turn))

    # --- the writer -----------------------------------------------------------------------

    def _send(self, event: dict[str, Any]) -> None:
        self._outbox.put(protocol.encode(event))

    async def _write(self) -> None:
        websocket = self.websocket
        try:
            async for item in self._outbox:
                if isinstance(item, bytes):
                    await websocket.send_bytes(item)
                    self._outbox_bytes -= len(item)
                    if self._outbox_bytes <= self._outbox_limit:
                        self._room.set()
                else:
                    await websocket.send_text(item)
        except Exception as error:  # the client has gone (a reset, a closed socket)
            log.debug("voxpipe serve: session %s: sending failed: %s", self.id, error)
            self._lost(Ending("client_left", "the connection broke"))

    def _lost(self, ending: Ending) -> None:
        """The socket is gone: nothing more is sent, and the connection ends."""
        self._gone = True
        self._outbox.keep(lambda _: False)
        self._outbox.close()  # and what is put from now on is dropped
        self._room.set()
        self.end(ending)

    async def _close(self, writer: asyncio.Task[None], ending: Ending) -> None:
        """Send what is queued (bounded), then close the socket with ``ending``'s code."""
        if self._gone:
            return
        self._outbox.close()
        done, _ = await asyncio.wait({writer}, timeout=FLUSH_TIMEOUT_S)
        if self._gone or not done:  # the client left, or takes nothing
            return
        try:
            await self.websocket.close(ending.code, _close_reason(ending.message))
        except Exception as error:  # closed under us meanwhile
            log.debug("voxpipe serve: session %s: close failed: %s", self.id, error)


def _close_reason(text: str) -> str:
    """A close frame's reason holds at most 123 bytes of UTF-8."""
    data = text.encode()
    return text if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."
