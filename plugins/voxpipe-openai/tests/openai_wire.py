"""Mocked OpenAI HTTP API for the tests: realistic wire payloads behind respx (httpcore2 mode,
so the SDK's own httpx2 client and the production code path are exercised)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from typing import Any

import httpx
import numpy as np
import respx

from voxpipe.testing import Failure, ServerControl

#: A distinctive fake key: tests assert it never shows up in any error text.
KEY = "sk-proj-VOXPIPEtestKEY-4f1c9e2a7b3d5c8e0a6f"
BASE_URL = "https://api.openai.com/v1"


class FakeBody(httpx.AsyncByteStream):
    """A response body sent part by part: ``parts[:hold_after]`` at once; then, if there is a
    ``control``, ``await control.hold()`` before the rest. ``aclose`` is recorded (and reported
    to the control): that is how a test sees the client release the response."""

    def __init__(
        self,
        parts: Sequence[bytes],
        *,
        control: ServerControl | None = None,
        hold_after: int = 1,
        hold: bool = True,
    ) -> None:
        self.parts = list(parts)
        self.control = control
        self.hold_after = hold_after
        self.hold = hold
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> Any:
        for i, part in enumerate(self.parts):
            if i == self.hold_after and self.control is not None and self.hold:
                await self.control.hold()
            await asyncio.sleep(0)
            self.sent += 1
            yield part

    async def aclose(self) -> None:
        self.closed = True
        if self.control is not None:
            self.control.mark_closed()


def pieces(data: bytes, size: int = 7) -> list[bytes]:
    """``data`` cut into ``size``-byte pieces (SSE events and samples split mid-way)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- Chat Completions -----------------------------------------------------------------------


def sse(*events: dict[str, Any] | str, done: bool = True) -> bytes:
    """Server-sent events as OpenAI sends them: ``data: <json>`` + blank line, then [DONE]."""
    lines = [e if isinstance(e, str) else json.dumps(e) for e in events]
    if done:
        lines.append("[DONE]")
    return b"".join(f"data: {line}\n\n".encode() for line in lines)


