"""Group commit for :meth:`SQLiteDatabase.write`: concurrent write transactions share a
commit, hence one WAL sync (``synchronous=FULL``) instead of one each.

Each ``write`` queues its function and submits one flush job to the database thread.
A flush takes every function queued at that moment and runs them, in queue order, in one
``BEGIN IMMEDIATE`` ... ``COMMIT``, each inside its own savepoint: a function that raises
is rolled back to its savepoint alone (as its own transaction would have been) and the
others still commit. Every caller is answered after the commit, so "a write that returned
is durable" holds as before. The flush job of a write that an earlier flush already took
returns at once: it must not take writes queued after it, because reads submitted between
them sit in the thread's queue behind it.

Ordering is unchanged for callers: every call still takes effect in submission order. A
write's flush job sits in the thread's queue ahead of any call submitted after the write,
so that call sees the write committed; and a flush groups only writes submitted with no
other call (:meth:`barrier`) between them, so no write is pulled ahead of a read that was
submitted before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_GROUP", "GroupCommit"]

MAX_GROUP = 64
"""Most write functions in one transaction (bounds how long one commit holds the lock)."""


@dataclass
class _Item:
    func: Callable[[sqlite3.Connection], Any]
    epoch: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    taken: bool = False  # a flush has taken it out of the queue


def _answer(item: _Item) -> None:
    """Deliver the outcome to the awaiting coroutine (on its loop); a cancelled one is
    ignored: its work committed anyway, as documented for the database."""

    def deliver() -> None:
        if item.future.done():
            return
        if item.error is not None:
            item.future.set_exception(item.error)
        else:
            item.future.set_result(item.result)

    item.loop.call_soon_threadsafe(deliver)


class GroupCommit:
    """The queue of write functions of one connection (see the module doc)."""

    def __init__(self) -> None:
        self._queue: deque[_Item] = deque()  # appended on the loop, taken in the thread
        self._epoch = 0  # calls other than writes submitted so far

    def barrier(self) -> None:
        """A call other than a write was submitted: later writes may not join earlier ones."""
        self._epoch += 1

    def add(self, func: Callable[[sqlite3.Connection], Any]) -> _Item:
        """Queue ``func``; the item's future resolves after the commit that includes it.
        Submit ``flush(conn, item)`` to the database thread right away."""
        loop = asyncio.get_running_loop()
        item = _Item(func, self._epoch, loop, loop.create_future())
        self._queue.append(item)
        return item

    def flush(self, conn: sqlite3.Connection, item: _Item) -> None:
        """In the database thread: the flush job of ``item``. If an earlier flush took it,
        return. Otherwise every write queued before it has been taken (their jobs ran
        first), so it heads the queue: run and commit it together with the writes queued
        right after it in the same epoch; the rest wait for their own flush job, which sits
        behind the calls submitted before them."""
        if item.taken:
            return
        group: list[_Item] = []
        while self._queue and len(group) < MAX_GROUP:
            head = self._queue[0]
            if group and head.epoch != item.epoch:
                break
            head.taken = True
            group.append(self._queue.popleft())
        assert group[0] is item, "group commit: a write was flushed out of order"
        self._run_group(conn, group)

    def _run_group(self, conn: sqlite3.Connection, group: list[_Item]) -> None:
        done: list[_Item] = []  # ran without error, not yet committed
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in group:
                self._run_one(conn, item)
                if not conn.in_transaction:  # SQLite rolled everything back (e.g. disk full)
                    for other in done:
                        other.error = item.error
                    done = []
                    conn.execute("BEGIN IMMEDIATE")
                elif item.error is None:
                    done.append(item)
            conn.execute("COMMIT")
        except BaseException as exc:  # nothing of this group is committed
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            for item in group:
                if item.error is None:
                    item.error = exc
        finally:
            for item in group:
                _answer(item)

    @staticmethod
    def _run_one(conn: sqlite3.Connection, item: _Item) -> None:
        conn.execute("SAVEPOINT item")
        try:
            item.result = item.func(conn)
        except BaseException as exc:
            item.error = exc
            if conn.in_transaction:
                conn.execute("ROLLBACK TO item")
                conn.execute("RELEASE item")
            return
        conn.execute("RELEASE item")
