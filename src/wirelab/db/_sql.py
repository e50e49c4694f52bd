"""What the backend-neutral repository code needs from a backend: a connection, a dialect.

The repositories (``_repo_*.py``) are plain functions of a :class:`Conn` plus a
:class:`Dialect`, run by a :class:`Backend` in its own threads:

- SQL is written once, with ``?`` placeholders, in the subset both engines speak
  (``INSERT ... ON CONFLICT (...) DO UPDATE`` instead of ``INSERT OR REPLACE``, ``CASE``
  instead of two-argument ``MAX``). The PostgreSQL connection adapter turns ``?`` into
  ``%s``; ``sqlite3.Connection`` is a :class:`Conn` as it is.
- Booleans are stored as integers 0/1 (SQLite has no boolean type): pass ``int(flag)``.
- The few places where the engines differ in *behaviour* go through the dialect: explicit
  locks (SQLite serialises every write transaction, PostgreSQL runs them concurrently) and
  recognising a unique-constraint violation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

__all__ = ["Backend", "Conn", "Cursor", "Dialect"]

T = TypeVar("T")


class Cursor(Protocol):
    """The result of :meth:`Conn.execute` (a DB-API cursor)."""

    def fetchone(self) -> Any:
        """The next row (a tuple) or ``None``."""

    def fetchall(self) -> list[Any]:
        """The remaining rows (tuples)."""

    @property
    def rowcount(self) -> int:
        """Rows changed by an ``INSERT``/``UPDATE``/``DELETE``."""


class Conn(Protocol):
    """A connection inside the backend's transaction (see :class:`Backend`)."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        """Run one statement with ``?`` placeholders bound to ``parameters``."""

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Cursor:
        """Run one statement once per parameter tuple."""


class Dialect:
    """The behaviour of one engine that SQL text alone cannot hide. This base class is
    SQLite's: one writer at a time, so no lock is ever needed."""

    name = "sqlite"

    for_update = ""
    """Appended to a ``SELECT`` whose rows the transaction will change, so that concurrent
    transactions wait for each other (``" FOR UPDATE"`` on PostgreSQL)."""

    dml_in_with = False
    """Whether ``WITH`` may hold ``INSERT``/``UPDATE``/``DELETE ... RETURNING`` (PostgreSQL
    does; SQLite does not): two writes in one statement, one round trip."""

    skip_locked = ""
    """Appended to a ``SELECT ... LIMIT n`` that picks rows to lease, so that concurrent
    leasers take different rows instead of waiting (``" FOR UPDATE SKIP LOCKED"``)."""

    def lock(self, conn: Conn, *names: str) -> None:
        """Hold the named locks until the transaction ends (all at once, in one order, so
        two transactions taking overlapping sets cannot deadlock). Serialises what
        SQLite serialises anyway: quota checks and inserts into one recipient's queue."""

    def is_unique_violation(self, exc: BaseException, table: str, column: str) -> bool:
        """Whether ``exc`` is the violation of the unique constraint on ``table.column``."""
        import sqlite3

        return isinstance(exc, sqlite3.IntegrityError) and f"{table}.{column}" in str(exc)


class Backend(Protocol):
    """Runs repository functions: what :class:`~wirelab.db.Database` backends share.

    ``run(func)`` calls ``func(conn)`` for reads; ``write(func)`` calls it inside one
    transaction (rolled back if ``func`` raises; it may be called again after a transient
    conflict, so it must not have side effects outside the database) and returns after
    the commit; ``write_one(func)`` likewise for a ``func`` of one statement. Engine
    errors come out as :class:`~wirelab.db.DatabaseError`.
    """

    @property
    def dialect(self) -> Dialect:
        """The engine's :class:`Dialect`."""

    async def run(self, func: Callable[[Conn], T]) -> T:
        """Run a read."""

    async def write(self, func: Callable[[Conn], T]) -> T:
        """Run a write transaction."""

    async def write_one(self, func: Callable[[Conn], T]) -> T:
        """Run a write that is a single statement (``func`` executes exactly one): as
        durable and as atomic as :meth:`write`, but the engine may skip the explicit
        transaction (PostgreSQL: autocommit, one round trip instead of three)."""

    async def write_pipelined(self, func: Callable[[Conn], Callable[[], T]]) -> T:
        """Run a write transaction whose results are read after its commit: ``func(conn)``
        executes the statements and returns ``finish``, called once the transaction
        committed to read their results (``func`` may still fetch before its last
        statement, and raise to roll back). The engine may then send the statements after
        the last fetch, and the commit, without waiting for each answer (PostgreSQL's
        pipeline mode: one round trip), so that locks taken by the transaction are not
        held across turns of this process; under load a turn waits for the GIL."""

    async def read_concurrent(self, func: Callable[[Conn], T]) -> T:
        """Run a read that needs no order with calls in flight: it sees every write that
        returned before it was called, and may or may not see writes in flight (as any
        concurrent read). The engine may run it beside the writer (SQLite: another
        connection, so it neither waits for a commit's sync nor splits a group commit)."""
