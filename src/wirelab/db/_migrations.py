"""The schema as one versioned list of migrations for every backend, and the code that
applies them.

Migration ``i`` (0-based) takes the database from version ``i`` to ``i + 1``. Append new
migrations; never edit or reorder applied ones. They are written in SQLite's dialect, in
the subset of types both engines share (``TEXT``, ``INTEGER``, ``REAL``, ``BLOB``,
``INTEGER PRIMARY KEY [AUTOINCREMENT]``, ``STRICT`` tables); a backend rewrites the type
names for its engine (:class:`Versioning` ``ddl``: PostgreSQL's in ``_pg_schema``), so
one list serves both and SQLite runs the text unchanged.

Each migration runs in one transaction together with the version bump, so a crash leaves
the database at either the old or the new version, never in between. The version lives
where the engine keeps it transactionally: ``PRAGMA user_version`` in SQLite (existing
files keep upgrading), a ``schema_version`` table in PostgreSQL.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._api import SchemaVersionError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Versioning",
    "apply_migrations",
    "migrate",
    "outdated",
    "schema_version",
    "too_new",
]

MIGRATIONS: tuple[str, ...] = (
    # 1: users and the hashes of their API tokens
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        token_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        token_issued_at TEXT NOT NULL
    ) STRICT;
    """,
    # 2: relay files (metadata of committed blobs) and the blob journal (see _sqlite_relay)
    """
    CREATE TABLE relay_files (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        recipient TEXT NOT NULL,
        sender TEXT NOT NULL,
        name TEXT NOT NULL,
        media_type TEXT NOT NULL,
        note TEXT,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        blob_key TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        lease_id TEXT,
        lease_until REAL,
        deliveries INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX relay_files_inbox ON relay_files (recipient, seq);
    CREATE INDEX relay_files_expiry ON relay_files (expires_at);
    CREATE TABLE relay_blob_journal (
        blob_key TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        created_at REAL NOT NULL
    ) STRICT;
    """,
    # 3: resumable (tus) relay uploads in progress; the bytes are a partial blob upload
    """
    CREATE TABLE relay_uploads (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        recipient TEXT NOT NULL,
        name TEXT NOT NULL,
        media_type TEXT NOT NULL,
        note TEXT,
        length INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    ) STRICT;
    CREATE INDEX relay_uploads_expiry ON relay_uploads (expires_at);
    """,
    # 4: tus uploads with a deferred digest (sha256 NULL until the completing PATCH) and a
    # state: 'receiving', or 'complete' (kept until expiry so its owner can still ask)
    """
    CREATE TABLE relay_uploads_new (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        recipient TEXT NOT NULL,
        name TEXT NOT NULL,
        media_type TEXT NOT NULL,
        note TEXT,
        length INTEGER NOT NULL,
        sha256 TEXT,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'receiving'
    ) STRICT;
    INSERT INTO relay_uploads_new
        (id, owner, recipient, name, media_type, note, length, sha256, created_at, expires_at)
        SELECT id, owner, recipient, name, media_type, note, length, sha256, created_at,
               expires_at FROM relay_uploads;
    DROP TABLE relay_uploads;
    ALTER TABLE relay_uploads_new RENAME TO relay_uploads;
    CREATE INDEX relay_uploads_expiry ON relay_uploads (expires_at);
    """,
    # 5: per-user quotas (NULL: the server's default) and the reservations of uploads in
    # progress, carried by their blob journal entries (gone with the entry)
    """
    ALTER TABLE users ADD COLUMN quota_bytes INTEGER;
    ALTER TABLE users ADD COLUMN quota_files INTEGER;
    ALTER TABLE relay_blob_journal ADD COLUMN recipient TEXT;
    ALTER TABLE relay_blob_journal ADD COLUMN reserved_bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE relay_blob_journal ADD COLUMN reserved_files INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX relay_blob_journal_recipient ON relay_blob_journal (recipient);
    """,
    # 6: maximum downloads: completed GETs are counted per file
    """
    ALTER TABLE relay_files ADD COLUMN downloads INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE relay_files ADD COLUMN max_downloads INTEGER;
    ALTER TABLE relay_uploads ADD COLUMN max_downloads INTEGER;
    """,
    # 7: batches (several files delivered together) and the opaque encryption descriptor
    """
    CREATE TABLE relay_batches (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        recipient TEXT NOT NULL,
        note TEXT,
        ttl REAL,
        max_downloads INTEGER,
        count INTEGER NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        delivered_at REAL
    ) STRICT;
    CREATE INDEX relay_batches_expiry ON relay_batches (expires_at);
    ALTER TABLE relay_uploads ADD COLUMN batch_id TEXT;
    ALTER TABLE relay_uploads ADD COLUMN batch_index INTEGER;
    ALTER TABLE relay_uploads ADD COLUMN encryption TEXT;
    CREATE INDEX relay_uploads_batch ON relay_uploads (batch_id, batch_index);
    ALTER TABLE relay_files ADD COLUMN batch_id TEXT;
    ALTER TABLE relay_files ADD COLUMN batch_index INTEGER;
    ALTER TABLE relay_files ADD COLUMN batch_count INTEGER;
    ALTER TABLE relay_files ADD COLUMN encryption TEXT;
    CREATE INDEX relay_files_batch ON relay_files (batch_id, batch_index);
    """,
    # 8: users' public keys for end-to-end encryption (one per user, replaced on update)
    """
    CREATE TABLE relay_keys (
        name TEXT PRIMARY KEY,
        algorithm TEXT NOT NULL,
        public_key TEXT NOT NULL,
        updated_at REAL NOT NULL
    ) STRICT;
    """,
    # 9: who a reservation is charged to, and until when it is held (NULL: while bytes
    # arrive); a lapsed one no longer counts in the recipient's quota (_sqlite_reserve)
    """
    ALTER TABLE relay_blob_journal ADD COLUMN sender TEXT;
    ALTER TABLE relay_blob_journal ADD COLUMN reserved_until REAL;
    CREATE INDEX relay_blob_journal_sender ON relay_blob_journal (sender);
    """,
    # 10: media jobs (clip downloads): state, progress, cancel flag, lease, result (see
    # _sqlite_media)
    """
    CREATE TABLE media_jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        state TEXT NOT NULL,
        request TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        idempotency_key TEXT,
        progress REAL NOT NULL DEFAULT 0,
        phase TEXT NOT NULL DEFAULT 'queued',
        error_message TEXT,
        error_retryable INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before REAL NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until REAL,
        result_key TEXT,
        result_name TEXT,
        result_size INTEGER,
        result_sha256 TEXT,
        result_duration TEXT,
        result_start TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        expires_at REAL
    ) STRICT;
    CREATE INDEX media_jobs_owner ON media_jobs (owner, seq);
    CREATE INDEX media_jobs_queue ON media_jobs (state, not_before, seq);
    CREATE INDEX media_jobs_dedup ON media_jobs (owner, request_hash);
    CREATE UNIQUE INDEX media_jobs_idempotency ON media_jobs (owner, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX media_jobs_expiry ON media_jobs (expires_at) WHERE result_key IS NOT NULL;
    """,
    # 11: digest agility: the algorithm of each relay digest (the `sha256` columns hold
    # the hex digest in it); rows written before are SHA-256
    """
    ALTER TABLE relay_files ADD COLUMN digest_algorithm TEXT NOT NULL DEFAULT 'sha256';
    ALTER TABLE relay_uploads ADD COLUMN digest_algorithm TEXT NOT NULL DEFAULT 'sha256';
    """,
    # 12: small files stored inline: the bytes of a small direct send, committed with its
    # row in one transaction (NULL: the bytes are the blob `blob_key`, as before). Last
    # column, so that reading the others never walks the value's overflow pages.
    """
    ALTER TABLE relay_files ADD COLUMN content BLOB;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this wirelab writes."""


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the ``user_version`` of the database behind ``conn``."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def too_new(version: int, target: int = SCHEMA_VERSION) -> SchemaVersionError:
    """The error for a database at ``version``, newer than this wirelab's ``target``."""
    return SchemaVersionError(
        f"database schema version {version} is newer than this wirelab supports "
        f"({target}); upgrade wirelab"
    )


