"""The metadata store of the wirelab server: users and tokens, relay files, media jobs.

Open a store with :func:`connect` and a URL; the scheme picks the backend::

    async with await connect("sqlite:///var/lib/wirelab/wirelab.db") as db:
        user, token = await db.users.add_user("alice")

Backends implement the :class:`Database`, :class:`UserRepository` and
:class:`RelayRepository` protocols, so callers never see the engine: SQLite
(``sqlite:///relative/path``, ``sqlite:////absolute/path``, ``sqlite:///:memory:``; the
embedded default) and PostgreSQL (``postgresql://user@host:port/dbname``, psycopg's URL
form; needs the ``postgres`` extra). Both run the same repository code and the same
migrations. An SQLite file is migrated when opened; a PostgreSQL database only by
:func:`upgrade` (``wirelab db upgrade``), and :func:`connect` refuses an older schema.
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
from ._pool_size import MAX_POOL_SIZE, POOL_SIZE, check_pool_size
from ._sqlite import SQLiteDatabase, upgrade_sqlite

__all__ = [
    "ACTIVE_STATES",
    "JOB_STATES",
    "MAX_POOL_SIZE",
    "POOL_SIZE",
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
    "check_pool_size",
    "check_schema",
    "connect",
    "sqlite_url",
    "upgrade",
]

_POSTGRES = frozenset({"postgres", "postgresql"})


def sqlite_url(path: str | PathLike[str]) -> str:
    """Return the ``sqlite:///`` URL of the file ``path`` (absolute paths get 4 slashes)."""
    return "sqlite:///" + fspath(path)


async def connect(url: str, *, pool_size: int = POOL_SIZE) -> Database:
    """Open the store at ``url``, migrated to the current schema, and return it.

    ``pool_size``: the most connections (and threads) a PostgreSQL store opens, 1 to
    :data:`MAX_POOL_SIZE` (checked for SQLite too, which has one connection per call).

    The caller owns the result and must ``await db.close()`` (or use ``async with``).
    Raises :class:`~wirelab.UsageError` for a malformed URL or an unsupported scheme
    (the message names the scheme) and :class:`DatabaseError` when the store cannot be
    opened or migrated; :class:`SchemaVersionError` for a PostgreSQL database whose
    schema is older (run :func:`upgrade`) or newer than this wirelab's.
    """
    check_pool_size(pool_size)
    if _backend(url) == "sqlite":
        return await SQLiteDatabase.open(_sqlite_path(url))
    from ._postgres import PostgresDatabase

    return await PostgresDatabase.open(url, pool_size)


async def check_schema(url: str) -> None:
    """Raise :class:`SchemaVersionError` if the store at ``url`` would be refused by
    :func:`connect` for its schema version (a server checks before it starts). An SQLite
    store always passes: it is migrated when opened. Other errors as for :func:`connect`."""
    if _backend(url) == "sqlite":
        _sqlite_path(url)
        return
    from ._postgres import check_schema as check_postgres

    await check_postgres(url)


async def upgrade(url: str) -> tuple[int, int]:
    """Migrate the store at ``url`` to :data:`SCHEMA_VERSION`; return (before, after).

    Re-running is a no-op; concurrent runs apply each migration once. Errors as for
    :func:`connect`.
    """
    if _backend(url) == "sqlite":
        return await upgrade_sqlite(_sqlite_path(url))
    from ._postgres import upgrade as upgrade_postgres

    return await upgrade_postgres(url)


def _backend(url: str) -> str:
    """``"sqlite"`` or ``"postgresql"``; :class:`~wirelab.UsageError` for anything else
    (and for PostgreSQL without its driver installed)."""
    scheme, _ = split_url(url)
    if scheme == "sqlite":
        return scheme
    if scheme in _POSTGRES:
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError as exc:
            raise UsageError(
                "a PostgreSQL database needs the 'postgres' extra: pip install 'wirelab[postgres]'"
            ) from exc
        return "postgresql"
    raise UsageError(
        f"unknown database scheme {scheme!r} in {url!r} (supported: 'sqlite', 'postgresql')"
    )


def _sqlite_path(url: str) -> str:
    _, rest = split_url(url)
    if not rest.startswith("/") or rest == "/":
        raise UsageError(
            f"invalid SQLite URL {url!r}: expected 'sqlite:///relative/path', "
            "'sqlite:////absolute/path' or 'sqlite:///:memory:' (no host part)"
        )
    return rest[1:]
