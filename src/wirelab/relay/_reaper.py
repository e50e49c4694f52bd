"""Deleting the blobs of deleted files in the background, many per request.

An acknowledge deletes the file row and journals its blob key in one database
statement; the bytes may go a moment later. (The sweeper deletes expired files' blobs
with the same batch delete, in its own task.) On a store that deletes many blobs
in one request (:attr:`~wirelab.storage.BlobStore.batch_deletes`: S3's DeleteObjects),
the request handler hands the key to a :class:`Reaper` and answers at once; one drain
task deletes the queued keys in batches, then drops their journal entries in one
statement. Batches grow by themselves under load: keys queue while a batch is in flight,
as a group commit does; a lone acknowledge is deleted at once.

Nothing is lost if the process dies first: the journal entries stay, and the sweeper
(:meth:`RelayService.sweep`) deletes those blobs. Deleting twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

__all__ = ["Reaper"]

_log = logging.getLogger("wirelab.relay")

#: The most keys one drain round deletes (one DeleteObjects request, one statement).
BATCH = 500


class Reaper:
    """Deletes blob keys in batches through ``delete`` (``delete(keys)``: remove the
    blobs and forget their journal entries; an exception leaves them journaled)."""

    def __init__(self, delete: Callable[[Sequence[str]], Awaitable[None]]) -> None:
        self._delete = delete
        self._queue: list[str] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Keys queued or being deleted."""
        return len(self._queue) + (0 if self._task is None else 1)

    def schedule(self, key: str) -> None:
        """Queue ``key`` for deletion; starts the drain task unless it runs."""
        self._queue.append(key)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._drain(), name="wirelab-relay-reaper"
            )

    async def _drain(self) -> None:
        try:
            while self._queue:
                keys, self._queue = self._queue[:BATCH], self._queue[BATCH:]
                try:
                    await self._delete(keys)
                except Exception:  # journaled still: the sweeper retries
                    _log.exception("cannot delete %d relay blob(s), e.g. %s", len(keys), keys[0])
        finally:
            self._task = None

    async def flush(self) -> None:
        """Wait until every key scheduled so far was deleted (or failed, and stays
        journaled). Cancelling the caller does not cancel the deletions."""
        while self._task is not None:
            await asyncio.shield(self._task)
