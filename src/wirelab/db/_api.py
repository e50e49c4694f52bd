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
    "RelayFile",
    "RelayRepository",
    "RelayUpload",
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


@dataclass(frozen=True, slots=True)
class RelayFile:
    """A relay file as stored: metadata of one committed, verified blob.

    Times are ``time.time()`` seconds. ``lease_until`` is when the current lease (if any)
    ends; ``deliveries`` counts the leases handed out.
    """

    id: str
    recipient: str
    sender: str
    name: str
    media_type: str
    note: str | None
    size: int
    sha256: str
    blob_key: str
    created_at: float
    expires_at: float
    lease_id: str | None = None
    lease_until: float | None = None
    deliveries: int = 0


@dataclass(frozen=True, slots=True)
class RelayUpload:
    """A resumable (tus) upload in progress: what the file will be once complete.

    Its id is also the partial upload's id in the blob store, the future blob key and
    file id. ``length`` is the announced size, ``sha256`` the announced whole-file digest.
    """

    id: str
    owner: str
    recipient: str
    name: str
    media_type: str
    note: str | None
    length: int
    sha256: str
    created_at: float
    expires_at: float


class RelayRepository(Protocol):
    """Relay files and the blob journal. Every method is a coroutine, atomic and durable.

    The *blob journal* names blob keys that may exist in the blob store without a file
    row: written before an upload starts (``"upload"``) and in the same transaction that
    deletes a file row (``"delete"``). Whatever a crash interrupts, a blob is either
    referenced by a file row or named in the journal, so it is never leaked.
    """

    async def journal_add(self, blob_key: str, reason: str, now: float) -> None:
        """Record that ``blob_key`` may exist without a file row (before writing it)."""
        ...

    async def journal_remove(self, blob_key: str) -> None:
        """Forget ``blob_key`` (its blob is gone, or a file row now references it)."""
        ...

    async def journal_list(self, reason: str | None = None) -> list[str]:
        """The journaled keys (optionally only those with ``reason``), oldest first."""
        ...

    async def insert_file(self, file: RelayFile) -> None:
        """Make ``file`` visible and drop its blob key from the journal, in one commit."""
        ...

    async def list_inbox(self, recipient: str, now: float) -> list[RelayFile]:
        """The unexpired files of ``recipient`` in FIFO (upload commit) order."""
        ...

    async def get_file(self, recipient: str, file_id: str, now: float) -> RelayFile | None:
        """File ``file_id`` if it is unexpired and addressed to ``recipient``."""
        ...

    async def delete_file(self, recipient: str, file_id: str, now: float) -> RelayFile | None:
        """Delete file ``file_id`` of ``recipient`` and journal its blob key (one commit).

        Returns the deleted file, or ``None`` when there is no such file.
        """
        ...

    async def lease_next(
        self, recipient: str, now: float, lease_id: str, lease_until: float
    ) -> RelayFile | None:
        """Lease the oldest unexpired, unleased (or lease-expired) file of ``recipient``."""
        ...

    async def next_lease_end(self, recipient: str, now: float) -> float | None:
        """The earliest end of a running lease on an unexpired file of ``recipient``."""
        ...

    async def delete_expired(self, now: float, limit: int) -> list[str]:
        """Delete up to ``limit`` expired files, journal their blob keys, return the keys."""
        ...

    async def insert_upload(self, upload: RelayUpload) -> None:
        """Record a resumable upload (its key must already be journaled)."""
        ...

    async def get_upload(self, upload_id: str) -> RelayUpload | None:
        """The upload ``upload_id``, expired or not."""
        ...

    async def list_uploads(self) -> list[RelayUpload]:
        """All recorded uploads, oldest first."""
        ...

    async def delete_upload(self, upload_id: str) -> None:
        """Forget an upload (its journal entry stays until the partial upload is gone)."""
        ...

    async def finish_upload(self, upload_id: str, file: RelayFile) -> None:
        """Insert ``file``, delete upload ``upload_id`` and its journal entry, in one commit."""
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
    def relay(self) -> RelayRepository:
        """The relay files and the blob journal."""
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
