"""TurnMetrics: the one metrics model. Every stamp is session-clock milliseconds.

Time to first audio runs from ``speech_end`` (the user's last voiced audio) to
``playout_start`` (the agent's first audio handed to the sink): what a listener hears.
The stages between them are consecutive stamps, so they add up to it exactly.
When the user interrupts, the stages the interruption cut short are listed in
``cut_short`` and left out of the session's statistics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Timestamp names in the order they happen in a turn (the JSON contract).
TIMESTAMPS = (
    "speech_start",
    "speech_end",
    "asr_first_partial",
    "asr_final",
    "llm_request",
    "llm_first_token",
    "llm_done",
    "tts_request",
    "tts_first_audio",
    "first_sound",
    "playout_start",
    "turn_end",
    "interruption_detected",
    "output_silent",
)

#: Derived latencies: name -> (from stamp, to stamp).
LATENCIES: dict[str, tuple[str, str]] = {
    "asr_finalization": ("speech_end", "asr_final"),
    "llm_ttft": ("llm_request", "llm_first_token"),
    "tts_ttfb": ("tts_request", "tts_first_audio"),
    "time_to_first_audio": ("speech_end", "playout_start"),
    "time_to_first_sound": ("speech_end", "first_sound"),
    "total": ("speech_end", "turn_end"),
}

#: How a turn's reply ended.
OUTCOMES = ("ok", "interrupted", "failed", "cancelled")

#: The stages that tile time to first audio, in order: name -> (from stamp, to stamp).
STAGES: dict[str, tuple[str, str]] = {
    "asr_finalization": ("speech_end", "asr_final"),
    "handoff": ("asr_final", "llm_request"),
    "llm_ttft": ("llm_request", "llm_first_token"),
    "first_phrase": ("llm_first_token", "tts_request"),
    "tts_ttfb": ("tts_request", "tts_first_audio"),
    "playout": ("tts_first_audio", "playout_start"),
}

PERCENTILES = (50, 90, 99)


@dataclass(slots=True)
class BudgetResult:
    """One budget's verdict for one turn."""

    name: str
    budget_ms: float
    actual_ms: float | None = None
    ok: bool | None = None
    #: What happened when the deadline passed: "none" if it did not, else the policy's action.
    action: str = "none"
    #: Session time at which the deadline fired while the stage was still running (and the
    #: action was taken).
    missed_at_ms: float | None = None
    #: What the action did, in words ("fallback to sim", "filler: One moment.").
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "budget_ms": self.budget_ms,
            "actual_ms": _round(self.actual_ms),
            "ok": self.ok,
            "action": self.action,
            "missed_at_ms": _round(self.missed_at_ms),
            "detail": self.detail,
        }


@dataclass(slots=True)
class Attempt:
    """One request a stage made to one backend of its chain."""

    stage: str  # "llm" or "tts"
    backend: str
    start_ms: float
    first_output_ms: float | None = None
    #: "ok", "failed", "lost" (another backend answered first) or "cancelled".
    outcome: str = "ok"
    error: str = ""
    retries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "backend": self.backend,
            "start_ms": _round(self.start_ms),
            "first_output_ms": _round(self.first_output_ms),
            "outcome": self.outcome,
            "error": self.error,
            "retries": self.retries,
        }


