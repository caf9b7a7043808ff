"""Every test runs with a fake key in the environment and the OpenAI API mocked: respx in
``httpcore2`` mode (registered by pytest-httpx2) intercepts the SDK's own httpx2 client, and
``assert_all_mocked`` turns any request without a route into a failure, never network I/O."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import openai._base_client
import pytest
import pytest_httpx2  # noqa: F401  # registers respx's "httpcore2" mocker
import respx

# The test modules share openai_wire.py; --import-mode=importlib does not put it on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from openai_wire import KEY, Wire

_SDK_ENVIRONMENT = (
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "OPENAI_ADMIN_KEY",
    "OPENAI_CUSTOM_HEADERS",
)


@pytest.fixture(autouse=True)
def openai_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for name in _SDK_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def wire() -> Iterator[Wire]:
    with respx.mock(using="httpcore2", assert_all_mocked=True, assert_all_called=False) as router:
        yield Wire(router)


@pytest.fixture(autouse=True)
def platform_probe_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK probes the platform in a worker thread on a client's first request; virtual
    time cannot wait for a thread, so that request would come a timer step late. Probe inline.
    """

    def inline(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

        return call

    monkeypatch.setattr(openai._base_client, "asyncify", inline)
