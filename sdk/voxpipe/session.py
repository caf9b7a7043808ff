"""Session: one conversation, with everything that belongs to it.

Its clock, state machine, history, metrics, event listeners and its own backends (built for
it from the agent's recipe), its input task (``turns.TurnTaker``) and its replies. An agent
can run any number of sessions at once; nothing one session does is seen by another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from voxpipe.budgets import BudgetWatch
from voxpipe.clock import SessionClock
from voxpipe.compat import as_v2
from voxpipe.errors import ConfigError
from voxpipe.events import EVENTS, AgentState, BudgetMiss, Interruption, StateChange
from voxpipe.io.recorder import CallRecorder
from voxpipe.io.wav import NullSink
from voxpipe.metrics import SessionMetrics, TurnMetrics
from voxpipe.protocols import AudioSink, AudioSource, Message
from voxpipe.reply import Reply, first_error
from voxpipe.turns import Turn, TurnTaker

if TYPE_CHECKING:
    from voxpipe.agent import VoiceAgent

log = logging.getLogger("voxpipe")


class Session:
    """One conversation of ``agent`` over ``source`` and ``sink``: ``await session.run()``
    holds it until the source ends and the last reply has played, and returns its metrics.

    Make one with ``agent.session(source, sink)`` inside a running event loop. A session runs
    once. ``say(text)`` speaks a given text (a greeting, a filler) the way a reply is spoken.
    """

    def __init__(
        self,
        agent: VoiceAgent,
        source: AudioSource,
        sink: AudioSink | None = None,
        *,
        recorder: CallRecorder | None = None,
    ) -> None:
        self.agent = agent
        self.source = source
        self.sink: AudioSink = sink or NullSink()
        self.recorder = recorder
        #: This session's backends, in their v2 shape (set when ``run()`` starts).
        self.asr: Any = None
        self.llm: Any = None
        self.tts: Any = None
        self.vad: Any = None
        self.state = AgentState.LISTENING
        #: The conversation so far (without the system prompt): user turns, and what the
        #: user heard of each reply.
        self.history: list[Message] = []
        self.metrics = SessionMetrics(dict(agent.backend_names), dict(agent.budgets.items()))
        #: Replies started and not ended, in the order they were started.
        self.replies: list[Reply] = []
        #: Plays one reply at a time, in order.
        self.output = asyncio.Lock()
        self.clock: SessionClock = None  # type: ignore[assignment]  # set when run() starts
        self.group: asyncio.TaskGroup = None  # type: ignore[assignment]
        self._listeners: dict[str, list[Callable[[Any], None]]] = {e: [] for e in EVENTS}
        self._turns_started = 0
        self._ran = False
        bind = getattr(source, "bind", None)
        if bind is not None:
            bind(self)

    def on(self, event: str, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """Call ``callback(payload)`` on ``event`` (see ``voxpipe.events``)."""
        if event not in self._listeners:
            raise ValueError(f"unknown event {event!r}; choose from {', '.join(EVENTS)}")
        self._listeners[event].append(callback)
        return callback

    def say(self, text: str, *, interruptible: bool = True) -> Reply:
        """Speak ``text`` through the same path as a reply (after any reply playing now).
        Called before ``run()``, it is spoken as the session starts."""
        reply = Reply(self, text=text, interruptible=interruptible)
        self.replies.append(reply)
        if self.group is not None:
            reply.start()
            self.refresh_state()
        return reply

    async def run(self) -> SessionMetrics:
        if self._ran:
            raise RuntimeError("a Session runs once; start another with agent.session(...)")
        self._ran = True
        self.clock = SessionClock()
        owned: list[Any] = []  # backends built for this session, closed at its end
        turns: TurnTaker | None = None
        try:
            self.vad = self._backend("vad", owned)
            self.asr = self._backend("asr", owned)
            self.llm = self._backend("llm", owned)
            self.tts = self._backend("tts", owned)
            self._check_turn_taking()
            listening = self.asr.listen()
            try:
                turns = TurnTaker(self, self.agent.turns, self.vad, listening)
                async with asyncio.TaskGroup() as group:
                    self.group = group
                    for reply in self.replies:
                        reply.start()
                    hearing = group.create_task(turns.hear())
                    await turns.listen(self.source)
                    await hearing
            finally:
                await listening.aclose()
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from None
        finally:
            if turns is not None:
                turns.close()
            for backend in owned:
                await _aclose(backend)
            await self.sink.aclose()
            if self.recorder is not None:
                self.recorder.close()
            self.replies.clear()
            self.set_state(AgentState.LISTENING)
        return self.metrics

    # --- for the turn-taker and the replies -----------------------------------------------

    def new_turn(self) -> Turn:
        self._turns_started += 1
        metrics = TurnMetrics(index=self._turns_started)
        watch = BudgetWatch(self.agent.budgets, metrics, self.clock, [self._on_budget_miss])
        return Turn(metrics, watch)

    def drop_turn(self, turn: Turn) -> None:
        """A turn heard no words (a cough, noise): it is not answered or counted."""
        turn.watch.close()
        if turn.metrics.index == self._turns_started:
            self._turns_started -= 1

    def answer(self, turn: Turn) -> Reply:
        """The user's turn is over: commit it to the history and start the reply."""
        self.history.append(Message("user", turn.metrics.user_text))
        prompt = self.agent.system_prompt
        messages = [Message("system", prompt), *self.history] if prompt else list(self.history)
        reply = Reply(self, messages=messages, turn=turn)
        self.replies.append(reply)
        reply.start()
        self.refresh_state()
        return reply

    def reply_ended(self, reply: Reply) -> None:
        """Commit what the user heard of ``reply``; record its turn."""
        if reply in self.replies:
            self.replies.remove(reply)
        # Tool calls stay off the history until something runs them: a request that carries
        # calls without their results is invalid.
        if reply.heard_text:
            self.history.append(
                Message("assistant", reply.heard_text, interrupted=reply.interrupted)
            )
        turn = reply.turn
        if turn is not None:
            turn.metrics.agent_text = reply.text
            turn.metrics.heard_text = reply.heard_text
            if reply.tool_calls:
                turn.metrics.extra["tool_calls"] = [asdict(call) for call in reply.tool_calls]
            turn.watch.close()
            self.metrics.turns.append(turn.metrics)
            self.emit("turn", turn.metrics)
        self.refresh_state()

    def refresh_state(self) -> None:
        """The state that follows from the replies in progress."""
        active = [r for r in self.replies if r.active]
        if any(r.held for r in active):
            self.set_state(AgentState.INTERRUPTED)
        elif any(r.playing for r in active):
            self.set_state(AgentState.SPEAKING)
        elif active:
            self.set_state(AgentState.THINKING)
        elif self.state in (AgentState.SPEAKING, AgentState.THINKING, AgentState.INTERRUPTED):
            self.set_state(AgentState.LISTENING)

    def set_state(self, new: AgentState) -> None:
        old = self.state
        if new is not old:
            self.state = new
            at = self.clock.now_ms() if self.clock is not None else 0.0
            self.emit("state", StateChange(old, new, at))

    def emit(self, event: str, payload: Any) -> None:
        for callback in (*self._listeners[event], *self.agent.listeners[event]):
            try:
                callback(payload)
            except Exception:
                log.exception("voxpipe %r event listener %r failed", event, callback)

    def emit_interruption(self, reply: Reply, detected_ms: float, *, held: bool) -> None:
        silent = reply.silent_ms
        metrics = reply.turn.metrics if reply.turn is not None else None
        silent_ms = detected_ms if silent is None else silent
        self.emit("interruption", Interruption(metrics, detected_ms, silent_ms, held))

    def _on_budget_miss(self, name: str, turn: TurnMetrics) -> None:
        self.emit("budget", BudgetMiss(name, turn, self.clock.now_ms()))

    def _backend(self, kind: str, owned: list[Any]) -> Any:
        backend, built = self.agent.backend(kind)
        if built:
            owned.append(backend)
        return as_v2(kind, backend)

    def _check_turn_taking(self) -> None:
        if self.agent.turns.end_of_turn == "asr" and not getattr(
            self.asr, "detects_end_of_turn", False
        ):
            name = self.agent.backend_names.get("asr", type(self.asr).__name__)
            raise ConfigError(
                f'[turns] end_of_turn = "asr" needs an ASR that detects the end of the '
                f"user's turn itself; the asr backend {name!r} relies on the session's VAD. "
                'Use end_of_turn = "vad" or "first".'
            )


async def _aclose(backend: Any) -> None:
    aclose = getattr(backend, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            log.exception("voxpipe: closing %r failed", backend)
