"""Streams whose output is produced by a task of their own.

An ASR must keep consuming audio while its transcripts arrive (a timer, an upload, a socket),
so it cannot produce them from the generator's own body. ``pumped`` runs the producer in a
task and yields what it emits; closing or cancelling the stream cancels the producer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: ``emit(item)`` hands an item to the consumer; ``emit(exception)`` ends the stream with it.
Emit = Callable[[T | Exception], None]

_END = object()


async def pumped(produce: Callable[[Emit[T]], Awaitable[None]]) -> AsyncIterator[T]:
    """Yield what ``produce(emit)`` emits, until it returns (end) or raises (that error)."""
    queue: asyncio.Queue[T | Exception | object] = asyncio.Queue()

    async def run() -> None:
        try:
            await produce(queue.put_nowait)
        except Exception as exc:
            queue.put_nowait(exc)
        else:
            queue.put_nowait(_END)

    task = asyncio.create_task(run())
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            yield item  # type: ignore[misc]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
