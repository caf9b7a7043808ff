"""VoiceAgent: the recipe for conversations.

It says how to get the backends, what the agent is told (system prompt), how replies are
cut into phrases, when the user's turn ends and when the user may interrupt, and which
latency budgets apply. It holds no conversation: each ``Session`` (``agent.session(...)``,
or ``agent.run(...)`` for the common case) has its own state, history, metrics and
backends, so one agent serves any number of conversations at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from voxpipe.budgets import DEFAULT_BUDGETS, LatencyBudgets
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
    end. ``from_config`` uses factories. A list is a chain: the backend, then its fallbacks.
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
        fillers: Sequence[str] = ("One moment.", "Let me check."),
        apology: str = "Sorry, I couldn't answer that. Could you say it again?",
        max_consecutive_failures: int = 3,
        history_messages: int = 40,
        history_chars: int = 16_000,
        backend_names: dict[str, list[str]] | None = None,
    ) -> None:
        given = {"asr": asr, "llm": llm, "tts": tts, "vad": vad or EnergyVAD()}
        self._backends: dict[str, list[tuple[Any, bool]]] = {}
        for kind, chain in given.items():
            self._backends[kind] = []
            for backend in chain if isinstance(chain, list | tuple) else [chain]:
                factory = isinstance(backend, type) or (
                    callable(backend) and not _is_backend(kind, backend)
                )
                if not factory:
                    as_v2(kind, backend)  # a TypeError names the protocol it misses
                self._backends[kind].append((backend, factory))
        self.budgets = budgets or DEFAULT_BUDGETS
        self.fillers = list(fillers)
        self.apology = apology
        self.max_consecutive_failures = max_consecutive_failures
        #: The history window: what of the conversation each LLM request carries (the
        #: system prompt and the user's latest words always).
        self.history_messages, self.history_chars = history_messages, history_chars
        self.system_prompt = system_prompt
        self.phrases = phrases or PhrasePolicy()
        self.turns = turns or TurnSettings()
        self.lookahead_ms = lookahead_ms
        #: Each kind's chain by name: the backend, then its fallbacks.
        self.chain_names = backend_names or {
            kind: _unique([_name(b) for b, _ in chain]) for kind, chain in self._backends.items()
        }
        self.backend_names = {kind: names[0] for kind, names in self.chain_names.items()}
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

        def chain(kind: str) -> list[Any]:
            return [
                functools.partial(config.build, kind, i) for i in range(len(config.chain(kind)))
            ]

        return cls(
            chain("asr"),
            chain("llm"),
            chain("tts"),
            vad=chain("vad"),
            budgets=config.budgets,
            system_prompt=settings.system_prompt,
            phrases=settings.phrases,
            turns=config.turns,
            lookahead_ms=settings.playout_lookahead_ms,
            fillers=settings.fillers,
            apology=settings.apology,
            max_consecutive_failures=settings.max_consecutive_failures,
            history_messages=settings.history_messages,
            history_chars=settings.history_chars,
            backend_names={
                k: _unique([spec.name for spec, _ in config.chain(k)])
                for k in ("asr", "llm", "tts", "vad")
            },
        )

    def on(self, event: str, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """Call ``callback(payload)`` on ``event`` in every session of this agent (see
        ``voxpipe.events``); ``session.on`` listens to one session."""
        if event not in self.listeners:
            raise ValueError(f"unknown event {event!r}; choose from {', '.join(EVENTS)}")
        self.listeners[event].append(callback)
        return callback

    def backends(self, kind: str) -> list[tuple[str, Any, bool]]:
        """The ``kind`` chain for a new session: (name, backend, whether it was built for
        the session) each."""
        return [
            (name, backend() if factory else backend, factory)
            for name, (backend, factory) in zip(
                self.chain_names[kind], self._backends[kind], strict=True
            )
        ]

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
        for chain in self._backends.values():
            for backend, is_factory in chain:
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


def _unique(names: list[str]) -> list[str]:
    """Names told apart: a second "openai" in a chain is "openai#2"."""
    return [
        n if names[:i].count(n) == 0 else f"{n}#{names[:i].count(n) + 1}"
        for i, n in enumerate(names)
    ]


def _name(backend: Any) -> str:
    if isinstance(backend, type):
        return backend.__name__
    if isinstance(backend, functools.partial):
        return _name(backend.func)
    return getattr(backend, "__name__", None) or type(backend).__name__
