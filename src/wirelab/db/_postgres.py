"""The PostgreSQL backend: psycopg 3, a small pool of connections driven by as many threads.

The repositories are the same code as on SQLite (``_repo_*.py``); this module supplies
what differs:

- **Concurrency.** Calls run in parallel on up to ``pool_size`` connections (default
  :data:`POOL_SIZE`; one per executor thread, so a thread never waits for a connection).
  Reads run in autocommit (each statement sees the latest commits); ``write`` runs
  ``func`` in one READ COMMITTED transaction; ``write_one`` (a write of one statement)
  runs in autocommit too, the statement being its own transaction. What SQLite
  serialised for free is locked explicitly by the repositories through
  :class:`PostgresDialect`: transaction-scoped advisory locks for a recipient's quota and
  queue order, ``FOR UPDATE SKIP LOCKED`` for leases and job claims, ``FOR UPDATE`` for a
  batch's last commit.
- **Transient conflicts.** A deadlock or serialization failure rolls the transaction back
  and runs ``func`` again, at most :data:`MAX_ATTEMPTS` times, after a short random pause.
- **Placeholders.** SQL is written with ``?``; the adapter sends ``%s`` and booleans as
  0/1 (the schema's integers).
- **Schema.** Opening never migrates: an older schema is refused with a message naming
  ``wirelab db upgrade`` (:func:`upgrade` runs the migrations, under an advisory lock).

Cancelling a coroutine does not cancel its statement: the work already handed to a thread
completes (and may commit) even though the caller sees ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool

from .._exceptions import UsageError
from ._api import DatabaseError, DatabaseFullError
from ._pg_schema import check_version, current_version, migrate
from ._pool_size import MAX_POOL_SIZE, POOL_SIZE, check_pool_size
from ._sql import Conn, Cursor, Dialect
from ._store import Store

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_POOL_SIZE",
    "POOL_SIZE",
    "PostgresDatabase",
    "PostgresDialect",
    "check_schema",
    "upgrade",
]

T = TypeVar("T")

MAX_ATTEMPTS = 5
"""Tries of a write transaction that keeps hitting deadlocks or serialization failures."""

CONNECT_TIMEOUT = 10
"""Seconds to wait for the server when opening."""

_TRANSIENT = (errors.DeadlockDetected, errors.SerializationFailure)

#: Whether libpq has pipeline mode (14 or later; psycopg's binary package bundles one).
_PIPELINES = psycopg.Pipeline.is_supported()


def display_url(url: str) -> str:
    """``url`` without its password, for messages."""
    return re.sub(r"(//[^/:@]*):[^/@]*@", r"\1:***@", url)


@functools.lru_cache(maxsize=1024)
def _pg_sql(sql: str) -> str:
    # No statement of ours has a '?' or a '%' inside a string literal.
    return sql.replace("%", "%%").replace("?", "%s")


def _pg_params(params: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(int(v) if isinstance(v, bool) else v for v in params)


class _PgConn:
    """A psycopg connection as a :class:`~wirelab.db._sql.Conn`."""

    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self._conn.execute(_pg_sql(sql), _pg_params(parameters))

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Cursor:
        cursor = self._conn.cursor()
        cursor.executemany(_pg_sql(sql), [_pg_params(p) for p in seq_of_parameters])
        return cursor


@functools.lru_cache(maxsize=8)
def _lock_sql(count: int) -> str:
    return "SELECT " + ", ".join(["pg_advisory_xact_lock(hashtextextended(?, 0))"] * count)


class PostgresDialect(Dialect):
    """PostgreSQL: concurrent writers, so explicit locks (see :class:`Dialect`)."""

    name = "postgresql"
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    dml_in_with = True

    def lock(self, conn: Conn, *names: str) -> None:
        """Transaction-scoped advisory locks on the 64-bit hashes of ``names``, taken in
        sorted order (so that two transactions cannot wait for each other) in one round
        trip: a select list is evaluated left to right, one lock after the other."""
        ordered = sorted(set(names))
        if ordered:
            conn.execute(_lock_sql(len(ordered)), ordered)

    def is_unique_violation(self, exc: BaseException, table: str, column: str) -> bool:
        """PostgreSQL names a column's ``UNIQUE`` constraint ``<table>_<column>_key``."""
        return (
            isinstance(exc, errors.UniqueViolation)
            and exc.diag.constraint_name == f"{table}_{column}_key"
        )