@dataclass(slots=True)
class TurnMetrics:
    """Everything measured about one turn."""

    index: int
    user_text: str = ""
    agent_text: str = ""
    #: The user interrupted the reply (and it did not resume): ``heard_text`` is what they
    #: heard of ``agent_text``.
    interrupted: bool = False
    heard_text: str = ""
    #: How the reply ended (``OUTCOMES``), and why when it is not "ok" or "interrupted".
    outcome: str = "ok"
    error: str | None = None
    #: Why the LLM stopped, when it says ("stop", "length", "content_filter"...).
    finish_reason: str | None = None
    stamps: dict[str, float] = field(default_factory=dict)
    #: Latencies and stages the interruption cut short (started, not finished).
    cut_short: list[str] = field(default_factory=list)
    #: Interruptions that brought no words, after which the reply resumed:
    #: ``{"detected_ms", "silent_ms", "resumed_ms"}`` each.
    false_interruptions: list[dict[str, float]] = field(default_factory=list)
    #: Every request to a backend (retries, hedges, fallbacks), in the order started.
    attempts: list[Attempt] = field(default_factory=list)
    budgets: list[BudgetResult] = field(default_factory=list)
    #: When the ASR's endpointer decided the speech had ended, if the ASR says so.
    endpoint_detected: float | None = None
    first_phrase: str = ""
    llm_deltas: int = 0
    phrases: int = 0
    #: Free-form figures from backends (token usage, request ids...), exported as-is.
    extra: dict[str, Any] = field(default_factory=dict)

    def stamp(self, name: str, at_ms: float) -> bool:
        """Record ``name`` at ``at_ms`` unless it was recorded already (first one wins);
        returns whether it was recorded now."""
        if name in self.stamps:
            return False
        self.stamps[name] = at_ms
        return True

    def latency(self, name: str) -> float | None:
        """A derived latency or stage duration in ms, or None if a stamp is missing."""
        start, end = LATENCIES.get(name) or STAGES[name]
        a, b = self.stamps.get(start), self.stamps.get(end)
        return None if a is None or b is None else b - a

    def mark_cut_short(self) -> None:
        """The turn is being interrupted now: every latency and stage that has started and
        not finished is cut short."""
        spans = {**LATENCIES, **STAGES}
        self.cut_short = [
            name for name, (a, b) in spans.items() if a in self.stamps and b not in self.stamps
        ]

    def stages(self) -> dict[str, float | None]:
        """Durations of the stages that tile speech_end -> playout_start."""
        return {name: self.latency(name) for name in STAGES}

    def budget(self, name: str) -> BudgetResult | None:
        return next((b for b in self.budgets if b.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        endpointing = (
            None
            if self.endpoint_detected is None or "speech_end" not in self.stamps
            else self.endpoint_detected - self.stamps["speech_end"]
        )
        return {
            "index": self.index,
            "user_text": self.user_text,
            "agent_text": self.agent_text,
            "interrupted": self.interrupted,
            "heard_text": self.heard_text,
            "outcome": self.outcome,
            "error": self.error,
            "finish_reason": self.finish_reason,
            "timestamps_ms": {name: _round(self.stamps.get(name)) for name in TIMESTAMPS},
            "cut_short": list(self.cut_short),
            "false_interruptions": [
                {k: _round(v) for k, v in f.items()} for f in self.false_interruptions
            ],
            "attempts": [a.to_dict() for a in self.attempts],
            "latency_ms": {name: _round(self.latency(name)) for name in LATENCIES},
            "stages_ms": {name: _round(v) for name, v in self.stages().items()},
            "endpointing_ms": _round(endpointing),
            "first_phrase": self.first_phrase,
            "llm_deltas": self.llm_deltas,
            "phrases": self.phrases,
            "budgets": [b.to_dict() for b in self.budgets],
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TurnMetrics:
        stamps = {k: float(v) for k, v in data.get("timestamps_ms", {}).items() if v is not None}
        endpointing = data.get("endpointing_ms")
        return cls(
            index=int(data["index"]),
            user_text=data.get("user_text", ""),
            agent_text=data.get("agent_text", ""),
            interrupted=bool(data.get("interrupted", False)),
            heard_text=data.get("heard_text", ""),
            outcome=data.get("outcome", "ok"),
            error=data.get("error"),
            finish_reason=data.get("finish_reason"),
            stamps=stamps,
            cut_short=list(data.get("cut_short", [])),
            false_interruptions=[
                {k: float(v) for k, v in f.items() if v is not None}
                for f in data.get("false_interruptions", [])
            ],
            attempts=[Attempt(**a) for a in data.get("attempts", [])],
            budgets=[
                BudgetResult(
                    b["name"],
                    b["budget_ms"],
                    b.get("actual_ms"),
                    b.get("ok"),
                    b.get("action", "none"),
                    b.get("missed_at_ms"),
                    b.get("detail", ""),
                )
                for b in data.get("budgets", [])
            ],
            endpoint_detected=(
                None
                if endpointing is None or "speech_end" not in stamps
                else stamps["speech_end"] + endpointing
            ),
            first_phrase=data.get("first_phrase", ""),
            llm_deltas=data.get("llm_deltas", 0),
            phrases=data.get("phrases", 0),
            extra=data.get("extra", {}),
        )


@dataclass(slots=True)
class SessionMetrics:
    """All turns of one session, with the backends that produced them."""

    backends: dict[str, str] = field(default_factory=dict)
    budgets_ms: dict[str, float] = field(default_factory=dict)
    turns: list[TurnMetrics] = field(default_factory=list)
    #: How the session ended: "completed" (the source ended), "error" (``end_error`` says
    #: which), "cancelled", or from the CLI "interrupted" (SIGINT) / "terminated" (SIGTERM).
    end_reason: str = "completed"
    end_error: str | None = None

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """p50 / p90 / p99 / mean / count of every derived latency and stage over the turns
        (leaving out what an interruption cut short)."""
        out: dict[str, dict[str, float | int | None]] = {}
        for name in (*LATENCIES, *(s for s in STAGES if s not in LATENCIES)):
            values = [
                v
                for t in self.turns
                if name not in t.cut_short and (v := t.latency(name)) is not None
            ]
            out[f"{name}_ms"] = percentiles(values)
        return out

    def outcomes(self) -> dict[str, int]:
        """How many turns ended each way."""
        return {name: sum(t.outcome == name for t in self.turns) for name in OUTCOMES}

    def attempt_latency(self) -> dict[str, dict[str, float | int | None]]:
        """Per ``stage/backend``: time to first output of the attempts that answered (lost,
        cancelled and failed attempts are left out)."""
        values: dict[str, list[float]] = {}
        for turn in self.turns:
            for a in turn.attempts:
                if a.outcome == "ok" and a.first_output_ms is not None:
                    values.setdefault(f"{a.stage}/{a.backend}", []).append(
                        a.first_output_ms - a.start_ms
                    )
        return {key: percentiles(v) for key, v in values.items()}

    def interruptions(self) -> dict[str, int]:
        """How many turns the user interrupted, and how many resumed after a false one."""
        return {
            "interrupted_turns": sum(t.interrupted for t in self.turns),
            "resumed_turns": sum(bool(t.false_interruptions) for t in self.turns),
        }

    def budget_failures(self) -> dict[str, int]:
        """How many turns failed each budget."""
        fails: dict[str, int] = {}
        for turn in self.turns:
            for b in turn.budgets:
                fails.setdefault(b.name, 0)
                fails[b.name] += b.ok is False
        return fails

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": {
                "backends": self.backends,
                "budgets_ms": self.budgets_ms,
                "summary": self.summary(),
                "budget_failures": self.budget_failures(),
                **self.interruptions(),
                "outcomes": self.outcomes(),
                "ended": {"reason": self.end_reason, "error": self.end_error},
                "first_output_ms_by_backend": self.attempt_latency(),
            },
            "turns": [t.to_dict() for t in self.turns],
        }

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionMetrics:
        session = data.get("session", {})
        ended = session.get("ended", {})
        return cls(
            backends=dict(session.get("backends", {})),
            budgets_ms=dict(session.get("budgets_ms", {})),
            turns=[TurnMetrics.from_dict(t) for t in data.get("turns", [])],
            end_reason=ended.get("reason", "completed"),
            end_error=ended.get("error"),
        )


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50 / p90 / p99 (linear interpolation), mean and count; None when there are no values."""
    if not values:
        return {**{f"p{p}": None for p in PERCENTILES}, "mean": None, "count": 0}
    arr = np.asarray(values, dtype=float)
    stats: dict[str, float | int | None] = {
        f"p{p}": _round(float(np.percentile(arr, p))) for p in PERCENTILES
    }
    stats["mean"] = _round(float(arr.mean()))
    stats["count"] = len(values)
    return stats


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
