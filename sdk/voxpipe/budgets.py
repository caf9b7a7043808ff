"""Latency budgets, watched as deadlines on the session clock while a turn runs.

A deadline budget covers a stage between two stamps. When the first stamp is taken a timer
is set for ``start + budget``; if it fires while the stage is still running, the budget's
action runs at that moment (the session's ``enforce``: warn, filler, fallback, retry,
cancel). When the second stamp is taken the timer is cancelled and the verdict
recorded. Rate budgets (per token, per audio chunk) are judged when their stage ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from voxpipe.clock import SessionClock
from voxpipe.metrics import BudgetResult, TurnMetrics

if TYPE_CHECKING:
    from voxpipe.session import Session
    from voxpipe.turns import Turn

#: Deadline budgets: name -> (stamp that starts the stage, stamp that ends it).
DEADLINES: dict[str, tuple[str, str]] = {
    "asr_processing": ("speech_start", "asr_first_partial"),
    "asr_finalization": ("speech_end", "asr_final"),
    "llm_first_token": ("llm_request", "llm_first_token"),
    "tts_first_chunk": ("tts_request", "tts_first_audio"),
    "time_to_first_audio": ("speech_end", "playout_start"),
}

#: Rate budgets: name -> what the actual figure is.
RATES: dict[str, str] = {
    "llm_token_generation": "mean ms between LLM text deltas after the first",
    "tts_chunk_generation": "mean ms between TTS audio frames of a phrase after its first",
}

MissListener = Callable[[str, TurnMetrics], None]

Action = Literal["warn", "filler", "fallback", "retry", "cancel"]
ACTIONS: tuple[Action, ...] = ("warn", "filler", "fallback", "retry", "cancel")

#: What each budget's deadline can do (the stage it watches decides).
ALLOWED_ACTIONS: dict[str, tuple[Action, ...]] = {
    "asr_processing": ("warn",),
    "asr_finalization": ("warn",),
    "llm_first_token": ACTIONS,
    "llm_token_generation": ("warn",),
    "tts_first_chunk": ACTIONS,
    "tts_chunk_generation": ("warn",),
    "time_to_first_audio": ("warn", "filler", "cancel"),
}


class Budget(BaseModel):
    """One budget: a deadline of ``ms`` and what to do when it passes."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    ms: float = Field(gt=0, le=60_000, description="the deadline, ms from the stage's start")
    action: Action = Field("warn", description="what happens when it passes")


def _budget(description: str) -> Budget | None:
    return Field(None, description=description)


