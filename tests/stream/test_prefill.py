"""``Prefill``: a stream's keystream made a message ahead on another thread is the same
bytes in the same order, a buffer is reused only when nothing refers to it, and the
thread keeps off the loop's CPU."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import pytest

from wirelab.stream._content import FILL_LIMIT, FILL_MARGIN
from wirelab.stream._keystream import Keystream, keystream
from wirelab.stream._prefill import POOL_SIZE, BufferPool, Prefill, current_cpu, keep_off

T = TypeVar("T")

# Whole messages, a message's remainder, one byte, odd sizes: as a stream asks for them.
SIZES = [FILL_LIMIT, 70_000, 1, FILL_LIMIT - 3, 65_536, 131_071]


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def _buffer_id(view: memoryview | None) -> int:
    """Which buffer ``view`` (a message from :meth:`Prefill.take`) is a part of."""
    assert view is not None
    array = view.obj
    assert isinstance(array, np.ndarray)
    return id(array.base)


def _keystream() -> Keystream:
    made = keystream(5, 1 << 30, large_files=True)
    assert isinstance(made, Keystream)
    return made


@pytest.mark.asyncio
async def test_the_bytes_are_the_keystream_in_order(executor: ThreadPoolExecutor) -> None:
    expected = _keystream().update(bytes(sum(SIZES)))
    prefill = Prefill(executor, _keystream().update_into, BufferPool())
    assert await prefill.take(SIZES[0]) is None  # nothing pending: the caller makes them
    got = bytearray()
    prefill.start(SIZES[0])
    for i, n in enumerate(SIZES):
        view = await prefill.take(n)
        assert view is not None and len(view) == n + FILL_MARGIN
        if i + 1 < len(SIZES):
            prefill.start(SIZES[i + 1])  # made while this one is used, as the engine does
        got += view[:n]
    assert await prefill.take(1) is None  # all taken
    assert bytes(got) == expected


@pytest.mark.asyncio
async def test_a_buffer_is_reused_only_when_no_view_is_left(executor: ThreadPoolExecutor) -> None:
    prefill = Prefill(executor, _keystream().update_into, BufferPool())
    prefill.start(100)
    held = await prefill.take(100)
    prefill.start(100)
    second = await prefill.take(100)
    second_id = _buffer_id(second)
    assert _buffer_id(held) != second_id
    assert second is not None
    tail = second[90:100]  # a slice, as the body holds back the last bytes of a write
    del second
    prefill.start(100)
    third = await prefill.take(100)
    assert _buffer_id(third) != second_id
    del tail, third
    prefill.start(100)
    assert _buffer_id(await prefill.take(100)) == second_id


def test_the_pool_stays_bounded_when_views_are_kept() -> None:
    pool = BufferPool()
    kept = [pool.get()[:10].data for _ in range(POOL_SIZE + 3)]
    assert len({_buffer_id(view) for view in kept}) == POOL_SIZE + 3  # none reused in use
    kept.clear()
    # All free again: the first pooled buffer, every time, and no new one.
    assert len({id(pool.get()) for _ in range(POOL_SIZE * 2)}) == 1


@pytest.mark.asyncio
async def test_streams_share_the_pool(executor: ThreadPoolExecutor) -> None:
    pool = BufferPool(size=2)
    first = Prefill(executor, _keystream().update_into, pool)
    second = Prefill(executor, _keystream().update_into, pool)
    first.start(10)
    freed = _buffer_id(await first.take(10))  # written and dropped by the first stream
    second.start(10)
    assert _buffer_id(await second.take(10)) == freed


@pytest.mark.asyncio
async def test_misuse_is_refused(executor: ThreadPoolExecutor) -> None:
    prefill = Prefill(executor, _keystream().update_into, BufferPool())
    for bad in (0, -1, FILL_LIMIT + 1):
        with pytest.raises(ValueError, match="n must be 1 to"):
            prefill.start(bad)
    prefill.start(10)
    with pytest.raises(RuntimeError, match="already being made"):
        prefill.start(10)
    with pytest.raises(ValueError, match="asked for 11 bytes, 10 are being made"):
        await prefill.take(11)
    assert await prefill.take(10) is not None


@pytest.mark.asyncio
async def test_a_failed_job_raises_in_take(executor: ThreadPoolExecutor) -> None:
    def broken(data: memoryview, out: memoryview) -> int:
        raise OSError("the cipher failed")

    prefill = Prefill(executor, broken, BufferPool())
    prefill.start(10)
    with pytest.raises(OSError, match="the cipher failed"):
        await prefill.take(10)
    assert await prefill.take(10) is None  # nothing left pending


def _in_new_thread(func: Callable[[], T]) -> T:
    results: list[T] = []
    thread = threading.Thread(target=lambda: results.append(func()))
    thread.start()
    thread.join()
    return results[0]


def test_keep_off_leaves_a_thread_its_other_cpus() -> None:
    home = os.sched_getaffinity(0)
    for cpu in sorted(home):

        def moved(cpu: int = cpu) -> set[int]:
            keep_off(cpu)
            return os.sched_getaffinity(0)

        assert _in_new_thread(moved) == ((home - {cpu}) or home)

    def twice() -> set[int]:
        first = min(home)
        keep_off(first)
        keep_off(max(home))  # the loop moved: back to the first CPU too, unless it is the one
        return os.sched_getaffinity(0)

    assert _in_new_thread(twice) == ((home - {max(home)}) or home)

    def unknown() -> set[int]:
        keep_off(-1)
        return os.sched_getaffinity(0)

    assert _in_new_thread(unknown) == home
    assert os.sched_getaffinity(0) == home  # the caller's own thread untouched


@pytest.mark.asyncio
async def test_a_job_keeps_its_thread_off_the_cpu_of_the_loop(
    executor: ThreadPoolExecutor,
) -> None:
    home = os.sched_getaffinity(0)
    executor.submit(int).result()  # the thread exists, with the process's CPUs
    loop_cpu = min(home)
    os.sched_setaffinity(0, {loop_cpu})  # the test's loop, held on one CPU
    try:
        assert current_cpu() == loop_cpu
        prefill = Prefill(executor, _keystream().update_into, BufferPool())
        prefill.start(10)
        assert await prefill.take(10) is not None
        placed = executor.submit(os.sched_getaffinity, 0).result()
    finally:
        os.sched_setaffinity(0, home)
    assert placed == ((home - {loop_cpu}) or home)
