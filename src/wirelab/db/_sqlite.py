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
from datetime import UTC, datetime
from types import TracebackType
from typing import Self, TypeVar

from .._exceptions import UsageError
from ..auth import (
    UserExistsError,
    UserNotFoundError,
    generate_token,
    hash_token,
    is_token_shaped,
    validate_user_name,
)
from ._api import UNCHANGED, DatabaseError, DatabaseFullError, Unchanged, User
from ._migrations import migrate
from ._sqlite_batch import SQLiteRelayStore
from ._sqlite_group import GroupCommit
from ._sqlite_media import SQLiteMediaJobs, orphan_media_jobs
from ._sqlite_purge import purge_user

__all__ = ["BUSY_TIMEOUT_MS", "SQLiteDatabase", "SQLiteUsers"]

BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for another process's lock before failing."""

T = TypeVar("T")

_USER_COLUMNS = "name, created_at, token_issued_at, quota_bytes, quota_files"
_UserRow = tuple[str, str, str, int | None, int | None]


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


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _user(row: _UserRow) -> User:
    name, created_at, token_issued_at, quota_bytes, quota_files = row
    return User(
        name=name,
        created_at=datetime.fromisoformat(created_at),
        token_issued_at=datetime.fromisoformat(token_issued_at),
        quota_bytes=quota_bytes,
        quota_files=quota_files,
    )


def _observe(fut: asyncio.Future[None]) -> None:
    # A flush answers its callers itself; an error of its own must not go unretrieved.
    if not fut.cancelled():
        fut.exception()


class SQLiteDatabase:
    """A :class:`~wirelab.db.Database` in one SQLite file. Create with :meth:`open`."""

    def __init__(
        self, conn: sqlite3.Connection, executor: ThreadPoolExecutor, path: str, version: int
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._executor = executor
        self._path = path
        self._version = version
        self._users = SQLiteUsers(self)
        self._relay = SQLiteRelayStore(self)
        self._group = GroupCommit()
        self._media = SQLiteMediaJobs(self)

    @classmethod
    async def open(cls, path: str) -> SQLiteDatabase:
        """Open (creating if needed) the SQLite file ``path`` and migrate its schema.

        ``":memory:"`` opens a private in-memory database. Raises
        :class:`~wirelab.db.DatabaseError` when the file cannot be opened or migrated.
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wirelab-db")
        loop = asyncio.get_running_loop()
        try:
            conn, version = await loop.run_in_executor(executor, _open_connection, path)
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
    def users(self) -> SQLiteUsers:
        """The users and their tokens."""
        return self._users

    @property
    def relay(self) -> SQLiteRelayStore:
        """The relay files and the blob journal."""
        return self._relay

    @property
    def media(self) -> SQLiteMediaJobs:
        """The media jobs."""
        return self._media

    @property
    def schema_version(self) -> int:
        """The schema version (``PRAGMA user_version``) at open time."""
        return self._version

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
            await loop.run_in_executor(self._executor, conn.close)
        finally:
            self._executor.shutdown(wait=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class SQLiteUsers:
    """The :class:`~wirelab.db.UserRepository` of a :class:`SQLiteDatabase`."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def add_user(self, name: str) -> tuple[User, str]:
        """See :meth:`wirelab.db.UserRepository.add_user`."""
        validate_user_name(name)
        token = generate_token()
        now = _now()

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO users (name, token_hash, created_at, token_issued_at)"
                    " VALUES (?, ?, ?, ?)",
                    (name, hash_token(token), now, now),
                )
            except sqlite3.IntegrityError as exc:
                if "users.name" not in str(exc):
                    raise
                raise UserExistsError(f"user {name!r} already exists") from exc

        await self._db.write(insert)
        return _user((name, now, now, None, None)), token

    async def get_user_by_token(self, token: str) -> User | None:
        """See :meth:`wirelab.db.UserRepository.get_user_by_token`."""
        if not isinstance(token, str) or not is_token_shaped(token):
            return None
        return await self._select_one("token_hash", hash_token(token))

    async def get_user(self, name: str) -> User | None:
        """See :meth:`wirelab.db.UserRepository.get_user`."""
        return await self._select_one("name", name)

    async def _select_one(self, column: str, value: str) -> User | None:
        """The user whose (unique) ``column`` equals ``value``; ``column`` is a constant."""

        def select(conn: sqlite3.Connection) -> _UserRow | None:
            cursor = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE {column} = ?",  # noqa: S608
                (value,),
            )
            row: _UserRow | None = cursor.fetchone()
            return row

        row = await self._db.run(select)
        return None if row is None else _user(row)

    async def list_users(self) -> list[User]:
        """See :meth:`wirelab.db.UserRepository.list_users`."""

        def select(conn: sqlite3.Connection) -> list[_UserRow]:
            cursor = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users ORDER BY name"  # noqa: S608
            )
            rows: list[_UserRow] = cursor.fetchall()
            return rows

        return [_user(row) for row in await self._db.run(select)]

    async def remove_user(self, name: str) -> None:
        """See :meth:`wirelab.db.UserRepository.remove_user`."""

        def delete(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise UserNotFoundError(f"no user named {name!r}")
            # A new user of the same name must not inherit the old one's inbox, uploads,
            # public key or media jobs.
            purge_user(conn, name, time.time())
            orphan_media_jobs(conn, name, time.time())

        await self._db.write(delete)

    async def rotate_token(self, name: str) -> str:
        """See :meth:`wirelab.db.UserRepository.rotate_token`."""
        token = generate_token()
        now = _now()

        def update(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE users SET token_hash = ?, token_issued_at = ? WHERE name = ?",
                (hash_token(token), now, name),
            )
            if cursor.rowcount == 0:
                raise UserNotFoundError(f"no user named {name!r}")

        await self._db.write(update)
        return token

    async def set_quota(
        self,
        name: str,
        *,
        quota_bytes: int | Unchanged | None = UNCHANGED,
        quota_files: int | Unchanged | None = UNCHANGED,
    ) -> User:
        """See :meth:`wirelab.db.UserRepository.set_quota`."""
        changes = {
            column: value
            for column, value in (("quota_bytes", quota_bytes), ("quota_files", quota_files))
            if not isinstance(value, Unchanged)
        }
        for column, value in changes.items():
            if value is not None and value < 0:
                raise ValueError(f"{column} must be >= 0, not {value}")

        def update(conn: sqlite3.Connection) -> _UserRow:
            for column, value in changes.items():  # column is one of two constants
                conn.execute(f"UPDATE users SET {column} = ? WHERE name = ?", (value, name))  # noqa: S608
            row: _UserRow | None = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?",  # noqa: S608
                (name,),
            ).fetchone()
            if row is None:
                raise UserNotFoundError(f"no user named {name!r}")
            return row

        return _user(await self._db.write(update))
