"""The wire protocol of ``voxpipe serve`` (README.md, "The wire protocol"): the client's
JSON messages, validated, and the server's JSON events, built from the session's event
payloads.

Binary messages carry audio both ways: PCM16 little-endian mono, the client's at the rate its
``start`` announced, the server's at the output rate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voxpipe.events import BudgetMiss, Interruption, StateChange
from voxpipe.metrics import SessionMetrics, TurnMetrics
from voxpipe.protocols import Transcript

#: Bumped when a change would break a client.
PROTOCOL_VERSION = 1
MIN_RATE, MAX_RATE = 8_000, 48_000


class ProtocolError(Exception):
    """A message the server cannot take; ``code`` names the kind (the error event's code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Start(BaseModel):
    """``{"type": "start", "sample_rate": 48000, "output_sample_rate": 48000}``: the first
    message. ``output_sample_rate`` defaults to ``sample_rate``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["start"]
    sample_rate: int = Field(ge=MIN_RATE, le=MAX_RATE)
    output_sample_rate: int | None = Field(None, ge=MIN_RATE, le=MAX_RATE)

    @property
    def output_rate(self) -> int:
        return self.output_sample_rate or self.sample_rate


@dataclass(frozen=True, slots=True)
class Stop:
    """``{"type": "stop"}``: no more audio; the server ends the session once the agent's
    answer has played."""


def parse(text: str) -> Start | Stop:
    """The client's JSON message, or ``ProtocolError``."""
    try:
        message = json.loads(text)
    except ValueError:
        raise ProtocolError(
            "not_json", "text messages must be JSON objects; audio goes in binary messages"
        ) from None
    if not isinstance(message, dict):
        raise ProtocolError("not_json", "a text message must be a JSON object with a 'type'")
    kind = message.get("type")
    if kind == "stop":
        if len(message) > 1:
            raise ProtocolError("bad_message", "stop takes no other fields")
        return Stop()
    if kind != "start":
        raise ProtocolError("unknown_type", f"unknown message type {kind!r}: use start or stop")
    try:
        return Start.model_validate(message)
    except ValidationError as error:
        rates = {"sample_rate", "output_sample_rate"}
        if all(e["loc"] and e["loc"][0] in rates for e in error.errors()):
            raise ProtocolError(
                "bad_sample_rate",
                f"sample rates must be whole numbers of Hz from {MIN_RATE} to {MAX_RATE}: "
                + _problems(error),
            ) from None
        raise ProtocolError("bad_message", f"invalid start message: {_problems(error)}") from None


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in error.errors()
    )


# --- server events -----------------------------------------------------------------------


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def ready(
    session_id: str, start: Start, session_rate: int, frame_ms: int, backends: dict[str, str]
) -> dict[str, Any]:
    return {
        "type": "ready",
        "protocol": PROTOCOL_VERSION,
        "session_id": session_id,
        "sample_rate": start.sample_rate,
        "output_sample_rate": start.output_rate,
        "session_sample_rate": session_rate,
        "frame_ms": frame_ms,
        "backends": backends,
    }


def state(change: StateChange) -> dict[str, Any]:
    return {"type": "state", "state": str(change.new), "previous": str(change.old), **_at(change)}


def transcript(heard: Transcript) -> dict[str, Any]:
    return {
        "type": "transcript",
        "text": heard.text,
        "final": heard.is_final,
        "confidence": heard.confidence,
    }


def agent_text(text: str, turn: int | None) -> dict[str, Any]:
    return {"type": "agent_text", "text": text, "turn": turn}


def turn(metrics: TurnMetrics) -> dict[str, Any]:
    return {"type": "turn", "metrics": metrics.to_dict()}


def budget(miss: BudgetMiss) -> dict[str, Any]:
    result = miss.turn.budget(miss.name)
    return {
        "type": "budget",
        "name": miss.name,
        "budget_ms": None if result is None else result.budget_ms,
        "action": "warn" if result is None else result.action,
        "detail": "" if result is None else result.detail,
        "turn": miss.turn.index,
        **_at(miss),
    }


def interruption(event: Interruption) -> dict[str, Any]:
    return {
        "type": "interruption",
        "turn": None if event.turn is None else event.turn.index,
        "detected_ms": round(event.detected_ms, 3),
        "silent_ms": round(event.silent_ms, 3),
        "held": event.held,
    }


def clear(at_ms: float) -> dict[str, Any]:
    return {"type": "clear", "at_ms": round(at_ms, 3)}


def error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def shutdown(grace_s: float) -> dict[str, Any]:
    return {
        "type": "shutdown",
        "grace_s": grace_s,
        "message": f"the server is shutting down: the session ends within {grace_s:g} s",
    }


EndReason = Literal[
    "completed", "client_left", "idle_timeout", "max_length", "protocol_errors", "shutdown", "error"
]


def end(reason: EndReason, message: str, metrics: SessionMetrics | None) -> dict[str, Any]:
    return {
        "type": "end",
        "reason": reason,
        "message": message,
        "session": None if metrics is None else metrics.to_dict()["session"],
    }


def _at(event: StateChange | BudgetMiss) -> dict[str, float]:
    return {"at_ms": round(event.at_ms, 3)}
