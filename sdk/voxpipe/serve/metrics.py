"""What ``/metrics`` reports (Prometheus text format), in a registry of the app's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from voxpipe.events import BudgetMiss, Interruption
from voxpipe.metrics import TurnMetrics

#: Time to first audio buckets (s): around the budgets voice agents aim for.
TTFA_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)


class ServeMetrics:
    """The worker's counters. ``voxpipe_active_sessions`` is what an autoscaler follows."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.active = Gauge(
            "voxpipe_active_sessions", "Sessions (WebSocket connections) open now", registry=r
        )
        self.ended = Counter(
            "voxpipe_sessions_ended", "Sessions ended, by why", ["reason"], registry=r
        )
        self.refused = Counter(
            "voxpipe_sessions_refused", "Connections refused, by why", ["reason"], registry=r
        )
        self.turns = Counter("voxpipe_turns", "Turns answered, by outcome", ["outcome"], registry=r)
        self.ttfa = Histogram(
            "voxpipe_time_to_first_audio_seconds",
            "End of the user's speech to the agent's first audio sent, per turn not cut short, "
            "by the backends that answered",
            ["asr", "llm", "tts"],
            buckets=TTFA_BUCKETS,
            registry=r,
        )
        self.budget_actions = Counter(
            "voxpipe_budget_actions",
            "Budget deadlines passed, by budget and the action taken",
            ["budget", "action"],
            registry=r,
        )
        self.interruptions = Counter(
            "voxpipe_interruptions",
            "Times the user interrupted the agent (held: no words yet, the reply may resume)",
            ["held"],
            registry=r,
        )
        self.protocol_errors = Counter(
            "voxpipe_protocol_errors", "Bad messages from clients, by code", ["code"], registry=r
        )

    def on_turn(self, turn: TurnMetrics, backends: dict[str, str]) -> None:
        self.turns.labels(turn.outcome).inc()
        ttfa = turn.latency("time_to_first_audio")
        if ttfa is None or "time_to_first_audio" in turn.cut_short:
            return
        answered = {a.stage: a.backend for a in turn.attempts if a.outcome == "ok"}
        names = {kind: answered.get(kind, backends.get(kind, "")) for kind in ("asr", "llm", "tts")}
        self.ttfa.labels(**names).observe(ttfa / 1000.0)

    def on_budget(self, miss: BudgetMiss) -> None:
        result = miss.turn.budget(miss.name)
        self.budget_actions.labels(miss.name, "warn" if result is None else result.action).inc()

    def on_interruption(self, event: Interruption) -> None:
        self.interruptions.labels(str(event.held).lower()).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
