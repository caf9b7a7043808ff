"""Deepgram's REST API mocked with respx: realistic bodies (``voxpipe_deepgram.testing``'s
payload builders), sent part by part so that streaming shows, closes reported."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import respx

from voxpipe.testing import Failure, ServerControl
from voxpipe_deepgram.testing import HTML_PAGE, error_body, prerecorded_answer

BASE_URL = "https://api.deepgram.com"
LISTEN, SPEAK = f"{BASE_URL}/v1/listen", f"{BASE_URL}/v1/speak"
REQUEST_ID = "7f1c5e2a-9b3d-4c8e-a0f6-3d2b1e4c5a69"


class FakeBody(httpx.AsyncByteStream):
    """A body sent part by part: ``parts[:1]`` at once, then (with a ``control`` that holds)
    ``await control.hold()`` before the rest; ``aclose`` is reported to the control."""

    def __init__(
        self, parts: Sequence[bytes], control: ServerControl | None, *, hold: bool = True
    ) -> None:
        self.parts, self.control, self.hold = list(parts), control, hold
        self.closed = False

    async def __aiter__(self) -> Any:
        for i, part in enumerate(self.parts):
            if i == 1 and self.control is not None and self.hold:
                await self.control.hold()
            await asyncio.sleep(0)
            yield part

    async def aclose(self) -> None:
        self.closed = True
        if self.control is not None:
            self.control.mark_closed()


def pieces(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def pcm(ms: float, rate: int = 24_000) -> bytes:
    """``ms`` of a 220 Hz tone, linear16 at ``rate``."""
    t = np.arange(round(rate * ms / 1000)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()


def answer_json(text: str = "Hello there, how are you?", duration_s: float = 1.5) -> bytes:
    return json.dumps(prerecorded_answer(text, duration_s, REQUEST_ID)).encode()


def route(
    router: respx.Router,
    url: str,
    parts: Sequence[bytes],
    *,
    headers: dict[str, str],
    status: int = 200,
    control: ServerControl | None = None,
    hold: bool = True,
) -> respx.Route:
    """``POST url`` answers ``parts`` (a fresh body each time); an open is reported."""

    def respond(request: httpx.Request) -> httpx.Response:
        if control is not None:
            control.mark_opened()
        body = FakeBody(parts, control, hold=hold)
        return httpx.Response(status, headers={"dg-request-id": REQUEST_ID, **headers}, stream=body)

    return router.post(url).mock(side_effect=respond)


def error(router: respx.Router, url: str, status: int, **headers: str) -> respx.Route:
    body = json.dumps(error_body(status, REQUEST_ID)).encode()
    return route(
        router, url, [body], status=status, headers={"content-type": "application/json", **headers}
    )


def failure(router: respx.Router, url: str, failure: Failure, malformed: bytes) -> respx.Route:
    """``url`` answers ``failure`` as Deepgram (or a server in front of it) would."""
    if failure is Failure.AUTH:
        return error(router, url, 401)
    if failure is Failure.RATE_LIMIT:
        return error(router, url, 429, **{"retry-after": str(Failure.RETRY_AFTER_S)})
    if failure is Failure.SERVER:
        return error(router, url, 503)
    if failure is Failure.WRONG_CONTENT_TYPE:
        return route(
            router,
            url,
            pieces(HTML_PAGE.encode(), 50),
            headers={"content-type": "text/html"},
            hold=False,
        )
    if failure is Failure.TRUNCATED:  # JSON cut before its end / speech without audio
        parts = pieces(answer_json()[:120]) if url == LISTEN else []
        kind = "application/json" if url == LISTEN else "audio/l16"
        return route(router, url, parts, headers={"content-type": kind}, hold=False)
    return route(router, url, [malformed], headers={"content-type": "application/json"}, hold=False)
