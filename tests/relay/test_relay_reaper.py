"""The relay's background blob deleter (``_reaper``): batching, flushing, failures.
In-process, sequenced by events (no sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from wirelab.relay._reaper import BATCH, Reaper


class Deleter:
    """Records each batch; the first call waits for ``release`` (a batch in flight)."""

    def __init__(self, *, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = fail

    async def __call__(self, keys: Sequence[str]) -> None:
        self.batches.append(list(keys))
        self.started.set()
        await self.release.wait()
        if self.fail:
            raise OSError("the store is down")


@pytest.mark.asyncio
async def test_keys_queued_while_a_batch_is_in_flight_go_in_one_batch() -> None:
    deleter = Deleter()
    reaper = Reaper(deleter)
    reaper.schedule("a")
    await deleter.started.wait()  # "a" alone: a lone key is deleted at once
    for key in ("b", "c", "d"):
        reaper.schedule(key)
    assert reaper.pending == 4
    deleter.release.set()
    await reaper.flush()
    assert deleter.batches == [["a"], ["b", "c", "d"]]
    assert reaper.pending == 0
    reaper.schedule("e")  # the drain task starts again
    await reaper.flush()
    assert deleter.batches[-1] == ["e"]


@pytest.mark.asyncio
async def test_batches_are_bounded() -> None:
    deleter = Deleter()
    deleter.release.set()
    reaper = Reaper(deleter)
    keys = [f"k{i}" for i in range(BATCH * 2 + 1)]
    for key in keys:
        reaper.schedule(key)
    await reaper.flush()
    assert [len(batch) for batch in deleter.batches] == [BATCH, BATCH, 1]
    assert [key for batch in deleter.batches for key in batch] == keys


@pytest.mark.asyncio
async def test_a_failed_batch_is_logged_and_the_next_ones_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deleter = Deleter(fail=True)
    reaper = Reaper(deleter)
    reaper.schedule("a")
    await deleter.started.wait()
    reaper.schedule("b")
    deleter.release.set()
    await reaper.flush()
    assert deleter.batches == [["a"], ["b"]]
    assert "cannot delete 1 relay blob(s), e.g. a" in caplog.text


@pytest.mark.asyncio
async def test_cancelling_a_flush_does_not_cancel_the_deletion() -> None:
    deleter = Deleter()
    reaper = Reaper(deleter)
    reaper.schedule("a")
    await deleter.started.wait()
    waiter = asyncio.create_task(reaper.flush())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    deleter.release.set()
    await reaper.flush()
    assert deleter.batches == [["a"]]
    assert reaper.pending == 0
