"""The backend-neutral interface of the metadata store: records, protocols, errors, URLs.

Nothing here knows about SQLite. A backend provides a :class:`Database` whose ``users``
attribute is a :class:`UserRepository`; :func:`wirelab.db.connect` picks the backend from
the URL scheme.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from .._exceptions import UsageError, WirelabError

__all__ = [
    "Database",
    "DatabaseError",
    "SchemaVersionError",
    "User",
    "UserRepository",
    "split_url",
]


class DatabaseError(WirelabError):
    """The metadata store failed (cannot open the file, disk full, corrupt, locked too long).

    The backend's own exception is chained as ``__cause__``.
    """


class SchemaVersionError(DatabaseError):
    """The database was written by a newer wirelab: its schema version is unknown here."""


@dataclass(frozen=True, slots=True)
class User:
    """A user of the relay, as stored. The token itself is never part of it.

    ``created_at`` is when the user was added and ``token_issued_at`` when its current
    token was issued (equal until the first rotation); both are timezone-aware UTC.
    """

    name: str
    created_at: datetime
    token_issued_at: datetime


class UserRepository(Protocol):
    """Users and their API tokens. Every method is a coroutine and is atomic.

    A method that returns has committed durably: the change survives a crash of the
    process (and, with the SQLite backend, of the machine) from that point on. Names are
    validated with :func:`wirelab.auth.validate_user_name`.
    """

    async def add_user(self, name: str) -> tuple[User, str]:
        """Create user ``name`` and return it with its new API token.

        The token is returned this once and only its hash is stored.
        Raises :class:`~wirelab.auth.InvalidUserName` and
        :class:`~wirelab.auth.UserExistsError`.
        """
        ...

    async def get_user_by_token(self, token: str) -> User | None:
        """Return the user whose current token is ``token``, or ``None``.

        Anything that is not token-shaped is ``None`` without a lookup.
        """
        ...

    async def get_user(self, name: str) -> User | None:
        """Return user ``name``, or ``None`` if there is none."""
        ...

    async def list_users(self) -> list[User]:
        """Return every user, sorted by name."""
        ...

    async def remove_user(self, name: str) -> None:
        """Delete user ``name``; its token stops working. Raises
        :class:`~wirelab.auth.UserNotFoundError`."""
        ...

    async def rotate_token(self, name: str) -> str:
        """Give user ``name`` a new token and return it; the old one stops working.

        Raises :class:`~wirelab.auth.UserNotFoundError`.
        """
        ...


class Database(Protocol):
    """An open metadata store. Use as ``async with await connect(url) as db: ...``.

    :func:`wirelab.db.connect` returns it with the schema migrated to the current version.
    After :meth:`close`, every operation raises :class:`~wirelab.UsageError`.
    """

    @property
    def users(self) -> UserRepository:
        """The users and their tokens."""
        ...

    @property
    def schema_version(self) -> int:
        """The schema version the store is at (the number of migrations applied)."""
        ...

    async def close(self) -> None:
        """Finish pending work and release the store. Idempotent."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def split_url(url: str) -> tuple[str, str]:
    """Split a database URL into its lower-cased scheme and the rest after ``://``.

    Raises :class:`~wirelab.UsageError` when ``url`` has no ``scheme://`` part.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme or not scheme.replace("+", "").isalnum():
        raise UsageError(
            f"not a database URL: {url!r} (expected e.g. 'sqlite:///path/to/wirelab.db')"
        )
    return scheme.lower(), rest
