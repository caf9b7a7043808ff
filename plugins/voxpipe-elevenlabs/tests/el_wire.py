"""The mocked ElevenLabs HTTP API: realistic bodies behind respx (httpcore2 mode, so the
backend's own httpx2 client and its production code path are exercised)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import httpx
import numpy as np
import respx

from voxpipe.testing import Failure, ServerControl
from voxpipe_elevenlabs._options import DEFAULT_VOICE

#: A distinctive fake key (ElevenLabs' shape): tests assert it never shows up in errors.
KEY = "sk_0f3c9e2a7b1d4c8e6a5f0b9d8c7e6f5a4b3c2d1e0f9a8b7c"
BASE_URL = "https://api.elevenlabs.io"
STREAM_URL = f"{BASE_URL}/v1/text-to-speech/{DEFAULT_VOICE}/stream"
PCM_HEADERS = {"content-type": "audio/pcm"}


class FakeBody(httpx.AsyncByteStream):
    """A response body sent part by part: the first part at once; with a ``control``,
    ``await control.hold()`` before the rest. ``aclose`` is recorded and reported."""

    def __init__(
        self, parts: Sequence[bytes], control: ServerControl | None = None, hold: bool = True
    ) -> None:
        self.parts, self.control, self.hold = list(parts), control, hold
        self.sent = 0
        self.closed = False
        if control is not None:
            control.mark_opened()

    async def __aiter__(self) -> Any:
        for i, part in enumerate(self.parts):
            if i == 1 and self.control is not None and self.hold:
                await self.control.hold()
            await asyncio.sleep(0)
            self.sent += 1
            yield part

    async def aclose(self) -> None:
        if not self.closed and self.control is not None:
            self.control.mark_closed()
        self.closed = True


def pcm(ms: float, rate: int = 16_000, *, seed: int = 1) -> bytes:
    """``ms`` of s16le mono tone-ish audio at ``rate`` (what output_format=pcm_<rate> is)."""
    n = round(rate * ms / 1000)
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(n)
    return (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def speech_parts(ms: float = 1000, rate: int = 16_000) -> list[bytes]:
    """PCM for ``ms``: the first 200 ms at once, the rest in odd-sized chunks."""
    data = pcm(ms, rate)
    cut = round(rate * 0.2) * 2
    return [data[:cut], *pieces(data[cut:], 3201)]


def detail(status: str, message: str) -> dict[str, Any]:
    """ElevenLabs' error body."""
    return {"detail": {"status": status, "message": message}}


ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "invalid_api_key": (401, detail("invalid_api_key", "Invalid API key")),
    "quota_exceeded": (
        401,
        detail(
            "quota_exceeded",
            "This request exceeds your quota of 10000. You have 12 credits remaining, while "
            "58 credits are required for this request.",
        ),
    ),
    "voice_not_found": (
        400,
        detail("voice_not_found", f"A voice with the voice_id {DEFAULT_VOICE} was not found."),
    ),
    "too_many_concurrent_requests": (
        429,
        detail(
            "too_many_concurrent_requests",
            "Too many concurrent requests. Your current subscription is associated with a "
            "maximum of 2 concurrent requests (running_requests=2).",
        ),
    ),
    "system_busy": (
        429,
        detail("system_busy", "We are currently experiencing heavy traffic. Try again later."),
    ),
    "unprocessable": (
        422,
        {
            "detail": [
                {
                    "loc": ["body", "voice_settings", "stability"],
                    "msg": "Input should be less than or equal to 1",
                    "type": "less_than_equal",
                    "input": 1.5,
                    "ctx": {"le": 1},
                }
            ]
        },
    ),
    "server": (500, detail("internal_server_error", "An internal server error occurred.")),
}
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


class Wire:
    """Routes on a respx router for the stream endpoint; every body it sent is in ``bodies``."""

    def __init__(self, router: respx.Router) -> None:
        self.router = router
        self.bodies: list[FakeBody] = []

    def route(
        self,
        parts: Sequence[bytes],
        *,
        headers: dict[str, str] | None = None,
        control: ServerControl | None = None,
        hold: bool = True,
        url: str = STREAM_URL,
    ) -> respx.Route:
        """``POST url`` answers ``parts`` (a fresh body for every request)."""

        def respond(request: httpx.Request) -> httpx.Response:
            body = FakeBody(parts, control, hold)
            self.bodies.append(body)
            return httpx.Response(200, headers=headers or PCM_HEADERS, stream=body)

        return self.router.post(url__startswith=url).mock(side_effect=respond)

    def error(self, name: str, headers: dict[str, str] | None = None) -> respx.Route:
        status, body = ERRORS[name]
        response = httpx.Response(status, json=body, headers=headers)
        return self.router.post(url__startswith=STREAM_URL).mock(return_value=response)

    def failure(self, failure: Failure) -> respx.Route:
        """The endpoint answers ``failure`` as ElevenLabs (or a server before it) would."""
        if failure is Failure.AUTH:
            return self.error("invalid_api_key")
        if failure is Failure.RATE_LIMIT:
            retry = {"retry-after": str(Failure.RETRY_AFTER_S)}
            return self.error("too_many_concurrent_requests", retry)
        if failure is Failure.SERVER:
            return self.error("server")
        if failure is Failure.TRUNCATED:
            return self.route([], hold=False)
        if failure is Failure.WRONG_CONTENT_TYPE:
            return self.route(pieces(HTML_PAGE, 50), headers={"content-type": "text/html"})
        # MALFORMED: PCM cannot be malformed but for half a sample at its end.
        return self.route([pcm(100)[:-1]], hold=False)


def sent_json(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


async def leftover_tasks() -> set[asyncio.Task[Any]]:
    """Tasks other than this one once the loop has settled (abandoned generators' finalizer
    tasks collected and run out first)."""
    gc.collect()
    for _ in range(20):
        await asyncio.sleep(0)
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[arg-type]


async def cancel_after_first(stream: AsyncIterator[Any]) -> None:
    """Consume ``stream`` in a task and cancel that task once the first item has arrived."""
    first = asyncio.Event()

    async def consume() -> None:
        async with aclosing(stream) as items:  # type: ignore[type-var]
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
