"""Change notices for jobs, so that ``GET /v1/media/jobs/{id}?wait=`` answers at once.

The db is the truth; these notices only make a waiting request look again sooner. Every
job write made in this process (the embedded runner's claims, heartbeats and ends, through
its ``on_change``; the service's success and cancel requests) calls
:meth:`JobChanges.notify`; a waiter that hears nothing still looks at the db every
:data:`WATCH_POLL` seconds, which is how it sees the writes of runners in other processes.
"""

from __future__ import annotations

import asyncio
import contextlib

from ..db import MediaJob

__all__ = ["WATCH_POLL", "JobChanges", "job_look"]

WATCH_POLL = 0.2
"""Seconds between two db reads of a waiting request that heard no notice."""


def job_look(job: MediaJob) -> tuple[object, ...]:
    """What a client watching ``job`` sees change: state, phase, progress (as shown,
    to a tenth of a percent), cancel flag, attempts, error."""
    return (
        job.state,
        job.phase,
        round(job.progress, 1),
        job.cancel_requested,
        job.attempts,
        job.error_message,
    )


class _Waiters:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.count = 0


class JobChanges:
    """Per-job wake-ups within one process (one event loop)."""

    def __init__(self) -> None:
        self._waiting: dict[str, _Waiters] = {}

    def notify(self, job_id: str) -> None:
        """``job_id`` was written: wake everyone waiting on it."""
        waiters = self._waiting.pop(job_id, None)
        if waiters is not None:
            waiters.event.set()

    async def wait(self, job_id: str, seconds: float) -> None:
        """Return at the next notice for ``job_id``, or after ``seconds``."""
        waiters = self._waiting.get(job_id)
        if waiters is None:
            waiters = self._waiting[job_id] = _Waiters()
        waiters.count += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiters.event.wait(), seconds)
        finally:
            waiters.count -= 1
            # The last waiter to leave drops its entry (none is left behind per job).
            if not waiters.count and self._waiting.get(job_id) is waiters:
                del self._waiting[job_id]
