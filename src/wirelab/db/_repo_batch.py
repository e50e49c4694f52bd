"""Batches in the relay store: several uploads delivered in one transaction.

A batch's uploads go ``receiving`` -> ``committed`` (blob verified and in place, journal
entry and quota reservation kept) -> ``complete``. The commit of the last one delivers
the whole batch in the same transaction: the file rows are inserted in manifest order (so
they are adjacent in FIFO order), the journal entries dropped, the batch marked delivered.
The commit locks the batch row first, so of two last uploads committing at once on a
backend with concurrent writers, the second sees the first and delivers the batch.
"""

from __future__ import annotations

from dataclasses import astuple
from typing import Any

from ._api import RelayBatch, RelayFile, RelayUpload
from ._repo_relay import (
    _UPLOAD_COLUMNS,
    Relay,
    _insert_file,
    _select_files,
)
from ._sql import Conn, Dialect

__all__ = ["RelayStore"]

_BATCH_COLUMNS = (
    "id, owner, recipient, note, ttl, max_downloads, count, created_at, expires_at, delivered_at"
)


def _batch(row: tuple[Any, ...] | None) -> RelayBatch | None:
    return None if row is None else RelayBatch(*row)


def _uploads(conn: Conn, batch_id: str) -> list[RelayUpload]:
    cursor = conn.execute(
        f"SELECT {_UPLOAD_COLUMNS} FROM relay_uploads"  # noqa: S608
        " WHERE batch_id = ? ORDER BY batch_index",
        (batch_id,),
    )
    return [RelayUpload(*row) for row in cursor.fetchall()]


def _deliver(
    conn: Conn, dialect: Dialect, batch: RelayBatch, now: float, default_ttl: float
) -> list[RelayFile]:
    """Insert the files of ``batch`` (all committed) in manifest order; mark delivered."""
    ttl = default_ttl if batch.ttl is None else batch.ttl
    files = [
        RelayFile(
            id=u.id,
            recipient=batch.recipient,
            sender=batch.owner,
            name=u.name,
            media_type=u.media_type,
            note=batch.note,
            size=u.length,
            sha256=u.sha256 or "",
            blob_key=u.id,
            created_at=now,
            expires_at=now + ttl,
            max_downloads=batch.max_downloads,
            batch_id=batch.id,
            batch_index=u.batch_index,
            batch_count=batch.count,
            encryption=u.encryption,
            digest_algorithm=u.digest_algorithm,
        )
        for u in _uploads(conn, batch.id)
    ]
    for file in files:
        _insert_file(conn, dialect, file)
    conn.execute("UPDATE relay_uploads SET state = 'complete' WHERE batch_id = ?", (batch.id,))
    conn.execute(
        "UPDATE relay_batches SET delivered_at = ?, expires_at = ? WHERE id = ?",
        (now, now + ttl, batch.id),
    )
    return files


def _drop(conn: Conn, batch_id: str) -> list[str]:
    """Delete an undelivered batch and its uploads; the keys to discard."""
    keys = [u.id for u in _uploads(conn, batch_id) if not u.complete]
    conn.execute("DELETE FROM relay_uploads WHERE batch_id = ?", (batch_id,))
    conn.execute("DELETE FROM relay_batches WHERE id = ?", (batch_id,))
    return keys