def outdated(version: int, target: int = SCHEMA_VERSION) -> SchemaVersionError:
    """The error for a database at ``version``, older than ``target``: it needs an upgrade."""
    return SchemaVersionError(
        f"database schema version {version} is older than this wirelab's ({target}): "
        "run 'wirelab db upgrade' (with the same --database-url) first"
    )


@dataclass(frozen=True)
class Versioning:
    """How one engine opens a migration transaction and keeps the schema version.

    Every callable gets a connection in autocommit mode (statements ``BEGIN``/``COMMIT``
    are sent as SQL). ``begin`` opens the transaction and takes whatever lock makes
    concurrent migrators wait; ``read``/``write`` get/set the version inside it; ``ddl``
    rewrites a migration's text for the engine; ``error`` is the engine's error class.
    """

    begin: Callable[[Any], None]
    read: Callable[[Any], int]
    write: Callable[[Any, int], None]
    ddl: Callable[[str], str]
    error: type[Exception]


def _sqlite_write(conn: sqlite3.Connection, version: int) -> None:
    conn.execute(f"PRAGMA user_version = {version:d}")


SQLITE_VERSIONING = Versioning(
    begin=lambda conn: conn.execute("BEGIN IMMEDIATE"),
    read=schema_version,
    write=_sqlite_write,
    ddl=lambda script: script,
    error=sqlite3.Error,
)


def migrate(conn: sqlite3.Connection, migrations: tuple[str, ...] = MIGRATIONS) -> int:
    """Apply the pending ``migrations`` to the SQLite ``conn``; return the new version.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open
    transaction. See :func:`apply_migrations`.
    """
    return apply_migrations(conn, SQLITE_VERSIONING, migrations)


def apply_migrations(
    conn: Any, versioning: Versioning, migrations: tuple[str, ...] = MIGRATIONS
) -> int:
    """Apply the pending ``migrations`` to ``conn`` and return the resulting version.

    Re-running is a no-op. The version is re-read inside each write transaction (under
    the engine's lock), so two processes migrating at once apply every migration once.
    Raises :class:`SchemaVersionError` when the database is newer than ``migrations``.
    A failing migration is rolled back and the engine's error propagates.
    """
    target = len(migrations)
    while True:
        versioning.begin(conn)
        try:
            version = versioning.read(conn)
            if version > target:
                raise too_new(version, target)
            if version == target:
                conn.execute("COMMIT")
                return version
            # executescript() would commit the open transaction first: run statements
            # one by one instead, so the migration and the version bump commit together.
            for statement in _statements(versioning.ddl(migrations[version])):
                conn.execute(statement)
            versioning.write(conn, version + 1)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(versioning.error):  # no transaction left to roll back
                conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split ``script`` into complete SQL statements (using SQLite's own tokenizer)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in migration: {current.strip()!r}")
    return statements