def chat_chunk(
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    *,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
        "choices": []
        if delta is None
        else [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason},
        ],
    }
    if usage is not None:
        chunk["usage"] = {
            **usage,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
    else:
        chunk["usage"] = None
    return chunk


USAGE = {"prompt_tokens": 19, "completion_tokens": 6, "total_tokens": 25}


def chat_events(words: Sequence[str], usage: dict[str, int] = USAGE) -> list[dict[str, Any]]:
    """A whole streamed reply: role delta, one content delta per word, finish, usage."""
    return [
        chat_chunk({"role": "assistant", "content": "", "refusal": None}),
        *(chat_chunk({"content": w}) for w in words),
        chat_chunk({}, "stop"),
        chat_chunk(None, usage=usage),
    ]


def tool_call_delta(
    index: int, *, id: str | None = None, name: str | None = None, arguments: str = ""
) -> dict[str, Any]:
    """A delta carrying one tool-call fragment: the first of a call has its id and name."""
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if id is not None:
        fragment |= {"id": id, "type": "function"}
        fragment["function"]["name"] = name
    return {"tool_calls": [fragment]}


REPLY = ["Hello", "!", " How", " can", " I", " help", "?"]


def chat_body_parts(words: Sequence[str] = REPLY) -> list[bytes]:
    """A reply whose first part carries the role and first content delta, the rest in
    7-byte pieces."""
    events = chat_events(words)
    head = sse(*events[:2], done=False)
    return [head, *pieces(sse(*events[2:]))]


# --- speech ---------------------------------------------------------------------------------


def pcm_24k(ms: float, *, seed: int = 1) -> bytes:
    """``ms`` of 24 kHz s16le mono tone-ish audio (what response_format="pcm" returns)."""
    n = round(24_000 * ms / 1000)
    t = np.arange(n) / 24_000
    rng = np.random.default_rng(seed)
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(n)
    return (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()


def speech_parts(ms: float = 1000, first_ms: float = 200, size: int = 4801) -> list[bytes]:
    """PCM for ``ms``: the first ``first_ms`` at once, the rest in odd-sized chunks."""
    data = pcm_24k(ms)
    cut = round(24_000 * first_ms / 1000) * 2
    return [data[:cut], *pieces(data[cut:], size)]


# --- transcriptions -------------------------------------------------------------------------


def transcription_events(text: str) -> list[dict[str, Any]]:
    words = text.split(" ")
    deltas = [w if i == 0 else f" {w}" for i, w in enumerate(words)]
    return [
        *({"type": "transcript.text.delta", "delta": d, "logprobs": None} for d in deltas),
        {
            "type": "transcript.text.done",
            "text": text,
            "logprobs": None,
            "usage": {
                "type": "tokens",
                "input_tokens": 27,
                "input_token_details": {"text_tokens": 0, "audio_tokens": 27},
                "output_tokens": len(words) + 1,
                "total_tokens": 28 + len(words),
            },
        },
    ]


def transcription_body(text: str) -> bytes:
    return sse(*transcription_events(text), done=False)


# --- errors ---------------------------------------------------------------------------------


def error_json(status: int) -> dict[str, Any]:
    """OpenAI's ``{"error": {...}}`` body for ``status``."""
    if status == 401:
        return {
            "error": {
                "message": "Incorrect API key provided: sk-proj-********************6a0f. "
                "You can find your API key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
    if status == 429:
        return {
            "error": {
                "message": "Rate limit reached for gpt-4o-mini in organization org-abc on "
                "requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 7s.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
    if status >= 500:
        return {
            "error": {
                "message": "The server had an error while processing your request. Sorry!",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
    return {
        "error": {
            "message": "Invalid value for 'model': 'gpt-nope' does not exist.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


def error_response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        json=error_json(status),
        headers={"x-request-id": "req_0123456789abcdef", **(headers or {})},
    )


# --- the mocked server ----------------------------------------------------------------------

SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8"}
PCM_HEADERS = {"content-type": "audio/pcm"}
HTML_HEADERS = {"content-type": "text/html; charset=utf-8"}
#: What a proxy or a web server answers where the API should be.
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


def truncated(path: str) -> list[bytes]:
    """An answer to ``path`` cut before its end: a reply's first words without a finish
    reason or [DONE], a transcription's deltas without its done event, speech without a
    single byte of audio."""
    if path == "/chat/completions":
        return pieces(sse(*chat_events(["Sure", ", the"])[:3], done=False))
    if path == "/audio/transcriptions":
        return pieces(sse(*transcription_events("Hello there")[:-1], done=False))
    return []


class Wire:
    """Routes on a respx router for the three endpoints; every body it sent is in ``bodies``."""

    def __init__(self, router: respx.Router, base_url: str = BASE_URL) -> None:
        self.router = router
        self.base_url = base_url.rstrip("/")
        self.bodies: list[FakeBody] = []

    def route(
        self,
        path: str,
        parts: Sequence[bytes] | Callable[[], Sequence[bytes]],
        *,
        headers: dict[str, str],
        status: int = 200,
        control: ServerControl | None = None,
        hold: bool = True,
        hold_after: int = 1,
        base_url: str | None = None,
    ) -> respx.Route:
        """``POST base_url + path`` answers ``parts`` (a fresh body for every request)."""

        def respond(request: httpx.Request) -> httpx.Response:
            body = FakeBody(
                parts() if callable(parts) else parts,
                control=control,
                hold=hold,
                hold_after=hold_after,
            )
            self.bodies.append(body)
            return httpx.Response(status, headers=headers, stream=body)

        url = (base_url or self.base_url).rstrip("/") + path
        return self.router.post(url).mock(side_effect=respond)

    def fail(self, path: str, status: int, headers: dict[str, str] | None = None) -> respx.Route:
        url = self.base_url + path
        return self.router.post(url).mock(return_value=error_response(status, headers))

    def failure(self, path: str, failure: Failure, malformed: Sequence[bytes]) -> respx.Route:
        """``path`` answers ``failure`` as OpenAI would (or a server in front of it)."""
        if failure is Failure.AUTH:
            return self.fail(path, 401)
        if failure is Failure.RATE_LIMIT:
            return self.fail(path, 429, {"retry-after": str(Failure.RETRY_AFTER_S)})
        if failure is Failure.SERVER:
            return self.fail(path, 500)
        headers = PCM_HEADERS if path == "/audio/speech" else SSE_HEADERS
        if failure is Failure.TRUNCATED:
            return self.route(path, truncated(path), headers=headers, hold=False)
        if failure is Failure.WRONG_CONTENT_TYPE:
            return self.route(path, pieces(HTML_PAGE, 50), headers=HTML_HEADERS, hold=False)
        if malformed and malformed[0].startswith(b"{"):
            headers = {"content-type": "application/json"}
        return self.route(path, malformed, headers=headers, hold=False)


async def leftover_tasks() -> set[asyncio.Task[Any]]:
    """Tasks other than this one once the loop has settled.

    Abandoning an SDK stream early leaves the SDK's and httpx2's nested async generators to
    the garbage collector, whose asyncio hook closes each in a short-lived task of its own
    (one after the other, innermost last). Collect them now and let them run out first."""
    gc.collect()
    for _ in range(20):
        await asyncio.sleep(0)
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[arg-type]


async def cancel_after_first(stream: AsyncIterator[Any]) -> None:
    """Consume ``stream`` in a task and cancel that task once the first item has arrived."""
    first = asyncio.Event()

    async def consume() -> None:
        async with aclosing(stream) as items:
            async for _ in items:
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return
    raise AssertionError("the consumer finished instead of being cancelled")
