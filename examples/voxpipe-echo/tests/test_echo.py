"""The echo backend (plugin API v1: ``stream()`` of str) passes voxpipe's conformance kit
through the core's v1 adapter, and answers a whole conversation."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from voxpipe import SimSpeechSource, VoiceAgent, load_config
from voxpipe.hookspecs import BackendContext
from voxpipe.testing import Failure, LLMContract, ServerControl
from voxpipe_echo.plugin import EchoLLM, EchoOptions


class TestEchoLLM(LLMContract):
    backend_name = "echo"
    distribution = "voxpipe-echo"
    failures: ClassVar[tuple[Failure, ...]] = ()  # no provider, nothing to fail
    transport_closes = False  # no connection to close
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"words_per_second": 0}, "words_per_second"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> EchoLLM:
        return EchoLLM(EchoOptions(), context)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_echo_answers_in_a_conversation() -> None:
    agent = VoiceAgent.from_config(load_config({"llm": {"backend": "echo"}}))
    metrics = await agent.run(SimSpeechSource(["hello there"]))
    assert metrics.turns[0].agent_text == "You said: hello there"


def test_echo_is_a_plugin_api_v1_backend_adapted_by_the_core() -> None:
    from voxpipe import Registry
    from voxpipe.compat import V1LLM, as_v2

    assert Registry().get("llm", "echo").api_version == 1
    assert isinstance(as_v2("llm", EchoLLM(EchoOptions(), BackendContext())), V1LLM)
