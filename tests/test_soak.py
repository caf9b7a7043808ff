"""A thousand turns against providers that fail 5% of the time in every transient way: no
conversation ends, nothing is left running, and every failed turn says why."""

from __future__ import annotations

import asyncio

import pytest

from voxpipe import SimSpeechSource, VoiceAgent

#: Transient faults (an AuthError ends a session on purpose; see test_policies).
KINDS = ("rate_limit", "server_error", "disconnect", "stall", "malformed")
SESSIONS, TURNS = 50, 20


def agent_for(i: int) -> VoiceAgent:
    """Session ``i``: each stage fails 5% of the time, each in its own way and seed."""

    def faults(stage: int) -> dict[str, object]:
        kind = KINDS[(i + stage) % len(KINDS)]
        return {
            "error_rate": 0.05,
            "fail_with": kind,
            "seed": i * 10 + stage,
            "idle_timeout_ms": 800,
        }

    return VoiceAgent.from_config(
        {
            "agent": {
                "max_consecutive_failures": 100,
                "apology": "Sorry.",
                "sample_rate": 8000,  # fewer samples and frames: the same turns, faster
                "frame_ms": 40,
            },
            "asr": {"backend": "sim", **faults(0)},
            "llm": {
                "backend": "sim",
                "first_token_ms": 200,
                "responses": {"default": "Sure, I can do that."},
                **faults(1),
            },
            "tts": {
                "backend": "sim",
                "first_chunk_ms": 100,
                "speed": 8,
                **faults(2),
                "retry_after_ms": 50,
            },
            "budgets": {"llm_first_token": {"ms": 600, "action": "retry"}},
        }
    )


@pytest.mark.looptime
async def test_a_thousand_turns_with_faults_of_every_kind() -> None:
    lines = [f"question number {n}" for n in range(TURNS)]
    sources = [
        SimSpeechSource(lines, sample_rate=8000, frame_ms=40, pause_ms=1000, max_wait_ms=8000)
        for _ in range(SESSIONS)
    ]
    results = await asyncio.gather(*(agent_for(i).run(s) for i, s in enumerate(sources)))

    turns = [t for metrics in results for t in metrics.turns]
    assert len(turns) >= SESSIONS * TURNS * 0.95  # an ASR fault may cost the line itself
    failed = [t for t in turns if t.outcome == "failed"]
    assert failed and all(t.error for t in failed)
    assert {t.error.split(":")[0] for t in failed} == {"ProviderError", "RateLimited"}
    assert sum(t.outcome == "ok" for t in turns) >= len(turns) * 0.8
    # Retries answered some of the failures the LLM and the TTS met on first try.
    assert any(a.retries and a.outcome == "ok" for t in turns for a in t.attempts)
    assert asyncio.all_tasks() == {asyncio.current_task()}
