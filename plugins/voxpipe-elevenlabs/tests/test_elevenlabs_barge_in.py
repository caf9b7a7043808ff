"""A whole conversation through the orchestrator with the stream-input backend against the
fake server (under virtual time): the user talks over the answer, and the history keeps
exactly the words whose characters had played, as the server's alignment says."""

from __future__ import annotations

import pytest

from voxpipe import Line, Message, SimSpeechSource, TurnSettings, VoiceAgent
from voxpipe.sim import SimASR, SimASROptions, SimLLM, SimLLMOptions
from voxpipe.speech import whole_words
from voxpipe_elevenlabs import ElevenLabsStreamOptions, ElevenLabsStreamTTS
from voxpipe_elevenlabs.testing import FakeElevenLabs

REPLY = "The weather is sunny with a temperature of 72 degrees. Anything else?"


@pytest.mark.looptime
async def test_an_interrupted_reply_keeps_the_characters_played(server: FakeElevenLabs) -> None:
    tts = ElevenLabsStreamTTS(ElevenLabsStreamOptions(base_url=server.ws_url))
    agent = VoiceAgent(
        SimASR(SimASROptions(finalization_ms=100)),
        SimLLM(
            SimLLMOptions(first_token_ms=300, tokens_per_second=50, responses={"default": REPLY})
        ),
        tts,
        turns=TurnSettings(endpoint_ms=200),
    )
    source = SimSpeechSource(
        ["What's the weather like?", Line("wait stop please", after="answer_start", delay_ms=1500)]
    )
    session = agent.session(source)
    metrics = await session.run()
    await tts.aclose()

    first = metrics.turns[0]
    assert first.interrupted and first.agent_text == REPLY
    played_ms = first.stamps["output_silent"] - first.stamps["playout_start"]
    # What the server said each character's audio was, on the reply's audio time.
    timings = server.sockets[0].alignment
    spoken = "".join(char for char, _, _ in timings)
    done = sum(1 for _, _, end in timings if end <= played_ms)
    heard = whole_words(spoken, done)
    assert heard == "The weather is sunny with a"  # 27 characters of 65 ms in ~1810 ms
    assert first.heard_text == heard
    # In the history before the user's next words: the cut reply ended at once.
    assert session.history[:3] == [
        Message("user", "What's the weather like?"),
        Message("assistant", heard, interrupted=True),
        Message("user", "wait stop please"),
    ]
    assert len(server.sockets) == 2  # a socket per reply
    await server.all_closed()
