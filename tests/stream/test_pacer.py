"""The shared timer of paced streams: explicit sequencing with a fake loop clock, and the
engine's schedule kept (lower bounds only) with one timer for many streams."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any

import pytest

from wirelab.framing import FileStarted, StreamDecoder
from wirelab.stream import StreamParams
from wirelab.stream._engine import _FramedStream, run_framed_stream
from wirelab.stream._pacer import TOLERANCE, Pacer
from wirelab.stream._plan import plan_rows
from wirelab.stream._runtime import StreamRuntime


class FakeLoop:
    """The three loop methods a Pacer uses: its clock and timers are the test's; futures
    are the real loop's, so that awaiting them works."""

    def __init__(self, real: asyncio.AbstractEventLoop) -> None:
        self.real = real
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None], asyncio.TimerHandle]] = []

    def time(self) -> float:
        return self.now

    def create_future(self) -> asyncio.Future[Any]:
        return self.real.create_future()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, (), self.real)
        self.timers.append((when, callback, handle))
        return handle

    def armed(self) -> list[float]:
        return [when for when, _, handle in self.timers if not handle.cancelled()]

    def advance_to(self, now: float) -> None:
        """Move the clock and run the armed timers that are due, as a loop would."""
        self.now = now
        for when, callback, handle in list(self.timers):
            if when <= now and not handle.cancelled():
                self.timers.remove((when, callback, handle))
                callback()


def make_pacer() -> tuple[Pacer, FakeLoop]:
    loop = FakeLoop(asyncio.get_running_loop())
    return Pacer(loop), loop  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_waiters_wake_at_their_deadlines_in_order_on_one_timer() -> None:
    pacer, loop = make_pacer()
    futures = {d: pacer.sleep_until(d) for d in (3.0, 1.0, 2.0)}
    same = pacer.sleep_until(2.0)
    assert loop.armed() == [1.0]  # one timer, for the earliest deadline
    loop.advance_to(0.5)
    assert not any(f.done() for f in futures.values())
    loop.advance_to(1.0)
    assert futures[1.0].done() and not futures[2.0].done()
    assert loop.armed() == [2.0]  # re-armed for the next deadline
    loop.advance_to(2.0)
    assert futures[2.0].done() and same.done() and not futures[3.0].done()
    loop.advance_to(3.0)
    assert futures[3.0].done() and len(pacer) == 0 and loop.armed() == []
    assert pacer.timers_armed == 4  # 3.0, then re-armed for 1.0, then 2.0 and 3.0


@pytest.mark.asyncio
async def test_an_earlier_waiter_rearms_the_timer() -> None:
    pacer, loop = make_pacer()
    late = pacer.sleep_until(5.0)
    early = pacer.sleep_until(1.0)
    assert loop.armed() == [1.0]
    loop.advance_to(1.0)
    assert early.done() and not late.done() and loop.armed() == [5.0]


@pytest.mark.asyncio
async def test_waiters_within_the_tolerance_wake_together() -> None:
    pacer, loop = make_pacer()
    first = pacer.sleep_until(1.0)
    near = pacer.sleep_until(1.0 + TOLERANCE / 2)
    far = pacer.sleep_until(1.0 + 2 * TOLERANCE)
    loop.advance_to(1.0)
    assert first.done() and near.done() and not far.done()


@pytest.mark.asyncio
async def test_a_cancelled_waiter_is_dropped_and_the_others_still_wake() -> None:
    pacer, loop = make_pacer()
    gone = pacer.sleep_until(1.0)
    kept = pacer.sleep_until(1.0)
    gone.cancel()
    loop.advance_to(1.0)
    assert gone.cancelled() and kept.done() and len(pacer) == 0


class RecordingBody:
    """A DirectBody that takes every write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def blocked(self) -> bool:
        return False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def write_parts(self, parts: Any, hold_tail: bool = False) -> None:
        self.writes.append(b"".join(parts))

    def flush(self) -> None:
        """Nothing is held back: every write is taken whole."""


@pytest.mark.asyncio
async def test_a_late_paced_file_stays_with_the_timer() -> None:
    # A server behind its schedule: when the timer first fires, every file of the stream
    # is overdue. They go out in that round, from the timer, and the task is woken only
    # for the last one (which ends the response through send), not for the first late one.
    runtime = StreamRuntime()
    params = StreamParams(
        count=5, min_size=64, max_size=256, min_interval=0.5, max_interval=0.5, seed=4
    )

    async def send(message: MutableMapping[str, Any]) -> None:
        raise AssertionError("the timer writes past send")

    stream = _FramedStream(runtime, params, 4, send)
    decoder = StreamDecoder()
    decoder.feed(stream.start_frame())
    pacer, loop = make_pacer()
    body = RecordingBody()
    stream._pacer, stream.direct = pacer, body
    stream._rows = rows = iter(plan_rows(params, 4))
    waiter = stream._ahead(next(rows))
    loop.advance_to(10.0)
    assert len(body.writes) == 4 and runtime.files_ahead == 4
    last, due = waiter.result()
    assert last is not None and last[0] == 4 and not due
    starts = [e for w in body.writes for e in decoder.feed(w) if isinstance(e, FileStarted)]
    assert [e.index for e in starts] == [0, 1, 2, 3]


@pytest.mark.asyncio
async def test_await_returns_at_the_deadline_on_a_real_loop() -> None:
    loop = asyncio.get_running_loop()
    pacer = Pacer(loop)
    deadline = loop.time() + 0.02
    await pacer.sleep_until(deadline)
    assert loop.time() >= deadline - TOLERANCE  # never early (beyond the clock's grain)


@pytest.mark.asyncio
async def test_paced_streams_keep_their_schedule_on_one_shared_timer() -> None:
    # 20 streams of 5 files, 20 ms apart: every file goes out no earlier than its offset
    # after the stream started, and the streams share the runtime's one timer.
    runtime = StreamRuntime()
    loop = asyncio.get_running_loop()
    params = StreamParams(
        count=5, min_size=64, max_size=256, min_interval=0.02, max_interval=0.02, seed=3
    )
    sent: list[tuple[float, list[tuple[float, bytes]]]] = []

    async def one() -> None:
        log: list[tuple[float, bytes]] = []
        sent.append((loop.time(), log))  # no later than the stream's own start

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.body":
                log.append((loop.time(), bytes(message["body"])))

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        await run_framed_stream(runtime, params, 3, [], receive, send)

    await asyncio.gather(*(one() for _ in range(20)))
    for t0, log in sent:
        decoder = StreamDecoder()
        decoder.feed(log[0][1])
        for at, body in log[1:]:
            starts = [e for e in decoder.feed(body) if isinstance(e, FileStarted)]
            for event in starts:
                assert at >= t0 + event.offset - TOLERANCE
        assert len(log) == 1 + 5  # S, then one message a file (the last one with Z)
    assert runtime.files_sent == 100
    assert runtime.pacer().timers_armed < runtime.files_sent
