"""The backend-neutral :class:`~wirelab.db.MediaJobRepository`: the ``media_jobs`` table.

A claim is one write transaction that picks its row with ``FOR UPDATE SKIP LOCKED`` where
writers run concurrently (SQLite runs one at a time), so a job is never handed to two
workers; every worker write checks ``lease_owner`` in its ``WHERE``. Creating a job holds
its owner's lock, so the de-duplication checks and the insert are one step.
"""

from __future__ import annotations

from dataclasses import astuple
from typing import Any

from ._media_api import Heartbeat, MediaJob
from ._sql import Backend, Conn

__all__ = ["MediaJobs", "orphan_media_jobs", "owner_lock"]

_COLUMNS = (
    "id, owner, state, request, request_hash, idempotency_key, progress, phase,"
    " error_message, error_retryable, cancel_requested, attempts, not_before, lease_owner,"
    " lease_until, result_key, result_name, result_size, result_sha256, result_duration,"
    " result_start, created_at, updated_at, started_at, finished_at, expires_at"
)
_VALUES = ", ".join("?" * len(_COLUMNS.split(",")))
_RESULT_FIELDS = ("key", "name", "size", "sha256", "duration", "start")


def _job(row: tuple[Any, ...]) -> MediaJob:
    values = list(row)
    values[9] = None if values[9] is None else bool(values[9])
    values[10] = bool(values[10])
    return MediaJob(*values)


def _select(conn: Conn, where: str, params: tuple[Any, ...]) -> list[MediaJob]:
    cursor = conn.execute(f"SELECT {_COLUMNS} FROM media_jobs WHERE {where}", params)  # noqa: S608
    return [_job(row) for row in cursor.fetchall()]


def _one(conn: Conn, where: str, params: tuple[Any, ...]) -> MediaJob | None:
    found = _select(conn, where + " LIMIT 1", params)
    return found[0] if found else None


def owner_lock(owner: str) -> str:
    """The lock name of ``owner``'s jobs (creating one; removing the owner)."""
    return "media-owner:" + owner


def _row(job: MediaJob) -> tuple[Any, ...]:
    values = list(astuple(job))
    values[9] = None if values[9] is None else int(values[9])
    values[10] = int(values[10])
    return tuple(values)


