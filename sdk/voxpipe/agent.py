"""VoiceAgent: the recipe for conversations.

It says how to get the backends, what the agent is told (system prompt), how replies are
cut into phrases, when the user's turn ends and when the user may interrupt, and which
latency budgets apply. It holds no conversation: each ``Session`` (``agent.session(...)``,
or ``agent.run(...)`` for the common case) has its own state, history, metrics and
backends, so one agent serves any number of conversations at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voxpipe.budgets import LatencyBudgets
from voxpipe.compat import as_v2
from voxpipe.config import AgentConfig, load_config
from voxpipe.events import EVENTS
from voxpipe.io.recorder import CallRecorder
from voxpipe.metrics import SessionMetrics
from voxpipe.protocols import AudioSink, AudioSource
from voxpipe.registry import Registry
from voxpipe.session import Session
from voxpipe.text import PhrasePolicy
from voxpipe.turns import TurnSettings
from voxpipe.vad import EnergyVAD

#: How far synthesis may run ahead of playout, in ms of audio: enough to ride out a slow
#: chunk or the next phrase's first byte, small enough that a long answer does not pile up.
DEFAULT_LOOKAHEAD_MS = 1000.0


class VoiceAgent:
    """How to hold a conversation. ``await agent.run(source, sink)`` holds one and returns
    its metrics; ``agent.session(source, sink)`` gives the ``Session`` to drive yourself.

    Each backend is either an object (shared by every session of this agent: it must take
    concurrent streams, and ``agent.aclose()`` closes it) or a factory called with no
    arguments (a class, a function): each session then builds its own and closes it at its
    end. ``from_config`` uses factories.
    """

    def __init__(
        self,
        asr: Any,
        llm: Any,
        tts: Any,
        *,
        vad: Any = None,
        budgets: LatencyBudgets | None = None,
        system_prompt: str = "",
        phrases: PhrasePolicy | None = None,
        turns: TurnSettings | None = None,
        lookahead_ms: float = DEFAULT_LOOKAHEAD_MS,
        backend_names: dict[str, str] | None = None,
    ) -> None:
        given = {"asr": asr, "llm": llm, "tts": tts, "vad": vad or EnergyVAD()}
        self._backends: dict[str, tuple[Any, bool]] = {}
        for kind, backend in given.items():
            if isinstance(backend, type) or (callable(backend) and not _is_backend(kind, backend)):
                self._backends[kind] = (backend, True)  # a factory
            else:
                as_v2(kind, backend)  # a TypeError names the protocol it misses
                self._backends[kind] = (backend, False)
        self.budgets = budgets or LatencyBudgets()
        self.system_prompt = system_prompt
        self.phrases = phrases or PhrasePolicy()
        self.turns = turns or TurnSettings()
        self.lookahead_ms = lookahead_ms
        self.backend_names = backend_names or {
            kind: _name(backend) for kind, (backend, _) in self._backends.items()
        }
        self.listeners: dict[str, list[Callable[[Any], None]]] = {e: [] for e in EVENTS}

    @classmethod
    def from_config(
        cls, config: AgentConfig | str | Path | dict[str, Any], *, registry: Registry | None = None
    ) -> VoiceAgent:
        """An agent whose sessions each build their backends from a config file, dict or
        ``AgentConfig``."""
        if not isinstance(config, AgentConfig):
            config = load_config(config, registry=registry)
        settings = config.agent
        build = functools.partial
        return cls(
            build(config.build, "asr"),
            build(config.build, "llm"),
            build(config.build, "tts"),
            vad=build(config.build, "vad"),
            budgets=config.budgets,
            system_prompt=settings.system_prompt,
            phrases=settings.phrases,
            turns=config.turns,
            lookahead_ms=settings.playout_lookahead_ms,
            backend_names={k: getattr(config, k).backend for k in ("asr", "llm", "tts", "vad")},
        )

    def on(self, event: str, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """Call ``callback(payload)`` on ``event`` in every session of this agent (see
        ``voxpipe.events``); ``session.on`` listens to one session."""
        if event not in self.listeners:
            raise ValueError(f"unknown event {event!r}; choose from {', '.join(EVENTS)}")
        self.listeners[event].append(callback)
        return callback

    def backend(self, kind: str) -> tuple[Any, bool]:
        """The ``kind`` backend for a new session, and whether it was built for it."""
        backend, is_factory = self._backends[kind]
        return (backend(), True) if is_factory else (backend, False)

    def session(
        self,
        source: AudioSource,
        sink: AudioSink | None = None,
        *,
        recorder: CallRecorder | None = None,
    ) -> Session:
        """A new conversation over ``source`` and ``sink``; ``await session.run()``."""
        return Session(self, source, sink, recorder=recorder)

    async def run(
        self,
        source: AudioSource,
        sink: AudioSink | None = None,
        *,
        recorder: CallRecorder | None = None,
    ) -> SessionMetrics:
        """Hold one conversation until ``source`` ends and the last answer has played."""
        return await self.session(source, sink, recorder=recorder).run()

    async def aclose(self) -> None:
        """Close the backend objects shared by this agent's sessions."""
        for backend, is_factory in self._backends.values():
            aclose = getattr(backend, "aclose", None)
            if not is_factory and aclose is not None:
                await aclose()

    async def __aenter__(self) -> VoiceAgent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _is_backend(kind: str, backend: Any) -> bool:
    try:
        as_v2(kind, backend)
    except TypeError:
        return False
    return True


def _name(backend: Any) -> str:
    if isinstance(backend, type):
        return backend.__name__
    if isinstance(backend, functools.partial):
        return _name(backend.func)
    return getattr(backend, "__name__", None) or type(backend).__name__
