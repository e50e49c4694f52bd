"""Group commit of directory fsyncs: one ``fsync`` covers every change made before it began.

Making a new directory entry durable takes an ``fsync`` of the directory. When many
requests create files in one directory at once, each would pay for its own; but an fsync
that *starts* after a change covers it. :class:`DirSync` therefore collects the callers that
arrive while an fsync of the directory runs and serves them all with the next one, so N
concurrent callers cost about two fsyncs, not N. The fsyncs run in worker threads, never on
the event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .._fsio import fsync_dir
from ._fsutil import run_io

__all__ = ["DirSync"]


def _observe(fut: asyncio.Future[None]) -> None:
    # Every waiter may have been cancelled: retrieve the outcome so that asyncio does not
    # log "exception was never retrieved".
    if not fut.cancelled():
        fut.exception()


class DirSync:
    """Coalesced ``fsync`` of directories (see the module doc). One per event loop."""

    def __init__(self) -> None:
        self._waiting: dict[Path, asyncio.Future[None]] = {}  # batch not started yet
        self._running: dict[Path, asyncio.Task[None]] = {}

    async def sync(self, directory: Path) -> None:
        """Return once an fsync of *directory* that began after this call has succeeded;
        raise its ``OSError`` if it failed. Cancelling the caller never cancels the fsync."""
        batch = self._waiting.get(directory)
        if batch is None:
            batch = self._waiting[directory] = asyncio.get_running_loop().create_future()
            batch.add_done_callback(_observe)
            if directory not in self._running:
                self._running[directory] = asyncio.create_task(self._run(directory))
        await asyncio.shield(batch)

    async def _run(self, directory: Path) -> None:
        try:
            while (batch := self._waiting.pop(directory, None)) is not None:
                # Callers arriving from now on join the next batch: this fsync may have
                # begun before their change.
                try:
                    await run_io(fsync_dir, directory)
                except Exception as exc:
                    batch.set_exception(exc)
                else:
                    batch.set_result(None)
        finally:
            del self._running[directory]
