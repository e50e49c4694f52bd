"""Quota reservations of uploads in progress, and what bounds them (backend-neutral).

A reservation is carried by the blob journal entry of an upload's key (reason
``"upload"``): ``reserved_bytes``/``reserved_files`` in the ``recipient``'s inbox, charged
to ``sender``. It counts in the recipient's quota only while it is *held*:
``reserved_until`` in the future (or ``NULL``: held for good, rows older than this rule).
Arriving bytes renew it; a reservation that lapsed (no bytes for a while) is re-checked
against the quota when bytes arrive again.
Every unfinished upload counts, lapsed or not, in its sender's pending allowance, so
one sender can neither hold a recipient's quota without sending nor pile up uploads.
All functions run inside the caller's transaction. Checking a quota and charging it is
one step under the recipient's lock (and the sender's, for the pending allowance): on a
backend with concurrent writers, two reservations can never both see the same free room.
"""

from __future__ import annotations

from ..auth import UserNotFoundError
from ._api import PendingExceeded, PendingLimits, QuotaDefaults, QuotaExceeded, Usage
from ._sql import Conn, Dialect

__all__ = [
    "JOURNAL_UPSERT",
    "check",
    "hold",
    "queue_lock",
    "release",
    "reserve_keys",
    "usage",
]

JOURNAL_UPSERT = (
    "INSERT INTO relay_blob_journal (blob_key, reason, created_at, recipient, reserved_bytes,"
    " reserved_files, sender, reserved_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (blob_key) DO UPDATE SET reason = excluded.reason,"
    " created_at = excluded.created_at, recipient = excluded.recipient,"
    " reserved_bytes = excluded.reserved_bytes, reserved_files = excluded.reserved_files,"
    " sender = excluded.sender, reserved_until = excluded.reserved_until"
)
"""Write a whole journal entry, replacing any entry of the same key (every column is
given, as the ``INSERT OR REPLACE`` it stands for would reset the others)."""


def queue_lock(recipient: str) -> str:
    """The lock name of ``recipient``'s inbox: its quota and its FIFO order."""
    return "relay-queue:" + recipient


def _sender_lock(sender: str) -> str:
    return "relay-sender:" + sender


_USAGE_SUMS = (
    " (SELECT COALESCE(SUM(size), 0) FROM relay_files"
    "  WHERE recipient = ? AND expires_at > ?),"
    " (SELECT COUNT(*) FROM relay_files WHERE recipient = ? AND expires_at > ?),"
    " (SELECT COALESCE(SUM(reserved_bytes), 0) FROM relay_blob_journal"
    "  WHERE recipient = ? AND (reserved_until IS NULL OR reserved_until > ?)),"
    " (SELECT COALESCE(SUM(reserved_files), 0) FROM relay_blob_journal"
    "  WHERE recipient = ? AND (reserved_until IS NULL OR reserved_until > ?))"
)
"""A recipient's file bytes, file count, held bytes and held files (each ``?, ?``: the
recipient and now)."""
_PENDING = (
    ", (SELECT COUNT(*) FROM relay_blob_journal WHERE sender = ? AND reason = 'upload'),"
    " (SELECT COALESCE(SUM(reserved_bytes), 0) FROM relay_blob_journal"
    "  WHERE sender = ? AND reason = 'upload')"
)
"""After :data:`_USAGE_SUMS`: a sender's unfinished uploads and their reserved bytes."""


def usage(conn: Conn, recipient: str, now: float, quota: QuotaDefaults) -> Usage | None:
    """``recipient``'s usage (files + held reservations) and quotas; ``None``: no user."""
    # One statement (one round trip on a client-server engine) instead of three.
    row = conn.execute(
        f"SELECT quota_bytes, quota_files,{_USAGE_SUMS} FROM users WHERE name = ?",  # noqa: S608
        (recipient, now) * 4 + (recipient,),
    ).fetchone()
    return None if row is None else _usage(row, quota)


def _usage(row: tuple[int, ...], quota: QuotaDefaults) -> Usage:
    """The :class:`Usage` of (quota_bytes, quota_files, the :data:`_USAGE_SUMS`)."""
    quota_bytes, quota_files, file_bytes, file_count, held_bytes, held_files = row[:6]
    return Usage(
        used_bytes=int(file_bytes) + int(held_bytes),
        used_files=int(file_count) + int(held_files),
        limit_bytes=quota.bytes if quota_bytes is None else int(quota_bytes),
        limit_files=quota.files if quota_files is None else int(quota_files),
    )


def check(recipient: str, used: Usage, size: int, files: int) -> None:
    """Raise :class:`QuotaExceeded` unless ``size`` bytes and ``files`` files fit."""
    if used.used_bytes + size > used.limit_bytes:
        raise QuotaExceeded(recipient, "bytes", used.used_bytes, size, used.limit_bytes)
    if used.used_files + files > used.limit_files:
        raise QuotaExceeded(recipient, "files", used.used_files, files, used.limit_files)


