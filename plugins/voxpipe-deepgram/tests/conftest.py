"""Every test runs with a fake key in the environment and no network beyond 127.0.0.1: the
live ASR talks to ``voxpipe_deepgram.testing.FakeDeepgram`` (a real WebSocket server on
127.0.0.1, or in memory under virtual time), the REST backends to respx mocks."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx

# The test modules share dg.py; --import-mode=importlib does not put it on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from dg import KEY


@pytest.fixture(autouse=True)
def deepgram_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPGRAM_API_KEY", KEY)


@pytest.fixture
def wire() -> Iterator[respx.Router]:
    """Deepgram's REST API mocked; a request without a route fails the test."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router
