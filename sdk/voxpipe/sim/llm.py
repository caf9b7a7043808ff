"""SimLLM: keyword replies streamed word by word at a set first-token delay and token rate,
then the usage (one token per word); faults injected as its options say."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence

from pydantic import Field

from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Finish, LLMEvent, Message, TextDelta, Usage
from voxpipe.sim.faults import MAX_DELAY_MS, MAX_RATE, MIN_RATE, FaultOptions, Faults

DEFAULT_RESPONSES = {
    "hello": "Hello! I'm doing great, thanks for asking. How can I help you today?",
    "weather": "The weather is sunny with a temperature of 72 degrees. Anything else?",
    "time": "It's a quarter past three in the afternoon. Is there anything else you need?",
    "default": "I understand. Could you tell me a little more about that?",
}
_TOKEN = re.compile(r"\s*\S+")


class SimLLMOptions(FaultOptions):
    first_token_ms: float = Field(
        250, ge=0, le=MAX_DELAY_MS, description="delay before the first text delta"
    )
    tokens_per_second: float = Field(
        60, ge=MIN_RATE, le=MAX_RATE, description="words per second after it"
    )
    responses: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_RESPONSES),
        description="keyword -> reply; the first keyword found in the user's words wins; "
        "'default' answers everything else",
    )


class SimLLM:
    """Answers the last user message by keyword, one word (with its leading space) per delta."""

    def __init__(
        self, options: SimLLMOptions | None = None, context: BackendContext | None = None
    ) -> None:
        self.options = options or SimLLMOptions()
        self._faults = Faults(self.options, "llm")

    def reply_for(self, messages: Sequence[Message]) -> str:
        """The reply this backend will stream for ``messages``."""
        user = next((m.content for m in reversed(messages) if m.role == "user"), "").lower()
        responses = self.options.responses
        for keyword, reply in responses.items():
            if keyword != "default" and keyword.lower() in user:
                return reply
        return responses.get("default", DEFAULT_RESPONSES["default"])

    def chat(self, messages: Sequence[Message]) -> AsyncGenerator[LLMEvent, None]:
        first_ms = self._faults.first_output_ms(self.options.first_token_ms)
        return self._faults.inject(self._chat(messages, first_ms / 1000.0), TextDelta)

    async def _chat(
        self, messages: Sequence[Message], first: float
    ) -> AsyncGenerator[LLMEvent, None]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        interval = 1.0 / self.options.tokens_per_second
        tokens = _TOKEN.findall(self.reply_for(messages))
        for i, token in enumerate(tokens):
            # Absolute deadlines: pacing does not drift with scheduling delays.
            await asyncio.sleep(max(start + first + i * interval - loop.time(), 0))
            yield TextDelta(token)
        prompt = sum(len(m.content.split()) for m in messages)
        yield Usage(prompt, len(tokens), prompt + len(tokens))
        yield Finish("stop")

    async def aclose(self) -> None:
        return None