def _usage_and_pending(
    conn: Conn, recipient: str, sender: str, now: float, quota: QuotaDefaults
) -> tuple[Usage | None, int, int]:
    """:func:`usage` of ``recipient`` (``None``: no such user) and ``sender``'s unfinished
    uploads and their bytes, in one statement (no ``FROM``: the sender's figures come
    back even when there is no recipient)."""
    user = "(SELECT {} FROM users WHERE name = ?)"
    row = conn.execute(
        f"SELECT {user.format('COUNT(*)')}, {user.format('quota_bytes')},"
        f" {user.format('quota_files')},{_USAGE_SUMS}{_PENDING}",
        (recipient,) * 3 + (recipient, now) * 4 + (sender, sender),
    ).fetchone()
    used = _usage(row[1:7], quota) if row[0] else None
    return used, int(row[7]), int(row[8])


def _check_sender(sender: str, limits: PendingLimits, uploads: int, pending: int, size: int,
                  count: int) -> None:  # fmt: skip
    """Raise :class:`PendingExceeded` unless ``count`` more uploads of ``size`` bytes in
    all fit in ``sender``'s pending allowance (``uploads`` of ``pending`` bytes now)."""
    if uploads + count > limits.uploads:
        raise PendingExceeded(sender, "uploads", uploads, count, limits.uploads)
    if pending + size > limits.bytes:
        raise PendingExceeded(sender, "bytes", pending, size, limits.bytes)


def reserve_keys(
    conn: Conn,
    dialect: Dialect,
    keys: list[tuple[str, int]],
    recipient: str,
    now: float,
    quota: QuotaDefaults,
    *,
    sender: str | None,
    pending: PendingLimits | None,
    until: float | None,
) -> Usage:
    """See :meth:`wirelab.db.RelayRepository.reserve`."""
    size = sum(length for _, length in keys)
    locks = [queue_lock(recipient)]
    if sender is not None and pending is not None:
        locks.append(_sender_lock(sender))
    dialect.lock(conn, *locks)
    if sender is not None and pending is not None:
        # The sender's allowance and the recipient's quota read in one round trip.
        used, uploads, held = _usage_and_pending(conn, recipient, sender, now, quota)
        _check_sender(sender, pending, uploads, held, size, len(keys))
    else:
        used = usage(conn, recipient, now, quota)
    if used is None:  # no such user (or removed meanwhile): checked here, in the commit
        raise UserNotFoundError(f"no user named {recipient!r}")
    check(recipient, used, size, len(keys))
    conn.executemany(
        JOURNAL_UPSERT,
        [(key, "upload", now, recipient, length, 1, sender, until) for key, length in keys],
    )
    return used


def _batch_keys(conn: Conn, key: str) -> list[str]:
    """``key`` and, when it is a batch's upload, the keys of the rest of its batch."""
    rows = conn.execute(
        "SELECT id FROM relay_uploads WHERE batch_id ="
        " (SELECT batch_id FROM relay_uploads WHERE id = ? AND batch_id IS NOT NULL)",
        (key,),
    ).fetchall()
    return [str(row[0]) for row in rows] or [key]


def hold(
    conn: Conn, dialect: Dialect, key: str, now: float, quota: QuotaDefaults, until: float
) -> None:
    """Renew ``key``'s reservation until ``until``: bytes are arriving for it.

    A lapsed reservation is checked against the recipient's quota again (for a batch's
    upload: with the lapsed ones of its whole batch, renewed too, since the last upload
    delivers them all): :class:`QuotaExceeded`, nothing changed. No-op when nothing is
    journaled for ``key``.
    """
    row = conn.execute(
        "SELECT recipient FROM relay_blob_journal WHERE blob_key = ? AND reason = 'upload'",
        (key,),
    ).fetchone()
    if row is None:
        return
    dialect.lock(conn, queue_lock(str(row[0])))
    keys = _batch_keys(conn, key)
    marks = ", ".join("?" * len(keys))
    lapsed = conn.execute(
        "SELECT blob_key, reserved_bytes, reserved_files FROM relay_blob_journal"  # noqa: S608
        f" WHERE blob_key IN ({marks}) AND reason = 'upload'"
        " AND reserved_until IS NOT NULL AND reserved_until <= ?",
        (*keys, now),
    ).fetchall()
    if lapsed:
        used = usage(conn, str(row[0]), now, quota)
        if used is not None:
            size = sum(int(r[1]) for r in lapsed)
            check(str(row[0]), used, size, sum(int(r[2]) for r in lapsed))
    conn.executemany(
        "UPDATE relay_blob_journal SET reserved_until = ? WHERE blob_key = ?",
        [(until, str(r[0])) for r in lapsed] + [(until, key)],
    )


def release(conn: Conn, key: str, until: float) -> None:
    """Let ``key``'s reservation, if held for good, lapse at ``until``."""
    conn.execute(
        "UPDATE relay_blob_journal SET reserved_until = ?"
        " WHERE blob_key = ? AND reason = 'upload' AND reserved_until IS NULL",
        (until, key),
    )
