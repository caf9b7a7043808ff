"""Every test runs with a fake key in the environment. ``wire`` mocks the HTTP API with respx
(httpcore2 mode, registered by pytest-httpx2: httpx2's own transport is intercepted and a
request without a route fails instead of reaching a network); ``server`` is the fake
ElevenLabs (``voxpipe_elevenlabs.testing``) on 127.0.0.1 in the test's own event loop."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import pytest_httpx2  # noqa: F401  # registers respx's "httpcore2" mocker
import respx

# The test modules share el_wire.py; --import-mode=importlib does not put it on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from el_wire import KEY, Wire

from voxpipe_elevenlabs.testing import FakeElevenLabs


@pytest.fixture(autouse=True)
def elevenlabs_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)


@pytest.fixture
def wire() -> Iterator[Wire]:
    with respx.mock(using="httpcore2", assert_all_mocked=True, assert_all_called=False) as router:
        yield Wire(router)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeElevenLabs]:
    async with FakeElevenLabs(key=KEY) as fake:
        yield fake
