"""An agent on voxpipe-local's three backends (the ASR simulated), under virtual time."""

from __future__ import annotations

import pytest

from voxpipe import SimSpeechSource, VoiceAgent, load_config


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_conversation_on_the_local_backends() -> None:
    config = load_config(
        {
            "llm": {"backend": "rules", "word_delay_ms": 10},
            "tts": {"backend": "espeak"},
            "vad": {"backend": "webrtcvad"},
        }
    )
    agent = VoiceAgent.from_config(config)
    metrics = await agent.run(SimSpeechSource(["hello there", "what is the weather like"]))
    assert len(metrics.turns) == 2
    for turn in metrics.turns:
        backends = {(a.stage, a.backend, a.outcome) for a in turn.attempts}
        assert {("llm", "rules", "ok"), ("tts", "espeak", "ok")} <= backends
        assert "first_sound" in turn.stamps
