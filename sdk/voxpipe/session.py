"""Session: one conversation, with everything that belongs to it.

Its clock, state machine, history, metrics, event listeners and its own backends (built for
it from the agent's recipe), its input task (``turns.TurnTaker``) and its replies. An agent
can run any number of sessions at once; nothing one session does is seen by another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from voxpipe.attempts import describe
from voxpipe.budgets import BudgetWatch, Enforcer
from voxpipe.clock import SessionClock
from voxpipe.compat import as_v2
from voxpipe.errors import ConfigError, ProviderError
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
        #: Each stage's backends, first the primary: (name, backend) pairs.
        self.chains: dict[str, list[tuple[str, Any]]] = {}
        self._listeners: dict[str, list[Callable[[Any], None]]] = {e: [] for e in EVENTS}
        self._turns_started = 0
        self._failures = 0  # turns failed in a row
        self._fillers: list[tuple[str, list[Any]]] = []  # holding phrases, synthesized
        self._filled: set[int] = set()  # turns a filler has been said for
        self._enforce = Enforcer(self)
        self._asr_index = 0  # the backend of the ASR chain listening now
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

    def say(self, text: str, *, interruptible: bool = True, in_history: bool = True) -> Reply:
        """Speak ``text`` through the same path as a reply (after any reply playing now).
        Called before ``run()``, it is spoken as the session starts. ``in_history=False``
        keeps it out of the history (an apology)."""
        return self._speak(
            Reply(self, text=text, interruptible=interruptible, in_history=in_history)
        )

    def say_filler(self, turn: Turn) -> str | None:
        """Say the next holding phrase while ``turn``'s answer is late, from audio made at
        session start: at most once a turn. Returns what was said (None if nothing)."""
        if turn.metrics.index in self._filled or not self._fillers:
            return None
        text, audio = self._fillers[len(self._filled) % len(self._fillers)]  # in turn
        self._filled.add(turn.metrics.index)
        reply = Reply(self, text=text, audio=audio, in_history=False)
        reply.filler_for = turn
        self._speak(reply)
        return text

    @property
    def failing(self) -> bool:
        """Too many turns in a row failed: the session is to end."""
        return self._failures >= self.agent.max_consecutive_failures

    def reply_for(self, turn: Turn) -> Reply | None:
        """The reply answering ``turn``, while it runs."""
        return next((r for r in self.replies if r.turn is turn and r.active), None)

    def _speak(self, reply: Reply) -> Reply:
        self.replies.append(reply)
        if self.group is not None:
            reply.start()
            self.refresh_state()
        return reply

    async def run(self) -> SessionMetrics:
        """Hold the conversation; the metrics say how it ended (``end_reason``)."""
        if self._ran:
            raise RuntimeError("a Session runs once; start another with agent.session(...)")
        self._ran = True
        try:
            await self._run()
        except asyncio.CancelledError:
            self.metrics.end_reason = "cancelled"
            raise
        except BaseException as error:
            self.metrics.end_reason, self.metrics.end_error = "error", describe(error)
            raise
        return self.metrics

    async def _run(self) -> None:
        self.clock = SessionClock()
        owned: list[Any] = []  # backends built for this session, closed at its end
        turns: TurnTaker | None = None
        try:
            for kind in ("vad", "asr", "llm", "tts"):
                self.chains[kind] = self._backends(kind, owned)
            self.vad, self.asr = self.chains["vad"][0][1], self.chains["asr"][0][1]
            self.llm, self.tts = self.chains["llm"][0][1], self.chains["tts"][0][1]
            self._check_turn_taking()
            listening = self.asr.listen()
            try:
                turns = TurnTaker(self, self.agent.turns, self.vad, listening)
                async with asyncio.TaskGroup() as group:
                    self.group = group
                    for reply in self.replies:
                        reply.start()
                    if self.agent.budgets.acting("filler"):
                        group.create_task(self._make_fillers())
                    hearing = group.create_task(turns.hear())
                    await turns.listen(self.source)
                    await hearing
            finally:
                await (turns.asr if turns is not None else listening).aclose()
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from None
        finally:
            if turns is not None:
                turns.close()
            for backend in owned:
                await _aclose(backend)
            try:
                await self.sink.aclose()
            finally:
                if self.recorder is not None:
                    self.recorder.close()
            self.replies.clear()
            self.set_state(AgentState.LISTENING)

    # --- for the turn-taker and the replies -----------------------------------------------

    def new_turn(self) -> Turn:
        self._turns_started += 1
        metrics = TurnMetrics(index=self._turns_started)
        turn = Turn(metrics, BudgetWatch(self.agent.budgets, metrics, self.clock))
        turn.watch.on_miss(lambda name, _: self._on_budget_miss(name, turn))
        return turn

    def drop_turn(self, turn: Turn) -> None:
        """A turn heard no words (a cough, noise): it is not answered or counted."""
        turn.watch.close()
        if turn.metrics.index == self._turns_started:
            self._turns_started -= 1

    def answer(self, turn: Turn) -> Reply:
        """The user's turn is over: commit it to the history and start the reply."""
        self.history.append(Message("user", turn.metrics.user_text))
        prompt = self.agent.system_prompt
        recent = self.recent_history()
        messages = [Message("system", prompt), *recent] if prompt else recent
        reply = Reply(self, messages=messages, turn=turn)
        self.replies.append(reply)
        reply.start()
        self.refresh_state()
        return reply

    def recent_history(self) -> list[Message]:
        """The end of the history that fits the agent's window (``history_messages``,
        ``history_chars``); the newest message always."""
        agent, chars = self.agent, 0
        kept: list[Message] = []
        for message in reversed(self.history):
            chars += len(message.content)
            if kept and (len(kept) >= agent.history_messages or chars > agent.history_chars):
                break
            kept.append(message)
        kept.reverse()
        return kept

    def reply_ended(self, reply: Reply) -> None:
        """Commit what the user heard of ``reply``; record its turn."""
        if reply in self.replies:
            self.replies.remove(reply)
        # Tool calls stay off the history until something runs them: a request that carries
        # calls without their results is invalid.
        if reply.in_history and reply.heard_text:
            cut = reply.outcome != "ok"
            self.history.append(Message("assistant", reply.heard_text, interrupted=cut))
        turn = reply.turn
        if turn is not None:
            turn.metrics.agent_text = reply.text
            turn.metrics.heard_text = reply.heard_text
            if reply.tool_calls:
                turn.metrics.extra["tool_calls"] = [asdict(call) for call in reply.tool_calls]
            turn.watch.close()
            self.metrics.turns.append(turn.metrics)
            self._failures = self._failures + 1 if reply.outcome == "failed" else 0
            if reply.outcome in ("failed", "cancelled") and self.agent.apology and not self.failing:
                self._apologise()
            self.emit("turn", turn.metrics)
        self.refresh_state()

    def turn_failed(self, turn: Turn | None, error: ProviderError) -> None:
        """The ASR failed while hearing ``turn`` (if one was being heard): record it, and
        apologise; raise ``error`` when too many turns failed in a row."""
        self._failures += 1
        if turn is not None:
            turn.metrics.outcome, turn.metrics.error = "failed", describe(error)
            turn.watch.close()
            self.metrics.turns.append(turn.metrics)
            self.emit("turn", turn.metrics)
        if self.failing:
            raise error
        if turn is not None and self.agent.apology:
            self._apologise()

    def reopen_asr(self) -> Any:
        """A new ASR stream after one failed: the next backend of the chain, round."""
        chain = self.chains["asr"]
        self._asr_index = (self._asr_index + 1) % len(chain)
        self.asr = chain[self._asr_index][1]
        return self.asr.listen()

    def _apologise(self) -> None:
        try:
            self.say(self.agent.apology, in_history=False)
        except RuntimeError:  # the session is shutting down: nobody to apologise to
            log.debug("voxpipe: no apology, the session is ending")

    async def _make_fillers(self) -> None:
        """Synthesize the holding phrases once, so a filler plays at its deadline."""
        for text in self.agent.fillers:
            try:
                audio = [item async for item in _speak_once(self.tts, text)]
            except Exception as error:
                log.warning("voxpipe: filler %r could not be synthesized: %s", text, error)
                continue
            self._fillers.append((text, audio))

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

    def _on_budget_miss(self, name: str, turn: Turn) -> None:
        self._enforce(name, turn)
        self.emit("budget", BudgetMiss(name, turn.metrics, self.clock.now_ms()))

    def _backends(self, kind: str, owned: list[Any]) -> list[tuple[str, Any]]:
        chain = []
        for name, backend, built in self.agent.backends(kind):
            if built:
                owned.append(backend)
            chain.append((name, as_v2(kind, backend)))
        return chain

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


def _speak_once(tts: Any, text: str) -> AsyncIterator[Any]:
    if callable(getattr(tts, "synthesize", None)):
        return tts.synthesize(text)  # type: ignore[no-any-return]
    return tts.synthesize_stream(_one(text))  # type: ignore[no-any-return]


async def _one(text: str) -> AsyncIterator[str]:
    yield text


async def _aclose(backend: Any) -> None:
    aclose = getattr(backend, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            log.exception("voxpipe: closing %r failed", backend)