class MediaJobs:
    """See :class:`wirelab.db.MediaJobRepository` for each method's contract."""

    def __init__(self, db: Backend) -> None:
        self._db = db
        self._dialect = db.dialect

    async def create(self, job: MediaJob, now: float) -> tuple[MediaJob, bool]:
        def create(conn: Conn) -> tuple[MediaJob, bool]:
            self._dialect.lock(conn, owner_lock(job.owner))
            if job.idempotency_key is not None:
                found = _one(
                    conn, "owner = ? AND idempotency_key = ?", (job.owner, job.idempotency_key)
                )
                if found is not None:
                    return found, False
            found = _one(
                conn,
                "owner = ? AND request_hash = ? AND (state IN ('queued', 'running')"
                " OR (state = 'succeeded' AND result_key IS NOT NULL AND expires_at > ?))"
                " AND cancel_requested = 0 ORDER BY seq DESC",
                (job.owner, job.request_hash, now),
            )
            if found is not None:
                return found, False
            conn.execute(
                f"INSERT INTO media_jobs ({_COLUMNS}) VALUES ({_VALUES})",  # noqa: S608
                _row(job),
            )
            return job, True

        return await self._db.write(create)

    async def get(self, owner: str, job_id: str) -> MediaJob | None:
        return await self._db.run(lambda c: _one(c, "id = ? AND owner = ?", (job_id, owner)))

    async def get_any(self, job_id: str) -> MediaJob | None:
        return await self._db.run(lambda c: _one(c, "id = ?", (job_id,)))

    async def list_jobs(self, owner: str, state: str | None, limit: int) -> list[MediaJob]:
        if state is None:
            where, params = "owner = ?", (owner, limit)
        else:
            where, params = "owner = ? AND state = ?", (owner, state, limit)  # type: ignore[assignment]
        return await self._db.run(
            lambda c: _select(c, where + " ORDER BY seq DESC LIMIT ?", params)
        )

    async def find_latest(self, owner: str, request_hash: str) -> MediaJob | None:
        where = "owner = ? AND request_hash = ? ORDER BY seq DESC"
        return await self._db.run(lambda c: _one(c, where, (owner, request_hash)))

    async def claim(self, worker: str, now: float, lease_until: float) -> MediaJob | None:
        def claim(conn: Conn) -> MediaJob | None:
            found = _select(
                conn,
                "state = 'queued' AND not_before <= ? ORDER BY not_before, seq"
                f" LIMIT 1{self._dialect.skip_locked}",
                (now,),
            )
            if not found:
                return None
            job = found[0]
            conn.execute(
                "UPDATE media_jobs SET state = 'running', lease_owner = ?, lease_until = ?,"
                " attempts = attempts + 1, started_at = COALESCE(started_at, ?),"
                " updated_at = ?, phase = 'starting' WHERE id = ?",
                (worker, lease_until, now, now, job.id),
            )
            return _one(conn, "id = ?", (job.id,))

        return await self._db.write(claim)

    async def heartbeat(
        self,
        job_id: str,
        worker: str,
        now: float,
        lease_until: float,
        progress: float,
        phase: str,
    ) -> Heartbeat:
        def beat(conn: Conn) -> Heartbeat:
            cursor = conn.execute(
                "UPDATE media_jobs SET lease_until = ?,"
                " progress = CASE WHEN progress > ? THEN progress ELSE ? END,"
                " phase = ?, updated_at = ? WHERE id = ? AND lease_owner = ?"
                " AND state = 'running'",
                (lease_until, progress, progress, phase, now, job_id, worker),
            )
            row = conn.execute(
                "SELECT cancel_requested FROM media_jobs WHERE id = ?", (job_id,)
            ).fetchone()
            return Heartbeat(cursor.rowcount == 1, bool(row and row[0]))

        return await self._db.write(beat)

    async def succeed(
        self,
        job_id: str,
        worker: str,
        now: float,
        result: dict[str, str | int],
        expires_at: float,
    ) -> bool:
        values = [result[name] for name in _RESULT_FIELDS]
        sets = ", ".join(f"result_{name} = ?" for name in _RESULT_FIELDS)

        def succeed(conn: Conn) -> bool:
            cursor = conn.execute(
                f"UPDATE media_jobs SET {sets}, state = 'succeeded', progress = 100,"  # noqa: S608
                " phase = 'done', error_message = NULL, error_retryable = NULL,"
                " lease_owner = NULL, lease_until = NULL, finished_at = ?, updated_at = ?,"
                " expires_at = ? WHERE id = ? AND lease_owner = ? AND state = 'running'"
                " AND cancel_requested = 0",
                (*values, now, now, expires_at, job_id, worker),
            )
            return cursor.rowcount == 1

        return await self._db.write(succeed)

    async def finish(
        self,
        job_id: str,
        worker: str,
        now: float,
        state: str,
        message: str | None = None,
        retryable: bool | None = None,
        not_before: float | None = None,
    ) -> bool:
        terminal = state != "queued"

        def finish(conn: Conn) -> bool:
            cursor = conn.execute(
                "UPDATE media_jobs SET state = ?, phase = ?, error_message = ?,"
                " error_retryable = ?, lease_owner = NULL, lease_until = NULL,"
                " not_before = COALESCE(?, not_before), updated_at = ?,"
                " finished_at = COALESCE(?, finished_at)"
                " WHERE id = ? AND lease_owner = ? AND state = 'running'",
                (
                    state,
                    state if terminal else "waiting to retry",
                    message,
                    None if retryable is None else int(retryable),
                    not_before,
                    now,
                    now if terminal else None,
                    job_id,
                    worker,
                ),
            )
            return cursor.rowcount == 1

        return await self._db.write(finish)

    async def request_cancel(self, owner: str, job_id: str, now: float) -> MediaJob | None:
        def cancel(conn: Conn) -> MediaJob | None:
            conn.execute(
                "UPDATE media_jobs SET state = 'canceled', phase = 'canceled',"
                " cancel_requested = 1, finished_at = ?, updated_at = ?"
                " WHERE id = ? AND owner = ? AND state = 'queued'",
                (now, now, job_id, owner),
            )
            conn.execute(
                "UPDATE media_jobs SET cancel_requested = 1, updated_at = ?"
                " WHERE id = ? AND owner = ? AND state = 'running'",
                (now, job_id, owner),
            )
            return _one(conn, "id = ? AND owner = ?", (job_id, owner))

        return await self._db.write(cancel)

    async def delete(self, owner: str, job_id: str) -> MediaJob | None:
        def delete(conn: Conn) -> MediaJob | None:
            job = _one(conn, "id = ? AND owner = ?", (job_id, owner))
            if job is not None and not job.active:
                conn.execute("DELETE FROM media_jobs WHERE id = ?", (job_id,))
            return job

        return await self._db.write(delete)

    async def requeue(self, now: float, *, expired_only: bool) -> list[str]:
        where = "state = 'running'" + (" AND lease_until < ?" if expired_only else "")
        params: tuple[Any, ...] = (now,) if expired_only else ()

        def requeue(conn: Conn) -> list[str]:
            jobs = _select(conn, where, params)
            for job in jobs:
                state = "canceled" if job.cancel_requested else "queued"
                conn.execute(
                    "UPDATE media_jobs SET state = ?, phase = ?, lease_owner = NULL,"
                    " lease_until = NULL, updated_at = ?,"
                    " finished_at = ? WHERE id = ?",
                    (state, state, now, now if state == "canceled" else None, job.id),
                )
            return [job.id for job in jobs]

        return await self._db.write(requeue)

    async def expired_results(self, now: float, limit: int) -> list[MediaJob]:
        return await self._db.run(
            lambda c: _select(
                c,
                "result_key IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?",
                (now, limit),
            )
        )

    async def clear_result(self, job_id: str, now: float) -> None:
        def clear(conn: Conn) -> None:
            conn.execute(
                "UPDATE media_jobs SET result_key = NULL, updated_at = ?, phase = 'expired'"
                " WHERE id = ?",
                (now, job_id),
            )

        await self._db.write(clear)


def orphan_media_jobs(conn: Conn, name: str, now: float) -> None:
    """Detach the media jobs of removed user ``name`` (inside the removing transaction).

    Their owner becomes ``""`` (no user can have that name, so a new user of the same
    name sees none of them); queued ones are cancelled, running ones get the cancel flag,
    and results expire now, so the sweeper deletes their blobs.
    """
    conn.execute(
        "UPDATE media_jobs SET state = 'canceled', phase = 'canceled', finished_at = ?"
        " WHERE owner = ? AND state = 'queued'",
        (now, name),
    )
    conn.execute(
        "UPDATE media_jobs SET owner = '', cancel_requested = 1, idempotency_key = NULL,"
        " expires_at = CASE WHEN result_key IS NULL THEN expires_at ELSE ? END,"
        " updated_at = ? WHERE owner = ?",
        (now, now, name),
    )
