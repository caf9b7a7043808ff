"""``voxpipe bench tail``: what the budget policies do to a slow provider's latency tail.

The LLM's first token is drawn from a lognormal distribution (p50 300 ms, p99 2000 ms, the
shape of a real provider on a bad day); every other stage has a fixed latency. The same
conversations run under three policies for ``llm_first_token`` at 500 ms:

- ``warn``: record the miss and wait for the slow token;
- ``fallback``: start a second LLM (the same distribution, its own draws) at the deadline;
  the first to answer wins;
- ``filler``: say "One moment." at the deadline and wait for the slow token.

Everything runs under virtual time (looptime), so a thousand turns take seconds and the
figures are exact. Time to first audio is the answer's first audio; time to first sound
counts a filler.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict, dataclass
from typing import Any

from voxpipe.agent import VoiceAgent
from voxpipe.io.simspeech import SimSpeechSource
from voxpipe.metrics import percentiles

POLICIES = ("warn", "fallback", "filler")
FIRST_TOKEN = {"p50": 300, "p99": 2000}
DEADLINE_MS = 500.0
SESSIONS = 50
RATE, FRAME_MS = 8000, 100  # a cheaper audio format: the same timings, fewer frames


@dataclass
class PolicyResult:
    policy: str
    turns: int
    first_audio_ms: dict[str, float | int | None]
    first_sound_ms: dict[str, float | int | None]
    fallbacks: int
    fillers: int


def _agent(policy: str, session: int) -> VoiceAgent:
    llm: dict[str, Any] = {
        "backend": "sim",
        "latency": FIRST_TOKEN,
        "tokens_per_second": 50,
        "responses": {"default": "Sure, here is what I found for you."},
        "seed": session,
    }
    if policy == "fallback":
        llm["fallback"] = [{**llm, "seed": 100_000 + session}]
    return VoiceAgent.from_config(
        {
            "agent": {"sample_rate": RATE, "frame_ms": FRAME_MS, "fillers": ["One moment."]},
            "asr": {"backend": "sim", "finalization_ms": 100},
            "llm": llm,
            "tts": {"backend": "sim", "first_chunk_ms": 150, "speed": 8},
            "budgets": {"llm_first_token": {"ms": DEADLINE_MS, "action": policy}},
        }
    )


async def run_policy(policy: str, turns: int) -> PolicyResult:
    """``turns`` turns (over ``SESSIONS`` conversations) under ``policy``."""
    per_session = max(turns // SESSIONS, 1)
    lines = [f"what about number {n}" for n in range(per_session)]
    runs = [
        _agent(policy, i).run(
            SimSpeechSource(lines, sample_rate=RATE, frame_ms=FRAME_MS, pause_ms=1500)
        )
        for i in range(SESSIONS)
    ]
    done = [t for metrics in await asyncio.gather(*runs) for t in metrics.turns]
    audio = [v for t in done if (v := t.latency("time_to_first_audio")) is not None]
    sound = [v for t in done if (v := t.latency("time_to_first_sound")) is not None]
    actions = [b.action for t in done for b in t.budgets if b.name == "llm_first_token"]
    return PolicyResult(
        policy,
        len(done),
        percentiles(audio),
        percentiles(sound),
        actions.count("fallback"),
        sum(1 for t in done for b in t.budgets if b.detail.startswith("said")),
    )


def run_all(turns: int) -> list[PolicyResult]:
    import looptime

    with asyncio.Runner(loop_factory=looptime.new_event_loop) as runner:
        return [runner.run(run_policy(policy, turns)) for policy in POLICIES]


def run_and_report(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    turns = args.turns or 1000
    console = Console(stderr=True)
    with console.status(f"{len(POLICIES)} policies x {turns} turns, virtual time..."):
        results = run_all(turns)
    table = Table(
        title=f"LLM first token lognormal p50 {FIRST_TOKEN['p50']} / p99 {FIRST_TOKEN['p99']} ms,"
        f" llm_first_token budget {DEADLINE_MS:.0f} ms (virtual time)"
    )
    for column in (
        "policy",
        "turns",
        "first audio p50 / p90 / p99 ms",
        "first sound p50 / p99 ms",
        "fallbacks",
        "fillers",
    ):
        table.add_column(column, justify="right")
    for r in results:
        a, s = r.first_audio_ms, r.first_sound_ms
        table.add_row(
            r.policy,
            str(r.turns),
            f"{a['p50']:.0f} / {a['p90']:.0f} / {a['p99']:.0f}",
            f"{s['p50']:.0f} / {s['p99']:.0f}",
            str(r.fallbacks),
            str(r.fillers),
        )
    Console().print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0