POSTGRES = PostgresDialect()


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)


def _open_pool(url: str, size: int) -> tuple[ConnectionPool, int]:
    """Check the schema on one connection, then open a pool of up to ``size`` connections.
    Runs in a thread."""
    with _connect(url) as conn:
        version = check_version(conn)
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
        open=False,
        name="wirelab",
    )
    try:
        pool.open(wait=True, timeout=CONNECT_TIMEOUT)
    except BaseException:
        pool.close()
        raise
    return pool, version


def _upgrade(url: str) -> tuple[int, int]:
    with _connect(url) as conn:
        before = current_version(conn)
        return before, migrate(conn)


def _check(url: str) -> None:
    with _connect(url) as conn:
        check_version(conn)


async def _blocking(verb: str, func: Callable[[str], T], url: str) -> T:
    """``func(url)`` in a thread; a psycopg error becomes a DatabaseError naming ``verb``."""
    try:
        return await asyncio.to_thread(func, url)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot {verb} database {display_url(url)}: {exc}") from exc


async def check_schema(url: str) -> None:
    """:class:`~wirelab.db.SchemaVersionError` unless the schema at ``url`` is current."""
    await _blocking("open", _check, url)


async def upgrade(url: str) -> tuple[int, int]:
    """Migrate the PostgreSQL database at ``url``; return (version before, version after).

    Safe to run from several processes at once (an advisory lock serialises them).
    Raises :class:`~wirelab.db.DatabaseError` when the server cannot be reached or a
    migration fails (rolled back), :class:`~wirelab.db.SchemaVersionError` when the
    database is newer than this wirelab.
    """
    return await _blocking("upgrade", _upgrade, url)


def _retrying(pool: ConnectionPool, func: Callable[[Conn], T], *, transaction: bool) -> T:
    """In a pool thread: ``func`` on a pooled connection (inside one transaction if
    ``transaction``, else in autocommit), run again after a deadlock or serialization
    failure, at most :data:`MAX_ATTEMPTS` times."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with pool.connection() as conn:
                if not transaction:
                    return func(_PgConn(conn))
                with conn.transaction():
                    return func(_PgConn(conn))
        except _TRANSIENT:
            if attempt == MAX_ATTEMPTS:
                raise
        # Randomised back-off, so the transactions that collided do not collide again.
        time.sleep(random.uniform(0, 0.002 * 2**attempt))
    raise AssertionError("unreachable")


def _pipelined(pool: ConnectionPool, func: Callable[[Conn], Callable[[], T]]) -> T:
    """In a pool thread: :meth:`PostgresDatabase.write_pipelined`. ``BEGIN``, the
    statements and ``COMMIT`` go in pipeline mode: after ``func``'s last fetch, nothing
    waits for the server until the commit's answer. An error raised by ``func`` (its
    own, or a statement's at a fetch) rolls back; one at the commit leaves nothing to
    roll back. Retried like :func:`_retrying`."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with pool.connection() as conn, conn.pipeline() as pipeline:
                conn.execute("BEGIN")
                try:
                    finish = func(_PgConn(conn))
                except BaseException:
                    # A statement's error left the pipeline aborted: a sync ends that
                    # (its error is the one being raised), then the transaction is
                    # rolled back, and the connection returns to the pool clean.
                    with contextlib.suppress(psycopg.Error):
                        pipeline.sync()
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                pipeline.sync()
                return finish()
        except _TRANSIENT:
            if attempt == MAX_ATTEMPTS:
                raise
        time.sleep(random.uniform(0, 0.002 * 2**attempt))
    raise AssertionError("unreachable")