class RelayStore(Relay):
    """The relay repository with batches (see :class:`~wirelab.db.RelayRepository`)."""

    async def create_batch(self, batch: RelayBatch, uploads: list[RelayUpload]) -> None:
        """See :meth:`wirelab.db.RelayRepository.create_batch`."""

        def insert(conn: Conn) -> None:
            conn.execute(
                f"INSERT INTO relay_batches ({_BATCH_COLUMNS})"  # noqa: S608
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                astuple(batch),
            )
            marks = ", ".join("?" * len(_UPLOAD_COLUMNS.split(",")))
            conn.executemany(
                f"INSERT INTO relay_uploads ({_UPLOAD_COLUMNS}) VALUES ({marks})",  # noqa: S608
                [astuple(u) for u in uploads],
            )

        await self._db.write(insert)

    async def get_batch(self, batch_id: str) -> RelayBatch | None:
        """See :meth:`wirelab.db.RelayRepository.get_batch`."""

        def select(conn: Conn) -> RelayBatch | None:
            row = conn.execute(
                f"SELECT {_BATCH_COLUMNS} FROM relay_batches WHERE id = ?",  # noqa: S608
                (batch_id,),
            ).fetchone()
            return _batch(row)

        return await self._db.run(select)

    async def batch_uploads(self, batch_id: str) -> list[RelayUpload]:
        """See :meth:`wirelab.db.RelayRepository.batch_uploads`."""
        return await self._db.run(lambda conn: _uploads(conn, batch_id))

    async def batch_files(self, batch_id: str, now: float) -> list[RelayFile]:
        """See :meth:`wirelab.db.RelayRepository.batch_files`."""

        return await self._db.run(
            lambda conn: _select_files(
                conn, "batch_id = ? AND expires_at > ? ORDER BY batch_index", (batch_id, now)
            )
        )

    async def commit_batch_upload(
        self, upload_id: str, sha256: str, now: float, default_ttl: float
    ) -> list[RelayFile]:
        """See :meth:`wirelab.db.RelayRepository.commit_batch_upload`."""

        def commit(conn: Conn) -> list[RelayFile]:
            row = conn.execute(
                f"SELECT {_BATCH_COLUMNS} FROM relay_batches WHERE id ="  # noqa: S608
                " (SELECT batch_id FROM relay_uploads WHERE id = ?)"
                f"{self._dialect.for_update}",
                (upload_id,),
            ).fetchone()
            conn.execute(
                "UPDATE relay_uploads SET state = 'committed', sha256 = ?"
                " WHERE id = ? AND state = 'receiving'",
                (sha256, upload_id),
            )
            batch = _batch(row)
            if batch is None or batch.delivered_at is not None:
                return []
            waiting = conn.execute(
                "SELECT COUNT(*) FROM relay_uploads WHERE batch_id = ? AND state = 'receiving'",
                (batch.id,),
            ).fetchone()[0]
            return [] if waiting else _deliver(conn, self._dialect, batch, now, default_ttl)

        return await self._db.write(commit)

    async def delete_batch(self, batch_id: str) -> list[str]:
        """See :meth:`wirelab.db.RelayRepository.delete_batch`."""
        return await self._db.write(lambda conn: _drop(conn, batch_id))

    async def delete_expired_batches(self, now: float) -> list[str]:
        """See :meth:`wirelab.db.RelayRepository.delete_expired_batches`."""

        def delete(conn: Conn) -> list[str]:
            keys: list[str] = []
            rows = conn.execute(
                "SELECT id, delivered_at FROM relay_batches WHERE expires_at <= ?", (now,)
            ).fetchall()
            for batch_id, delivered_at in rows:
                if delivered_at is None:
                    keys += _drop(conn, batch_id)
                else:  # its files expire with it (the file sweep removes them)
                    conn.execute("DELETE FROM relay_batches WHERE id = ?", (batch_id,))
            return keys

        return await self._db.write(delete)

    async def set_public_key(self, name: str, algorithm: str, public_key: str, now: float) -> None:
        """See :meth:`wirelab.db.RelayRepository.set_public_key`."""

        def upsert(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO relay_keys (name, algorithm, public_key, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " algorithm = excluded.algorithm, public_key = excluded.public_key,"
                " updated_at = excluded.updated_at",
                (name, algorithm, public_key, now),
            )

        await self._db.write(upsert)

    async def get_public_key(self, name: str) -> tuple[str, str] | None:
        """See :meth:`wirelab.db.RelayRepository.get_public_key`."""

        def select(conn: Conn) -> tuple[str, str] | None:
            row = conn.execute(
                "SELECT k.algorithm, k.public_key FROM relay_keys k"
                " JOIN users u ON u.name = k.name WHERE k.name = ?",
                (name,),
            ).fetchone()
            return None if row is None else (str(row[0]), str(row[1]))

        return await self._db.run(select)
