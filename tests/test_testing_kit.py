"""The conformance kit fails backends that misbehave, not just passes good ones."""

from __future__ import annotations

import pytest

FAKE_PROVIDER = '''
import asyncio
from voxpipe.errors import ProviderError, RateLimited, AuthError
from voxpipe.testing import Failure, LLMContract, ServerControl

class FakeConnection:
    """A provider connection: sends two words, holds, then the rest; notes its closing."""
    def __init__(self, control, failure=None):
        self.control, self.failure = control, failure

    async def chunks(self):
        try:
            if self.failure is Failure.AUTH:
                raise AuthError("check FAKE_API_KEY", provider="fake", env_var="FAKE_API_KEY")
            if self.failure is Failure.RATE_LIMIT:
                raise RateLimited("slow down", provider="fake", retry_after=7)
            if self.failure is Failure.SERVER:
                raise ProviderError("fake: 500", provider="fake", retryable=True)
            if self.failure is Failure.MALFORMED:
                raise ProviderError("fake sent a payload without 'choices'", provider="fake")
            yield "Hello"
            yield " there"
            await self.control.hold()
            yield "."
        finally:
            self.control.mark_closed()

class Backend:
    def __init__(self, connection):
        self.connection = connection
    async def aclose(self):
        pass
'''

GOOD = (
    FAKE_PROVIDER
    + """
class StreamingLLM(Backend):
    async def stream(self, messages):
        async for chunk in self.connection.chunks():
            yield chunk

class TestGood(LLMContract):
    backend_name = "sim"
    distribution = "voxpipe"
    def make_backend(self, control, context):
        return StreamingLLM(FakeConnection(control))
    def make_failing_backend(self, failure, context):
        return StreamingLLM(FakeConnection(ServerControl(), failure))
"""
)

BUFFERING = (
    GOOD
    + """
class BufferingLLM(Backend):
    async def stream(self, messages):
        whole = [chunk async for chunk in self.connection.chunks()]
        for chunk in whole:
            yield chunk

class TestBuffering(TestGood):
    def make_backend(self, control, context):
        return BufferingLLM(FakeConnection(control))
"""
)

LEAKY = (
    GOOD
    + """
class LeakyLLM(Backend):
    open_responses = []
    async def stream(self, messages):
        chunks = self.connection.chunks()   # kept in a pool, never closed on an early stop
        self.open_responses.append(chunks)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            yield chunk

class TestLeaky(TestGood):
    def make_backend(self, control, context):
        return LeakyLLM(FakeConnection(control))
"""
)

WRONG_ERRORS = (
    GOOD
    + """
class KeyErrorLLM(Backend):
    async def stream(self, messages):
        raise KeyError("choices")
        yield ""

class TestWrongErrors(TestGood):
    def make_failing_backend(self, failure, context):
        return KeyErrorLLM(None)
"""
)


def run(pytester: pytest.Pytester, source: str, selector: str) -> pytest.RunResult:
    pytester.makepyfile(test_plugin=source)
    return pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-k", selector)


def test_a_well_behaved_backend_passes(pytester: pytest.Pytester) -> None:
    result = run(pytester, GOOD, "TestGood and not plugins")
    result.assert_outcomes(passed=11, skipped=1)  # no key: the missing-key check is skipped


def test_a_backend_that_buffers_the_response_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, BUFFERING, "TestBuffering and first_output")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*waits for the whole response instead of streaming it*"])


def test_a_backend_that_leaves_the_connection_open_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, LEAKY, "TestLeaky and stopping_mid_stream and aclose")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*left open after the stream ended early*"])


def test_a_backend_leaking_provider_exceptions_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, WRONG_ERRORS, "TestWrongErrors and provider_errors")
    result.assert_outcomes(failed=4)
