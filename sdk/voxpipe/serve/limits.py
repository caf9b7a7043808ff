"""What one ``voxpipe serve`` worker allows: sessions at once, how long, how idle, how bad."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from voxpipe.errors import UsageError


@dataclass(frozen=True, slots=True)
class Limits:
    """A worker's limits; every figure must be positive."""

    #: Sessions (WebSocket connections) at once; more are refused.
    max_sessions: int = 20
    #: Longest session (s), from the connection.
    max_session_s: float = 3_600.0
    #: Longest wait for any message from the client (s).
    idle_timeout_s: float = 30.0
    #: On SIGTERM, how long live sessions may go on before they are closed (s).
    grace_s: float = 30.0
    #: Bad messages in one session before it is closed (1008).
    max_errors: int = 3
    #: Longest audio in one binary message (ms).
    max_message_ms: float = 1_000.0
    #: How far the client's audio may run ahead of real time (ms).
    max_ahead_ms: float = 1_000.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not (value > 0 and math.isfinite(value)):
                raise UsageError(f"serve limits: {field.name} must be positive, got {value!r}.")
