"""The metadata store of the wirelab server: users and tokens, relay files, media jobs.

Open a store with :func:`connect` and a URL; the scheme picks the backend::

    async with await connect("sqlite:///var/lib/wirelab/wirelab.db") as db:
        user, token = await db.users.add_user("alice")

Backends implement the :class:`Database`, :class:`UserRepository` and
:class:`RelayRepository` protocols, so callers
never see the engine. Today only SQLite exists (``sqlite:///relative/path``,
``sqlite:////absolute/path``, ``sqlite:///:memory:``); PostgreSQL will plug in behind the
``postgresql://`` scheme.
"""

from __future__ import annotations

from os import PathLike, fspath

from .._exceptions import UsageError
from ._api import (
    UNCHANGED,
    Database,
    DatabaseError,
    DatabaseFullError,
    PendingExceeded,
    PendingLimits,
    QuotaDefaults,
    QuotaExceeded,
    RelayBatch,
    RelayFile,
    RelayRepository,
    RelayUpload,
    SchemaVersionError,
    Unchanged,
    Usage,
    User,
    UserRepository,
    split_url,
)
from ._media_api import ACTIVE_STATES, JOB_STATES, Heartbeat, MediaJob, MediaJobRepository
from ._migrations import SCHEMA_VERSION
from ._sqlite import SQLiteDatabase

__all__ = [
    "ACTIVE_STATES",
    "JOB_STATES",
    "SCHEMA_VERSION",
    "UNCHANGED",
    "Database",
    "DatabaseError",
    "DatabaseFullError",
    "Heartbeat",
    "MediaJob",
    "MediaJobRepository",
    "PendingExceeded",
    "PendingLimits",
    "QuotaDefaults",
    "QuotaExceeded",
    "RelayBatch",
    "RelayFile",
    "RelayRepository",
    "RelayUpload",
    "SchemaVersionError",
    "Unchanged",
    "Usage",
    "User",
    "UserRepository",
    "connect",
    "sqlite_url",
]

_PLANNED = frozenset({"postgres", "postgresql"})


def sqlite_url(path: str | PathLike[str]) -> str:
    """Return the ``sqlite:///`` URL of the file ``path`` (absolute paths get 4 slashes)."""
    return "sqlite:///" + fspath(path)


async def connect(url: str) -> Database:
    """Open the store at ``url``, migrated to the current schema, and return it.

    The caller owns the result and must ``await db.close()`` (or use ``async with``).
    Raises :class:`~wirelab.UsageError` for a malformed URL or an unsupported scheme
    (the message names the scheme) and :class:`DatabaseError` when the store cannot be
    opened or migrated.
    """
    scheme, rest = split_url(url)
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise UsageError(
                f"invalid SQLite URL {url!r}: expected 'sqlite:///relative/path', "
                "'sqlite:////absolute/path' or 'sqlite:///:memory:' (no host part)"
            )
        return await SQLiteDatabase.open(rest[1:])
    if scheme in _PLANNED:
        raise UsageError(f"database scheme {scheme!r} is not supported yet (use 'sqlite')")
    raise UsageError(f"unknown database scheme {scheme!r} in {url!r} (supported: 'sqlite')")
