"""What a session's events carry: ``session.on(event, callback)`` (or ``agent.on`` for every
session of an agent) calls ``callback(payload)`` on the event loop; keep callbacks quick.

- ``"state"``: ``StateChange`` (the conversation's state machine, ``AgentState``)
- ``"transcript"``: ``Transcript`` (partial and final, as the ASR sends them)
- ``"turn"``: ``TurnMetrics`` when a turn's reply has ended (completed or interrupted)
- ``"budget"``: ``BudgetMiss`` the moment a deadline passes
- ``"interruption"``: ``Interruption`` the moment the user interrupts the agent
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from voxpipe.metrics import TurnMetrics

EVENTS = ("state", "transcript", "turn", "budget", "interruption")


class AgentState(StrEnum):
    LISTENING = "listening"
    PROCESSING_SPEECH = "processing_speech"  # the user is speaking (partial transcripts)
    THINKING = "thinking"  # a reply is being generated, none of it heard yet
    SPEAKING = "speaking"
    INTERRUPTED = "interrupted"  # the user spoke over the agent: output stopped


@dataclass(frozen=True, slots=True)
class StateChange:
    old: AgentState
    new: AgentState
    at_ms: float


@dataclass(frozen=True, slots=True)
class BudgetMiss:
    """A budget's deadline passed while its stage was still running."""

    name: str
    turn: TurnMetrics
    at_ms: float


@dataclass(frozen=True, slots=True)
class Interruption:
    """The user interrupted the agent: output stopped at ``silent_ms``, ``detected_ms`` after.
    ``held``: no words yet, so the reply waits to resume (a false interruption) unless the
    user's words confirm it. ``turn`` is the turn whose reply was cut (None for ``say``)."""

    turn: TurnMetrics | None
    detected_ms: float
    silent_ms: float
    held: bool
