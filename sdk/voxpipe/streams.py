"""Channels: a producer that must never block hands items to one async consumer.

ASR streams emit events from ``push`` calls and timers, the v1 adapter feeds a v1 ASR's
audio iterator, a reply's generation hands text to its speech stage: each is a
``Channel``. ``put`` never blocks; the consumer iterates with ``async for``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Channel(Generic[T]):
    """An unbounded single-consumer queue that is its own async iterator.

    ``close()`` ends the iteration once everything put has been read; ``fail(exc)`` ends it
    with ``exc`` instead. Items put after the end are dropped (the consumer has gone).
    """

    __slots__ = ("_closed", "_error", "_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        """Items put and not yet read."""
        return len(self._items)

    def put(self, item: T) -> None:
        if self._closed:
            return
        self._items.append(item)
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()

    def keep(self, wanted: Callable[[T], bool]) -> None:
        """Drop the items still waiting for which ``wanted`` is false (a sink's queued audio
        on barge-in)."""
        kept = [item for item in self._items if wanted(item)]
        self._items.clear()
        self._items.extend(kept)

    def fail(self, error: BaseException) -> None:
        if not self._closed:
            self._error = error
        self.close()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