class PostgresDatabase(Store):
    """A :class:`~wirelab.db.Database` in a PostgreSQL database. Create with :meth:`open`."""

    def __init__(self, pool: ConnectionPool, url: str, version: int) -> None:
        self._pool: ConnectionPool | None = pool
        # One thread per connection the pool may open (``max_size``).
        self._executor = ThreadPoolExecutor(
            max_workers=pool.max_size, thread_name_prefix="wirelab-pg"
        )
        self._url = display_url(url)
        super().__init__(version)

    @classmethod
    async def open(cls, url: str, pool_size: int = POOL_SIZE) -> PostgresDatabase:
        """Connect to ``url`` (a ``postgresql://`` conninfo URL), whose schema must be current,
        with up to ``pool_size`` connections (:class:`~wirelab.UsageError` unless 1 to
        :data:`MAX_POOL_SIZE`).

        Raises :class:`~wirelab.db.SchemaVersionError` for an older schema (run
        ``wirelab db upgrade``) or a newer one, :class:`~wirelab.db.DatabaseError` when
        the server cannot be reached.
        """
        check_pool_size(pool_size)
        pool, version = await _blocking("open", functools.partial(_open_pool, size=pool_size), url)
        return cls(pool, url, version)

    @property
    def dialect(self) -> Dialect:
        """PostgreSQL's :class:`~wirelab.db._sql.Dialect`."""
        return POSTGRES

    @property
    def path(self) -> str:
        """The URL of the database, without its password."""
        return self._url

    def _pool_or_fail(self) -> ConnectionPool:
        if self._pool is None:
            raise UsageError(f"database {self._url} is closed")
        return self._pool

    async def run(self, func: Callable[[Conn], T]) -> T:
        """Run ``func(conn)`` on a pooled connection in autocommit mode and return.

        ``psycopg.Error`` is translated to :class:`~wirelab.db.DatabaseError`; other
        exceptions propagate unchanged. Raises :class:`~wirelab.UsageError` once closed.
        """
        pool = self._pool_or_fail()

        def call() -> T:
            with pool.connection() as conn:
                return func(_PgConn(conn))

        return await self._submit(call)

    async def write(self, func: Callable[[Conn], T]) -> T:
        """Like :meth:`run`, inside one transaction: committed when ``func`` returns,
        rolled back if it raises; retried after a deadlock or serialization failure."""
        pool = self._pool_or_fail()
        return await self._submit(functools.partial(_retrying, pool, func, transaction=True))

    async def write_pipelined(self, func: Callable[[Conn], Callable[[], T]]) -> T:
        """Like :meth:`write` with the statements after ``func``'s last fetch and the
        ``COMMIT`` in one round trip (pipeline mode; see
        :meth:`wirelab.db._sql.Backend.write_pipelined`). Without pipeline support in
        libpq (before 14): :meth:`write`."""
        pool = self._pool_or_fail()
        if not _PIPELINES:
            return await self.write(lambda conn: func(conn)())
        return await self._submit(functools.partial(_pipelined, pool, func))

    async def write_one(self, func: Callable[[Conn], T]) -> T:
        """Like :meth:`write` for a ``func`` that executes one statement: run in
        autocommit, the statement is its own transaction (atomic, committed when it
        returns), without the two round trips of ``BEGIN`` and ``COMMIT``."""
        pool = self._pool_or_fail()
        return await self._submit(functools.partial(_retrying, pool, func, transaction=False))

    async def _submit(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call)
        except psycopg.Error as exc:
            if isinstance(exc, errors.DiskFull):
                raise DatabaseFullError(f"database {self._url}: {exc}") from exc
            raise DatabaseError(f"database {self._url}: {exc}") from exc

    async def close(self) -> None:
        """Close the pool and stop the threads. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, pool.close)
        finally:
            self._executor.shutdown(wait=True)
