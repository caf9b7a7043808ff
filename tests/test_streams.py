"""pumped(): a producer task's output as a stream."""

from __future__ import annotations

import asyncio

import pytest

from voxpipe.streams import Emit, pumped


@pytest.mark.looptime
async def test_yields_what_the_producer_emits_then_ends() -> None:
    async def produce(emit: Emit[int]) -> None:
        for i in range(3):
            await asyncio.sleep(0.1)
            emit(i)

    assert [i async for i in pumped(produce)] == [0, 1, 2]


@pytest.mark.looptime
async def test_an_emitted_or_raised_error_ends_the_stream_with_it() -> None:
    async def fails_later(emit: Emit[int]) -> None:
        emit(1)
        await asyncio.sleep(1)
        raise ValueError("provider went away")

    got = []
    with pytest.raises(ValueError, match="went away"):
        async for item in pumped(fails_later):
            got.append(item)
    assert got == [1]

    async def emits_error(emit: Emit[int]) -> None:
        emit(RuntimeError("upload failed"))
        await asyncio.sleep(3600)

    with pytest.raises(RuntimeError, match="upload failed"):
        async for _ in pumped(emits_error):
            pass
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.looptime
async def test_closing_the_stream_cancels_the_producer() -> None:
    cleaned = asyncio.Event()

    async def forever(emit: Emit[int]) -> None:
        try:
            while True:
                emit(0)
                await asyncio.sleep(0.02)
        finally:
            cleaned.set()

    stream = pumped(forever)
    assert await anext(stream) == 0
    await stream.aclose()
    assert cleaned.is_set()
    assert asyncio.all_tasks() == {asyncio.current_task()}
