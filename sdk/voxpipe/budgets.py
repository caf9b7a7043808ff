"""Latency budgets, watched as deadlines on the session clock while a turn runs.

A deadline budget covers a stage between two stamps. When the first stamp is taken a timer
is set for ``start + budget``; if it fires while the stage is still running, the budget's
action runs at that moment (today: record a warning; the enforcement layer adds filler,
fallback, cancel). When the second stamp is taken the timer is cancelled and the verdict
recorded. Rate budgets (per token, per audio chunk) are judged when their stage ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from voxpipe.clock import SessionClock
from voxpipe.metrics import BudgetResult, TurnMetrics

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


def _budget(description: str) -> float | None:
    return Field(None, gt=0, le=60_000, description=description)


class LatencyBudgets(BaseModel):
    """Budgets in milliseconds (``[budgets]`` in config); unset budgets are not checked."""

    model_config = ConfigDict(extra="forbid")

    asr_processing: float | None = _budget("speech start -> first partial transcript")
    asr_finalization: float | None = _budget("end of speech -> final transcript")
    llm_first_token: float | None = _budget("LLM request -> first text delta")
    llm_token_generation: float | None = _budget(RATES["llm_token_generation"])
    tts_first_chunk: float | None = _budget("first TTS request -> its first audio")
    tts_chunk_generation: float | None = _budget(RATES["tts_chunk_generation"])
    time_to_first_audio: float | None = _budget("end of speech -> first agent audio played")

    def items(self) -> list[tuple[str, float]]:
        """The budgets that are set, in declaration order."""
        return [(name, v) for name, v in self.model_dump().items() if v is not None]


#: The tutorial's demo budgets.
DEMO_BUDGETS = LatencyBudgets(
    asr_processing=80,
    llm_first_token=300,
    llm_token_generation=20,
    tts_first_chunk=150,
    time_to_first_audio=800,
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
        self._listeners = listeners
        self._results = {name: BudgetResult(name, ms) for name, ms in budgets.items()}
        self._started: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        turn.budgets = list(self._results.values())

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
        result.action = "warn"
        for listener in self._listeners:
            listener(name, self._turn)

    def _cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
