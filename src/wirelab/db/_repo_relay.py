"""The backend-neutral :class:`~wirelab.db.RelayRepository`: relay files and the blob journal.

FIFO order is the ``seq`` column (SQLite ``AUTOINCREMENT``, PostgreSQL identity: never
reused). Every method is one statement or one write transaction of the backend, so a
delete and its journal entry commit together. Order and leases hold on every backend:
a file is inserted under its recipient's lock (:meth:`Dialect.lock`), so ``seq`` grows in
commit order within a queue; a lease is one statement that locks the row it picks
(:func:`~._repo_merged.lease_one`), so one file is never leased twice and a lease never
misses a file committed before it. Single-statement writes go through
:meth:`~._sql.Backend.write_one` (no explicit transaction where the engine allows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import astuple, replace
from typing import Any

from ..auth import UserNotFoundError
from ._api import PendingLimits, QuotaDefaults, RelayFile, RelayUpload, Usage
from ._repo_merged import COLUMNS as _COLUMNS
from ._repo_merged import FILE_VALUES as _FILE_VALUES
from ._repo_merged import SELECT as _SELECT
from ._repo_merged import delete_journaled, file_row, file_values, insert_journaled, lease_one
from ._repo_reserve import (
    JOURNAL_UPSERT,
    check,
    hold,
    queue_lock,
    release,
    reserve_keys,
    usage,
)
from ._sql import Backend, Conn, Dialect

__all__ = ["Relay"]

#: Keys per statement of ``journal_remove_many``.
_JOURNAL_BATCH = 500

_UPLOAD_COLUMNS = (
    "id, owner, recipient, name, media_type, note, length, sha256, created_at, expires_at,"
    " state, max_downloads, batch_id, batch_index, encryption, digest_algorithm"
)
_UPLOAD_VALUES = ", ".join("?" * len(_UPLOAD_COLUMNS.split(",")))


def _select_file(conn: Conn, recipient: str, file_id: str, now: float) -> RelayFile | None:
    """File ``file_id`` of ``recipient`` if it has not expired at ``now``."""
    row = conn.execute(
        f"SELECT {_SELECT} FROM relay_files"  # noqa: S608
        " WHERE id = ? AND recipient = ? AND expires_at > ?",
        (file_id, recipient, now),
    ).fetchone()
    return None if row is None else file_row(row)


def _select_files(conn: Conn, where: str, params: tuple[Any, ...]) -> list[RelayFile]:
    """The files matching ``where`` (SQL after ``WHERE``, with ``?`` for ``params``)."""
    cursor = conn.execute(f"SELECT {_SELECT} FROM relay_files WHERE {where}", params)  # noqa: S608
    return [file_row(row) for row in cursor.fetchall()]


def _journal(conn: Conn, blob_key: str, reason: str, now: float) -> None:
    """Record ``blob_key`` in the blob journal (replacing an entry for the same key)."""
    conn.execute(JOURNAL_UPSERT, (blob_key, reason, now, None, 0, 0, None, None))


def _insert_file(conn: Conn, dialect: Dialect, file: RelayFile) -> None:
    """Insert ``file`` and drop its blob key from the journal (inside the caller's commit).

    :class:`~wirelab.auth.UserNotFoundError` when the recipient was removed meanwhile: a
    new user of the same name must never receive it.
    """
    if not _insert_file_deferred(conn, dialect, file)():
        raise UserNotFoundError(f"no user named {file.recipient!r}")


def _insert_file_deferred(conn: Conn, dialect: Dialect, file: RelayFile) -> Callable[[], bool]:
    """:func:`_insert_file`, whose outcome (inserted, or no such recipient) is read by
    the function returned, after the commit in a pipelined write."""
    dialect.lock(conn, queue_lock(file.recipient))
    # The recipient's existence is checked by the INSERT itself (one round trip fewer),
    # under the lock that a user's removal takes too.
    return insert_journaled(conn, dialect, file)


def _check_room(conn: Conn, dialect: Dialect, file: RelayFile, quota: QuotaDefaults) -> None:
    """Under the recipient's lock: :class:`~wirelab.auth.UserNotFoundError` when there is
    no such user, :class:`QuotaExceeded` unless ``file`` fits beside the files and held
    reservations."""
    dialect.lock(conn, queue_lock(file.recipient))
    used = usage(conn, file.recipient, file.created_at, quota)
    if used is None:  # no such user (usage() read the users row under the lock)
        raise UserNotFoundError(f"no user named {file.recipient!r}")
    check(file.recipient, used, file.size, 1)


def _insert_inline(
    conn: Conn, dialect: Dialect, file: RelayFile, content: bytes, quota: QuotaDefaults
) -> None:
    """Check the quota and insert ``file`` with its bytes (inside the caller's commit)."""
    _check_room(conn, dialect, file, quota)
    conn.execute(
        f"INSERT INTO relay_files ({_COLUMNS}, content)"  # noqa: S608
        f" VALUES ({_FILE_VALUES}, ?)",
        (*file_values(file), content),
    )


class Relay:
    """The :class:`~wirelab.db.RelayRepository` of a database ``db``."""

    def __init__(self, db: Backend) -> None:
        self._db = db
        self._dialect = db.dialect

    async def journal_add(self, blob_key: str, reason: str, now: float) -> None:
        """See :meth:`wirelab.db.RelayRepository.journal_add`."""

        def insert(conn: Conn) -> None:
            _journal(conn, blob_key, reason, now)

        await self._db.write_one(insert)

    async def reserve(
        self,
        keys: list[tuple[str, int]],
        recipient: str,
        now: float,
        quota: QuotaDefaults,
        *,
        sender: str | None = None,
        pending: PendingLimits | None = None,
        until: float | None = None,
    ) -> Usage:
        """See :meth:`wirelab.db.RelayRepository.reserve`."""

        def insert(conn: Conn) -> Callable[[], Usage]:
            used = reserve_keys(
                conn,
                self._dialect,
                keys,
                recipient,
                now,
                quota,
                sender=sender,
                pending=pending,
                until=until,
            )
            return lambda: used

        # Pipelined: after the usage is read, the journal inserts and the commit go in one
        # round trip, so the recipient's lock is held across one turn of this process.
        return await self._db.write_pipelined(insert)

    async def hold_reservation(
        self, blob_key: str, now: float, quota: QuotaDefaults, until: float
    ) -> None:
        """See :meth:`wirelab.db.RelayRepository.hold_reservation`."""
        await self._db.write(lambda conn: hold(conn, self._dialect, blob_key, now, quota, until))

    async def release_reservation(self, blob_key: str, until: float) -> None:
        """See :meth:`wirelab.db.RelayRepository.release_reservation`."""
        await self._db.write_one(lambda conn: release(conn, blob_key, until))

    async def journal_remove(self, blob_key: str) -> None:
        """See :meth:`wirelab.db.RelayRepository.journal_remove`."""

        def delete(conn: Conn) -> None:
            conn.execute("DELETE FROM relay_blob_journal WHERE blob_key = ?", (blob_key,))

        await self._db.write_one(delete)

    async def journal_remove_many(self, blob_keys: Sequence[str]) -> None:
        """See :meth:`wirelab.db.RelayRepository.journal_remove_many`."""
        for first in range(0, len(blob_keys), _JOURNAL_BATCH):
            chunk = list(blob_keys[first : first + _JOURNAL_BATCH])
            marks = ", ".join("?" * len(chunk))
            sql = f"DELETE FROM relay_blob_journal WHERE blob_key IN ({marks})"  # noqa: S608

            def delete(conn: Conn, sql: str = sql, chunk: list[str] = chunk) -> None:
                conn.execute(sql, chunk)

            await self._db.write_one(delete)

    async def journal_list(self, reason: str | None = None) -> list[str]:
        """See :meth:`wirelab.db.RelayRepository.journal_list`."""

        def select(conn: Conn) -> list[str]:
            if reason is None:
                cursor = conn.execute("SELECT blob_key FROM relay_blob_journal ORDER BY created_at")
            else:
                cursor = conn.execute(
                    "SELECT blob_key FROM relay_blob_journal WHERE reason = ? ORDER BY created_at",
                    (reason,),
                )
            return [str(row[0]) for row in cursor.fetchall()]

        return await self._db.run(select)

    async def insert_file(self, file: RelayFile, quota: QuotaDefaults | None = None) -> None:
        """See :meth:`wirelab.db.RelayRepository.insert_file`."""

        def insert(conn: Conn) -> Callable[[], bool]:
            if quota is not None:
                # The file's own reservation (one file, 0 bytes) is replaced by the file.
                conn.execute(
                    "UPDATE relay_blob_journal SET reserved_files = 0 WHERE blob_key = ?",
                    (file.blob_key,),
                )
                _check_room(conn, self._dialect, file, quota)
            return _insert_file_deferred(conn, self._dialect, file)

        # Pipelined: the recipient's lock is not held across a turn of this process (nor,
        # without a quota check, for more than the statements' own time).
        if not await self._db.write_pipelined(insert):  # nothing changed: no such user
            raise UserNotFoundError(f"no user named {file.recipient!r}")

    async def insert_inline(self, file: RelayFile, content: bytes, quota: QuotaDefaults) -> None:
        """See :meth:`wirelab.db.RelayRepository.insert_inline`."""
        stored = replace(file, inline=True)
        await self._db.write(
            lambda conn: _insert_inline(conn, self._dialect, stored, content, quota)
        )

    async def read_content(self, file_id: str) -> bytes | None:
        """See :meth:`wirelab.db.RelayRepository.read_content`."""

        def select(conn: Conn) -> bytes | None:
            sql = "SELECT content FROM relay_files WHERE id = ?"
            row = conn.execute(sql, (file_id,)).fetchone()
            return None if row is None or row[0] is None else bytes(row[0])

        return await self._db.run(select)

    async def count_download(self, file_id: str) -> None:
        """See :meth:`wirelab.db.RelayRepository.count_download`."""

        def update(conn: Conn) -> None:
            conn.execute(
                "UPDATE relay_files SET downloads = downloads + 1 WHERE id = ?", (file_id,)
            )

        await self._db.write_one(update)

    async def list_inbox(self, recipient: str, now: float) -> list[RelayFile]:
        """See :meth:`wirelab.db.RelayRepository.list_inbox`."""

        return await self._db.run(
            lambda conn: _select_files(
                conn, "recipient = ? AND expires_at > ? ORDER BY seq", (recipient, now)
            )
        )

    async def get_file(self, recipient: str, file_id: str, now: float) -> RelayFile | None:
        """See :meth:`wirelab.db.RelayRepository.get_file`."""

        def select(conn: Conn) -> RelayFile | None:
            return _select_file(conn, recipient, file_id, now)

        return await self._db.run(select)

    async def delete_file(self, recipient: str, file_id: str, now: float) -> RelayFile | None:
        """See :meth:`wirelab.db.RelayRepository.delete_file`."""

        def delete(conn: Conn) -> RelayFile | None:
            # A DELETE ... RETURNING, not a read then a delete: of concurrent acknowledges
            # of one file exactly one gets it back (the others: None, i.e. 404).
            return delete_journaled(conn, self._dialect, recipient, file_id, now)

        # One statement (delete and journal) where the engine allows: no transaction.
        if self._dialect.dml_in_with:
            return await self._db.write_one(delete)
        return await self._db.write(delete)

    async def lease_next(
        self, recipient: str, now: float, lease_id: str, lease_until: float
    ) -> RelayFile | None:
        """See :meth:`wirelab.db.RelayRepository.lease_next`."""

        def lease(conn: Conn) -> RelayFile | None:
            return lease_one(conn, self._dialect, recipient, now, lease_id, lease_until)

        return await self._db.write_one(lease)

    async def next_lease_end(self, recipient: str, now: float) -> float | None:
        """See :meth:`wirelab.db.RelayRepository.next_lease_end`."""

        def select(conn: Conn) -> float | None:
            row = conn.execute(
                "SELECT MIN(lease_until) FROM relay_files"
                " WHERE recipient = ? AND expires_at > ? AND lease_until > ?",
                (recipient, now, now),
            ).fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return await self._db.run(select)

    async def release_lease(
        self, recipient: str, file_id: str, lease_id: str | None, now: float
    ) -> RelayFile | None:
        """See :meth:`wirelab.db.RelayRepository.release_lease`."""

        def release(conn: Conn) -> RelayFile | None:
            file = _select_file(conn, recipient, file_id, now)
            if file is None:
                return None
            if lease_id is not None and file.lease_id != lease_id:
                return file  # another (newer) lease, or none: leave it alone
            conn.execute(
                "UPDATE relay_files SET lease_id = NULL, lease_until = NULL WHERE id = ?",
                (file_id,),
            )
            return replace(file, lease_id=None, lease_until=None)

        return await self._db.write(release)

    async def find_queued(
        self, sender: str, recipient: str, sha256: str, now: float, algorithm: str = "sha256"
    ) -> list[RelayFile]:
        """See :meth:`wirelab.db.RelayRepository.find_queued`."""

        return await self._db.run(
            lambda conn: _select_files(
                conn,
                "sender = ? AND recipient = ? AND sha256 = ? AND digest_algorithm = ?"
                " AND expires_at > ? ORDER BY seq",
                (sender, recipient, sha256, algorithm, now),
            )
        )

    async def delete_expired(self, now: float, limit: int) -> tuple[int, list[str]]:
        """See :meth:`wirelab.db.RelayRepository.delete_expired`."""

        def delete(conn: Conn) -> tuple[int, list[str]]:
            rows = conn.execute(
                "SELECT id, blob_key, content IS NOT NULL FROM relay_files"  # noqa: S608
                f" WHERE expires_at <= ? ORDER BY expires_at LIMIT ?{self._dialect.skip_locked}",
                (now, limit),
            ).fetchall()
            keys = []
            for file_id, blob_key, inline in rows:
                conn.execute("DELETE FROM relay_files WHERE id = ?", (file_id,))
                if not inline:  # inline bytes went with the row
                    _journal(conn, blob_key, "delete", now)
                    keys.append(str(blob_key))
            return len(rows), keys

        return await self._db.write(delete)

    async def insert_upload(self, upload: RelayUpload) -> None:
        """See :meth:`wirelab.db.RelayRepository.insert_upload`."""

        def insert(conn: Conn) -> None:
            conn.execute(
                f"INSERT INTO relay_uploads ({_UPLOAD_COLUMNS})"  # noqa: S608
                f" VALUES ({_UPLOAD_VALUES})",
                astuple(upload),
            )

        await self._db.write_one(insert)

    async def get_upload(self, upload_id: str) -> RelayUpload | None:
        """See :meth:`wirelab.db.RelayRepository.get_upload`."""

        def select(conn: Conn) -> RelayUpload | None:
            row = conn.execute(
                f"SELECT {_UPLOAD_COLUMNS} FROM relay_uploads WHERE id = ?",  # noqa: S608
                (upload_id,),
            ).fetchone()
            return None if row is None else RelayUpload(*row)

        return await self._db.run(select)

    async def list_uploads(self) -> list[RelayUpload]:
        """See :meth:`wirelab.db.RelayRepository.list_uploads`."""

        def select(conn: Conn) -> list[RelayUpload]:
            cursor = conn.execute(
                f"SELECT {_UPLOAD_COLUMNS} FROM relay_uploads ORDER BY created_at"  # noqa: S608
            )
            return [RelayUpload(*row) for row in cursor.fetchall()]

        return await self._db.run(select)

    async def delete_upload(self, upload_id: str) -> None:
        """See :meth:`wirelab.db.RelayRepository.delete_upload`."""

        def delete(conn: Conn) -> None:
            conn.execute("DELETE FROM relay_uploads WHERE id = ?", (upload_id,))

        await self._db.write_one(delete)

    async def finish_upload(self, upload_id: str, file: RelayFile) -> None:
        """See :meth:`wirelab.db.RelayRepository.finish_upload`."""

        def finish(conn: Conn) -> None:
            _insert_file(conn, self._dialect, file)
            conn.execute(
                "UPDATE relay_uploads SET state = 'complete', sha256 = ? WHERE id = ?",
                (file.sha256, upload_id),
            )

        await self._db.write(finish)
