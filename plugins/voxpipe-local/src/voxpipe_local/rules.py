"""The ``rules`` LLM: a deterministic responder for demos and tests.

The last user message is matched against each intent's patterns (regular expressions,
case-insensitive) in order; the first intent that matches answers, else ``default_reply``. In a
reply ``{time}`` and ``{date}`` become the clock's time ("3:05 PM") and date ("Wednesday 2
December"). The reply is streamed word by word, ``word_delay_ms`` apart, then
``Finish("stop")``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Finish, LLMEvent, Message, TextDelta

MAX_TEXT = 2_000
_WORD = re.compile(r"\s*\S+")


class Intent(BaseModel):
    """One intent: its ``name``, the ``patterns`` that recognise it, its ``reply``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=64)
    patterns: list[str] = Field(min_length=1, max_length=64)
    reply: str = Field(min_length=1, max_length=MAX_TEXT)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not pattern or len(pattern) > 500:
                raise ValueError(f"pattern {pattern!r}: 1 to 500 characters")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {pattern!r} is not a regular expression: {exc}"
                ) from None
        return patterns

    def matches(self, text: str) -> bool:
        return any(re.search(p, text, re.IGNORECASE) for p in self.patterns)


DEFAULT_INTENTS = (
    Intent(
        name="greeting",
        patterns=[r"\b(hello|hi|hey|good (morning|afternoon|evening))\b"],
        reply="Hello! How can I help you today?",
    ),
    Intent(
        name="time",
        patterns=[r"\bwhat time\b", r"\bthe time\b"],
        reply="It is {time}.",
    ),
    Intent(
        name="weather",
        patterns=[r"\b(weather|forecast|rain|sunny)\b"],
        reply="I cannot check the weather offline, but I hope it is pleasant where you are.",
    ),
)
DEFAULT_REPLY = "Sorry, I did not catch that. Could you say it another way?"


class RulesOptions(BaseModel):
    """``[llm]`` options when ``backend = "rules"``; unknown options are config errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    intents: list[Intent] = Field(
        default_factory=lambda: list(DEFAULT_INTENTS),
        max_length=256,
        description="tried in order: [{name, patterns = [regex...], reply}]",
    )
    # Not "fallback": in a backend section that is the core's chain of fallback backends.
    default_reply: str = Field(
        DEFAULT_REPLY, min_length=1, max_length=MAX_TEXT, description="reply when none match"
    )
    word_delay_ms: float = Field(
        0, ge=0, le=1_000, description="pause before each word of the reply"
    )


class RulesLLM:
    """Answers by intent (plugin API v2). ``now`` is the clock ``{time}`` reads (tests)."""

    def __init__(
        self,
        options: RulesOptions | None = None,
        context: BackendContext | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self.options = options or RulesOptions()
        self._now = now

    def intent_for(self, messages: Sequence[Message]) -> Intent | None:
        """The intent that answers the last user message, or None (the default reply)."""
        user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        return next((i for i in self.options.intents if i.matches(user)), None)

    def reply_for(self, messages: Sequence[Message]) -> str:
        """The reply this backend streams for ``messages``, its placeholders filled."""
        intent = self.intent_for(messages)
        reply = intent.reply if intent else self.options.default_reply
        now = self._now()
        hour = now.hour % 12 or 12
        time = f"{hour}:{now.minute:02d} {'AM' if now.hour < 12 else 'PM'}"
        date = f"{now:%A} {now.day} {now:%B}"
        return reply.replace("{time}", time).replace("{date}", date)

    async def chat(self, messages: Sequence[Message]) -> AsyncGenerator[LLMEvent, None]:
        delay = self.options.word_delay_ms / 1000
        for word in _WORD.findall(self.reply_for(messages)):
            await asyncio.sleep(delay)  # also a turn of the loop: a consumer can cancel
            yield TextDelta(word)
        yield Finish("stop")

    async def aclose(self) -> None:
        """Nothing is held across replies."""
