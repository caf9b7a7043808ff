"""A stage's request across its backend chain: retried, moved on, hedged.

A reply's LLM request (and its TTS's first phrase) goes to the first backend of the stage's
chain. Until the first output comes:

- a retryable error (429, 5xx, a reset, a stall) is retried with exponential backoff and
  jitter (stamina), honouring ``retry-after``, while the stage's deadline leaves time for
  it, when the stage's budget says ``retry``;
- any other provider error, or a retry that no longer fits, moves on to the next backend of
  the chain at once;
- ``hedge()`` (the deadline passed, budget ``fallback``) starts the next backend beside the
  one running: the first to produce output wins, the others are cancelled and closed.

Once output has come nothing switches: a later error ends the stream with it. An
``AuthError`` (a key to fix) is never moved past. Every request is an ``Attempt``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from typing import Any, Generic, TypeVar

import stamina

from voxpipe.clock import SessionClock
from voxpipe.errors import AuthError, ProviderError, RateLimited
from voxpipe.metrics import Attempt
from voxpipe.streams import Channel

T = TypeVar("T")

#: stamina's backoff between retries: doubling from the first, at most the last, plus up to
#: the jitter (seconds).
BACKOFF_FIRST_S, BACKOFF_MAX_S, BACKOFF_JITTER_S = 0.05, 1.0, 0.05


class StageRequest(Generic[T]):
    """One request of one stage (``"llm"``, ``"tts"``) over ``chain`` (name, backend) pairs.

    ``start(backend)`` opens the backend's stream; ``is_output(item)`` says which item is
    the first output (a text delta, an audio frame). ``deadline_ms`` (session time) bounds
    the retries; ``attempts`` receives every request made.
    """

    def __init__(
        self,
        stage: str,
        chain: Sequence[tuple[str, Any]],
        start: Callable[[Any], AsyncIterator[T]],
        is_output: Callable[[T], bool],
        *,
        clock: SessionClock,
        retry: bool = False,
        deadline_ms: float | None = None,
        attempts: list[Attempt] | None = None,
    ) -> None:
        self.stage, self.chain, self.clock = stage, list(chain), clock
        self._start, self._is_output = start, is_output
        self._retry, self.deadline_ms = retry, deadline_ms
        self.attempts = attempts if attempts is not None else []
        self._next = 0  # the chain's next backend to try
        self._running: dict[int, tuple[Attempt, asyncio.Task[Any]]] = {}
        self._finished: Channel[int] = Channel()
        self._losers: list[asyncio.Task[Any]] = []
        #: The backend whose output is being streamed, once one has answered.
        self.winner: Any = None

    def hedge(self) -> str | None:
        """Start the next backend beside the one running; its name, or None if there is
        none left or output has come already."""
        if self.winner is not None or not self._running or self._next >= len(self.chain):
            return None
        return self._launch()

    async def stream(self) -> AsyncGenerator[T, None]:
        if len(self.chain) == 1 and not self._retry:  # nothing to race: read it directly
            name, backend = self.chain[0]
            attempt, self.winner = self._attempt(name), backend
            try:
                async with aclosing(self._start(backend)) as items:  # type: ignore[type-var]
                    async for item in items:
                        if attempt.first_output_ms is None and self._is_output(item):
                            attempt.first_output_ms = self.clock.now_ms()
                        yield item
            except ProviderError as error:
                attempt.outcome, attempt.error = "failed", describe(error)
                raise
            except (asyncio.CancelledError, GeneratorExit):
                if attempt.first_output_ms is None:
                    attempt.outcome = "cancelled"
                raise
            return
        self._launch()
        try:
            items, head = await self._race()
        finally:
            self._stop_running("cancelled")
        try:
            for item in head:
                yield item
            async with aclosing(items):  # type: ignore[type-var]
                async for item in items:
                    yield item
        finally:
            await asyncio.gather(*self._losers, return_exceptions=True)

    def _attempt(self, name: str) -> Attempt:
        attempt = Attempt(self.stage, name, self.clock.now_ms())
        self.attempts.append(attempt)
        return attempt

    def _launch(self) -> str:
        index = self._next
        self._next += 1
        name, backend = self.chain[index]
        attempt = self._attempt(name)
        task = asyncio.create_task(self._first_output(backend, attempt))
        self._running[index] = (attempt, task)
        task.add_done_callback(lambda _: self._finished.put(index))
        return name

    async def _race(self) -> tuple[AsyncIterator[T], list[T]]:
        """The first attempt to produce output (its stream and the items so far)."""
        async for index in self._finished:
            attempt, task = self._running.pop(index)
            if task.cancelled():
                continue
            error = task.exception()
            if error is None:
                self.winner = self.chain[index][1]
                self._stop_running("lost")
                result: tuple[AsyncIterator[T], list[T]] = task.result()
                return result
            attempt.outcome, attempt.error = "failed", describe(error)
            if isinstance(error, AuthError) or not isinstance(error, ProviderError):
                raise error
            if self._running:
                continue  # a hedge is still in flight
            if self._next < len(self.chain):
                self._launch()
                continue
            raise error
        raise RuntimeError("unreachable: the attempts' channel never closes")  # pragma: no cover

    def _stop_running(self, outcome: str) -> None:
        for attempt, task in self._running.values():
            attempt.outcome = outcome
            task.cancel()
            self._losers.append(task)
        self._running.clear()

    async def _first_output(
        self, backend: Any, attempt: Attempt
    ) -> tuple[AsyncIterator[T], list[T]]:
        """Open ``backend``'s stream and read it up to its first output (retrying as the
        policy allows); returns the open stream and what it yielded so far."""
        if not self._retry:
            return await self._open(backend, attempt)

        def may_retry(error: Exception) -> bool | float:
            how = self._backoff(error, attempt.retries)
            if how is None:
                return False
            attempt.retries += 1
            return how

        async for trial in stamina.retry_context(
            on=may_retry,
            attempts=None,  # the budget's deadline bounds the retries
            timeout=None,
            wait_initial=BACKOFF_FIRST_S,
            wait_max=BACKOFF_MAX_S,
            wait_jitter=BACKOFF_JITTER_S,
        ):
            with trial:
                return await self._open(backend, attempt)
        raise RuntimeError(
            "unreachable: stamina retries until may_retry says no"
        )  # pragma: no cover

    async def _open(self, backend: Any, attempt: Attempt) -> tuple[AsyncIterator[T], list[T]]:
        items = self._start(backend)
        head: list[T] = []
        try:
            async for item in items:
                head.append(item)
                if self._is_output(item):
                    attempt.first_output_ms = self.clock.now_ms()
                    return items, head
        except BaseException:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
            raise
        return items, head  # ended without output: an empty answer is an answer

    def _backoff(self, error: Exception, retries: int) -> bool | float | None:
        """How to retry after ``error``: the provider's ``retry-after`` (seconds), True for
        stamina's own backoff, or None to stop retrying (not retryable, or the deadline
        leaves no time for the wait)."""
        if not isinstance(error, ProviderError) or not error.retryable:
            return None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            wait, longest = error.retry_after, error.retry_after
        else:
            longest = min(BACKOFF_FIRST_S * 2**retries + BACKOFF_JITTER_S, BACKOFF_MAX_S)
            wait = True
        if (
            self.deadline_ms is not None
            and self.clock.now_ms() + longest * 1000 >= self.deadline_ms
        ):
            return None  # no time left in the budget: move on
        return wait


def describe(error: BaseException) -> str:
    """One line: the error's kind and reason."""
    reason = " ".join(str(error).split()) or repr(error)
    return f"{type(error).__name__}: {reason}"
