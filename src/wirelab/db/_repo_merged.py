"""The relay's hot statements, each merged into one round trip (backend-neutral SQL).

On a client-server engine every statement is a round trip through a pool thread and the
driver, and a transaction adds two more (``BEGIN``, ``COMMIT``). The relay's per-file
operations are therefore written as single statements wherever one statement can carry
the whole rule, and run outside an explicit transaction
(:meth:`~wirelab.db._sql.Backend.write_one`) where that statement is all there is:

- a lease is one ``UPDATE ... WHERE id = (SELECT ... LIMIT 1 FOR UPDATE SKIP LOCKED)
  RETURNING``: the statement's snapshot is taken when it starts, so it sees every file
  committed before the call; concurrent leasers skip each other's row instead of queueing
  behind it;
- an acknowledgement is one ``DELETE ... RETURNING``: of concurrent deletes of one row,
  exactly one gets it back (the others wait for its row lock, then find nothing);
- a file row is inserted only if its recipient exists, in the ``INSERT`` itself.

Where the engine takes data-modifying statements in ``WITH`` (:attr:`Dialect.dml_in_with`:
PostgreSQL), the journal write that goes with a delete or an insert rides in the same
statement: an acknowledgement is then one statement in all (no transaction), a file
insert two (the recipient's lock, then the statement). SQLite (3.35 or later) runs the
same SQL without the ``WITH``, as two statements of one transaction; its single writer
serialises it all anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple
from typing import Any

from ._api import RelayFile
from ._repo_reserve import JOURNAL_UPSERT
from ._sql import Conn, Dialect

__all__ = [
    "COLUMNS",
    "FILE_VALUES",
    "SELECT",
    "delete_journaled",
    "file_row",
    "file_values",
    "insert_journaled",
    "lease_one",
]

COLUMNS = (
    "id, recipient, sender, name, media_type, note, size, sha256, blob_key, "
    "created_at, expires_at, lease_id, lease_until, deliveries, downloads, max_downloads,"
    " batch_id, batch_index, batch_count, encryption, digest_algorithm"
)
"""The columns of ``relay_files`` that are fields of :class:`RelayFile`, in field order."""

FILE_VALUES = ", ".join("?" * len(COLUMNS.split(",")))

SELECT = COLUMNS + ", content IS NOT NULL"
"""What a read selects: the columns, then whether the bytes are inline (never the bytes:
they are read only by a download)."""


def file_row(row: tuple[Any, ...]) -> RelayFile:
    """The :class:`RelayFile` of a row of :data:`SELECT`."""
    values = list(row)
    values[-1] = bool(values[-1])  # `content IS NOT NULL`: 0/1 on SQLite
    return RelayFile(*values)


def file_values(file: RelayFile) -> tuple[Any, ...]:
    """The values of :data:`COLUMNS` for ``file`` (``inline`` is not a column)."""
    return astuple(file)[:-1]


#: A file of recipient ``?`` that can be leased at ``?`` (now, twice).
_AVAILABLE = (
    "recipient = ? AND expires_at > ? AND (lease_until IS NULL OR lease_until <= ?)"
    " AND (max_downloads IS NULL OR downloads < max_downloads)"
)
#: Statements a lease runs at most where concurrent leasers skip each other's rows.
_LEASE_TRIES = 5


def lease_one(
    conn: Conn, dialect: Dialect, recipient: str, now: float, lease_id: str, lease_until: float
) -> RelayFile | None:
    """Lease ``recipient``'s oldest available file; ``None``: none. Run outside an
    explicit transaction (each statement sees the latest commits).

    Available: unexpired, not leased (or its lease ended), below its download limit (a
    file at its limit cannot be downloaded: offering it would block every receiver behind
    it). Files are inserted under the recipient's lock, so ``seq`` order is commit order
    and the statement's snapshot holds a prefix of the queue. Skipping locked rows lets
    concurrent leasers pass each other without waiting (a waiter would go on from a
    stale snapshot). A leaser that started later may hold the only row this statement
    can see while its own file came after this statement's snapshot: when the statement
    finds nothing but an available file exists, it runs again with a new snapshot (up to
    :data:`_LEASE_TRIES` statements), so that a lease never misses a file committed before
    the call. A file whose row another single statement is changing at that very instant
    (its download being counted) may still be passed over by that lease and offered to
    the next.
    """
    args = (recipient, now, now)
    for _ in range(_LEASE_TRIES):
        rows = conn.execute(
            "UPDATE relay_files SET lease_id = ?, lease_until = ?, deliveries = deliveries + 1"  # noqa: S608
            f" WHERE id = (SELECT id FROM relay_files WHERE {_AVAILABLE}"
            f"  ORDER BY seq LIMIT 1{dialect.skip_locked})"
            f" RETURNING {SELECT}",
            (lease_id, lease_until, *args),
        ).fetchall()
        if rows:
            return file_row(rows[0])
        if not dialect.skip_locked:  # leases run one at a time: nothing was skipped
            return None
        available = conn.execute(
            f"SELECT 1 FROM relay_files WHERE {_AVAILABLE} LIMIT 1",  # noqa: S608
            args,
        ).fetchone()
        if available is None:
            return None
    return None


_JOURNAL_INSERT = JOURNAL_UPSERT[: JOURNAL_UPSERT.index(" VALUES ")]
_JOURNAL_CONFLICT = JOURNAL_UPSERT[JOURNAL_UPSERT.index(" ON CONFLICT") :]
"""``INSERT INTO relay_blob_journal (columns)`` and its ``ON CONFLICT ...`` clause."""


def delete_journaled(
    conn: Conn, dialect: Dialect, recipient: str, file_id: str, now: float
) -> RelayFile | None:
    """Delete file ``file_id`` of ``recipient`` unless it expired at ``now``, and journal
    its blob key for deletion (not an inline file's: its bytes went with the row). The
    deleted file, or ``None`` when there was none (or a concurrent delete took it first).
    One statement where :attr:`Dialect.dml_in_with`, else two: run in a transaction."""
    where = "id = ? AND recipient = ? AND expires_at > ?"
    if dialect.dml_in_with:
        rows = conn.execute(
            f"WITH d AS (DELETE FROM relay_files WHERE {where}"  # noqa: S608
            f" RETURNING {COLUMNS}, content IS NOT NULL AS is_inline),"
            f" j AS ({_JOURNAL_INSERT} SELECT blob_key, 'delete', ?, NULL, 0, 0, NULL, NULL"
            f" FROM d WHERE NOT is_inline{_JOURNAL_CONFLICT})"
            " SELECT * FROM d",
            (file_id, recipient, now, now),
        ).fetchall()
        return file_row(rows[0]) if rows else None
    rows = conn.execute(
        f"DELETE FROM relay_files WHERE {where} RETURNING {SELECT}",  # noqa: S608
        (file_id, recipient, now),
    ).fetchall()
    if not rows:
        return None
    file = file_row(rows[0])
    if not file.inline:
        conn.execute(JOURNAL_UPSERT, (file.blob_key, "delete", now, None, 0, 0, None, None))
    return file


def insert_journaled(conn: Conn, dialect: Dialect, file: RelayFile) -> Callable[[], bool]:
    """Insert ``file`` if its recipient exists and drop its blob key from the journal;
    returns a function telling whether it was inserted (if not, nothing changed), to call
    once the statement's result is in (after the commit, in a pipelined write). The
    caller holds the recipient's lock, in a transaction (two statements where not
    :attr:`Dialect.dml_in_with`)."""
    insert = (
        f"INSERT INTO relay_files ({COLUMNS})"  # noqa: S608
        f" SELECT {FILE_VALUES} WHERE EXISTS (SELECT 1 FROM users WHERE name = ?)"
    )
    if dialect.dml_in_with:
        cursor = conn.execute(
            f"WITH i AS ({insert} RETURNING blob_key),"  # noqa: S608
            " d AS (DELETE FROM relay_blob_journal WHERE blob_key IN (SELECT blob_key FROM i))"
            " SELECT COUNT(*) FROM i",
            (*file_values(file), file.recipient),
        )
        return lambda: bool(cursor.fetchone()[0])
    if conn.execute(insert, (*file_values(file), file.recipient)).rowcount != 1:
        return lambda: False
    conn.execute("DELETE FROM relay_blob_journal WHERE blob_key = ?", (file.blob_key,))
    return lambda: True
