"""Removing a user's relay data with the user: a reused name starts empty.

Runs inside the transaction that deletes the user row. Rows go at once; every blob key
they referenced is journaled with reason ``"delete"`` (and no reservation), so the relay's
sweeper (or the next start-up) removes the bytes, partial uploads included: nothing
addressed to the old user can reach a new user of the same name, and nothing leaks.
"""

from __future__ import annotations

from ._repo_reserve import JOURNAL_UPSERT
from ._sql import Conn

__all__ = ["purge_user"]


def _orphan(conn: Conn, keys: list[str], now: float) -> None:
    """Journal ``keys`` for deletion, replacing their upload reservations."""
    conn.executemany(JOURNAL_UPSERT, [(key, "delete", now, None, 0, 0, None, None) for key in keys])


def purge_user(conn: Conn, name: str, now: float) -> None:
    """Delete everything addressed to ``name`` and every upload ``name`` was sending.

    Files ``name`` sent that were already delivered to others stay theirs.
    """
    keys = [
        str(row[0])
        for row in conn.execute(
            # inline files' bytes go with their rows: nothing to journal
            "SELECT blob_key FROM relay_files WHERE recipient = ? AND content IS NULL",
            (name,),
        ).fetchall()
    ]
    conn.execute("DELETE FROM relay_files WHERE recipient = ?", (name,))
    # Uploads to or from the user: a complete one is only a record (its file, if it was
    # addressed to the user, was deleted above); the others hold journaled bytes.
    rows = conn.execute(
        "SELECT id, state FROM relay_uploads WHERE recipient = ? OR owner = ?", (name, name)
    ).fetchall()
    keys += [str(upload_id) for upload_id, state in rows if state != "complete"]
    conn.execute("DELETE FROM relay_uploads WHERE recipient = ? OR owner = ?", (name, name))
    # Batches to the user, and the user's undelivered ones (their uploads went above).
    conn.execute(
        "DELETE FROM relay_batches WHERE recipient = ? OR (owner = ? AND delivered_at IS NULL)",
        (name, name),
    )
    # Reservations still charged to the user's inbox (a simple send in progress): the
    # send fails at its commit (no recipient); its key is garbage from now on.
    keys += [
        str(row[0])
        for row in conn.execute(
            "SELECT blob_key FROM relay_blob_journal WHERE recipient = ?", (name,)
        ).fetchall()
    ]
    _orphan(conn, keys, now)
    conn.execute("DELETE FROM relay_keys WHERE name = ?", (name,))
