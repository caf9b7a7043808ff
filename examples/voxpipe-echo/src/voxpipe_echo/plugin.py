"""The echo backend and the hook that registers it (entry point ``echo``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from pydantic import BaseModel, ConfigDict, Field

from voxpipe import BackendContext, BackendSpec, Message, hookimpl

#: Written for plugin API 1 (``stream()`` yielding str) on purpose: the core adapts it, and
#: this example proves that v1 plugins keep working.
API_VERSION = 1


class EchoOptions(BaseModel):
    """``[llm]`` options when ``backend = "echo"``; unknown options are config errors."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field("You said:", description="said before the echoed words")
    words_per_second: float = Field(20.0, gt=0, description="how fast the words stream")


class EchoLLM:
    """Streams the prefix, then the last user message word by word."""

    def __init__(self, options: EchoOptions, context: BackendContext) -> None:
        self.options = options

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        heard = next((m.content for m in reversed(messages) if m.role == "user"), "")
        yield self.options.prefix
        for word in heard.split():
            await asyncio.sleep(1 / self.options.words_per_second)
            yield f" {word}"

    async def aclose(self) -> None:
        """Nothing to release: a provider-backed backend closes its client here."""


@hookimpl
def voxpipe_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            "llm",
            "echo",
            EchoLLM,
            EchoOptions,
            API_VERSION,
            description="repeats the user's words",
        )
    ]
