"""The shared head-timeout timer of a loop's connections (``_http_guard._HeadDeadlines``):
each waiting connection times out once, at its deadline, and only if still waiting."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from wirelab.server._http_guard import DEADLINE_SPACING, DEADLINE_TOLERANCE, _HeadDeadlines


class _Waiter:
    """Stands for a protocol: records when its head timed out."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fired: list[tuple[str, float]], name: str):
        self.loop, self.fired, self.name = loop, fired, name
        self.cell: list[object] = [self]

    def _head_timed_out(self) -> None:
        self.fired.append((self.name, self.loop.time()))


async def _run(spec: list[tuple[str, float, bool]], head_timeout: float) -> list[tuple[str, float]]:
    """Add waiters ``(name, delay before adding, cancel right after)``; wait them out;
    return (name, lateness) of each that fired."""
    loop = asyncio.get_running_loop()
    deadlines = _HeadDeadlines(loop, head_timeout)
    fired: list[tuple[str, float]] = []
    due = {}
    for name, delay, cancel in spec:
        await asyncio.sleep(delay)
        waiter = _Waiter(loop, fired, name)
        due[name] = loop.time() + head_timeout
        deadlines.add(waiter.cell)
        if cancel:
            waiter.cell[0] = None
    await asyncio.sleep(head_timeout + 0.2)
    assert len(deadlines) == 0
    return [(name, at - due[name]) for name, at in fired]


def test_each_waiter_fires_once_at_its_deadline_in_order() -> None:
    spec = [
        ("a", 0, False),
        ("b", 0.03, False),
        ("x", 0, True),
        ("c", 0, False),
        ("d", 0.05, False),
    ]
    fired = asyncio.run(_run(spec, head_timeout=0.1))
    assert [name for name, _ in fired] == ["a", "b", "c", "d"]
    for name, lateness in fired:
        assert -DEADLINE_TOLERANCE - 0.001 <= lateness < DEADLINE_SPACING + 0.5, name


def test_a_cancelled_wait_never_fires_and_keeps_nothing_alive() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        deadlines = _HeadDeadlines(loop, 0.05)
        fired: list[tuple[str, float]] = []
        gone = _Waiter(loop, fired, "gone")
        ref = weakref.ref(gone)
        deadlines.add(gone.cell)
        gone.cell[0] = None  # its head arrived
        del gone
        gc.collect()
        assert ref() is None and len(deadlines) == 1  # the entry waits, empty
        kept = _Waiter(loop, fired, "kept")
        deadlines.add(kept.cell)
        await asyncio.sleep(0.25)
        return fired

    assert [name for name, _ in asyncio.run(main())] == ["kept"]


def test_a_burst_arms_few_loop_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    """500 connections within ~50 ms: one loop timer at a time, re-armed at most every
    DEADLINE_SPACING, not one per connection."""
    fires = 0
    fire = _HeadDeadlines._fire

    def counted(self: _HeadDeadlines) -> None:
        nonlocal fires
        fires += 1
        fire(self)

    monkeypatch.setattr(_HeadDeadlines, "_fire", counted)
    spec = [(str(i), 0.001 if i % 10 == 0 else 0, False) for i in range(500)]
    fired = asyncio.run(_run(spec, head_timeout=0.05))
    assert len(fired) == 500 and fires <= 1 + 0.1 / DEADLINE_SPACING


def test_an_error_in_one_timeout_does_not_stop_the_others() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        errors: list[object] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))
        deadlines = _HeadDeadlines(loop, 0.02)
        fired: list[tuple[str, float]] = []
        bad, good = _Waiter(loop, fired, "bad"), _Waiter(loop, fired, "good")
        bad._head_timed_out = lambda: [][0]  # type: ignore[method-assign]
        deadlines.add(bad.cell)
        deadlines.add(good.cell)
        await asyncio.sleep(0.2)
        assert len(errors) == 1 and isinstance(errors[0], IndexError)
        return [name for name, _ in fired]

    assert asyncio.run(main()) == ["good"]
