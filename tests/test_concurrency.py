"""One agent, many conversations at once: each session keeps its own state, history,
metrics and backends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from voxpipe import Line, SimSpeechSource, VoiceAgent

Make = Callable[..., VoiceAgent]
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")


def responses(n: int) -> dict[str, str]:
    return {f"{WORDS[i % 9]}{i:02d}": f"Answer {i} for {WORDS[i % 9]}." for i in range(n)}


@pytest.mark.looptime
async def test_two_sessions_on_one_agent_stay_isolated(make_agent: Make) -> None:
    agent = make_agent(responses=responses(2))
    calm = agent.session(SimSpeechSource(["say alpha00 please"]))
    rude = agent.session(
        SimSpeechSource(["say bravo01 please", Line("no wait", after="answer_start", delay_ms=300)])
    )
    calm_metrics, rude_metrics = await asyncio.gather(calm.run(), rude.run())

    assert [t.agent_text for t in calm_metrics.turns] == ["Answer 0 for alpha."]
    assert not calm_metrics.turns[0].interrupted
    assert [t.interrupted for t in rude_metrics.turns] == [True, False]
    assert [m.content for m in calm.history] == ["say alpha00 please", "Answer 0 for alpha."]
    assert rude.history[0].content == "say bravo01 please" and rude.history[1].interrupted
    assert calm_metrics is not rude_metrics and calm.state == rude.state == "listening"


@pytest.mark.looptime
async def test_fifty_sessions_each_hear_and_answer_their_own_caller(make_agent: Make) -> None:
    n = 50
    agent = make_agent(responses=responses(n))
    keys = list(responses(n))
    sessions = [
        agent.session(SimSpeechSource([f"tell me {key}", f"again {key}"], lead_ms=37 * i))
        for i, key in enumerate(keys)
    ]
    results = await asyncio.gather(*(s.run() for s in sessions))
    for i, (session, metrics) in enumerate(zip(sessions, results, strict=True)):
        expected = responses(n)[keys[i]]
        assert [t.user_text for t in metrics.turns] == [f"tell me {keys[i]}", f"again {keys[i]}"]
        assert [t.agent_text for t in metrics.turns] == [expected, expected]
        assert [t.index for t in metrics.turns] == [1, 2]
        assert len(session.history) == 4
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.looptime
async def test_a_config_agent_builds_backends_per_session() -> None:
    agent = VoiceAgent.from_config({"llm": {"backend": "sim", "first_token_ms": 100}})
    states: list[str] = []
    agent.on("state", lambda change: states.append(change.new))  # hears every session
    first = agent.session(SimSpeechSource(["hello"]))
    second = agent.session(SimSpeechSource(["hello"]))
    await asyncio.gather(first.run(), second.run())
    assert first.llm is not second.llm  # each session built its own
    assert type(first.llm).__name__ == "SimLLM" and first.llm.options.first_token_ms == 100
    assert states.count("speaking") == 2
