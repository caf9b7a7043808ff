"""OpenAILLM: Chat Completions, streamed; text deltas as they arrive, usage from the last chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from openai import omit
from openai.types.chat import ChatCompletionMessageParam
from pydantic import Field

from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Message
from voxpipe_openai._client import ClientBackend, ConnectionOptions
from voxpipe_openai._errors import malformed, translated

_WHAT = "chat completion"
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


class OpenAILLMOptions(ConnectionOptions):
    model: str = Field("gpt-4o-mini", min_length=1, description="chat model")
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature")
    max_tokens: int | None = Field(
        None,
        gt=0,
        description="longest reply, in tokens (sent as max_completion_tokens to api.openai.com)",
    )


class OpenAILLM(ClientBackend):
    """``/v1/chat/completions`` with ``stream=True``: yields content deltas while the model
    writes. After a stream ends, ``last_usage`` holds the token usage it reported
    (``prompt_tokens``, ``completion_tokens``, ``total_tokens``) or ``None``."""

    def __init__(self, options: OpenAILLMOptions, context: BackendContext | None = None) -> None:
        super().__init__(options)
        self.options = options
        self.last_usage: dict[str, int] | None = None
        self.last_finish_reason: str | None = None

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        self.last_usage, self.last_finish_reason = None, None
        opts = self.options
        # OpenAI itself wants max_completion_tokens (its reasoning models refuse max_tokens);
        # compatible servers know max_tokens.
        limit, official = opts.max_tokens, self._client.base_url.host == "api.openai.com"
        with translated(_WHAT, self._key):
            stream = await self._client.chat.completions.create(
                model=opts.model,
                messages=[_message(m) for m in messages],
                stream=True,
                stream_options={"include_usage": True},
                temperature=omit if opts.temperature is None else opts.temperature,
                max_completion_tokens=omit if limit is None or not official else limit,
                max_tokens=omit if limit is None or official else limit,
            )
        async with stream:  # closes the response when done, failed, cancelled or aclose()d
            while True:
                with translated(_WHAT, self._key):
                    try:
                        chunk = await anext(stream)
                    except StopAsyncIteration:
                        break
                    text = self._read(chunk)
                if text:
                    yield text

    def _read(self, chunk: Any) -> str:
        """The text of one chunk; records usage and finish reason; malformed -> error."""
        choices = getattr(chunk, "choices", None)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            counts: dict[str, int] = {}
            for name in _USAGE_FIELDS:
                count = getattr(usage, name, None)
                if not isinstance(count, int):
                    raise malformed(_WHAT, f"usage without an integer {name}")
                counts[name] = count
            self.last_usage = counts
        if choices is None and usage is not None:
            return ""
        if not isinstance(choices, list):
            raise malformed(_WHAT, "a chunk without 'choices'")
        parts: list[str] = []
        for choice in choices:
            delta = getattr(choice, "delta", None)
            for name in ("content", "refusal"):  # a refusal is what the model says instead
                value = getattr(delta, name, None)
                if value is None:
                    continue
                if not isinstance(value, str):
                    raise malformed(_WHAT, f"delta.{name} is {type(value).__name__}, not text")
                parts.append(value)
            reason = getattr(choice, "finish_reason", None)
            if isinstance(reason, str):
                self.last_finish_reason = reason
        return "".join(parts)


def _message(message: Message) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "user":
        return {"role": "user", "content": message.content}
    return {"role": "assistant", "content": message.content}
