"""The backend-neutral :class:`~wirelab.db.UserRepository`: users and their token hashes.

Domain rules live here, not in a backend: names are validated, tokens are minted here and
only their hashes are stored, and removing a user purges what was addressed to it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import UTC, datetime

from ..auth import (
    UserExistsError,
    UserNotFoundError,
    generate_token,
    hash_token,
    is_token_shaped,
    validate_user_name,
)
from ._api import UNCHANGED, Unchanged, User
from ._repo_media import orphan_media_jobs, owner_lock
from ._repo_purge import purge_user
from ._repo_reserve import queue_lock
from ._sql import Backend, Conn
from ._token_cache import TokenCache

__all__ = ["Users"]

_USER_COLUMNS = "name, created_at, token_issued_at, quota_bytes, quota_files"
_UserRow = tuple[str, str, str, int | None, int | None]


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


class Users:
    """The :class:`~wirelab.db.UserRepository` of a database ``db``."""

    def __init__(self, db: Backend) -> None:
        self._db = db
        self._tokens: TokenCache | None = None
        self._lookups: dict[str, asyncio.Future[User | None]] = {}

    def cache_tokens(self, seconds: float) -> None:
        """See :meth:`wirelab.db.UserRepository.cache_tokens`."""
        if seconds < 0:
            raise ValueError(f"the token cache's lifetime must be >= 0, not {seconds}")
        self._tokens = TokenCache(seconds) if seconds > 0 else None

    def _forget(self, name: str) -> None:
        if self._tokens is not None:
            self._tokens.forget_user(name)
            # A request arriving from now on must not join a lookup that began before
            # the change (it could answer with the old user).
            self._lookups.clear()

    async def add_user(self, name: str) -> tuple[User, str]:
        """See :meth:`wirelab.db.UserRepository.add_user`."""
        validate_user_name(name)
        token = generate_token()
        now = _now()

        def insert(conn: Conn) -> None:
            try:
                conn.execute(
                    "INSERT INTO users (name, token_hash, created_at, token_issued_at)"
                    " VALUES (?, ?, ?, ?)",
                    (name, hash_token(token), now, now),
                )
            except Exception as exc:
                if not self._db.dialect.is_unique_violation(exc, "users", "name"):
                    raise
                raise UserExistsError(f"user {name!r} already exists") from exc

        await self._db.write(insert)
        return _user((name, now, now, None, None)), token

    async def get_user_by_token(self, token: str) -> User | None:
        """See :meth:`wirelab.db.UserRepository.get_user_by_token`."""
        if not isinstance(token, str) or not is_token_shaped(token):
            return None
        # Authenticating a request needs no order with writes in flight: read beside the
        # writer (one per request, so it must not wait for commits or split their groups).
        token_hash = hash_token(token)
        cache = self._tokens
        if cache is None:
            return await self._select_one("token_hash", token_hash, concurrent=True)
        if (user := cache.get(token_hash)) is not None:
            return user
        # Requests that miss together (a busy client when the entry expires) share one
        # lookup, in a task of its own so that a cancelled request does not end it.
        lookup = self._lookups.get(token_hash)
        if lookup is None:
            lookup = asyncio.ensure_future(self._remember(cache, token_hash))
            self._lookups[token_hash] = lookup
            lookup.add_done_callback(functools.partial(self._looked_up, token_hash))
        return await asyncio.shield(lookup)

    def _looked_up(self, token_hash: str, lookup: asyncio.Future[User | None]) -> None:
        if self._lookups.get(token_hash) is lookup:
            del self._lookups[token_hash]
        if not lookup.cancelled():
            lookup.exception()  # retrieved: its awaiters (if any) raise it themselves

    async def _remember(self, cache: TokenCache, token_hash: str) -> User | None:
        generation = cache.generation
        user = await self._select_one("token_hash", token_hash, concurrent=True)
        if user is not None:
            cache.put(token_hash, user, generation)
        return user

    async def get_user(self, name: str) -> User | None:
        """See :meth:`wirelab.db.UserRepository.get_user`."""
        return await self._select_one("name", name)

    async def _select_one(
        self, column: str, value: str, *, concurrent: bool = False
    ) -> User | None:
        """The user whose (unique) ``column`` equals ``value``; ``column`` is a constant."""

        def select(conn: Conn) -> _UserRow | None:
            cursor = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE {column} = ?",  # noqa: S608
                (value,),
            )
            row: _UserRow | None = cursor.fetchone()
            return row

        run = self._db.read_concurrent if concurrent else self._db.run
        row = await run(select)
        return None if row is None else _user(row)

    async def list_users(self) -> list[User]:
        """See :meth:`wirelab.db.UserRepository.list_users`."""

        def select(conn: Conn) -> list[_UserRow]:
            cursor = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users ORDER BY name"  # noqa: S608
            )
            rows: list[_UserRow] = cursor.fetchall()
            return rows

        return [_user(row) for row in await self._db.run(select)]

    async def remove_user(self, name: str) -> None:
        """See :meth:`wirelab.db.UserRepository.remove_user`."""

        def delete(conn: Conn) -> None:
            # Inserts into the user's inbox and job creations wait, or are waited for: none
            # can slip in between the purge below and the commit (where writers run
            # concurrently), so none survives for a new user of the same name.
            self._db.dialect.lock(conn, queue_lock(name), owner_lock(name))
            if conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise UserNotFoundError(f"no user named {name!r}")
            # A new user of the same name must not inherit the old one's inbox, uploads,
            # public key or media jobs.
            purge_user(conn, name, time.time())
            orphan_media_jobs(conn, name, time.time())

        try:
            await self._db.write(delete)
        finally:  # also when the outcome is unknown (the commit may have happened)
            self._forget(name)

    async def rotate_token(self, name: str) -> str:
        """See :meth:`wirelab.db.UserRepository.rotate_token`."""
        token = generate_token()
        now = _now()

        def update(conn: Conn) -> None:
            cursor = conn.execute(
                "UPDATE users SET token_hash = ?, token_issued_at = ? WHERE name = ?",
                (hash_token(token), now, name),
            )
            if cursor.rowcount == 0:
                raise UserNotFoundError(f"no user named {name!r}")

        try:
            await self._db.write(update)
        finally:
            self._forget(name)
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

        def update(conn: Conn) -> _UserRow:
            for column, value in changes.items():  # column is one of two constants
                conn.execute(f"UPDATE users SET {column} = ? WHERE name = ?", (value, name))  # noqa: S608
            row: _UserRow | None = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?",  # noqa: S608
                (name,),
            ).fetchone()
            if row is None:
                raise UserNotFoundError(f"no user named {name!r}")
            return row

        try:
            return _user(await self._db.write(update))
        finally:
            self._forget(name)
