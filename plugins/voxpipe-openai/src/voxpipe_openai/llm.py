"""OpenAILLM: Chat Completions, streamed, as voxpipe LLM events: text deltas as they arrive,
the token usage from the usage chunk, tool calls assembled from their streamed fragments, and
why the reply ended. A stream that ends without its finish reason or ``[DONE]`` was cut, and a
200 that is not an event stream was never a reply: both are errors, never a short reply."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from openai import omit
from openai.types.chat import ChatCompletionAssistantMessageParam, ChatCompletionMessageParam
from pydantic import Field

from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Finish, LLMEvent, Message, TextDelta, ToolCall, Usage
from voxpipe_openai._body import SSE, BodyWatch, content_type, looks_like_sse, read_head
from voxpipe_openai._client import ClientBackend, ConnectionOptions, timeout_ms
from voxpipe_openai._errors import (
    malformed,
    no_events,
    quoted,
    translated,
    truncated,
    wrong_content,
)

_WHAT = "chat completion"
#: The longest reply ``max_tokens`` may ask for (reasoning models count their thinking too).
MAX_TOKENS = 128_000


class OpenAILLMOptions(ConnectionOptions):
    model: str = Field("gpt-4o-mini", min_length=1, description="chat model")
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature")
    max_tokens: int | None = Field(
        None,
        gt=0,
        le=MAX_TOKENS,
        description="longest reply, in tokens (sent as max_completion_tokens to api.openai.com)",
    )
    first_byte_timeout_ms: float = timeout_ms(
        10_000, "longest wait from the request (connecting included) to the first token"
    )
    idle_timeout_ms: float = timeout_ms(5_000, "longest wait between two chunks of the reply")


class OpenAILLM(ClientBackend):
    """``/v1/chat/completions`` with ``stream=True``. Holds no per-call state: one object
    serves any number of concurrent chats."""

    def __init__(self, options: OpenAILLMOptions, context: BackendContext | None = None) -> None:
        super().__init__(options)
        self.options = options

    async def chat(self, messages: Sequence[Message]) -> AsyncIterator[LLMEvent]:
        """``TextDelta`` per content (or refusal) delta, ``Usage`` when the server reports
        it, each ``ToolCall`` once complete (at the finish reason, or at ``[DONE]``), and
        ``Finish`` once, at the first finish reason."""
        opts = self.options
        params = [_message(m) for m in messages]
        # OpenAI itself wants max_completion_tokens (its reasoning models refuse max_tokens);
        # compatible servers know max_tokens.
        limit, official = opts.max_tokens, self._client.base_url.host == "api.openai.com"
        deadline = self._deadline(_WHAT, "first token")
        with translated(_WHAT, self._key):
            stream = await deadline.wait(
                self._client.chat.completions.create(
                    model=opts.model,
                    messages=params,
                    stream=True,
                    stream_options={"include_usage": True},
                    temperature=omit if opts.temperature is None else opts.temperature,
                    max_completion_tokens=omit if limit is None or not official else limit,
                    max_tokens=omit if limit is None or official else limit,
                )
            )
        reply = _Reply()
        async with stream:  # closes the response when done, failed, cancelled or aclose()d
            response = stream.response
            kind = content_type(response.headers)
            if kind and kind != SSE:  # (no content type at all: the events will tell)
                head = await read_head(response.aiter_bytes(), deadline.wait)
                problem = f"the response is {kind}, not an event stream ({SSE})"
                raise wrong_content(_WHAT, problem, head, self._key)
            body = BodyWatch.install(response)
            while True:
                with translated(_WHAT, self._key):
                    try:
                        chunk = await deadline.wait(anext(stream))
                    except StopAsyncIteration:
                        break
                    events = reply.read(chunk)
                if events:  # a role-only first chunk is not the first token
                    deadline.output_came()
                for event in events:
                    yield event
        if reply.finish is None and not body.done:
            if not reply.chunks and body.size and not looks_like_sse(body.head):
                raise wrong_content(_WHAT, no_events(body.size), body.head, self._key)
            raise truncated(
                _WHAT,
                "the stream ended without a finish reason or [DONE] after "
                f"{reply.chunks} chunk{'' if reply.chunks == 1 else 's'} ({quoted(reply.said)})",
            )
        for call in reply.calls.done():  # a server that ended without any finish_reason
            yield call


#: How much of the reply is kept to say what came before a stream was cut.
_SAID_CHARS = 60


class _Reply:
    """What one streamed reply has given so far."""

    def __init__(self) -> None:
        self.calls = _ToolCalls()
        self.chunks = 0
        self.finish: str | None = None
        self.said = ""

    def read(self, chunk: Any) -> list[LLMEvent]:
        """The events of one chunk (its tool-call fragments go to ``calls``); malformed ->
        error. The first finish reason completes the tool calls and gives ``Finish``."""
        self.chunks += 1
        choices = getattr(chunk, "choices", None)
        usage = getattr(chunk, "usage", None)
        if choices is None and usage is not None:
            return [_usage(usage)]
        if not isinstance(choices, list):
            raise malformed(_WHAT, "a chunk without 'choices'")
        events: list[LLMEvent] = []
        for choice in choices:
            delta = getattr(choice, "delta", None)
            # A refusal is what the model says instead of an answer: it is spoken too.
            text = "".join(_text(delta, name) for name in ("content", "refusal"))
            if text:
                events.append(TextDelta(text))
                if len(self.said) < _SAID_CHARS:
                    self.said += text
            fragments = getattr(delta, "tool_calls", None)
            if fragments is not None and not isinstance(fragments, list):
                raise malformed(_WHAT, "delta.tool_calls is not a list")
            for fragment in fragments or ():
                self.calls.add(fragment)
            reason = _text(choice, "finish_reason")
            if reason and self.finish is None:
                self.finish = reason
                events.extend(self.calls.done())
                events.append(Finish(reason))
        if usage is not None:
            events.append(_usage(usage))
        return events


def _text(owner: Any, name: str) -> str:
    """``owner.name`` as text ("" when absent); anything else is malformed."""
    value = getattr(owner, name, None)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise malformed(_WHAT, f"{name} is {type(value).__name__}, not text")
    return value


def _usage(usage: Any) -> Usage:
    counts: list[int] = []
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        count = getattr(usage, name, None)
        if not isinstance(count, int):
            raise malformed(_WHAT, f"usage without an integer {name}")
        counts.append(count)
    return Usage(*counts)


@dataclass(slots=True)
class _Call:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class _ToolCalls:
    """Tool calls streamed as fragments keyed by ``index``: the first carries the call's
    ``id`` and ``function.name``, the later ones append to ``function.arguments``."""

    def __init__(self) -> None:
        self._calls: dict[int, _Call] = {}

    def add(self, fragment: Any) -> None:
        index = getattr(fragment, "index", None)
        if not isinstance(index, int):
            raise malformed(_WHAT, "a tool call fragment without an integer 'index'")
        call = self._calls.setdefault(index, _Call())
        function = getattr(fragment, "function", None)
        call.id = _text(fragment, "id") or call.id
        call.name = _text(function, "name") or call.name
        call.arguments.append(_text(function, "arguments"))

    def done(self) -> list[ToolCall]:
        """The calls assembled so far, in index order; forgets them."""
        calls, self._calls = sorted(self._calls.items()), {}
        for index, call in calls:
            if not call.id or not call.name:
                raise malformed(_WHAT, f"tool call {index} without an id or a function name")
        return [ToolCall(c.id, c.name, "".join(c.arguments)) for _, c in calls]


def _message(message: Message) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "user":
        return {"role": "user", "content": message.content}
    if message.role == "tool":
        if message.tool_call_id is None:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    assistant: ChatCompletionAssistantMessageParam = {
        "role": "assistant",
        "content": message.content,
    }
    if message.tool_calls:
        assistant["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return assistant
