"""Channel: a producer that never blocks, one async consumer."""

from __future__ import annotations

import asyncio

import pytest

from voxpipe.streams import Channel


@pytest.mark.looptime
async def test_yields_what_was_put_in_order_then_ends_when_closed() -> None:
    channel: Channel[int] = Channel()

    async def produce() -> None:
        for i in range(3):
            await asyncio.sleep(0.1)
            channel.put(i)
        channel.close()

    task = asyncio.create_task(produce())
    assert [i async for i in channel] == [0, 1, 2]
    await task


@pytest.mark.looptime
async def test_a_failure_ends_the_stream_with_it_after_what_came_before() -> None:
    channel: Channel[int] = Channel()
    channel.put(1)
    channel.fail(RuntimeError("upload failed"))
    channel.put(2)  # after the end: dropped
    got = []
    with pytest.raises(RuntimeError, match="upload failed"):
        async for item in channel:
            got.append(item)
    assert got == [1]


@pytest.mark.looptime
async def test_a_cancelled_consumer_leaves_the_channel_usable() -> None:
    channel: Channel[str] = Channel()
    waiting = asyncio.create_task(anext(channel))
    await asyncio.sleep(1)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    channel.put("later")
    assert await anext(channel) == "later"
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_keep_drops_the_waiting_items_not_wanted_in_order() -> None:
    channel: Channel[int | str] = Channel()
    for item in (1, "a", 2, "b"):
        channel.put(item)
    channel.keep(lambda item: isinstance(item, str))
    channel.put(3)
    channel.close()
    assert [item async for item in channel] == ["a", "b", 3]


async def test_len_counts_the_items_waiting_to_be_read() -> None:
    channel: Channel[int] = Channel()
    assert len(channel) == 0
    channel.put(1)
    channel.put(2)
    assert len(channel) == 2
    assert await anext(channel) == 1
    assert len(channel) == 1
    channel.keep(lambda _: False)
    assert len(channel) == 0
