"""The rules LLM: the conformance kit, intents from config, the clock, word pacing."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import datetime
from typing import Any, ClassVar

import pytest

from voxpipe import SimSpeechSource, VoiceAgent, load_config
from voxpipe.errors import ConfigError
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Finish, Message, TextDelta
from voxpipe.testing import LLMContract, ServerControl
from voxpipe_local.rules import RulesLLM, RulesOptions


class TestRulesLLM(LLMContract):
    backend_name = "rules"
    distribution = "voxpipe-local"
    failures = ()  # no provider: nothing to fail but the options, checked at load time
    transport_closes = False
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"word_delay_ms": -1}, "word_delay_ms"),
        ({"word_delay_ms": float("inf")}, "word_delay_ms"),
        ({"default_reply": ""}, "default_reply"),
    ]

    def make_backend(self, control: ServerControl, context: BackendContext) -> RulesLLM:
        return RulesLLM(RulesOptions(word_delay_ms=5), context)


def user(text: str) -> list[Message]:
    return [Message("system", "Be brief."), Message("user", text)]


async def reply(llm: RulesLLM, text: str) -> tuple[str, list[Any]]:
    events = [event async for event in llm.chat(user(text))]
    return "".join(e.text for e in events if type(e) is TextDelta), events


AT_15_05 = datetime(2026, 12, 2, 15, 5)


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("Hello there", "Hello! How can I help you today?"),
        ("what TIME is it?", "It is 3:05 PM."),
        ("will it rain tomorrow", "I cannot check the weather offline"),
        ("tell me a story", "Sorry, I did not catch that."),
    ],
)
async def test_default_intents(said: str, expected: str) -> None:
    text, events = await reply(RulesLLM(now=lambda: AT_15_05), said)
    assert text.startswith(expected)
    assert events[-1] == Finish("stop")
    assert all(type(e) is TextDelta for e in events[:-1]) and len(events) > 2


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_real_clock_is_read_by_default() -> None:
    before = datetime.now().astimezone()
    text, _ = await reply(RulesLLM(), "what time is it")
    hour = before.hour % 12 or 12
    assert text.startswith(f"It is {hour}:") or before.minute == 59  # the hour may turn


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_intents_from_toml_are_tried_in_order_and_fill_placeholders() -> None:
    config = load_config(
        tomllib.loads(
            """
        [llm]
        backend = "rules"
        default_reply = "No idea."
        intents = [
          {name = "order", patterns = ['\\border (\\d+)\\b', "parcel"], reply = "On its way."},
          {name = "day", patterns = ["today"], reply = "Today is {date}, {time}."},
        ]
        """
        )
    )
    options = RulesOptions.model_validate(config.llm.options)
    llm = RulesLLM(options, now=lambda: datetime(2026, 12, 2, 9, 30))
    assert (await reply(llm, "where is my parcel today"))[0] == "On its way."
    assert (await reply(llm, "what is it today"))[0] == "Today is Wednesday 2 December, 9:30 AM."
    assert (await reply(llm, "hello"))[0] == "No idea."  # the defaults are replaced
    assert llm.intent_for(user("ORDER 42 please")) is options.intents[0]


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        ({"patterns": ["a("]}, r"patterns: .*'a\(' is not a regular expression"),
        ({"patterns": []}, "patterns: "),
        ({"why": 1}, "why"),
        ({"reply": ""}, "reply: "),
    ],
)
def test_a_bad_intent_is_a_config_error_naming_it(intent: dict[str, Any], expected: str) -> None:
    given = {"name": "x", "patterns": ["a"], "reply": "r", **intent}
    with pytest.raises(ConfigError, match=r"\[llm\.intents\[0\]\] " + expected):
        load_config({"llm": {"backend": "rules", "intents": [given]}})


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_words_are_paced_by_word_delay_ms() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    times = []
    async for _ in RulesLLM(RulesOptions(word_delay_ms=40)).chat(user("hi")):
        times.append(round((loop.time() - start) * 1000))
    # "Hello! How can I help you today?": 7 words, each after 40 ms; Finish at once.
    assert times == [40, 80, 120, 160, 200, 240, 280, 280]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_rules_answers_in_a_conversation() -> None:
    agent = VoiceAgent.from_config(load_config({"llm": {"backend": "rules"}}))
    metrics = await agent.run(SimSpeechSource(["hello there"]))
    (turn,) = metrics.turns
    assert [(a.backend, a.outcome) for a in turn.attempts if a.stage == "llm"] == [("rules", "ok")]
    assert "first_sound" in turn.stamps