class LatencyBudgets(BaseModel):
    """``[budgets]``: each a number (ms, action ``warn``) or ``{ms = 500, action = "..."}``;
    unset budgets are not checked, ``enabled = false`` checks none."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false: check no budget")
    asr_processing: Budget | None = _budget("speech start -> first partial transcript")
    asr_finalization: Budget | None = _budget("end of speech -> final transcript")
    llm_first_token: Budget | None = _budget("LLM request -> first text delta")
    llm_token_generation: Budget | None = _budget(RATES["llm_token_generation"])
    tts_first_chunk: Budget | None = _budget("first TTS request -> its first audio")
    tts_chunk_generation: Budget | None = _budget(RATES["tts_chunk_generation"])
    time_to_first_audio: Budget | None = _budget("end of speech -> first agent audio played")

    @field_validator("*", mode="before")
    @classmethod
    def _number_is_a_warning(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"ms": value}
        return value

    @model_validator(mode="after")
    def _actions_fit_their_stage(self) -> LatencyBudgets:
        for name, allowed in ALLOWED_ACTIONS.items():
            budget = getattr(self, name)
            if budget is not None and budget.action not in allowed:
                raise ValueError(
                    f"{name}: action {budget.action!r} does not apply to this stage; "
                    f"choose from {', '.join(allowed)}"
                )
        return self

    def items(self) -> list[tuple[str, float]]:
        """The budgets that are checked, in declaration order, in ms."""
        return [(name, b.ms) for name, b in self._set()]

    def action(self, name: str) -> Action:
        budget = getattr(self, name, None) if self.enabled else None
        return budget.action if isinstance(budget, Budget) else "warn"

    def acting(self, action: Action) -> list[str]:
        """The budgets whose deadline does ``action``."""
        return [name for name, b in self._set() if b.action == action]

    def _set(self) -> list[tuple[str, Budget]]:
        if not self.enabled:
            return []
        return [(n, b) for n in ALLOWED_ACTIONS if isinstance(b := getattr(self, n), Budget)]


#: The tutorial's budgets, all ``warn``: what a config without ``[budgets]`` checks.
DEFAULT_BUDGETS = LatencyBudgets.model_validate(
    {
        "asr_processing": 100,
        "asr_finalization": 300,
        "llm_first_token": 500,
        "llm_token_generation": 20,
        "tts_first_chunk": 200,
        "tts_chunk_generation": 50,
        "time_to_first_audio": 1000,
    }
)

#: The tutorial's demo budgets.
DEMO_BUDGETS = LatencyBudgets.model_validate(
    {
        "asr_processing": 80,
        "llm_first_token": 300,
        "llm_token_generation": 20,
        "tts_first_chunk": 150,
        "time_to_first_audio": 800,
    }
)


class BudgetWatch:
    """The deadlines of one turn. Feed it every stamp the turn takes."""

    def __init__(
        self,
        budgets: LatencyBudgets,
        turn: TurnMetrics,
        clock: SessionClock,
        listeners: list[MissListener] | tuple[MissListener, ...] = (),
    ) -> None:
        self._turn = turn
        self._clock = clock
        self._budgets = budgets
        self._listeners = list(listeners)
        self._results = {name: BudgetResult(name, ms) for name, ms in budgets.items()}
        self._started: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        turn.budgets = list(self._results.values())

    def on_miss(self, listener: MissListener) -> None:
        """Call ``listener(name, turn)`` the moment a deadline passes."""
        self._listeners.append(listener)

    def start(self, stamp: str, at_ms: float) -> None:
        """Stage(s) beginning at ``stamp`` started at ``at_ms``: set their deadlines."""
        for name, (begin, _) in DEADLINES.items():
            result = self._results.get(name)
            if begin != stamp or result is None or result.ok is not None:
                continue
            if self._started.get(name) == at_ms:
                continue
            self._cancel_timer(name)
            self._started[name] = at_ms
            self._timers[name] = self._clock.call_at(at_ms + result.budget_ms, self._fire, name)

    def unstart(self, stamp: str) -> None:
        """``stamp`` turned out not to be final (speech resumed): drop its deadlines."""
        for name, (begin, _) in DEADLINES.items():
            if begin == stamp and name in self._started and self._results[name].ok is None:
                self._cancel_timer(name)
                del self._started[name]

    def stamp(self, stamp: str, at_ms: float) -> None:
        """A stamp was taken: settle the stages it ends, then start the ones it begins."""
        for name, (begin, end) in DEADLINES.items():
            result = self._results.get(name)
            if end != stamp or result is None or result.ok is not None:
                continue
            started = self._started.get(name, self._turn.stamps.get(begin))
            if started is None:
                continue
            self._cancel_timer(name)
            result.actual_ms = at_ms - started
            result.ok = result.actual_ms <= result.budget_ms
        self.start(stamp, at_ms)

    def rate(self, name: str, actual_ms: float) -> None:
        """Judge a rate budget (ms per token / chunk) at the end of its stage."""
        result = self._results.get(name)
        if result is not None:
            result.actual_ms = actual_ms
            result.ok = actual_ms <= result.budget_ms

    def close(self) -> None:
        """The turn is over: cancel timers; a stage that never ended fails if it was late."""
        for name in list(self._timers):
            self._cancel_timer(name)
        for result in self._results.values():
            if result.ok is None and result.missed_at_ms is not None:
                result.ok = False

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        result = self._results[name]
        result.missed_at_ms = self._clock.now_ms()
        result.action = self._budgets.action(name)
        for listener in self._listeners:
            listener(name, self._turn)

    def _cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()


class Enforcer:
    """The policies: what a session does the moment one of its turn's deadlines passes.

    - ``warn``: nothing more than the record (and the "budget" event).
    - ``filler``: say a holding phrase, made at session start (``session.say_filler``).
    - ``fallback``: start the stage's next backend beside the late one (a hedged request).
    - ``retry``: retries happen on errors, while the deadline leaves time; when it passes
      with the stage still running, fall through: the next backend if there is one, else
      ``cancel``.
    - ``cancel``: stop the reply; the session apologises and listens again.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def __call__(self, name: str, turn: Turn) -> None:
        result = turn.metrics.budget(name)
        action = self.session.agent.budgets.action(name)
        if result is None or action == "warn":
            return
        if action == "filler":
            said = self.session.say_filler(turn)
            result.detail = f"said {said!r}" if said else "no filler ready"
            return
        reply = self.session.reply_for(turn)
        if reply is None:
            result.detail = "no reply running"
            return
        if action in ("fallback", "retry"):
            request = reply.llm_request if name == "llm_first_token" else reply.tts_request
            started = request.hedge() if request is not None else None
            if started is not None:
                result.action, result.detail = "fallback", f"started {started} beside"
                return
            if action == "fallback":
                result.detail = "no fallback backend left"
                return
        result.action = "cancel"
        reply.cancel(f"cancelled: {name} passed {result.budget_ms:.0f} ms")
        result.detail = "reply cancelled"
