"""The SQLite backend: stdlib ``sqlite3`` driven off the event loop by one dedicated thread.

One connection, owned by a single-thread executor: every call (read or write) runs there in
submission order, so writes are serialised without locks and the event loop never blocks on
disk. Other processes on the same file are handled by SQLite's locking, ``BEGIN IMMEDIATE``
write transactions and the busy timeout.

Connection settings:

- ``journal_mode=WAL``: readers in other processes do not block the writer, and a commit is
  one append to the write-ahead log.
- ``synchronous=FULL``: in WAL mode, ``NORMAL`` does not fsync the log at each commit, so a
  commit survives the process being killed but may be lost if the machine loses power or
  the OS crashes just after. ``FULL`` fsyncs the WAL before a commit returns: once a call
  returns, its change survives both. User changes are rare and small, so the cost (one
  fsync per commit) does not matter, and "acknowledged means durable" holds.
- ``foreign_keys=ON`` (off by default in SQLite) and ``busy_timeout`` of 5 s.

Cancelling a coroutine does not cancel its statement: the work already handed to the
thread completes (and may commit) even though the caller sees ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .._exceptions import UsageError
from ._api import DatabaseError, DatabaseFullError
from ._migrations import migrate, schema_version
from ._sql import Dialect
from ._sqlite_group import GroupCommit
from ._store import Store

__all__ = ["BUSY_TIMEOUT_MS", "SQLITE", "SQLiteDatabase", "upgrade_sqlite"]

BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for another process's lock before failing."""

T = TypeVar("T")

SQLITE = Dialect()
"""SQLite's dialect: one writer at a time, so no explicit locks."""


def _upgrade(path: str) -> tuple[int, int]:
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        before = schema_version(conn)
        conn.close()
        conn, after = _open_connection(path)
        return before, after
    finally:
        conn.close()


async def upgrade_sqlite(path: str) -> tuple[int, int]:
    """Migrate the SQLite file ``path`` (created if missing); return (before, after)."""
    try:
        return await asyncio.to_thread(_upgrade, path)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open database {path}: {exc}") from exc


def _open_connection(path: str) -> tuple[sqlite3.Connection, int]:
    """Open ``path``, configure it and migrate it. Runs in the database thread."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal" and path != ":memory:":
            raise DatabaseError(f"cannot switch {path} to WAL mode (journal mode is {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        version = migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn, version


def _observe(fut: asyncio.Future[None]) -> None:
    # A flush answers its callers itself; an error of its own must not go unretrieved.
    if not fut.cancelled():
        fut.exception()


def _open_retrying(path: str) -> tuple[sqlite3.Connection, int]:
    """:func:`_open_connection`, retried while another process holds the lock it needs:
    switching to WAL and migrating take an exclusive lock that ``busy_timeout`` does not
    always wait for (several processes of ``serve --workers N`` start at once)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return _open_connection(path)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SQLiteDatabase(Store):
    """A :class:`~wirelab.db.Database` in one SQLite file. Create with :meth:`open`."""

    def __init__(
        self, conn: sqlite3.Connection, executor: ThreadPoolExecutor, path: str, version: int
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._executor = executor
        self._path = path
        super().__init__(version)
        self._group = GroupCommit()
        # read_concurrent(): a read-only connection of its own, opened on first use
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wirelab-db-read")
        self._read_conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: str) -> SQLiteDatabase:
        """Open (creating if needed) the SQLite file ``path`` and migrate its schema.

        ``":memory:"`` opens a private in-memory database. Raises
        :class:`~wirelab.db.DatabaseError` when the file cannot be opened or migrated.
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wirelab-db")
        loop = asyncio.get_running_loop()
        try:
            conn, version = await loop.run_in_executor(executor, _open_retrying, path)
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise DatabaseError(f"cannot open database {path}: {exc}") from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(conn, executor, path, version)

    @property
    def path(self) -> str:
        """The file (or ``":memory:"``) this database lives in."""
        return self._path

    @property
    def dialect(self) -> Dialect:
        """SQLite's :class:`~wirelab.db._sql.Dialect`."""
        return SQLITE

    async def run(self, func: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``func(conn)`` in the database thread, after all earlier calls, and return.

        ``sqlite3.Error`` is translated to :class:`~wirelab.db.DatabaseError`; other
        exceptions propagate unchanged. Raises :class:`~wirelab.UsageError` once closed.
        """
        conn = self._conn
        if conn is None:
            raise UsageError(f"database {self._path} is closed")
        loop = asyncio.get_running_loop()
        self._group.barrier()
        try:
            return await loop.run_in_executor(self._executor, func, conn)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    async def write(self, func: Callable[[sqlite3.Connection], T]) -> T:
        """Like :meth:`run`, inside a ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction.

        If ``func`` raises, its changes are rolled back. Returns after the commit, which is
        durable (``synchronous=FULL``). Concurrent writes share one commit, each in its
        own savepoint (:mod:`._sqlite_group`): one WAL sync for all of them.
        """
        conn = self._conn
        if conn is None:
            raise UsageError(f"database {self._path} is closed")
        item = self._group.add(func)
        answer = item.future
        flush = asyncio.get_running_loop().run_in_executor(
            self._executor, self._group.flush, conn, item
        )
        flush.add_done_callback(_observe)
        try:
            result: T = await answer
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        return result

    async def read_concurrent(self, func: Callable[[sqlite3.Connection], T]) -> T:
        """Run the read ``func(conn)`` on a second, read-only connection in its own thread
        (WAL readers do not block the writer, nor it them): it waits for no commit and
        leaves the group commit of the writes around it whole. It sees every write that
        returned before it was called. ``":memory:"`` (private to one connection) runs
        it as :meth:`run`."""
        if self._path == ":memory:":
            return await self.run(func)
        if self._conn is None:
            raise UsageError(f"database {self._path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader, self._read, func)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def _read(self, func: Callable[[sqlite3.Connection], T]) -> T:
        """In the reader thread: open its connection once, then run ``func``."""
        if self._read_conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            conn.execute("PRAGMA query_only = ON")
            self._read_conn = conn
        return func(self._read_conn)

    def _translate(self, exc: sqlite3.Error) -> DatabaseError:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return DatabaseFullError(f"database {self._path}: {exc}")
        return DatabaseError(f"database {self._path}: {exc}")

    async def close(self) -> None:
        """Close the connection (checkpointing the WAL) and stop the thread. Idempotent."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._reader, self._close_reader)
        finally:
            self._reader.shutdown(wait=True)
        try:
            await loop.run_in_executor(self._executor, conn.close)
        finally:
            self._executor.shutdown(wait=True)

    def _close_reader(self) -> None:
        conn, self._read_conn = self._read_conn, None
        if conn is not None:
            conn.close()
